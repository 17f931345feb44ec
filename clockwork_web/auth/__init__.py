"""Accounts, login (OpenID Connect), API tokens, roles: the app's security spine.

:func:`init_app` (called by ``create_app``) wires what every request goes
through: the failure limiter (counts in the database), Flask-Login, loading
``g.user`` from the session or an API token, CSRF protection of
session-authenticated unsafe requests, the OIDC client, and the security
headers of every response. Views use :mod:`.access`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, request
from flask_wtf.csrf import CSRFProtect

from clockwork_web.errors import TooManyRequests

#: The app's CSRF protection. Another package exempts a view with ``csrf.exempt(view)``.
csrf = CSRFProtect()

#: Content-Security-Policy of every response unless a view sets its own.
#: No inline scripts or styles, no framing, forms post only to this site.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _csrf_check() -> None:
    """CSRF for session-authenticated unsafe requests; token requests are exempt.

    A request with an ``Authorization`` header under /api/ authenticates by token
    only (never by the cookie), so a cross-site page cannot ride it.
    """
    from flask import current_app

    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if g.get("auth_method") == "token":
        return
    if request.path.startswith("/api/") and g.get("user") is None:
        return  # nothing to ride on: the view answers 401/403
    csrf.protect(apply_exemptions=True)


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if g.get("user") is not None or "Authorization" in request.headers:
        response.headers.setdefault("Cache-Control", "private, no-store")
        response.vary.add("Cookie")
    return response


def init_app(app: Flask) -> None:
    """Set up login, tokens, CSRF and security headers on ``app``."""
    from clockwork_web.auth import access, oidc
    from clockwork_web.auth.ratelimit import FailureLimiter
    from clockwork_web.auth.tokens import TokenCache

    cfg = app.config["CLOCKWORK"]
    app.extensions["clockwork_auth_limiter"] = FailureLimiter(
        limit=cfg.login.failure_limit, window_s=cfg.login.failure_window_s
    )
    app.extensions["clockwork_token_cache"] = TokenCache()
    # the session user; templates get ``current_user`` (None when anonymous) below
    access.login_manager.init_app(app, add_context_processor=False)
    # we call csrf.protect ourselves, after knowing how the request authenticates
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the session
    csrf.init_app(app)
    oidc.init_app(app)

    app.before_request(access.load_user)
    app.before_request(_csrf_check)
    app.after_request(_security_headers)

    @app.errorhandler(TooManyRequests)
    def _too_many(exc: TooManyRequests) -> Any:
        from clockwork_web.errors import error_response

        response = error_response(exc.status, exc.code, exc.message)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.context_processor
    def _inject_user() -> dict[str, Any]:
        return {"current_user": g.get("user")}
