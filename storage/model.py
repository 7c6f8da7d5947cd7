"""The row shape the storage layer accepts: steps, one per span, as column lists.

Producers (the OTLP receiver, the event API) append one value per column per step; the writer
hands the columns to ClickHouse as they are, so inserting never loops over rows in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

# (column, default) in table order.  Defaults make a producer set only what it knows.
STEP_COLUMNS: tuple[tuple[str, object], ...] = (
    ("project_id", ""),
    ("run_id", ""),
    ("step_id", ""),
    ("parent_step_id", ""),
    ("trace_state", ""),
    ("name", ""),
    ("kind", "other"),
    ("span_kind", "INTERNAL"),
    ("operation", ""),
    ("service_name", "unknown_service"),
    ("scope_name", ""),
    ("scope_version", ""),
    ("agent_name", ""),
    ("session_id", ""),
    ("user_id", ""),
    ("environment", ""),
    ("tool_name", ""),
    ("tool_call_id", ""),
    ("tool_arguments", ""),
    ("model", ""),
    ("provider", ""),
    ("status", "unset"),
    ("status_message", ""),
    ("error_type", ""),
    ("start_time", 0),
    ("end_time", 0),
    ("duration_ns", 0),
    ("input_tokens", 0),
    ("output_tokens", 0),
    ("cache_read_tokens", 0),
    ("cache_creation_tokens", 0),
    ("reasoning_tokens", 0),
    ("total_tokens", 0),
    ("cost_usd", None),
    ("cost_source", ""),
    ("finish_reasons", ()),
    ("unmapped_usage", {}),
    ("attributes", {}),
    ("resource_attributes", {}),
    ("events.time", ()),
    ("events.name", ()),
    ("events.attributes", ()),
    ("links.trace_id", ()),
    ("links.span_id", ()),
    ("links.trace_state", ()),
    ("links.attributes", ()),
    ("truncated", 0),
    # migration 6: failure analysis (agenttrail.analysis.classify); '' when the step did not fail
    ("failure_category", ""),
    ("failure_type", ""),
    ("error_fingerprint", ""),
)

STEP_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in STEP_COLUMNS)
STEP_KINDS = ("llm", "tool", "agent", "retrieval", "embedding", "workflow", "guardrail", "other")
STEP_STATUSES = ("ok", "error", "unset")


class StepBatch:
    """Steps as parallel column lists (``columns[name][i]`` is step i's value).

    ``start_time``/``end_time`` are integer nanoseconds since the epoch (UTC).
    """

    __slots__ = ("columns",)

    def __init__(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in STEP_COLUMN_NAMES}

    def __len__(self) -> int:
        return len(self.columns["step_id"])

    def append(self, **values) -> None:
        """Add one step; unknown column names are an error, missing ones take their default."""
        unknown = values.keys() - self.columns.keys()
        if unknown:
            raise KeyError(f"unknown step columns: {sorted(unknown)}")
        for name, default in STEP_COLUMNS:
            self.columns[name].append(values.get(name, default))

    def extend(self, other: "StepBatch") -> None:
        """Append every step of ``other``."""
        for name, column in self.columns.items():
            column.extend(other.columns[name])

    def select(self, keep: list[int]) -> "StepBatch":
        """A new batch with only the steps at the given positions, in that order."""
        out = StepBatch()
        for name, column in self.columns.items():
            out.columns[name] = [column[i] for i in keep]
        return out

    @property
    def step_ids(self) -> list[str]:
        """The span id of every step (as :class:`~agenttrail.storage.EncodedSteps` has them)."""
        return self.columns["step_id"]

    def keys(self) -> list[tuple[str, str, str]]:
        """(project_id, run_id, step_id) of every step: a span's identity."""
        c = self.columns
        return list(zip(c["project_id"], c["run_id"], c["step_id"]))

    def runs(self) -> set[tuple[str, str]]:
        """The (project_id, run_id) pairs this batch touches."""
        c = self.columns
        return set(zip(c["project_id"], c["run_id"]))


@dataclass(frozen=True)
class WriteResult:
    """What one submitted batch became once durably written."""

    accepted: int
    duplicates: int = 0
