"""One JSON error shape for the whole REST API.

``{"error": {"code": "not_found", "message": "run 4bf9… not found", "details": [...]}}`` —
``code`` is stable for programs, ``message`` is for people, ``details`` (optional) lists
per-parameter problems for 422s.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agenttrail.storage import RetryableError

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid_parameter",
          429: "rate_limited", 503: "unavailable"}


class ApiError(HTTPException):
    """An error answer with a stable code; raise it from endpoints."""

    def __init__(self, status: int, message: str, code: str | None = None, details=None, headers=None):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code or _CODES.get(status, "error")
        self.details = details


def error_body(status: int, message: str, code: str | None = None, details=None) -> dict:
    """The JSON body of an error answer."""
    error = {"code": code or _CODES.get(status, "error"), "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def install_error_handlers(app: FastAPI) -> None:
    """Route every error (ours, FastAPI's, storage's) through :func:`error_body`."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        body = error_body(exc.status_code, str(exc.detail), getattr(exc, "code", None),
                          getattr(exc, "details", None))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = [
            {"parameter": ".".join(str(p) for p in e.get("loc", ())[1:]) or str(e.get("loc")),
             "in": (e.get("loc") or ["body"])[0], "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        names = ", ".join(d["parameter"] for d in details)
        return JSONResponse(error_body(422, f"invalid parameter: {names}", details=details), status_code=422)

    @app.exception_handler(RetryableError)
    async def storage_unavailable(request: Request, exc: RetryableError):
        return JSONResponse(error_body(503, str(exc)), status_code=503,
                            headers={"Retry-After": str(int(max(1, exc.retry_after)))})
