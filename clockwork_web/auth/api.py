"""REST endpoints of one's own API tokens (mounted at /api/v1)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from clockwork_web.auth import tokens
from clockwork_web.auth.access import api_auth_required, audit, current_user
from clockwork_web.db import get_db
from clockwork_web.errors import BadRequest, NotFound, Unauthorized

api_bp = Blueprint("auth_api", __name__)


def _me() -> Any:
    user = current_user()
    if user is None:  # api_auth_required ran; never reached
        raise Unauthorized("authentication required")
    return user


@api_bp.get("/tokens")
@api_auth_required
def list_tokens() -> Any:
    """The caller's tokens (never their values)."""
    return jsonify({"tokens": tokens.list_tokens(get_db(), _me().email)})


@api_bp.post("/tokens")
@api_auth_required
def create_token() -> Any:
    """A new token for the caller; its value is in this answer and nowhere else."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('a JSON object {"name": ..., "expires_days": ...} is required')
    unknown = set(body) - {"name", "expires_days"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}", param=sorted(unknown)[0])
    try:
        token, doc = tokens.create_token(
            get_db(), _me().email, body.get("name"), body.get("expires_days")
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    audit("token.create", str(doc["_id"]), "ok", name=doc["name"])
    answer = tokens.public_view(doc)
    answer["token"] = token
    return jsonify(answer), 201


@api_bp.delete("/tokens/<token_id>")
@api_auth_required
def revoke_token(token_id: str) -> Any:
    if not tokens.revoke_token(get_db(), _me().email, token_id):
        raise NotFound(f"no token {token_id[:40]} of yours")
    audit("token.revoke", token_id, "ok")
    return "", 204
