"""The server-rendered pages: dashboard, jobs, nodes, GPUs, clusters, users, settings, admin.

One module per page group, all on the one blueprint ``bp`` (mounted at ``/``).
Views are thin: they parse the request, call the same services as the REST
API (``clockwork_web.jobs.service`` and the query builder), and render a
template. Every page needs a signed-in user unless marked public.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__)

# the page groups register their routes on ``bp``
from clockwork_web.pages import (  # noqa: E402, F401
    admin,
    clusters,
    dashboard,
    gpus,
    jobs,
    layout,
    nodes,
    settings,
    users,
)
