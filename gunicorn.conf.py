"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py clockwork_web.wsgi:app``.

Everything can be overridden from the environment (``CLOCKWORK_BIND``,
``CLOCKWORK_WORKERS``, ``CLOCKWORK_THREADS``, ``CLOCKWORK_WORKER_CONNECTIONS``,
``CLOCKWORK_KEEPALIVE``, ``CLOCKWORK_TIMEOUT``) or the command line. The
container image and docker-compose.yml set ``CLOCKWORK_BIND=0.0.0.0:8000``. Put
a TLS-terminating proxy in front and set the app's ``web.trusted_proxy_hops``:
the app then takes the client's address and scheme from the proxy's headers
(``docs/operators/reverse-proxy.md``); ``forwarded_allow_ips`` below only
governs gunicorn's own reading of ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import multiprocessing
import os
import resource

bind = os.environ.get("CLOCKWORK_BIND", "127.0.0.1:8000")
# How a gthread worker serves (gunicorn 27, workers/gthread.py): its main thread
# accepts connections while it holds fewer than `worker_connections` and hands
# each request to its pool of `threads` threads, first come first served; a
# kept-alive connection waits in the main thread's poller (it holds no thread)
# until its next request or `keepalive` seconds. Connections a worker has not
# accepted wait in the listen queue, where nothing serves them in turn.
#
# One worker per core: each keeps its own caches (counts, listing window widths).
workers = int(os.environ.get("CLOCKWORK_WORKERS", max(2, multiprocessing.cpu_count())))
# Enough threads that the requests a worker has accepted are served, not queued
# out of sight: the slow part of a request is its database wait (and SSH or the
# OIDC provider on some pages), and the GIL shares the Python part among the
# threads in turn, so a short request is not stuck behind long ones. Measured
# with scripts/bench_api.py (2 cores, embedded database, 64 clients for 60 s):
# with 4 threads, clients saw a p99 7.5 x the server's (the requests waited for
# a thread); with 16 threads, 1.7 x, at the same requests/s.
threads = int(os.environ.get("CLOCKWORK_THREADS", "16"))
# Accept every client, as long as file descriptors last (a worker whose accept()
# fails on EMFILE dies). The old cap of 2 x threads starved clients: 64 kept-alive
# clients on 2 workers held their 16 places while the other 48 waited in the
# listen queue (client p99 7.6 s for a server p99 of 87 ms; 42 timeouts at 10 s).
_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
_fd_room = 1000 if _nofile == resource.RLIM_INFINITY else max(2 * threads, _nofile - 128)
worker_connections = int(os.environ.get("CLOCKWORK_WORKER_CONNECTIONS", str(min(1000, _fd_room))))
worker_class = "gthread"
timeout = int(os.environ.get("CLOCKWORK_TIMEOUT", "60"))
graceful_timeout = 30
# Idle kept-alive connections are bounded in time (closed after this many
# seconds without a request) and in number (gthread answers with "Connection:
# close" once worker_connections - threads are idle). Behind a proxy that
# reuses its connections, raise it above the proxy's idle timeout.
keepalive = int(os.environ.get("CLOCKWORK_KEEPALIVE", "5"))
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
