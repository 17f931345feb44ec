"""The WSGI entry point for production servers: ``gunicorn clockwork_web.wsgi:app``.

The configuration comes from ``$CLOCKWORK_CONFIG`` and the environment
(see ``clockwork_core.config``); a bad configuration stops the server at start.
"""

from __future__ import annotations

from clockwork_core.config import load_config_or_exit
from clockwork_web import create_app

app = create_app(load_config_or_exit())
