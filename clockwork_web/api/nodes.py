"""``/api/v1/nodes``: the listing and one node."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from clockwork_web.api import bp
from clockwork_web.api.params import me, page_json, query_args
from clockwork_web.auth.access import api_auth_required
from clockwork_web.db import get_config, get_db
from clockwork_web.jobs.query import reject_unknown
from clockwork_web.nodes import service


@bp.get("/nodes")
@api_auth_required
def list_nodes() -> Any:
    """The nodes of the clusters the caller may see, paginated."""
    filters = service.parse_node_filters(
        query_args(), per_page_default=get_config().web.per_page_default
    )
    page = service.list_nodes(get_db(), filters, me(), known_clusters=get_config().clusters)
    return jsonify(page_json(page))


@bp.get("/nodes/<cluster>/<name>")
@api_auth_required
def get_node(cluster: str, name: str) -> Any:
    """One node."""
    reject_unknown(query_args(), ())
    return jsonify(service.get_node(get_db(), cluster, name, me()))
