"""Steps in ClickHouse's Native format: encoded where they are mapped, inserted as they are.

Serialising ~50 columns (maps, nested events and links) is a large share of the mapping's
Python (``bench/mapping_bench.py``), and moving Python objects between processes would cost
as much again to pickle and unpickle.  So the
mapping workers encode their steps into a Native block (:func:`encode_steps`) and send back
bytes plus the span identities; the writer, in the process that owns the ClickHouse
connection, only checks identities for duplicates and joins the blocks into one
(:mod:`.native_merge`) for its insert.

The encoding itself is clickhouse-connect's (its column types write the columns); this
module fixes the column list and reads the types from the steps DDL, so a block is insertable into ``steps`` by
either store, embedded or server.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.common import write_leb128
from clickhouse_connect.driver.insert import InsertContext

from .model import STEP_COLUMN_NAMES, StepBatch
from .schema import FAILURE_COLUMNS_DDL, STEP_COLUMNS_DDL, STEP_STRING_COLUMNS


def _top_level(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    return [part.strip() for part in [*parts, current] if part.strip()]


def _insert_types(columns_ddl: str) -> dict[str, str]:
    """Column → insert type, read from the table's own column list; Nested columns as arrays."""
    types = {}
    for entry in _top_level(columns_ddl):
        name, type_ = entry.split(None, 1)
        type_ = " ".join(type_.split())
        if type_.startswith("Nested("):
            for inner in _top_level(type_[len("Nested("):-1]):
                field, field_type = inner.split(None, 1)
                types[f"{name}.{field}"] = f"Array({' '.join(field_type.split())})"
        else:
            types[name] = type_
    return types


# The insert type of every column, from the steps DDL itself and the columns migration 11 made
# String (a test holds it equal to ``DESCRIBE TABLE steps``).
STEP_INSERT_TYPES: dict[str, str] = {**_insert_types(STEP_COLUMNS_DDL + "," + FAILURE_COLUMNS_DDL),
                                     **{name: "String" for name in STEP_STRING_COLUMNS}}
INSERT_COLUMNS: tuple[str, ...] = (*STEP_COLUMN_NAMES, "ingested_at")
INSERT_COLUMN_TYPES: tuple[tuple[str, str], ...] = tuple((name, STEP_INSERT_TYPES[name]) for name in INSERT_COLUMNS)
_TYPES = [get_from_name(type_) for _, type_ in INSERT_COLUMN_TYPES]


class NativeBlock(NamedTuple):
    """One Native block of :data:`INSERT_COLUMNS`: its bytes, where each column's data lies in
    them ((start, end) per column; None if not known), and its row count."""

    data: bytes
    column_spans: tuple[tuple[int, int], ...] | None
    rows: int


def encode_steps(batch: StepBatch, ingested_ms: int) -> bytes:
    """``batch`` as one Native block of :data:`INSERT_COLUMNS`, stamped ``ingested_ms``."""
    return encode_block(batch, ingested_ms).data


def encode_block(batch: StepBatch, ingested_ms: int) -> NativeBlock:
    """:func:`encode_steps`, also noting where each column's data lies (for
    :func:`~.native_merge.merge_blocks`)."""
    rows = len(batch)
    data = [batch.columns[name] for name in STEP_COLUMN_NAMES]
    data.append([ingested_ms] * rows)
    # block_size = rows: one block, and no sampling of the data to size blocks.
    context = InsertContext("steps", INSERT_COLUMNS, _TYPES, data, column_oriented=True, block_size=max(rows, 1))
    output, spans = bytearray(), []
    for block in context.next_block():
        write_leb128(block.column_count, output)
        write_leb128(block.row_count, output)
        for name, column_type, values in zip(block.column_names, block.column_types, block.column_data):
            encoded = name.encode()
            write_leb128(len(encoded), output)
            output += encoded
            encoded = column_type.insert_name.encode()
            write_leb128(len(encoded), output)
            output += encoded
            context.start_column(name)
            start = len(output)
            column_type.write_column(values, output, context)
            spans.append((start, len(output)))
    return NativeBlock(bytes(output), tuple(spans), rows)


class EncodedSteps:
    """Steps already in Native format, with the identities the writer deduplicates on.

    ``rebuild`` returns the same steps as a :class:`StepBatch`: the writer calls it only when
    some (not all) of these spans are already stored, since a block cannot drop rows.
    """

    __slots__ = ("native", "ingested_ms", "project_ids", "run_ids", "step_ids", "rebuild", "column_spans")

    def __init__(self, native: bytes, ingested_ms: int, project_ids: list[str], run_ids: list[str],
                 step_ids: list[str], rebuild: Callable[[], StepBatch] | None = None,
                 column_spans: tuple[tuple[int, int], ...] | None = None):
        self.native = native
        self.column_spans = column_spans
        self.ingested_ms = ingested_ms
        self.project_ids = project_ids
        self.run_ids = run_ids
        self.step_ids = step_ids
        self.rebuild = rebuild

    @classmethod
    def of(cls, batch: StepBatch, ingested_ms: int) -> "EncodedSteps":
        """Encode ``batch`` stamped ``ingested_ms``; its rebuild is the batch itself."""
        c = batch.columns
        block = encode_block(batch, ingested_ms)
        return cls(block.data, ingested_ms, list(c["project_id"]), list(c["run_id"]),
                   list(c["step_id"]), rebuild=lambda: batch, column_spans=block.column_spans)

    @property
    def block(self) -> NativeBlock:
        """The steps as a :class:`NativeBlock`."""
        return NativeBlock(self.native, self.column_spans, len(self))

    def __len__(self) -> int:
        return len(self.step_ids)

    def __reduce__(self):
        # Crosses process boundaries without its rebuild (a closure); the receiver sets it.
        return EncodedSteps, (self.native, self.ingested_ms, self.project_ids, self.run_ids, self.step_ids,
                              None, self.column_spans)

    def keys(self) -> list[tuple[str, str, str]]:
        """(project_id, run_id, step_id) of every step."""
        return list(zip(self.project_ids, self.run_ids, self.step_ids))

    def runs(self) -> set[tuple[str, str]]:
        """The (project_id, run_id) pairs these steps touch."""
        return set(zip(self.project_ids, self.run_ids))


__all__ = ["INSERT_COLUMNS", "INSERT_COLUMN_TYPES", "STEP_INSERT_TYPES", "EncodedSteps", "NativeBlock",
           "encode_block", "encode_steps"]
