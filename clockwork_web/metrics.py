"""``GET /metrics``: Clockwork's Prometheus gauges, for a scraper only.

Allowed with ``Authorization: Bearer <web.metrics_token>`` (what Prometheus
sends with ``authorization: {credentials: ...}``) or from an address listed in
``web.metrics_allow``; anyone else gets a 403 JSON error. The address is the
real client's: behind a reverse proxy the app trusts X-Forwarded-For only from
``web.trusted_proxy_hops`` proxies (see :func:`clockwork_web.trust_proxies`), so
a proxy on loopback does not make every visitor "local". The gauges are
computed by :mod:`slurm_state.export_prometheus`, without per-user series
unless ``web.metrics_per_user_labels`` is set.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, jsonify, request

from clockwork_web.auth.access import public
from clockwork_web.db import get_config, get_db
from clockwork_web.errors import Forbidden

bp = Blueprint("metrics", __name__)


def _address_allowed(address: str | None, allowed: list[str]) -> bool:
    """True if ``address`` is one of ``allowed`` (addresses or networks)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _token_ok(expected: str | None) -> bool:
    if not expected:
        return False
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), expected.encode()
    )


@bp.get("/metrics")
@public
def metrics() -> Response:
    """The exposition text; 403 unless the token or the address is allowed."""
    web = get_config().web
    token = web.metrics_token.get_secret_value() if web.metrics_token else None
    if not (_token_ok(token) or _address_allowed(request.remote_addr, web.metrics_allow)):
        # JSON, as a Prometheus scraper is not a browser
        response = jsonify(
            {
                "error": {
                    "code": "forbidden",
                    "message": "metrics need the token or an allowed address",
                }
            }
        )
        response.status_code = Forbidden.status
        return response
    from slurm_state.export_prometheus import CONTENT_TYPE, collect_metrics

    body = collect_metrics(get_db(), per_user=web.metrics_per_user_labels)
    return Response(body, content_type=CONTENT_TYPE)
