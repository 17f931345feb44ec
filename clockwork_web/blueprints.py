"""Where every blueprint is registered, in one place.

Each feature package (auth, jobs, nodes, ...) exposes ``bp`` (pages) and/or
``api_bp`` (REST, mounted under /api/v1). A package that is not there yet is
skipped, so features can land one at a time.
"""

from __future__ import annotations

import importlib

from flask import Flask

#: (module, attribute, url_prefix), in registration order.
BLUEPRINTS: list[tuple[str, str, str | None]] = [
    ("clockwork_web.auth.views", "bp", None),
    ("clockwork_web.auth.api", "api_bp", "/api/v1"),
    ("clockwork_web.api", "bp", "/api/v1"),
    ("clockwork_web.metrics", "bp", None),
    ("clockwork_web.submissions.api", "api_bp", "/api/v1"),
    ("clockwork_web.submissions.proxy", "bp", None),
    ("clockwork_web.submissions.views", "bp", None),
    ("clockwork_web.pages", "bp", None),
]


def register(app: Flask) -> None:
    for module_name, attribute, prefix in BLUEPRINTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # the feature has not landed yet
            raise
        app.register_blueprint(getattr(module, attribute), url_prefix=prefix)
    for module_name in ("clockwork_web.auth.cli",):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.init_app(app)
