"""A small but real OpenID Connect provider, for tests and local development.

Run as its own process on loopback::

    python -m test_common.oidc_provider --port P [--issuer URL] [--users-file F]
        [--client-id ID] [--client-secret SECRET]

It implements the authorization code flow as a real provider does: discovery
(``/.well-known/openid-configuration``), ``/authorize`` (a tiny HTML form where
one types an email and presses "Sign in"; ``login_hint=EMAIL&auto=1`` approves
directly, for tests without a browser), ``/token`` (client_secret_basic or
client_secret_post, single-use codes, PKCE S256 required and verified),
``/jwks`` (an RS256 key generated at start), ``/userinfo``. ID tokens carry
iss, sub, aud, exp, iat, nonce, email, email_verified and name.

Test hook: ``POST /test/settings`` with JSON ``{"bad_signature": true}`` (sign
the next ID token with another key under the same ``kid``), ``"email_verified":
false``, ``"wrong_audience": true`` or ``"expired": true``: each applies to the
next ID token only.

The users file (JSON) is ``{"allow_any": bool, "users": {email: {"name": ...,
"email_verified": bool}}}``; without ``allow_any``, other emails are refused.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from flask import Flask, Response, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey

CODE_LIFETIME_S = 60
TOKEN_LIFETIME_S = 300

_FORM = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Test identity provider</title>
<main><h1>Test identity provider</h1><p>Signing in to <b>{client}</b></p>
<form method="post" action="/authorize">{hidden}
<label>Email <input type="email" name="email" id="email" required autofocus></label>
<button type="submit" id="sign-in">Sign in</button></form></main></html>"""


def _error_page(message: str, status: int = 400) -> Response:
    body = f"<!doctype html><title>Error</title><p id='error'>{html.escape(message)}</p>"
    return Response(body, status=status, mimetype="text/html")


def create_provider(
    issuer: str,
    client_id: str,
    client_secret: str,
    users: dict[str, dict[str, Any]] | None = None,
    allow_any: bool = True,
) -> Flask:
    """The provider as a Flask app (state lives in this process's memory)."""
    app = Flask(__name__)
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
    wrong_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
    users = {k.lower(): v for k, v in (users or {}).items()}
    lock = threading.Lock()
    codes: dict[str, dict[str, Any]] = {}
    access_tokens: dict[str, dict[str, Any]] = {}
    next_settings: dict[str, Any] = {}
    stats = {"token_requests": 0, "codes_issued": 0}

    def known(email: str) -> dict[str, Any] | None:
        email = email.strip().lower()
        if email in users:
            return {"email": email, **users[email]}
        if allow_any and "@" in email:
            return {"email": email}
        return None

    def check_authorize_params(params: dict[str, str]) -> str | None:
        if params.get("client_id") != client_id:
            return "unknown client_id"
        if params.get("response_type") != "code":
            return "response_type must be code"
        uri = urlparse(params.get("redirect_uri", ""))
        if uri.scheme not in ("http", "https") or not uri.netloc:
            return "invalid redirect_uri"
        if "openid" not in params.get("scope", "").split():
            return "scope must include openid"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE with S256 is required"
        if not params.get("state"):
            return "state is required"
        return None

    def issue_code(params: dict[str, str], account: dict[str, Any]) -> Response:
        code = secrets.token_urlsafe(24)
        with lock:
            codes[code] = {
                "client_id": params["client_id"],
                "redirect_uri": params["redirect_uri"],
                "code_challenge": params["code_challenge"],
                "nonce": params.get("nonce"),
                "account": account,
                "expires": time.time() + CODE_LIFETIME_S,
            }
            stats["codes_issued"] += 1
        query = urlencode({"code": code, "state": params["state"]})
        sep = "&" if "?" in params["redirect_uri"] else "?"
        return redirect(params["redirect_uri"] + sep + query, code=302)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "userinfo_endpoint": f"{issuer}/userinfo",
                "jwks_uri": f"{issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name", "nonce"],
            }
        )

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify({"keys": [key.as_dict(private=False)]})

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        source = request.args if request.method == "GET" else request.form
        names = (
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        )
        params = {n: source.get(n, "") for n in names}
        problem = check_authorize_params(params)
        if problem:
            return _error_page(problem)
        email = request.form.get("email") if request.method == "POST" else None
        if request.method == "GET" and request.args.get("auto") == "1":
            email = request.args.get("login_hint")
        if email:
            account = known(email)
            if account is None:
                return _error_page(f"no account {email} at this provider", 403)
            return issue_code(params, account)
        hidden = "".join(
            f'<input type="hidden" name="{n}" value="{html.escape(v, quote=True)}">'
            for n, v in params.items()
        )
        return Response(_FORM.format(client=html.escape(client_id), hidden=hidden))

    def client_credentials() -> tuple[str | None, str | None]:
        auth = request.authorization
        if auth and auth.type == "basic":
            return auth.username, auth.password
        return request.form.get("client_id"), request.form.get("client_secret")

    def token_error(error: str, description: str, status: int = 400) -> Any:
        return jsonify({"error": error, "error_description": description}), status

    @app.post("/token")
    def token() -> Any:
        with lock:
            stats["token_requests"] += 1
        cid, secret = client_credentials()
        if cid != client_id or not secret or not secrets.compare_digest(secret, client_secret):
            return token_error("invalid_client", "bad client credentials", 401)
        if request.form.get("grant_type") != "authorization_code":
            return token_error("unsupported_grant_type", "only authorization_code")
        with lock:
            grant = codes.pop(request.form.get("code", ""), None)  # single use
        if grant is None or grant["expires"] < time.time():
            return token_error("invalid_grant", "unknown, used or expired code")
        if grant["redirect_uri"] != request.form.get("redirect_uri"):
            return token_error("invalid_grant", "redirect_uri mismatch")
        verifier = request.form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not verifier or not secrets.compare_digest(challenge, grant["code_challenge"]):
            return token_error("invalid_grant", "PKCE verification failed")
        with lock:
            settings = dict(next_settings)
            next_settings.clear()
        account = grant["account"]
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": hashlib.sha256(account["email"].encode()).hexdigest()[:24],
            "aud": "someone-else" if settings.get("wrong_audience") else client_id,
            "iat": now,
            "exp": now - 3600 if settings.get("expired") else now + TOKEN_LIFETIME_S,
            "email": account["email"],
            "email_verified": settings.get("email_verified", account.get("email_verified", True)),
            "name": account.get("name") or account["email"].split("@")[0].title(),
        }
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        signing_key = wrong_key if settings.get("bad_signature") else key
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, signing_key)
        access = secrets.token_urlsafe(24)
        with lock:
            access_tokens[access] = {"claims": claims, "expires": now + TOKEN_LIFETIME_S}
        return jsonify(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "id_token": id_token,
                "scope": "openid email profile",
            }
        )

    @app.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> Any:
        auth = request.headers.get("Authorization", "")
        with lock:
            entry = access_tokens.get(auth.removeprefix("Bearer ").strip())
        if entry is None or entry["expires"] < time.time():
            return token_error("invalid_token", "unknown or expired access token", 401)
        c = entry["claims"]
        return jsonify({k: c[k] for k in ("sub", "email", "email_verified", "name")})

    @app.route("/test/settings", methods=["GET", "POST"])
    def test_settings() -> Any:
        if request.method == "POST":
            body = request.get_json(silent=True) or {}
            allowed = {"bad_signature", "email_verified", "wrong_audience", "expired"}
            with lock:
                next_settings.update({k: v for k, v in body.items() if k in allowed})
        with lock:
            return jsonify({"next": dict(next_settings), **stats})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oidc_provider", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", default=None, help="default: http://HOST:PORT")
    parser.add_argument("--users-file", type=Path, default=None)
    parser.add_argument("--client-id", default="clockwork-test")
    parser.add_argument("--client-secret", default="clockwork-test-secret")
    args = parser.parse_args(argv)
    users: dict[str, dict[str, Any]] = {}
    allow_any = True
    if args.users_file:
        data = json.loads(args.users_file.read_text())
        users = data.get("users", {})
        allow_any = bool(data.get("allow_any", False))
    issuer = (args.issuer or f"http://{args.host}:{args.port}").rstrip("/")
    app = create_provider(issuer, args.client_id, args.client_secret, users, allow_any)
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, app, threaded=True)
    print(f"oidc_provider: serving {issuer}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
