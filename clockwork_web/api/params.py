"""Request plumbing shared by the API views: arguments, bodies, pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import g, request

from clockwork_web.auth.access import User
from clockwork_web.errors import BadRequest, Unauthorized
from clockwork_web.jobs.service import Page


def me() -> User:
    """The authenticated user (the view is behind ``api_auth_required``)."""
    user = g.get("user")
    if user is None:
        raise Unauthorized("authentication required")
    return user


def query_args() -> dict[str, list[str]]:
    """The query string as ``name -> [values]``."""
    return request.args.to_dict(flat=False)


def json_object() -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", param="body")
    return body


def page_json(page: Page) -> dict[str, Any]:
    """A page as the API returns it, with the link to the next page (or null)."""
    next_url = None
    if page.has_next:
        args = request.args.to_dict(flat=False)
        args["page"] = [str(page.page + 1)]
        args["per_page"] = [str(page.per_page)]
        next_url = f"{request.script_root}{request.path}?{urlencode(args, doseq=True)}"
    return {
        "items": page.items,
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
        "next": next_url,
    }
