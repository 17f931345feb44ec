"""User-supplied notification URLs (webhooks, Slack): the SSRF guard and the pinned POST.

A user who may name the URL the notifier POSTs to could make it reach what
only the server can reach: the cloud metadata service (169.254.169.254), a
database on loopback, an admin page on the private network. So:

- no user URL at all unless the operator lists allowed prefixes
  (``notifications.webhook.allowed_url_prefixes`` is empty by default; Slack's
  default is ``https://hooks.slack.com/``);
- the host is resolved and EVERY address must be public: loopback, link-local,
  private, shared (CGNAT), unspecified, multicast, reserved and documentation
  ranges are refused, as are IPv6 forms that embed such an IPv4 address
  (IPv4-mapped, NAT64, 6to4, Teredo). ``allowed_networks`` lists the
  exceptions an operator wants (e.g. an internal chat server);
- the connection goes to an address that was checked (resolved once; the name
  is sent as ``Host`` and as TLS SNI, the certificate is verified against the
  name), so a DNS answer that changes between check and connect (rebinding)
  cannot steer it elsewhere;
- redirects are not followed and environment proxies are not used.

The operator's own URL (``notifications.slack.webhook_url``) is trusted and
does not come here. Name resolution uses the system resolver, which has no
timeout of its own.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from clockwork_core.config import NotificationsConfig, SlackConfig, WebhookConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``; tests pass their own to play a rebinding DNS.
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Not caught by the ``is_*`` properties of every Python version.
_ALSO_REFUSED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # shared address space (CGNAT)
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)


class UnsafeURLError(ValueError):
    """A user-supplied URL that may not be used.

    ``permanent`` is False only when the host did not resolve (the notifier
    retries later); a refused address, prefix or scheme is permanent.
    """

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class CheckedURL:
    """A user URL that passed every check, with the addresses to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def resolve_host(host: str, port: int) -> list[str]:
    """Every address of ``host`` (IP literals come back as they are)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError(f"cannot resolve {host}: {exc}", permanent=False) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnsafeURLError(f"cannot resolve {host}: no address", permanent=False)
    return addresses


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    return None


def _not_public(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None."""
    for name in ("loopback", "link_local", "private", "unspecified", "multicast", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if any(ip in net for net in _ALSO_REFUSED if net.version == ip.version):
        return "special-purpose"
    if not ip.is_global:
        return "not global"
    return None


def address_refusal(address: str, allowed_networks: Iterable[IPNetwork] = ()) -> str | None:
    """Why the notifier may not connect to ``address`` for a user URL, or None.

    An address inside one of ``allowed_networks`` (itself or the IPv4 address
    it embeds) is allowed whatever its kind.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    embedded = _embedded_ipv4(ip)
    candidates = [ip] if embedded is None else [ip, embedded]
    allowed = list(allowed_networks)
    for candidate in candidates:
        if any(candidate.version == net.version and candidate in net for net in allowed):
            return None
    for candidate in candidates:
        reason = _not_public(candidate)
        if reason:
            return f"{address} is a {reason} address"
    return None


def check_prefix(url: object, prefixes: list[str], what: str) -> str:
    """The cheap checks (no DNS): an http(s) URL that starts with an allowed prefix."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UnsafeURLError(f"{what}: no http(s) URL given")
    if not prefixes:
        raise UnsafeURLError(
            f"{what}: user-supplied URLs are disabled on this server "
            "(the operator allows none in the configuration)"
        )
    if not any(url.startswith(prefix) for prefix in prefixes):
        raise UnsafeURLError(f"{what}: URL not allowed by the configuration")
    return url


def check_url(
    url: object,
    policy: WebhookConfig | SlackConfig,
    what: str,
    *,
    resolver: Resolver = resolve_host,
) -> CheckedURL:
    """Every check of a user URL, DNS included: the addresses to connect to.

    Raises :class:`UnsafeURLError` naming the first problem.
    """
    text = check_prefix(url, policy.allowed_url_prefixes, what)
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in text):
        raise UnsafeURLError(f"{what}: the URL contains spaces, control characters or '\\'")
    try:
        parts = urlsplit(text)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = (parts.hostname or "").rstrip(".")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise UnsafeURLError(f"{what}: malformed URL ({exc})") from exc
    if not host:
        raise UnsafeURLError(f"{what}: the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(f"{what}: credentials in the URL are not allowed")
    try:
        addresses = resolver(host, port)
    except UnsafeURLError as exc:
        raise UnsafeURLError(f"{what}: {exc}", permanent=exc.permanent) from exc
    for address in addresses:
        reason = address_refusal(address, policy.allowed_networks)
        if reason:
            raise UnsafeURLError(
                f"{what}: {host} resolves to a non-public address ({reason}); "
                "refused unless the configuration allows that network"
            )
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return CheckedURL(text, parts.scheme, host, port, target, tuple(addresses))


def check_user_webhook(url: str, conf: NotificationsConfig) -> str:
    """Refuse a user's webhook URL the notifier would not call (for a 400 at submit time).

    Returns the URL; raises :class:`UnsafeURLError` (a ``ValueError``) with a
    message fit for the user. Resolves the host: a name that does not resolve
    is refused too.
    """
    return check_url(url, conf.webhook, "webhook").url


def check_user_slack_url(url: str, conf: NotificationsConfig) -> str:
    """As :func:`check_user_webhook`, for a user's own Slack webhook URL."""
    return check_url(url, conf.slack, "Slack").url


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi  # what requests verifies with, for the same trust as before

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


def post_checked(
    checked: CheckedURL,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """POST ``body`` to an address that was checked; the HTTP status.

    Connects to the checked addresses in turn (never resolving again), with
    ``Host``/SNI/certificate bound to the URL's name; no redirect, no proxy.
    Raises ``urllib3`` errors (``HTTPError``) or ``OSError`` when no address answers.
    """
    headers = {**headers, "Host": checked.host_header}
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    last: Exception | None = None
    for address in checked.addresses:
        pool: urllib3.HTTPConnectionPool
        if checked.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address,
                checked.port,
                timeout=limits,
                retries=False,
                maxsize=1,
                ssl_context=ssl_context or _ssl_context(),
                server_hostname=checked.host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                address, checked.port, timeout=limits, retries=False, maxsize=1
            )
        try:
            response = pool.urlopen(
                "POST",
                checked.target,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            status = response.status
            response.release_conn()
            return status
        except urllib3.exceptions.ConnectTimeoutError as exc:  # incl. NewConnectionError
            last = exc  # this address does not answer: try the next checked one
        finally:
            pool.close()
    raise last or OSError("no address to connect to")
