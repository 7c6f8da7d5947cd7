"""Exceptions raised by :class:`agenttrail.sdk.Client` (never by the instrumentation).

    AgentTrailError
    ├── APIConnectionError         the server could not be reached
    │   └── APITimeoutError        no answer within the client's timeout
    └── APIError                   the server answered with an error status
        ├── AuthenticationError    401: missing or unknown API key
        ├── PermissionDeniedError  403: the key lacks the scope
        ├── NotFoundError          404: unknown run (or another project's — same answer)
        ├── InvalidRequestError    400 / 422: a bad parameter; ``details`` names it
        └── ServiceUnavailableError 503 (or 429/502/504) still failing after the retries

Every ``APIError`` carries ``status_code``, the server's stable ``code`` (e.g. ``not_found``),
its ``message`` and ``details``.
"""

from __future__ import annotations


class AgentTrailError(Exception):
    """Base of every error the client raises."""


class APIConnectionError(AgentTrailError):
    """The server could not be reached (refused, DNS, TLS, reset)."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the timeout."""


class APIError(AgentTrailError):
    """The server answered with an error status."""

    def __init__(self, status_code: int, message: str, code: str = "", details=None, body=None):
        super().__init__(f"HTTP {status_code} {code}: {message}" if code else f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.code = code
        self.details = details or []
        self.body = body


class AuthenticationError(APIError):
    """401: the API key is missing or unknown."""


class PermissionDeniedError(APIError):
    """403: the API key may not do this."""


class NotFoundError(APIError):
    """404: no such resource visible to this key."""


class InvalidRequestError(APIError):
    """400 or 422: a parameter or body was rejected; ``details`` lists which."""


class ServiceUnavailableError(APIError):
    """503 (or 429/502/504) after the client's retries; ``retry_after`` is the server's hint."""

    def __init__(self, *args, retry_after: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


_BY_STATUS = {401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
              400: InvalidRequestError, 422: InvalidRequestError}


def error_for(status_code: int, body, retry_after: float | None = None) -> APIError:
    """The exception for an error answer, reading the API's ``{"error": {code, message, details}}``."""
    code, message, details = "", "", None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, message, details = str(err.get("code", "")), str(err.get("message", "")), err.get("details")
        elif "detail" in body:  # a plain FastAPI error, in case a route bypasses the handlers
            message = str(body["detail"])
    elif isinstance(body, str):
        message = body[:500]
    message = message or f"HTTP {status_code}"
    if status_code in (429, 502, 503, 504):
        return ServiceUnavailableError(status_code, message, code, details, body, retry_after=retry_after)
    cls = _BY_STATUS.get(status_code, APIError)
    return cls(status_code, message, code, details, body)
