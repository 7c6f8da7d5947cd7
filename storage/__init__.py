"""agenttrail.storage — runs and steps in ClickHouse (embedded chDB or a server).

Public surface: :class:`Store` (open, migrate, query, write), :class:`StepBatch` (the rows
producers hand in) or :class:`EncodedSteps` (the same, already in ClickHouse's Native format), the error classes, and the read helpers in :mod:`.runs`.
Writes that fail while ClickHouse is unavailable are kept on local disk by the spool (:mod:`.spool`)
and committed once it is back (:mod:`.drain`).
"""

from .errors import Overloaded, RetryableError, StorageError, StorageUnavailable
from .native import EncodedSteps
from .model import STEP_COLUMN_NAMES, STEP_KINDS, StepBatch, WriteResult
from .store import Store

__all__ = [
    "EncodedSteps",
    "Overloaded",
    "RetryableError",
    "STEP_COLUMN_NAMES",
    "STEP_KINDS",
    "StepBatch",
    "Store",
    "StorageError",
    "StorageUnavailable",
    "WriteResult",
]
