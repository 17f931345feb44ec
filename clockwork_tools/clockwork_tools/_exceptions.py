"""The one exception hierarchy of the client.

Every error the client raises is a :class:`ClockworkError`; catch that to catch
them all, or a leaf to handle one case::

    ClockworkError
     ├── ConfigurationError        no server URL, an unreadable config file, not in a Slurm job
     ├── TransportError            the request did not get an answer (connection, timeout)
     │    └── Timeout              ... because a connect or read timeout expired
     └── HTTPStatusError           the server answered 4xx/5xx (.status_code, .code, .message,
          │                        .body, .request, .response)
          ├── BadRequestError      400, 413, 422: a parameter or field is wrong (the message names it)
          ├── AuthenticationError  401: no token, a bad, revoked or expired one
          ├── PermissionDeniedError 403: a valid user that may not do this
          ├── NotFoundError        404
          ├── ConflictError        409: e.g. a submission uuid already used (.body holds it)
          ├── RateLimitError       429 (.retry_after, seconds or None)
          └── ServerError          5xx
"""

from __future__ import annotations

from typing import Any

import requests

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ClockworkError",
    "ConfigurationError",
    "ConflictError",
    "HTTPStatusError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "Timeout",
    "TransportError",
]


class ClockworkError(Exception):
    """Base of every error of the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(ClockworkError):
    """The client cannot be set up: no URL, an unreadable config file, no Slurm job."""


class TransportError(ClockworkError):
    """No answer from the server: connection refused, DNS, TLS, reset, timeout."""

    def __init__(self, message: str, *, request: requests.PreparedRequest | None = None):
        super().__init__(message)
        self.request = request


class Timeout(TransportError):
    """A connect or read timeout expired (the client's ``timeout`` option)."""


class HTTPStatusError(ClockworkError):
    """The server answered with an error status.

    ``code`` and ``message`` come from the server's ``{"error": {"code", "message"}}``
    body when it sent one; ``body`` is the parsed JSON body (or None).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str = "",
        body: Any = None,
        request: requests.PreparedRequest | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.body = body
        self.request = request
        self.response = response

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.message} (HTTP {self.status_code}{code})"


class BadRequestError(HTTPStatusError):
    """400/413/422: the request is wrong; the message names the parameter."""


class AuthenticationError(HTTPStatusError):
    """401: no credentials, or a bad, revoked or expired token."""


class PermissionDeniedError(HTTPStatusError):
    """403: authenticated, but not allowed (another user's job, a disabled account)."""


class NotFoundError(HTTPStatusError):
    """404: no such job, node, submission or file (or not visible to you)."""


class ConflictError(HTTPStatusError):
    """409: the resource exists already; ``body`` holds what the server returned."""


class RateLimitError(HTTPStatusError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds."""

    @property
    def retry_after(self) -> float | None:
        if self.response is None:
            return None
        return parse_retry_after(self.response.headers.get("Retry-After"))


class ServerError(HTTPStatusError):
    """5xx: the server or a service behind it failed."""


_BY_STATUS: dict[int, type[HTTPStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), else None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def error_from_response(response: requests.Response) -> HTTPStatusError:
    """The exception for an error response, carrying the server's code and message."""
    status = response.status_code
    body: Any = None
    code = ""
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or "")
        message = str(body["error"].get("message") or "")
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    elif isinstance(body, str):
        message = body
    if not message:
        text = (response.text or "").strip()
        message = text[:200] if text and "<" not in text[:1] else (response.reason or "error")
    if status >= 500:
        cls: type[HTTPStatusError] = ServerError
    else:
        cls = _BY_STATUS.get(status, HTTPStatusError)
    return cls(
        message,
        status_code=status,
        code=code,
        body=body,
        request=response.request,
        response=response,
    )
