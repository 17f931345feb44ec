"""Login and logout pages, the OIDC callback, the development login, /healthz."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from pymongo.errors import PyMongoError

from clockwork_web.auth import oidc, users
from clockwork_web.auth.access import (
    SESSION_USER,
    audit,
    check_rate_limit,
    is_loopback,
    record_auth_failure,
    safe_next,
)
from clockwork_web.db import get_config, get_db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_NEXT = "login_next"
_PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def _dev_login_allowed() -> bool:
    """Enabled in the config AND a direct request from loopback (not via a proxy)."""
    if not get_config().web.dev_login:
        return False
    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    return is_loopback(request.remote_addr)


def _refuse(message: str, status: int) -> tuple[str, int]:
    return render_template("auth/message.html", title="Sign-in refused", message=message), status


def _start_session(doc: dict[str, Any], method: str) -> Response:
    """Log ``doc``'s user in (fresh session against fixation) and go where they wanted."""
    next_path = safe_next(session.get(_NEXT))
    session.clear()
    session[SESSION_USER] = doc["email"]
    session.permanent = True
    users.record_login(get_db(), doc["email"])
    audit("login", doc["email"], "ok", method=method, user_email=doc["email"])
    return redirect(next_path)


@bp.get("/login")
def login() -> Any:
    next_path = safe_next(request.args.get("next"))
    if g.get("user") is not None:
        return redirect(next_path)
    cfg = get_config()
    return render_template(
        "auth/login.html",
        provider_name=cfg.login.provider_name,
        next_path=next_path,
        dev_login=_dev_login_allowed(),
    )


@bp.get("/login/oidc")
def login_oidc() -> Any:
    session[_NEXT] = safe_next(request.args.get("next"))
    redirect_uri = get_config().web.base_url.rstrip("/") + url_for("auth.callback")
    try:
        return oidc.start_login(redirect_uri)
    except Exception as exc:
        log.error("cannot reach the identity provider: %s: %s", type(exc).__name__, exc)
        return _refuse("The identity provider cannot be reached right now; try again later.", 503)


@bp.get("/auth/callback")
def callback() -> Any:
    check_rate_limit()
    cfg = get_config()
    db = get_db()
    try:
        email, name = oidc.finish_login(db, cfg.login.allowed_email_domains)
        doc = oidc.provision(db, email, name, cfg.web.provisioning)
    except oidc.LoginError as exc:
        record_auth_failure(f"OIDC login refused: {exc.message}")
        audit("login", request.args.get("state", "")[:16], "refused", reason=exc.message)
        return _refuse(exc.message, exc.status)
    return _start_session(doc, "oidc")


@bp.post("/logout")
def logout() -> Any:
    user = g.get("user")
    if user is not None:
        audit("logout", user.email, "ok")
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/login/dev", methods=["GET", "POST"])
def login_dev() -> Any:
    if not _dev_login_allowed():
        abort(404)
    if request.method == "GET":
        return render_template("auth/dev_login.html", next_path=safe_next(request.args.get("next")))
    check_rate_limit()
    log.warning(
        "DEVELOPMENT LOGIN used from %s for %r: never enable web.dev_login in production",
        request.remote_addr,
        request.form.get("email", "")[:100],
    )
    try:
        email = users.normalize_email(request.form.get("email", ""))
        doc = oidc.provision(get_db(), email, email.split("@")[0], get_config().web.provisioning)
    except users.UserInputError as exc:
        return _refuse(str(exc), 400)
    except oidc.LoginError as exc:
        record_auth_failure(f"dev login refused: {exc.message}")
        return _refuse(exc.message, exc.status)
    session[_NEXT] = safe_next(request.form.get("next"))
    return _start_session(doc, "dev")


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness and database reachability, for load balancers (no secrets, no auth)."""
    try:
        get_db().command("ping")
    except PyMongoError:
        return jsonify({"status": "error", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok", "app": current_app.name})
