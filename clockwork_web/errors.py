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

#: The longest path + query string answered. gunicorn refuses a request line
#: past 4094 bytes with its own 414 before the app sees it; the app applies the
#: same bound itself, so that the answer (JSON under /api/, as documented in the
#: OpenAPI document) does not depend on the server in front (the development
#: server lets 64 KiB through).
MAX_URI_BYTES = 4094


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


class UriTooLong(ClockworkError):
    """The path and query string are longer than :data:`MAX_URI_BYTES`."""

    status = 414
    code = "uri_too_long"


class TooManyRequests(ClockworkError):
    status = 429
    code = "too_many_requests"


class Unavailable(ClockworkError):
    """A cluster or service Clockwork depends on cannot be reached."""

    status = 503
    code = "unavailable"


_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>{{ status }}</title>
<main><h1>{{ status }}</h1><p>{{ message }}</p><p><a href="/">Clockwork</a></p></main></html>"""


#: Blueprints outside /api/ that are APIs all the same (slurm-proxy's interface):
#: their scripts read errors as JSON whatever ``Accept`` they send.
JSON_BLUEPRINTS = frozenset({"slurm_proxy"})


def _wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.blueprint in JSON_BLUEPRINTS
        or request.accept_mimetypes.best == "application/json"
    )


def error_response(status: int, code: str, message: str) -> Response:
    """The response for an error, JSON under /api/, HTML elsewhere."""
    if _wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        response = Response(render_template_string(_PAGE, status=status, message=message))
    response.status_code = status
    return response


def check_uri_length() -> None:
    """Refuse an over-long URI with 414 before routing, authentication or parsing."""
    environ = request.environ
    length = len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", ""))
    if length > MAX_URI_BYTES:
        raise UriTooLong(f"the URI is longer than {MAX_URI_BYTES} bytes")


def init_app(app: Flask) -> None:
    app.before_request(check_uri_length)

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
