"""Who is making this request, and what they may do: the auth API every view uses.

A request is authenticated by exactly one of:

- an API token (``Authorization: Bearer cw_...``, or HTTP Basic ``email:token``
  for scripts written for the original Clockwork), only under ``/api/``;
- the browser session, managed by Flask-Login, whose unsafe requests carry a
  CSRF token (form field or ``X-CSRFToken`` header).

The session holds ``email:generation`` (Flask-Login's "alternative token"
pattern): each user record carries a ``session_gen`` counter that logout,
disabling and role changes increase (:func:`clockwork_web.auth.users.end_sessions`),
so every cookie issued before such an event stops working, copies included.

The user record is re-read on every request (one indexed ``find_one``), so
disabling a user stops their sessions and tokens at once. Views declare their
rule with a decorator: :func:`api_auth_required` (JSON 401/403),
:func:`login_required` (redirect to the login page), :func:`roles_required`.
``g.user`` and :func:`current_user` are the app's contract for "who is this";
``flask_login.current_user`` agrees for sessions, and is not used elsewhere.

Failed authentications are counted per (client address, claimed identity) in
the database (:mod:`.ratelimit`); a valid credential is never refused by it.
The client address is ``request.remote_addr``: behind a reverse proxy the app
factory makes it the real client's with werkzeug's ProxyFix, for the number of
proxies ``web.trusted_proxy_hops`` trusts.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import flask_login
from flask import current_app, g, has_request_context, redirect, request, session, url_for
from pymongo.errors import PyMongoError

from clockwork_web.auth.tokens import TokenGrant
from clockwork_web.db import get_db
from clockwork_web.errors import Forbidden, TooManyRequests, Unauthorized

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

ROLES: tuple[str, ...] = ("user", "staff", "admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Endpoints reachable anonymously. Views of other packages mark themselves
#: with :func:`public` instead; :func:`is_public_endpoint` knows both.
PUBLIC_ENDPOINTS: set[str] = {
    "static",
    "auth.login",
    "auth.login_oidc",
    "auth.callback",
    "auth.login_dev",
    "auth.healthz",
}

#: Session key of sessions written before session generations: the email alone.
#: Still read (as generation 0, see :func:`_legacy_session_user`), never written.
SESSION_USER = "user_email"
#: Flask-Login's session key (``email:generation``) and the other keys it writes.
SESSION_ID = "_user_id"
SESSION_KEYS = (SESSION_ID, "_fresh", "_id", SESSION_USER)

#: Flask-Login: the session user. Session protection is off: what ends a
#: session is its generation (see the module docstring), and binding it to the
#: client address would log out every user whose address changes.
login_manager = flask_login.LoginManager()
login_manager.session_protection = None


@dataclass(frozen=True)
class User:
    """A Clockwork account, as read from ``users`` for this request."""

    email: str
    display_name: str
    status: str
    roles: tuple[str, ...]
    cluster_accounts: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: ids of the live API tokens; None for a record older than that list
    token_ids: frozenset[Any] | None = None
    #: the user's session generation: a session of another generation is void
    session_gen: int = 0

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_staff(self) -> bool:
        """Staff or admin: may read every job (staff changes nothing)."""
        return "staff" in self.roles or "admin" in self.roles

    @property
    def sees_all_jobs(self) -> bool:
        return self.is_staff

    @property
    def is_enabled(self) -> bool:
        return self.status == "enabled"

    @property
    def clusters(self) -> frozenset[str]:
        """The clusters the user has an account on."""
        return frozenset(self.cluster_accounts)

    # Flask-Login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.is_enabled

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """What the session stores: the email and the session generation."""
        return session_id_for(self.email, self.session_gen)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> User:
        return cls(
            email=doc["email"],
            display_name=doc.get("display_name") or doc["email"],
            status=doc.get("status", "enabled"),
            roles=tuple(doc.get("roles") or ("user",)),
            cluster_accounts=dict(doc.get("cluster_accounts") or {}),
            settings=dict(doc.get("settings") or {}),
            token_ids=frozenset(doc["token_ids"]) if "token_ids" in doc else None,
            session_gen=int(doc.get("session_gen") or 0),
        )


def session_id_for(email: str, generation: int) -> str:
    """Flask-Login's user id of a session: ``email:generation`` (emails hold no ``:``)."""
    return f"{email}:{generation}"


def parse_session_id(value: Any) -> tuple[str, int] | None:
    """``(email, generation)`` of a session id, None if it is not one."""
    if not isinstance(value, str):
        return None
    email, sep, generation = value.rpartition(":")
    if not sep or not email or not generation.isdigit() or len(generation) > 18:
        return None
    return email, int(generation)


# --------------------------------------------------------------------------- helpers


def public(view: F) -> F:
    """Mark a view as reachable anonymously (it checks its own credentials, if any)."""
    view.cw_public = True  # type: ignore[attr-defined]
    return view


def is_public_endpoint(endpoint: str | None) -> bool:
    """True if ``endpoint`` is listed in PUBLIC_ENDPOINTS or its view is marked public."""
    if endpoint is None:
        return True
    if endpoint in PUBLIC_ENDPOINTS or endpoint.endswith(".static"):
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "cw_public", False))


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def remote_addr() -> str:
    """The client's address: the real one behind trusted proxies (ProxyFix)."""
    return request.remote_addr or "unknown"


def find_user(email: str) -> User | None:
    """The user with this email (in any case), or None (one indexed read)."""
    from clockwork_web.auth.users import email_key

    # no projection: the embedded database deep-copies a document to project it
    doc = get_db().users.find_one({"email": email_key(email)})
    return User.from_document(doc) if doc else None


def current_user() -> User | None:
    """The authenticated, enabled user of this request, or None."""
    return g.get("user")


def _limiter():  # -> FailureLimiter; imported lazily to keep this module light
    return current_app.extensions["clockwork_auth_limiter"]


def auth_failed(reason: str, identity: str) -> None:
    """Count a failed authentication of (this address, ``identity``), and log it.

    Raises TooManyRequests once that key failed too often in the window; the
    caller then answers 429 instead of its own refusal. Only failures come
    here: a valid credential is never counted nor refused.
    """
    address = remote_addr()
    log.warning("authentication failure from %s (%s): %s", address, identity[:100], reason)
    try:
        retry_after = _limiter().record(get_db(), address, identity)
    except PyMongoError:
        log.exception("cannot count an authentication failure")
        return
    if retry_after:
        exc = TooManyRequests(
            f"too many failed authentications from this address for {identity[:100]}; "
            f"retry in {retry_after} s"
        )
        exc.retry_after = retry_after  # type: ignore[attr-defined]
        raise exc


def _parse_authorization(header: str) -> tuple[str | None, str] | None:
    """``(email or None, token)`` from a Bearer or Basic header, None if malformed."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return None, value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, sep, token = decoded.partition(":")
        if not sep or not token:
            return None
        return email.strip().lower(), token
    return None


def claimed_identity(parsed: tuple[str | None, str] | None) -> str:
    """What a token request claims to be, for rate limiting: its email, else its token prefix."""
    from clockwork_web.auth import tokens

    if parsed is None:
        return "malformed"
    email, token = parsed
    if email:
        return "email:" + email
    if tokens.is_token_shape(token):
        return "token:" + token[: tokens.PREFIX_LENGTH]
    return "malformed"


def _load_token_user(header: str) -> None:
    """Authenticate with an API token; sets g.user or g.auth_error.

    The credential is checked first: a valid token always passes, however
    often others failed from the same address.
    """
    g.auth_method = "token"
    parsed = _parse_authorization(header)
    identity = claimed_identity(parsed)
    if parsed is None:
        g.auth_error = "malformed Authorization header: use 'Bearer <token>'"
        auth_failed("malformed Authorization header", identity)
        return
    email, token = parsed
    found = _token_and_user(token)
    if found is None or (email is not None and found[0].user_email != email):
        g.auth_error = "invalid, expired or revoked API token"
        auth_failed("bad API token", identity)
        return
    grant, user = found
    if user is None:
        g.auth_error = "invalid, expired or revoked API token"
        auth_failed("token of a deleted user", identity)
        return
    if not user.is_enabled:
        g.auth_disabled = True
        auth_failed(f"token of disabled user {user.email}", identity)
        return
    g.user = user
    g.token_id = str(grant.token_id)


def _token_and_user(token: str) -> tuple[TokenGrant, User | None] | None:
    """The valid token's grant and its owner (None if deleted), or None.

    A token this worker has seen is checked against its owner's live token ids
    (one read, of the user record the request needs anyway); any other is read
    from ``api_tokens`` first, and remembered when its owner lists it.
    """
    from clockwork_web.auth import tokens

    if not tokens.is_token_shape(token):
        return None
    db = get_db()
    cache: tokens.TokenCache = current_app.extensions["clockwork_token_cache"]
    digest = tokens.hash_token(token)
    now = datetime.now(UTC)
    grant = cache.get(digest)
    if grant is not None:
        user = find_user(grant.user_email)
        if user is not None and user.token_ids is not None and grant.token_id in user.token_ids:
            if grant.expired(now):
                cache.drop(digest)
                return None
            used = tokens.record_use(db, grant, now)
            if used is not grant:
                cache.put(digest, used)
            return used, user
        cache.drop(digest)  # revoked, or the user changed: read the token again
    doc = tokens.resolve_token(db, token)
    if doc is None:
        return None
    grant = tokens.TokenGrant.from_document(doc)
    user = find_user(grant.user_email)
    if user is not None and user.token_ids is not None:
        if grant.token_id not in user.token_ids:
            return None  # being revoked: already out of its owner's list
        cache.put(digest, grant)
    return grant, user


#: Public name of the token loader, for views outside /api/ that accept tokens.
load_token_user = _load_token_user


@login_manager.user_loader
def _session_user(session_id: str) -> User | None:
    """Flask-Login's loader: the user of a session id, if that session is still current.

    None for an unknown user, a disabled one (``g.auth_disabled`` is set, for
    the 403 message) or another generation (logged out, role changed, ...).
    """
    parsed = parse_session_id(session_id)
    if parsed is None:
        return None
    email, generation = parsed
    user = find_user(email)
    if user is None:
        return None
    if not user.is_enabled:
        g.auth_disabled = True
        return None
    if user.session_gen != generation:
        return None
    return user


@login_manager.request_loader
def _legacy_session_user(_request: Any) -> User | None:
    """A session written before generations (the email alone) counts as generation 0.

    So it lasts until the user's first logout, role change or disabling.
    """
    if SESSION_ID in session:
        return None
    email = session.get(SESSION_USER)
    if not isinstance(email, str) or not email:
        return None
    return _session_user(session_id_for(email, 0))


def end_session() -> None:
    """Forget the session's user (Flask-Login's logout, and the older key)."""
    if SESSION_ID in session:
        flask_login.logout_user()
    for key in SESSION_KEYS:
        session.pop(key, None)


def _load_session_user() -> None:
    if not session.get(SESSION_ID) and not session.get(SESSION_USER):
        return
    g.auth_method = "session"
    user = flask_login.current_user._get_current_object()
    if not isinstance(user, User):
        # removed, disabled, or a session of an older generation: end it now
        end_session()
        return
    g.user = user


def load_user() -> None:
    """``before_request``: set g.user from the API token or the session."""
    g.user = None
    g.auth_method = None
    g.auth_error = None
    g.auth_disabled = False
    if request.endpoint == "static":
        return
    header = request.headers.get("Authorization")
    try:
        if header and request.path.startswith("/api/"):
            _load_token_user(header)
        else:
            _load_session_user()
    except PyMongoError:
        log.exception("cannot read the users collection")
        from clockwork_web.errors import Unavailable

        raise Unavailable("the database is unavailable") from None


def login_url(next_path: str | None = None) -> str:
    """The login page, coming back to ``next_path`` (a local path) afterwards."""
    target = url_for("auth.login")
    if next_path:
        target += "?next=" + quote(next_path, safe="/")
    return target


MAX_NEXT_LENGTH = 2000


def safe_next(value: str | None) -> str:
    """A local redirect target: a path on this site, never another host.

    A browser's URL parser drops tabs and newlines anywhere and trims controls
    and spaces at the ends (``/<TAB>/evil.com`` is read as ``//evil.com``),
    and reads a backslash as ``/``. A value holding any of those is refused
    outright, so what is checked is exactly what the browser reads: an
    absolute path, no scheme, no host, not ``//``. Anything else gives ``/``.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value != value.strip():
        return "/"
    if "\\" in value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


# --------------------------------------------------------------------------- decorators


def api_auth_required(view: F) -> F:
    """For /api/v1 views: a token or session user, else 401 (403 if disabled)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            if g.get("auth_disabled"):
                raise Forbidden("this account is disabled")
            raise Unauthorized(
                g.get("auth_error")
                or "authentication required: send 'Authorization: Bearer <token>'"
            )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def login_required(view: F) -> F:
    """For HTML pages: redirect anonymous visitors to the login page."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            if g.get("auth_disabled"):
                raise Forbidden("this account is disabled; ask the Clockwork administrators")
            next_path = request.full_path if request.query_string else request.path
            return redirect(login_url(next_path))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def has_role(user: User, role: str) -> bool:
    """Admin holds every role; staff holds ``staff`` and ``user``."""
    if user.is_admin:
        return True
    if role == "user":
        return True
    return role in user.roles


def roles_required(*roles: str) -> Callable[[F], F]:
    """Forbidden unless the user holds one of ``roles`` (after the login decorator).

    Staff is read-only: a staff-only user never passes on an unsafe method.
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}; use {ROLES}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                raise Unauthorized("authentication required")
            if not any(has_role(user, role) for role in roles):
                raise Forbidden(f"this needs the role {' or '.join(roles)}")
            if request.method not in SAFE_METHODS and not user.is_admin and "user" not in roles:
                # what is left is staff, who change nothing
                raise Forbidden("staff accounts are read-only")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


# --------------------------------------------------------------------------- audit


def audit(action: str, target: str, result: str, **details: Any) -> None:
    """Write one audit_log document; never fails the request it records."""
    if has_request_context():
        user = g.get("user")
        email = user.email if user else details.pop("user_email", None)
        address = request.remote_addr
    else:
        email = details.pop("user_email", None)
        address = "cli"
    doc = {
        "time": datetime.now(UTC),
        "user_email": email,
        "action": action,
        "target": target,
        "remote_addr": address,
        "result": result,
        "details": details,
    }
    try:
        get_db().audit_log.insert_one(doc)
    except PyMongoError:
        log.exception("cannot write the audit log: %s %s %s", action, target, result)
