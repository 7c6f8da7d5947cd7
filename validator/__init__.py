"""agenttrail.validator — runbooks: YAML rules that agent runs are checked against.

Public surface: :func:`parse_runbook` (strict YAML → :class:`Runbook`, :class:`RunbookError`
with line and column), :func:`evaluate` (the plain-Python reference evaluator),
:func:`compile_runbook` (one ClickHouse query for any set of runs, :class:`Selection`),
:func:`validate_run` / :func:`validate_batch` (through a store, persisted/idempotent),
:func:`save_runbook` / :func:`get_runbook` / :func:`list_runbooks`, and :class:`AutoValidator`.
See docs/runbooks.md.
"""

from .auto import AutoValidator
from .compiler import CompiledRunbook, Selection, compile_runbook
from .library import get_runbook, list_runbooks, save_runbook
from .parser import RunbookError, parse_runbook
from .reference import evaluate
from .runbook import Runbook
from .service import RunNotFound, latest_validations, validate_batch, validate_run, validations_of_run

__all__ = [
    "AutoValidator",
    "CompiledRunbook",
    "RunNotFound",
    "Runbook",
    "RunbookError",
    "Selection",
    "compile_runbook",
    "evaluate",
    "get_runbook",
    "latest_validations",
    "list_runbooks",
    "parse_runbook",
    "save_runbook",
    "validate_batch",
    "validate_run",
    "validations_of_run",
]
