"""Nodes: listing and one node. Plain functions over the ``nodes`` collection.

A user sees the nodes of the clusters they have an account on; staff and
admins see every node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from clockwork_web.errors import BadRequest, NotFound
from clockwork_web.jobs.query import (
    MAX_PER_PAGE,
    UserLike,
    parse_list,
    parse_page,
    parse_per_page,
    reject_unknown,
)
from clockwork_web.jobs.service import Page, cached_count, public_job
from clockwork_web.memo import Memo

#: Node totals are reused for this long (seconds): nodes come and go rarely,
#: and counting a cluster's nodes reads every one of them.
NODE_COUNT_TTL_S = 15.0

NODE_PARAMS = frozenset({"cluster", "state", "name", "page", "per_page"})
NODE_PROJECTION: dict[str, int] = {"_id": 0, "cw.last_scrape_id": 0}


def public_node(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as NODE_PROJECTION shows it, trimmed here (see ``jobs.service.public_job``)."""
    return public_job(doc)


NODE_SORT: list[tuple[str, int]] = [("slurm.cluster_name", 1), ("slurm.name", 1)]


@dataclass(frozen=True)
class NodeFilters:
    clusters: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    name: str | None = None
    page: int = 1
    per_page: int = 50


def parse_node_filters(args: Mapping[str, list[str]], *, per_page_default: int = 50) -> NodeFilters:
    """Validate the parameters of ``GET /api/v1/nodes``."""
    reject_unknown(args, NODE_PARAMS)
    names = parse_list(args, "name")
    if len(names) > 1:
        raise BadRequest("give one name (a substring)", param="name")
    page = parse_list(args, "page")
    per_page = parse_list(args, "per_page")
    return NodeFilters(
        clusters=parse_list(args, "cluster"),
        states=tuple(s.lower() for s in parse_list(args, "state")),
        name=names[0] if names else None,
        page=parse_page(page[0] if page else None),
        per_page=parse_per_page(
            per_page[0] if per_page else None, default=per_page_default, maximum=MAX_PER_PAGE
        ),
    )


def build_node_query(
    filters: NodeFilters, user: UserLike, known_clusters: Iterable[str] | None = None
) -> dict[str, Any]:
    """A flat filter: the cluster clause first (it rides the node key index)."""
    query: dict[str, Any] = {}
    clusters: set[str] | None = set(filters.clusters) if filters.clusters else None
    if clusters is None and known_clusters is not None:
        clusters = set(known_clusters)
    if not user.sees_all_jobs:
        clusters = set(user.clusters) if clusters is None else clusters & set(user.clusters)
    if clusters is not None:
        query["slurm.cluster_name"] = {"$in": sorted(clusters)}
    if filters.states:
        query["slurm.state"] = {"$in": list(filters.states)}
    if filters.name:
        query["slurm.name"] = {"$regex": re.escape(filters.name), "$options": "i"}
    return query


def list_nodes(
    db: Database[Any],
    filters: NodeFilters,
    user: UserLike,
    *,
    known_clusters: Iterable[str] | None = None,
) -> Page:
    """One page of the nodes ``user`` may see, in (cluster, name) order.

    Read one cluster at a time (each an index prefix), so that a page costs the
    nodes of the clusters it spans rather than every node.
    """
    query = build_node_query(filters, user, known_clusters)
    skip = (filters.page - 1) * filters.per_page
    want = skip + filters.per_page + 1
    clusters = query.get("slurm.cluster_name", {}).get("$in")
    # one query per cluster (an index prefix each), in the listing's order
    parts = (
        [query]
        if clusters is None
        else [{**query, "slurm.cluster_name": cluster} for cluster in clusters]
    )
    docs: list[dict[str, Any]] = []
    for part in parts:
        if len(docs) >= want:
            break
        docs.extend(_first_nodes(db, part, want - len(docs)))
    docs = docs[skip:]
    has_next = len(docs) > filters.per_page
    items = docs[: filters.per_page]
    known = not has_next and (items or filters.page == 1)
    total = skip + len(items) if known else sum(count_nodes(db, part) for part in parts)
    return Page(
        items=items, total=total, page=filters.page, per_page=filters.per_page, has_next=has_next
    )


#: Per listing shape, the name of the last node its page needed last time.
#: The database decodes every node a query's index range holds before it sorts
#: and limits; bounding the name range by what the previous page ended on keeps
#: a page to its own nodes. A guess only: a page that comes up short reads on
#: past the bound, so a stale bound costs a query, never a wrong page.
_bounds: Memo[str] = Memo()


def _first_nodes(db: Database[Any], part: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` nodes of ``part`` in (cluster, name) order."""

    def read(query: dict[str, Any], n: int) -> list[dict[str, Any]]:
        return [public_node(d) for d in db.nodes.find(query).sort(NODE_SORT).limit(n)]

    if set(part) != {"slurm.cluster_name"} or not isinstance(part["slurm.cluster_name"], str):
        return read(part, limit)
    key = f"{db.name}:{part['slurm.cluster_name']}:{limit}"
    bound = _bounds.get(key)
    if bound is None:
        docs = read(part, limit)
    else:
        docs = read({**part, "slurm.name": {"$lte": bound}}, limit)
        if len(docs) < limit:
            docs += read({**part, "slurm.name": {"$gt": bound}}, limit - len(docs))
    if len(docs) >= limit:
        _bounds.put(key, docs[limit - 1]["slurm"]["name"])
    return docs


def count_nodes(db: Database[Any], query: Mapping[str, Any]) -> int:
    """The number of nodes matching ``query``; reused for NODE_COUNT_TTL_S seconds."""
    return cached_count(db, "nodes", query, ttl=NODE_COUNT_TTL_S)


def all_nodes(
    db: Database[Any], user: UserLike, cluster: str | None = None, limit: int = 20_000
) -> list[dict[str, Any]]:
    """Every node ``user`` may see (bounded), for the original API's unpaginated list."""
    filters = NodeFilters(clusters=(cluster,) if cluster else ())
    query = build_node_query(filters, user)
    return [public_node(d) for d in db.nodes.find(query).sort(NODE_SORT).limit(limit)]


def get_node(db: Database[Any], cluster: str, name: str, user: UserLike) -> dict[str, Any]:
    """The node ``name`` of ``cluster``; NotFound if absent or on a hidden cluster."""
    if not user.sees_all_jobs and cluster not in user.clusters:
        raise NotFound(f"no node {name} on cluster {cluster}")
    doc = db.nodes.find_one({"slurm.cluster_name": cluster, "slurm.name": name})
    if doc is None:
        raise NotFound(f"no node {name} on cluster {cluster}")
    return public_node(doc)
