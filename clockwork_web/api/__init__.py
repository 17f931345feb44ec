"""REST API v1 (JSON), mounted at /api/v1 by the blueprint registry.

Views are thin: they parse the request, call a domain service (jobs, nodes,
clusters, gpus, stats) and serialize its answer. The original Clockwork's
paths live in :mod:`.legacy`; the OpenAPI document and its rendered reference
in :mod:`.reference`.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__)

from clockwork_web.api import jobs, legacy, nodes, reference, resources  # noqa: E402

__all__ = ["bp", "jobs", "legacy", "nodes", "reference", "resources"]
