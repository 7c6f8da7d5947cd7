"""Runbook endpoints: stored runbooks, validating one run, validating a project window.

* ``POST /v1/runbooks`` ``{"name"?, "yaml", "auto"?, "project_id"?}`` — store (a new version
  only when the text or ``auto`` changed); ``GET /v1/runbooks``; ``GET /v1/runbooks/{name}``.
* ``POST /v1/runs/{run_id}/validate`` ``{"runbook_yaml": ...}`` or ``{"runbook": name}`` —
  judged and stored; the same runbook on the same run state returns the stored validation.
* ``GET /v1/runs/{run_id}/validations?limit`` — newest first.
* ``POST /v1/validations`` — a project window: counts by status and a page of failed runs.

A key sees only its projects: another project's run or runbook is a 404.  A bad runbook is
a 422 whose ``details`` carry the line and column of each problem.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.validator.library import get_runbook, list_runbooks, save_runbook
from agenttrail.validator.parser import MAX_RUNBOOK_BYTES, RunbookError, parse_runbook
from agenttrail.validator.patterns import PatternError
from agenttrail.validator.service import (RunbookInfo, RunNotFound, find_run_project, validate_batch,
                                          validate_run, validations_of_run)

from .deps import get_store, ingester, reader, run_id_path, visible_projects
from .errors import ApiError

router = APIRouter(tags=["runbooks"])
_NAME = Field(default=None, max_length=128)


class RunbookIn(BaseModel):
    """A runbook to store."""

    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(max_length=MAX_RUNBOOK_BYTES)
    name: str | None = _NAME
    project_id: str | None = Field(default=None, max_length=256)
    auto: bool = False


class RunbookChoice(BaseModel):
    """Either inline YAML or the name (and optionally version) of a stored runbook."""

    model_config = ConfigDict(extra="forbid")
    runbook_yaml: str | None = Field(default=None, max_length=MAX_RUNBOOK_BYTES)
    runbook: str | None = _NAME
    version: int | None = Field(default=None, ge=1)


class ValidateIn(RunbookChoice):
    """A runbook for one run, and which evaluator judges it."""

    engine: Literal["python", "sql"] = Field(
        default="python",
        description="`python` (default): the reference evaluator over the run's fetched steps; "
                    "`sql`: the compiled runbook query that batches use. Both give the same verdict; "
                    "for one run `python` is several times faster.")


class BatchIn(RunbookChoice):
    """A project window to judge."""

    project_id: str | None = Field(default=None, max_length=256)
    since: str | None = Field(default=None, max_length=64)
    until: str | None = Field(default=None, max_length=64)
    agent: str | None = Field(default=None, max_length=1000)
    service: str | None = Field(default=None, max_length=1000)
    statuses: list[Literal["passed", "failed", "incomplete"]] = ["failed"]
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000_000)


def _project(principal: Principal, requested: str | None) -> str:
    project = requested or principal.single_project
    if project is None:
        raise ApiError(422, "project_id: required (this key reads several projects)",
                       details=[{"parameter": "project_id", "in": "body", "message": "required"}])
    if not principal.allows(project):
        raise ApiError(404, f"project {project} not found")
    return project


def _parse(text: str, where: str = "runbook_yaml"):
    try:
        return parse_runbook(text)
    except RunbookError as exc:
        details = [{"parameter": where, "in": "body", "line": line, "column": column, "path": path,
                    "message": message} for line, column, path, message in exc.errors]
        raise ApiError(422, f"invalid runbook: {exc}", code="invalid_runbook", details=details) from None


def _choose(store: Store, project: str, body: RunbookChoice):
    """The runbook a request names, parsed, with where it came from."""
    if (body.runbook_yaml is None) == (body.runbook is None):
        raise ApiError(422, "give exactly one of runbook_yaml or runbook",
                       details=[{"parameter": "runbook", "in": "body", "message": "exactly one required"}])
    if body.runbook_yaml is not None:
        runbook = _parse(body.runbook_yaml)
        return runbook, RunbookInfo(runbook.name, 0)
    stored = get_runbook(store, project, body.runbook, body.version)
    if stored is None:
        raise ApiError(404, f"runbook {body.runbook} not found")
    return _parse(stored["yaml"], "runbook"), RunbookInfo(stored["name"], stored["version"])


@router.post("/v1/runbooks", status_code=201)
def create_runbook(body: RunbookIn, store: Store = Depends(get_store),
                   principal: Principal = Depends(ingester)) -> dict:
    """Store a runbook under its name (``name`` or the YAML's ``name``) for a project."""
    project = _project(principal, body.project_id)
    _parse(body.yaml, "yaml")
    try:
        return save_runbook(store, project, body.yaml, name=body.name, auto=body.auto)
    except RunbookError as exc:
        raise ApiError(422, str(exc), details=[{"parameter": "name", "in": "body", "message": str(exc)}]) from None


@router.get("/v1/runbooks")
def runbooks(project_id: str | None = Query(default=None, max_length=256), store: Store = Depends(get_store),
             principal: Principal = Depends(reader)) -> dict:
    """The newest version of every runbook of the projects the key may read."""
    if project_id is not None:
        projects = [project_id] if principal.allows(project_id) else []
    else:
        visible = visible_projects(principal)
        projects = sorted(visible) if visible is not None else [
            r[0] for r in store.query("SELECT DISTINCT project_id FROM runbooks").result_rows]
    return {"runbooks": list_runbooks(store, projects) if projects else []}


@router.get("/v1/runbooks/{name}")
def runbook(name: str, project_id: str | None = Query(default=None, max_length=256),
            version: int | None = Query(default=None, ge=1), store: Store = Depends(get_store),
            principal: Principal = Depends(reader)) -> dict:
    """One runbook (newest version unless ``version`` is given)."""
    found = get_runbook(store, _project(principal, project_id), name, version) if len(name) <= 128 else None
    if found is None:
        raise ApiError(404, f"runbook {name} not found")
    return found


def _run_project(store: Store, run_id: str, principal: Principal) -> str:
    visible = visible_projects(principal)
    try:
        return find_run_project(store, run_id, sorted(visible) if visible is not None else None)
    except RunNotFound:
        raise ApiError(404, f"run {run_id} not found") from None


@router.post("/v1/runs/{run_id}/validate")
def validate(body: ValidateIn, run_id: str = Depends(run_id_path), store: Store = Depends(get_store),
             principal: Principal = Depends(reader)) -> dict:
    """Judge one run against a runbook and store the verdict (idempotent per run state)."""
    project = _run_project(store, run_id, principal)
    runbook, info = _choose(store, project, body)
    try:
        return validate_run(store, run_id, runbook, project=project, info=info, source="api", engine=body.engine)
    except RunNotFound:
        raise ApiError(404, f"run {run_id} not found") from None


@router.get("/v1/runs/{run_id}/validations")
def validations(run_id: str = Depends(run_id_path), limit: int = Query(default=20, ge=1, le=500),
                store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """The run's validations, newest first."""
    project = _run_project(store, run_id, principal)
    return {"validations": validations_of_run(store, project, run_id, limit)}


@router.post("/v1/validations")
def batch(body: BatchIn, store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Judge a project's runs started in ``[since, until)`` (ISO time or ``1h``/``2d`` ago)."""
    from agenttrail.validator.cli import UsageError, parse_when

    project = _project(principal, body.project_id)
    runbook, _ = _choose(store, project, body)
    now = time.time()
    try:
        since = parse_when(body.since, now) if body.since else None
        until = parse_when(body.until, now) if body.until else None
        return validate_batch(store, runbook, project, since_ns=since, until_ns=until, agent=body.agent,
                              service=body.service, statuses=body.statuses, limit=body.limit, offset=body.offset)
    except UsageError as exc:
        raise ApiError(422, str(exc), details=[{"parameter": "since", "in": "body", "message": str(exc)}]) from None
    except PatternError as exc:  # a bad agent/service glob
        raise ApiError(422, str(exc), details=[{"parameter": "agent", "in": "body", "message": str(exc)}]) from None
