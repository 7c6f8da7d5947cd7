"""The runbook model: what a team says its agent must do, as frozen dataclasses.

:func:`parse_runbook` (in :mod:`.parser`) builds these from YAML; the reference evaluator and
the SQL compiler read them.  Field names follow the YAML keys, so a rule id such as
``steps[0].max_latency_ms`` is also the path to the value that set it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .patterns import Glob, Regex

BUDGET_KEYS = (
    "max_total_tokens",
    "max_input_tokens",
    "max_output_tokens",
    "max_total_cost_usd",
    "max_steps",
    "max_llm_calls",
    "max_tool_calls",
    "max_duration_ms",
    "max_errors",
)
"""Run-wide limits.  Tokens and cost count ``llm`` steps only (as the runs table does)."""

FLOAT_BUDGETS = {"max_total_cost_usd", "max_duration_ms"}
STEP_STATUSES = ("ok", "error", "unset")
STEP_KINDS = ("llm", "tool", "agent", "retrieval", "embedding", "workflow", "guardrail", "other")


@dataclass(frozen=True)
class Matcher:
    """Selects steps: every given field must match (``name``/``tool`` are globs)."""

    name: Glob | None = None
    tool: Glob | None = None
    kind: str | None = None

    def describe(self) -> str:
        """``name=plan, tool=fetch*`` — for messages."""
        parts = [f"name={self.name.text}" if self.name else "",
                 f"tool={self.tool.text}" if self.tool else "",
                 f"kind={self.kind}" if self.kind else ""]
        return ", ".join(p for p in parts if p)

    def matches(self, step: dict) -> bool:
        """True when ``step`` (a steps-table row as a dict) is selected."""
        return ((self.name is None or self.name.matches(step["name"]))
                and (self.tool is None or self.tool.matches(step["tool_name"]))
                and (self.kind is None or step["kind"] == self.kind))


@dataclass(frozen=True)
class ArgumentRules:
    """Checks on a tool call's JSON arguments (top-level keys of an object)."""

    required: tuple[str, ...] = ()
    url_allowlist: tuple[Glob, ...] = ()
    matches: tuple[tuple[str, Regex], ...] = ()


@dataclass(frozen=True)
class StepRule:
    """Constraints on the steps ``match`` selects."""

    match: Matcher
    max_latency_ms: float | None = None
    status: str | None = None
    max_count: int | None = None
    min_count: int | None = None
    arguments: ArgumentRules | None = None


@dataclass(frozen=True)
class Loops:
    """Repetition limits over the run's tool calls (steps with a tool name), in step order."""

    max_repeats: int | None = None
    max_retries_per_tool: int | None = None


@dataclass(frozen=True)
class AppliesTo:
    """Which runs a stored runbook is attached to (globs; all given must match)."""

    agent: Glob | None = None
    service: Glob | None = None
    project: Glob | None = None


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook.  ``source`` is the YAML it came from; ``content_hash`` identifies it."""

    version: int = 1
    name: str = ""
    description: str = ""
    applies_to: AppliesTo = field(default_factory=AppliesTo)
    allowed_tools: tuple[Glob, ...] | None = None
    denied_tools: tuple[Glob, ...] = ()
    required_steps: tuple[Matcher, ...] = ()
    budgets: tuple[tuple[str, float], ...] = ()
    steps: tuple[StepRule, ...] = ()
    loops: Loops = field(default_factory=Loops)
    forbid_failure_categories: tuple[str, ...] = ()
    max_retries: int | None = None
    source: str = field(default="", compare=False)

    @property
    def content_hash(self) -> str:
        """sha256 of the YAML text: the same text is the same runbook."""
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def rule_ids(self) -> list[str]:
        """Every rule this runbook checks, in the order verdicts list them."""
        ids = []
        if self.allowed_tools is not None:
            ids.append("allowed_tools")
        if self.denied_tools:
            ids.append("denied_tools")
        if self.required_steps:
            ids.append("required_steps")
        ids += [f"budgets.{key}" for key, _ in self.budgets]
        for i, rule in enumerate(self.steps):
            for key in ("max_latency_ms", "status", "max_count", "min_count"):
                if getattr(rule, key) is not None:
                    ids.append(f"steps[{i}].{key}")
            if rule.arguments:
                for key in ("required", "url_allowlist", "matches"):
                    if getattr(rule.arguments, key):
                        ids.append(f"steps[{i}].arguments.{key}")
        for key in ("max_repeats", "max_retries_per_tool"):
            if getattr(self.loops, key) is not None:
                ids.append(f"loops.{key}")
        if self.forbid_failure_categories:
            ids.append("forbid_failure_categories")
        if self.max_retries is not None:
            ids.append("max_retries")
        return ids
