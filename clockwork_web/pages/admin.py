"""Administration: users (roles, enable/disable, cluster accounts) and the audit log.

Admins only (staff may read the lists, never change anything: ``roles_required``
refuses them on POST). Changes go through :mod:`clockwork_web.auth.users`, the
same functions as the admin CLI, and each one is written to the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from clockwork_web.auth import users as users_service
from clockwork_web.auth.access import audit, current_user, login_required, roles_required
from clockwork_web.db import get_db
from clockwork_web.errors import BadRequest, NotFound
from clockwork_web.jobs.query import parse_page
from clockwork_web.pages import bp
from clockwork_web.pages.layout import current_prefs

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

USER_FIELDS = {
    "_id": 0,
    "email": 1,
    "display_name": 1,
    "status": 1,
    "roles": 1,
    "cluster_accounts": 1,
    "last_login": 1,
}


def _page_number() -> int:
    return parse_page(request.args.get("page"))


@bp.get("/admin/users")
@login_required
@roles_required("staff", "admin")
def admin_users() -> str:
    per_page = current_prefs().per_page
    page = _page_number()
    search = request.args.get("q", "").strip()[:100]
    query: dict[str, Any] = {}
    if search:
        # a prefix as a range: the email index serves it on every server
        prefix = search.lower()
        query["email"] = {"$gte": prefix, "$lt": prefix + "\uffff"}
    else:
        query["email"] = {"$gt": ""}
    docs = list(
        get_db()
        .users.find(query, USER_FIELDS)
        .sort("email", 1)
        .skip((page - 1) * per_page)
        .limit(per_page + 1)
    )
    return render_template(
        "pages/admin_users.html",
        people=docs[:per_page],
        page=page,
        has_next=len(docs) > per_page,
        search=search,
    )


@bp.get("/admin/users/<email>")
@login_required
@roles_required("staff", "admin")
def admin_user(email: str) -> tuple[str, int]:
    return _render_user(users_service.email_key(email))


def _render_user(email: str, status: int = 200, error: str | None = None) -> tuple[str, int]:
    doc = users_service.get_user(get_db(), email)
    if doc is None:
        raise NotFound(f"no user {email}")
    accounts = "; ".join(f"{c}:{u}" for c, u in sorted((doc.get("cluster_accounts") or {}).items()))
    return (
        render_template(
            "pages/admin_user.html",
            person=doc,
            accounts_text=accounts,
            roles=users_service.ROLES,
            error=error,
        ),
        status,
    )


def _change(email: str, action: str, apply: Any, **details: Any) -> Any:
    """Run one change; show the error on the user's page, or audit it and go back."""
    try:
        result = apply()
    except (users_service.UserInputError, BadRequest) as exc:
        audit(action, email, "refused", reason=str(exc), **details)
        return _render_user(email, 400, str(exc))
    if result is False:
        raise NotFound(f"no user {email}")
    audit(action, email, "ok", **details)
    flash(_("Saved."), "success")
    return redirect(url_for("pages.admin_user", email=email))


def _parsed_roles(roles: list[str]) -> tuple[str, ...]:
    """The roles as they would be stored; none when invalid (the change is refused anyway)."""
    try:
        return users_service.parse_roles(roles)
    except users_service.UserInputError:
        return ()


def _parsed_status(status: str) -> str | None:
    """The status as it would be stored; None when invalid (the change is refused anyway)."""
    try:
        return users_service.parse_status(status)
    except users_service.UserInputError:
        return None


@bp.post("/admin/users/<email>/status")
@login_required
@roles_required("admin")
def admin_user_status(email: str) -> Response:
    email = users_service.email_key(email)
    status = request.form.get("status", "")
    if email == current_user().email and _parsed_status(status) == "disabled":
        return _render_user(email, 400, _("You cannot disable your own account."))
    return _change(
        email,
        "user.status",
        lambda: users_service.set_status(get_db(), email, status),
        status=status,
    )


@bp.post("/admin/users/<email>/roles")
@login_required
@roles_required("admin")
def admin_user_roles(email: str) -> Response:
    email = users_service.email_key(email)
    roles = request.form.getlist("roles")
    if email == current_user().email and "admin" not in _parsed_roles(roles):
        return _render_user(email, 400, _("You cannot remove your own admin role."))
    return _change(
        email,
        "user.roles",
        lambda: users_service.set_roles(get_db(), email, roles),
        roles=roles,
    )


@bp.post("/admin/users/<email>/accounts")
@login_required
@roles_required("admin")
def admin_user_accounts(email: str) -> Response:
    email = users_service.email_key(email)
    text = request.form.get("cluster_accounts", "")[:4000]

    def apply() -> int:
        accounts = users_service.parse_cluster_accounts(text)
        return users_service.set_cluster_accounts(get_db(), email, accounts)

    return _change(email, "user.cluster_accounts", apply, cluster_accounts=text)


@bp.get("/admin/audit")
@login_required
@roles_required("staff", "admin")
def admin_audit() -> str:
    per_page = current_prefs().per_page
    page = _page_number()
    who = request.args.get("user", "").strip().lower()[:200]
    query: dict[str, Any] = {"user_email": who} if who else {"time": {"$gt": _EPOCH}}
    docs = list(
        get_db()
        .audit_log.find(query, {"_id": 0})
        .sort("time", -1)
        .skip((page - 1) * per_page)
        .limit(per_page + 1)
    )
    return render_template(
        "pages/admin_audit.html",
        entries=docs[:per_page],
        page=page,
        has_next=len(docs) > per_page,
        who=who,
    )
