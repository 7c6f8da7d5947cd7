"""FastAPI dependencies: the store, and the authenticated caller.

Endpoints declare ``principal: Principal = Depends(reader)`` (or ``ingester``/``admin``) and
``store: Store = Depends(get_store)``; the app factory puts the store and key ring on
``app.state``.  A read key sees only its own projects: use :func:`visible_projects` in every
query so another project's data is simply not found (404, never 403).
"""

from __future__ import annotations

from fastapi import Depends, Request

from agenttrail.service.auth import AuthError, Principal
from agenttrail.storage import Store
from agenttrail.storage.ids import normalize_run_id

from .errors import ApiError


def get_store(request: Request) -> Store:
    """The store this app serves."""
    return request.app.state.store


def authenticate(request: Request) -> Principal:
    """The caller, from ``x-api-key`` or ``Authorization: Bearer``; 401 when keys are required."""
    try:
        return request.app.state.keyring.authenticate(
            request.headers.get("x-api-key"), request.headers.get("authorization")
        )
    except AuthError as exc:
        raise ApiError(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def _requiring(scope: str):
    def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.can(scope):
            raise ApiError(403, f"this API key lacks the {scope} scope")
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


reader = _requiring("read")
ingester = _requiring("ingest")
admin = _requiring("admin")


def visible_projects(principal: Principal):
    """The projects a query must be limited to (None = all)."""
    return principal.projects


def run_id_path(run_id: str) -> str:
    """Validate a ``{run_id}`` path parameter (hex trace id or UUID) into stored form."""
    try:
        return normalize_run_id(run_id)
    except ValueError as exc:
        raise ApiError(422, f"run_id: {exc}", details=[{"parameter": "run_id", "in": "path",
                                                        "message": str(exc)}]) from None


def project_scope(principal: Principal, requested: str | None = None) -> frozenset[str] | None:
    """The projects a query may read: the caller's, narrowed to ``requested`` when given.

    An empty set (asking for a project the key may not see) makes every list empty and every
    lookup a 404 — the project's existence is not revealed.
    """
    visible = visible_projects(principal)
    if requested is None:
        return visible
    if visible is None or requested in visible:
        return frozenset([requested])
    return frozenset()
