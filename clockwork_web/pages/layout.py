"""What every page shares: the preferences in effect, the navigation, link
builders for sorting and paging, and the quick theme/language switches of the
header (which work before sign-in too, kept in the session until then).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from clockwork_core.schema import state_bucket
from clockwork_web.auth.access import audit, public, safe_next
from clockwork_web.db import get_db
from clockwork_web.errors import BadRequest
from clockwork_web.i18n import LANGUAGES, SESSION_LANGUAGE
from clockwork_web.pages import bp
from clockwork_web.pages.prefs import THEMES, Prefs, prefs_of

SESSION_THEME = "theme"

#: The four state buckets, as users read them.
BUCKET_LABELS: dict[str, Any] = {
    "PENDING": _l("Pending"),
    "RUNNING": _l("Running"),
    "COMPLETED": _l("Completed"),
    "FAILED": _l("Failed"),
}

#: (endpoint, label, who sees it: "user" | "admin")
NAV: tuple[tuple[str, Any, str], ...] = (
    ("pages.dashboard", _l("Dashboard"), "user"),
    ("pages.jobs", _l("Jobs"), "user"),
    ("pages.nodes", _l("Nodes"), "user"),
    ("pages.gpus", _l("GPUs"), "user"),
    ("pages.clusters", _l("Clusters"), "user"),
    ("submissions.index", _l("Submit"), "user"),
    ("pages.settings", _l("Settings"), "user"),
    ("pages.admin_users", _l("Admin"), "admin"),
)


def current_prefs() -> Prefs:
    """The preferences of this request's user (or visitor), computed once."""
    prefs = g.get("cw_prefs")
    if prefs is None:
        user = g.get("user")
        default = current_app.config["CLOCKWORK"].web.per_page_default
        if user is not None:
            prefs = prefs_of(user.settings, default)
        else:
            prefs = prefs_of(
                {"theme": session.get(SESSION_THEME), "language": session.get(SESSION_LANGUAGE)},
                default,
            )
        g.cw_prefs = prefs
    return prefs


def url_with(**changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    args = request.args.to_dict(flat=False)
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value if isinstance(value, list) else [str(value)]
    query = urlencode([(k, v) for k, vs in args.items() for v in vs])
    return request.path + ("?" + query if query else "")


def sort_state(key: str, current: str, order: int) -> tuple[str, str]:
    """``(url, aria-sort)`` of a sortable header: a click sorts on it, again reverses."""
    if key == current:
        aria = "ascending" if order == 1 else "descending"
        new_order = "desc" if order == 1 else "asc"
    else:
        aria = "none"
        new_order = "asc" if key in ("cluster", "name", "user", "username", "state") else "desc"
    return url_with(sort=key, order=new_order, page=None), aria


def nav_items() -> list[dict[str, Any]]:
    user = g.get("user")
    if user is None:
        return []
    items = []
    for endpoint, label, who in NAV:
        if endpoint not in current_app.view_functions:
            continue
        if who == "admin" and not user.is_admin:
            continue
        items.append(
            {
                "url": url_for(endpoint),
                "label": label,
                "current": request.endpoint == endpoint
                or (request.endpoint or "").startswith(endpoint + "_"),
            }
        )
    return items


@bp.app_context_processor
def _layout_context() -> dict[str, Any]:
    return {"prefs": current_prefs(), "now": datetime.now(UTC)}


@bp.record_once
def _template_globals(state: Any) -> None:
    """Helpers the templates and their imported macros (which see no context) call."""
    state.app.jinja_env.globals.update(
        nav_items=nav_items,
        url_with=url_with,
        sort_state=sort_state,
        THEMES=THEMES,
        state_bucket=state_bucket,
        state_label=lambda value: value or "",
        BUCKET_LABELS=BUCKET_LABELS,
    )


# --------------------------------------------------------------------------- quick switches


def _save_setting(key: str, value: str) -> None:
    user = g.get("user")
    if user is None:
        session[key] = value
        return
    get_db().users.update_one({"email": user.email}, {"$set": {f"settings.{key}": value}})
    audit("settings.update", user.email, "ok", keys=[key])


@bp.post("/preferences/theme")
@public
def set_theme() -> Response:
    theme = request.form.get("theme", "")
    if theme not in THEMES:
        raise BadRequest(f"choose one of {', '.join(THEMES)}", param="theme")
    _save_setting("theme", theme)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/preferences/language")
@public
def set_language() -> Response:
    language = request.form.get("language", "")
    if language not in LANGUAGES:
        raise BadRequest(f"choose one of {', '.join(LANGUAGES)}", param="language")
    _save_setting("language", language)
    return redirect(safe_next(request.form.get("next")))
