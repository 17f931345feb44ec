"""Login and logout pages, the OIDC callback, the development login, /healthz."""

from __future__ import annotations

import logging
from typing import Any

import flask_login
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
    User,
    audit,
    auth_failed,
    end_session,
    is_loopback,
    safe_next,
)
from clockwork_web.db import get_config, get_db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_NEXT = "login_next"
_PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def _dev_login_allowed() -> bool:
    """Enabled in the config AND a direct request from loopback (not via a proxy).

    A proxied request is refused even when the proxy itself is on loopback:
    any forwarding header, and the peer address before ProxyFix rewrote it,
    must both say "direct from this machine".
    """
    if not get_config().web.dev_login:
        return False
    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    original = request.environ.get("werkzeug.proxy_fix.orig", {})
    peer = original.get("REMOTE_ADDR", request.environ.get("REMOTE_ADDR"))
    return is_loopback(peer) and is_loopback(request.remote_addr)


def _refuse(message: str, status: int) -> tuple[str, int]:
    return render_template("auth/message.html", title="Sign-in refused", message=message), status


def _start_session(doc: dict[str, Any], method: str) -> Response:
    """Log ``doc``'s user in (fresh session against fixation) and go where they wanted.

    Flask-Login stores ``email:generation``: the session lasts until the user's
    generation changes (logout, role change, disabling) or the cookie expires.
    """
    next_path = safe_next(session.get(_NEXT))
    session.clear()
    flask_login.login_user(User.from_document(doc))
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
    """The provider's answer: a verified login starts a session, whatever failed before."""
    cfg = get_config()
    db = get_db()
    try:
        email, name = oidc.finish_login(db, cfg.login.allowed_email_domains)
        doc = oidc.provision(db, email, name, cfg.web.provisioning)
    except oidc.LoginError as exc:
        audit(
            "login", exc.email or request.args.get("state", "")[:16], "refused", reason=exc.message
        )
        auth_failed(f"OIDC login refused: {exc.message}", "oidc:" + (exc.email or "?"))
        return _refuse(exc.message, exc.status)
    return _start_session(doc, "oidc")


@bp.post("/logout")
def logout() -> Any:
    """End this session and every other of the user (copies of the cookie included)."""
    user = g.get("user")
    if user is not None:
        try:
            users.end_sessions(get_db(), user.email)
        except PyMongoError:
            log.exception("cannot end the sessions of %s", user.email)
        audit("logout", user.email, "ok")
    end_session()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/login/dev", methods=["GET", "POST"])
def login_dev() -> Any:
    if not _dev_login_allowed():
        abort(404)
    if request.method == "GET":
        return render_template("auth/dev_login.html", next_path=safe_next(request.args.get("next")))
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
        auth_failed(f"dev login refused: {exc.message}", "dev:" + email)
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
