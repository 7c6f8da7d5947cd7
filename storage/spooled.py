"""A batch of steps as one spool record, and back.

A record is the batch's Native block (what the insert sends) plus the span identities the
writer deduplicates on, so draining a record costs no re-encoding.  The one thing a record
cannot carry is an :class:`~.native.EncodedSteps`' ``rebuild`` (a closure over the export
request): a spooled batch rebuilds its rows by decoding its own block, with
clickhouse-connect's reader, and the rows encode back to the same bytes.
"""

from __future__ import annotations

import json
import struct

from clickhouse_connect.driver.ctypes import RespBuffCls
from clickhouse_connect.driver.query import QueryContext
from clickhouse_connect.driver.transform import NativeTransform

from .model import STEP_COLUMN_NAMES, StepBatch
from .native import INSERT_COLUMNS, EncodedSteps

_META_LENGTH = struct.Struct("<I")
_VERSION = 1
# Times come back as the integer nanoseconds (milliseconds for ingested_at) they were encoded from.
_READ_FORMATS = {"DateTime64": "int", "DateTime": "int"}


def batch_to_record(batch, ingested_ms: int) -> bytes:
    """``batch`` (a :class:`StepBatch` or :class:`EncodedSteps`) as a spool record's payload;
    a StepBatch is stamped ``ingested_ms``."""
    encoded = batch if isinstance(batch, EncodedSteps) else EncodedSteps.of(batch, ingested_ms)
    meta = json.dumps({"v": _VERSION, "ingested_ms": encoded.ingested_ms, "projects": encoded.project_ids,
                       "runs": encoded.run_ids, "steps": encoded.step_ids,
                       "spans": encoded.column_spans}, separators=(",", ":")).encode()
    return _META_LENGTH.pack(len(meta)) + meta + encoded.native


def record_to_batch(payload: bytes) -> EncodedSteps:
    """The :class:`EncodedSteps` of a spool record; ValueError if it is not one."""
    try:
        (length,) = _META_LENGTH.unpack_from(payload)
        meta = json.loads(payload[_META_LENGTH.size:_META_LENGTH.size + length])
        native = payload[_META_LENGTH.size + length:]
        if meta.get("v") != _VERSION:
            raise ValueError(f"unknown spool record version {meta.get('v')!r}")
        projects, runs, steps = meta["projects"], meta["runs"], meta["steps"]
        if not (len(projects) == len(runs) == len(steps)) or not native:
            raise ValueError("a spool record's identities do not match its rows")
        spans = tuple(tuple(pair) for pair in meta["spans"]) if meta["spans"] is not None else None
        batch = EncodedSteps(native, int(meta["ingested_ms"]), projects, runs, steps, column_spans=spans)
    except (struct.error, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a spool record: {exc}") from None
    batch.rebuild = lambda: decode_native(native)
    return batch


class _Bytes:
    """The minimal byte source clickhouse-connect's Native reader takes."""

    def __init__(self, data: bytes):
        self.gen = iter([data])
        self.last_message = None
        self.exception_tag = None

    def close(self) -> None:
        pass


def decode_native(native: bytes) -> StepBatch:
    """The steps of one Native block of :data:`~.native.INSERT_COLUMNS` as a :class:`StepBatch`."""
    result = NativeTransform.parse_response(RespBuffCls(_Bytes(native)), QueryContext(query_formats=_READ_FORMATS))
    if tuple(result.column_names) != INSERT_COLUMNS:
        raise ValueError("a spooled block does not have the steps columns")
    batch = StepBatch()
    for name, column in zip(result.column_names, result.result_columns):
        if name in STEP_COLUMN_NAMES:
            batch.columns[name] = list(column)
    return batch


__all__ = ["batch_to_record", "decode_native", "record_to_batch"]
