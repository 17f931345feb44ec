"""Clockwork's web app: HTML pages and the REST API over the scraped data.

Built by :func:`create_app` (the Flask tutorial's app factory): nothing is read
or connected at import time, so tests build one app per test with their own
configuration.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

from clockwork_core.config import Config, load_config
from clockwork_web.jsonenc import ClockworkJSONProvider

log = logging.getLogger(__name__)


def create_app(config: Config | None = None, test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from ``config`` (default: :func:`load_config`).

    ``test_config`` holds Flask settings that override the defaults (tests).
    """
    app = Flask(__name__)
    app.json = ClockworkJSONProvider(app)
    cw_config = config if config is not None else load_config()
    secret = cw_config.web.secret_key.get_secret_value() if cw_config.web.secret_key else None
    if secret is None:
        log.warning("web.secret_key is not set: sessions end when the process restarts")
        secret = secrets.token_urlsafe(32)
    app.config.from_mapping(
        SECRET_KEY=secret,
        CLOCKWORK=cw_config,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cw_config.web.base_url.startswith("https://"),
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    if test_config:
        app.config.from_mapping(test_config)

    from clockwork_web import db, errors

    db.init_app(app)
    errors.init_app(app)
    from clockwork_web import i18n

    i18n.init_app(app)
    from clockwork_web import auth

    auth.init_app(app)

    from clockwork_web import blueprints

    blueprints.register(app)
    trust_proxies(app, cw_config.web.trusted_proxy_hops)
    return app


def trust_proxies(app: Flask, hops: int) -> None:
    """Read the client's address and scheme from ``hops`` trusted reverse proxies.

    werkzeug's ProxyFix takes the ``hops``-th address from the right of
    X-Forwarded-For (what the last trusted proxy saw) and X-Forwarded-Proto
    likewise, so ``request.remote_addr`` is the real client's: failed-login
    throttling, ``/metrics`` access and the audit log depend on it. With 0 the
    headers are ignored, as anyone could send them. X-Forwarded-Host is not
    trusted: ``web.base_url`` names the public address.
    """
    if hops <= 0:
        return
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
