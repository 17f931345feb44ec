"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py clockwork_web.wsgi:app``.

Everything can be overridden from the environment (``CLOCKWORK_BIND``,
``CLOCKWORK_WORKERS``, ``CLOCKWORK_THREADS``, ``CLOCKWORK_TIMEOUT``) or the
command line. Put a TLS-terminating proxy in front; it must set
``X-Forwarded-Proto`` and the app then sees https (forwarded_allow_ips).
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("CLOCKWORK_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CLOCKWORK_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("CLOCKWORK_THREADS", "2"))
worker_class = "gthread"
timeout = int(os.environ.get("CLOCKWORK_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# a worker is recycled now and then, so that slow leaks never grow
max_requests = 5000
max_requests_jitter = 500
# proxies allowed to set X-Forwarded-* (the local reverse proxy only)
forwarded_allow_ips = os.environ.get("CLOCKWORK_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("CLOCKWORK_ACCESS_LOG", "-")
errorlog = os.environ.get("CLOCKWORK_ERROR_LOG", "-")
loglevel = os.environ.get("CLOCKWORK_LOG_LEVEL", "info")
# no query strings in the access log: they may hold user names and filters
access_log_format = '%(h)s %(l)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'
# the app is loaded in each worker after the fork: one MongoClient per process
preload_app = False
