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
# One worker per core, threads for the waits on the database: a request spends
# most of its time waiting on the database, and each worker keeps its own caches
# (counts, listing window widths), so fewer, threaded workers do better. On 2
# cores with the embedded database (scripts/bench_api.py, c=16): 2 x 8 served
# ~10-20% more requests/s than 4 x 4 or 3 x 6, and 8 x 2 had second-long tails.
workers = int(os.environ.get("CLOCKWORK_WORKERS", max(2, multiprocessing.cpu_count())))
threads = int(os.environ.get("CLOCKWORK_THREADS", "8"))
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
