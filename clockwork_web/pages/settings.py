"""Settings: display preferences, and API tokens (created with a name and expiry,
shown once, revocable). Tokens are the auth package's (:mod:`clockwork_web.auth.tokens`).
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from clockwork_web.auth import tokens
from clockwork_web.auth.access import audit, current_user, login_required
from clockwork_web.db import get_db
from clockwork_web.errors import BadRequest
from clockwork_web.i18n import DATE_FORMATS, LANGUAGES
from clockwork_web.pages import bp
from clockwork_web.pages.prefs import JOB_COLUMNS, PER_PAGE_CHOICES, THEMES, parse_prefs_form

#: Token lifetimes offered, in days (None: no expiry).
TOKEN_LIFETIMES: tuple[int | None, ...] = (30, 90, 365, None)


@cache
def timezones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


def _render(status: int = 200, **extra: Any) -> tuple[str, int]:
    user = current_user()
    return (
        render_template(
            "pages/settings.html",
            tokens=tokens.list_tokens(get_db(), user.email),
            timezones=timezones(),
            themes=THEMES,
            languages=LANGUAGES,
            date_formats=DATE_FORMATS,
            per_page_choices=PER_PAGE_CHOICES,
            all_columns=JOB_COLUMNS,
            lifetimes=TOKEN_LIFETIMES,
            **extra,
        ),
        status,
    )


@bp.get("/settings")
@login_required
def settings() -> tuple[str, int]:
    return _render()


@bp.post("/settings")
@login_required
def settings_save() -> Any:
    user = current_user()
    try:
        values = parse_prefs_form(request.form.to_dict(flat=False))
    except BadRequest as exc:
        return _render(400, prefs_error=exc.message)
    get_db().users.update_one(
        {"email": user.email}, {"$set": {f"settings.{k}": v for k, v in values.items()}}
    )
    audit("settings.update", user.email, "ok", keys=sorted(values))
    flash(_("Settings saved."), "success")
    return redirect(url_for("pages.settings"))


@bp.post("/settings/tokens")
@login_required
def token_create() -> tuple[str, int]:
    user = current_user()
    name = request.form.get("name", "")
    lifetime = request.form.get("expires_days", "")
    try:
        days = int(lifetime) if lifetime else None
    except ValueError:
        return _render(400, token_error=_("Choose a lifetime from the list."))
    if days not in TOKEN_LIFETIMES:
        return _render(400, token_error=_("Choose a lifetime from the list."))
    try:
        secret, doc = tokens.create_token(get_db(), user.email, name, days)
    except ValueError as exc:
        return _render(400, token_error=str(exc))
    audit("token.create", str(doc["_id"]), "ok", name=doc["name"], expires_days=days)
    return _render(201, new_token=secret, new_token_name=doc["name"])


@bp.post("/settings/tokens/<token_id>/revoke")
@login_required
def token_revoke(token_id: str) -> Response:
    user = current_user()
    if tokens.revoke_token(get_db(), user.email, token_id):
        audit("token.revoke", token_id, "ok")
        flash(_("Token revoked."), "success")
    else:
        flash(_("No such token."), "error")
    return redirect(url_for("pages.settings") + "#tokens")
