"""A user's page: who they are, their cluster accounts, a link to their jobs.

Visible to the user themself, to staff and to admins; to anyone else it does
not exist (404), so pages do not reveal who has an account.
"""

from __future__ import annotations

from flask import render_template

from clockwork_web.auth import users as users_service
from clockwork_web.auth.access import current_user, login_required
from clockwork_web.db import get_db
from clockwork_web.errors import NotFound
from clockwork_web.pages import bp


@bp.get("/users/<email>")
@login_required
def user(email: str) -> str:
    me = current_user()
    email = email.strip().lower()
    if email != me.email and not me.is_staff:
        raise NotFound(f"no user {email}")
    doc = users_service.get_user(get_db(), email)
    if doc is None:
        raise NotFound(f"no user {email}")
    return render_template("pages/user.html", person=doc, is_me=email == me.email)
