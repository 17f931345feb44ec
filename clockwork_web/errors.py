"""Domain errors and their one mapping to HTTP responses.

Services raise these plain exceptions; views do not build error responses
themselves. Under ``/api/`` every 4xx/5xx is JSON ``{"error": {"code",
"message"}}``; pages get an HTML error page. No traceback ever reaches a client.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)


class ClockworkError(Exception):
    """Base of the errors a request can end with; ``status`` is the HTTP code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ClockworkError):
    """A parameter or body field is invalid; ``param`` names it."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(f"{param}: {message}" if param else message)
        self.param = param


class Unauthorized(ClockworkError):
    status = 401
    code = "unauthorized"


class Forbidden(ClockworkError):
    status = 403
    code = "forbidden"


class NotFound(ClockworkError):
    status = 404
    code = "not_found"


class Conflict(ClockworkError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ClockworkError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(ClockworkError):
    status = 429
    code = "too_many_requests"


class Unavailable(ClockworkError):
    """A cluster or service Clockwork depends on cannot be reached."""

    status = 503
    code = "unavailable"


_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>{{ status }}</title>
<main><h1>{{ status }}</h1><p>{{ message }}</p><p><a href="/">Clockwork</a></p></main></html>"""


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status: int, code: str, message: str) -> Response:
    """The response for an error, JSON under /api/, HTML elsewhere."""
    if _wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        response = Response(render_template_string(_PAGE, status=status, message=message))
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ClockworkError)
    def _domain_error(exc: ClockworkError) -> Response:
        response = error_response(exc.status, exc.code, exc.message)
        if isinstance(exc, Unauthorized) and request.path.startswith("/api/"):
            response.headers["WWW-Authenticate"] = 'Bearer realm="clockwork"'
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")
