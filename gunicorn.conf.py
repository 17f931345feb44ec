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
# One worker per core, a few threads each for the waits on the database: each
# worker keeps its own caches (counts, listing window widths), so fewer,
# threaded workers do better than many single-threaded ones. Measured on 2 cores
# with the embedded database (scripts/bench_api.py, c=16, 50 jobs a page):
# 8 threads a worker served as many requests/s as 4 but with a p99 ~30% higher
# (more requests interleaving on one GIL and on the database); 2 threads were
# no better than 4 and leave fewer threads for slow calls (SSH, the OIDC provider).
workers = int(os.environ.get("CLOCKWORK_WORKERS", max(2, multiprocessing.cpu_count())))
threads = int(os.environ.get("CLOCKWORK_THREADS", "4"))
# A worker accepts connections only while it holds fewer than this many (kept-alive
# ones included). Without a cap, the first worker to wake took 13 of 16 kept-alive
# clients and served them on one core while the other idled (~20% fewer
# requests/s). Twice the threads leaves each worker `threads` kept-alive
# connections; the others are closed after their response (clients reconnect).
worker_connections = int(os.environ.get("CLOCKWORK_WORKER_CONNECTIONS", str(2 * threads)))
worker_class = "gthread"
timeout = int(os.environ.get("CLOCKWORK_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# a worker is recycled now and then, so that slow leaks never grow; not too
# often: its caches (counts, listing windows) start empty again
max_requests = 50_000
max_requests_jitter = 5_000
# proxies allowed to set X-Forwarded-* (the local reverse proxy only)
forwarded_allow_ips = os.environ.get("CLOCKWORK_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("CLOCKWORK_ACCESS_LOG", "-")
errorlog = os.environ.get("CLOCKWORK_ERROR_LOG", "-")
loglevel = os.environ.get("CLOCKWORK_LOG_LEVEL", "info")
# no query strings in the access log: they may hold user names and filters
access_log_format = '%(h)s %(l)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'
# The app is built once in the arbiter, then forked: a recycled worker answers
# at once (building the app per worker took ~1 s, during which its clients
# waited), and the workers share a generated secret key when none is configured.
# No database connection is opened while building the app; each process opens
# its own MongoClient on first use (clockwork_core.db.get_client).
preload_app = True


def pre_fork(server, worker):
    """Move what the app built at import into the permanent GC generation, so that
    the workers' full collections no longer walk it (and its pages stay shared)."""
    import gc

    gc.collect()
    gc.freeze()
