"""Runbooks stored by name per project, with versions.

Saving the same YAML (and ``auto`` flag) again returns the current version instead of adding
one, so a CI job that re-posts its runbook on every build does not grow the history.  An
``auto`` runbook is validated automatically (see :mod:`.auto`) on the runs its
``applies_to`` selects (agent / service globs; none means every run of the project).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .parser import RunbookError, parse_runbook

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """A runbook name is 1–128 characters of letters, digits, ``.``, ``_`` and ``-``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise RunbookError([(1, 1, "name", f"runbook name must match {_NAME.pattern}")])
    return name


def save_runbook(store, project: str, yaml_text: str, *, name: str | None = None, auto: bool = False) -> dict:
    """Parse and store a runbook; returns its record (a new version only if something changed)."""
    runbook = parse_runbook(yaml_text)
    name = check_name(name or runbook.name)
    current = get_runbook(store, project, name)
    if current and current["hash"] == runbook.content_hash and current["auto"] == bool(auto):
        return {**current, "created": False}
    applies = runbook.applies_to
    row = {"project_id": project, "name": name, "version": (current["version"] if current else 0) + 1,
           "yaml": yaml_text, "hash": runbook.content_hash,
           "applies_agent": applies.agent.text if applies.agent else "",
           "applies_service": applies.service.text if applies.service else "",
           "auto": int(bool(auto)), "created_at": datetime.now(timezone.utc)}
    store.client().insert("runbooks", [list(row.values())], column_names=list(row))
    return {**_record(row), "created": True}


def get_runbook(store, project: str, name: str, version: int | None = None) -> dict | None:
    """The newest (or the given) version of a runbook, or ``None``."""
    sql = "SELECT * FROM runbooks FINAL WHERE project_id = {p:String} AND name = {n:String}"
    params = {"p": project, "n": name}
    if version is not None:
        sql += " AND version = {v:UInt32}"
        params["v"] = int(version)
    rows = list(store.query(sql + " ORDER BY version DESC LIMIT 1", params).named_results())
    return _record(rows[0]) if rows else None


def list_runbooks(store, project: str | list[str], *, auto_only: bool = False) -> list[dict]:
    """The newest version of every runbook of a project (or of several projects)."""
    projects = [project] if isinstance(project, str) else list(project)
    sql = "SELECT * FROM runbooks FINAL WHERE project_id IN {p:Array(String)}"
    rows = store.query(sql + " ORDER BY project_id, name, version DESC LIMIT 1 BY project_id, name",
                       {"p": projects}).named_results()
    records = [_record(row) for row in rows]
    return [r for r in records if r["auto"]] if auto_only else records


def _record(row: dict) -> dict:
    created = row["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return {"project_id": row["project_id"], "name": row["name"], "version": row["version"],
            "yaml": row["yaml"], "hash": row["hash"], "auto": bool(row["auto"]),
            "applies_to": {k: v for k, v in (("agent", row["applies_agent"]), ("service", row["applies_service"])) if v},
            "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
