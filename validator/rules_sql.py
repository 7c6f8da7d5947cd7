"""SQL for each rule, mirroring :mod:`.reference` rule by rule.

Each function registers the per-step fields it needs on the :class:`Builder` and returns
finding tuples (see :func:`.sqlbuild.finding`) evaluated over the run's step arrays, where
``a_id`` holds step ids in step order and ``a_<field>`` the matching per-step values.
"""

from __future__ import annotations

from agenttrail.storage.declared import DECLARED_COST_SQL, DECLARED_TOKENS_SQL

from .runbook import Runbook
from .sqlbuild import Builder, distinct_sorted, finding, ids_where

# Per-step value each cumulative budget adds up, exactly as reference._BUDGET_VALUE.
_BUDGET_FIELD = {
    "max_total_tokens": "if(kind = 'llm', total_tokens, 0)",
    "max_input_tokens": "if(kind = 'llm', input_tokens, 0)",
    "max_output_tokens": "if(kind = 'llm', output_tokens, 0)",
    "max_total_cost_usd": "if(kind = 'llm', ifNull(cost_usd, 0.), 0.)",
    "max_llm_calls": "toUInt64(kind = 'llm')",
    "max_tool_calls": "toUInt64(kind = 'tool')",
    "max_errors": "toUInt64(status = 'error')",
}
# Budgets that a total declared on the run's root also counts toward (as reference._DECLARED).
_DECLARED_FIELD = {"max_total_tokens": DECLARED_TOKENS_SQL, "max_total_cost_usd": DECLARED_COST_SQL}


def rule_findings(rb: Runbook, b: Builder, index: dict[str, str]) -> list[str]:
    """Finding expressions for every rule of ``rb``, in rule order."""
    out = _tool_policy(rb, b, index) + _required(rb, b, index) + _budgets(rb, b, index)
    for i, rule in enumerate(rb.steps):
        out += _step_rule(i, rule, b, index)
    return out + _loops(rb, b, index) + _failures(rb, b, index)


def _tool_policy(rb: Runbook, b: Builder, index) -> list[str]:
    # One string per step: the tool's name when the step breaks the rule, else '' (a tool call
    # always has a name) — cheaper to carry through GROUP BY than a flag plus every name.
    out = []
    if rb.allowed_tools is not None:
        allowed = b.glob_any("tool_name", rb.allowed_tools) if rb.allowed_tools else "0"
        bad = b.field("not_allowed", f"if(tool_name != '' AND NOT {allowed}, tool_name, '')")
        out.append(_named_offenders(index["allowed_tools"], bad))
    if rb.denied_tools:
        bad = b.field("denied", f"if(tool_name != '' AND {b.glob_any('tool_name', rb.denied_tools)}, tool_name, '')")
        out.append(_named_offenders(index["denied_tools"], bad))
    return out


def _named_offenders(index: str, names: str) -> str:
    """A finding over a per-step array holding the offending value, or '' for fine steps."""
    return finding(index, f"arrayExists(x -> x != '', {names})",
                   strings=f"arraySort(arrayDistinct(arrayFilter(x -> x != '', {names})))",
                   ids=f"arrayFilter((i, x) -> x != '', a_id, {names})")


def _required(rb: Runbook, b: Builder, index) -> list[str]:
    if not rb.required_steps:
        return []
    # Bit j of a step's mask: it matches required step j (at most 64, see the parser).  The
    # fold walks the steps in order and takes each one that matches the next required step:
    # greedy earliest matching, which finds an ordered subsequence whenever one exists.
    bits = " + ".join(f"bitShiftLeft(toUInt64({b.matcher(m)}), {j})" for j, m in enumerate(rb.required_steps))
    mask = b.field("req_bits", bits)
    count = len(rb.required_steps)
    found = b.derive("req_pos", f"arrayFold((acc, m, i) -> if(length(acc) < {count} AND bitTest(m, length(acc)), "
                                f"arrayPushBack(acc, i), acc), {mask}, arrayEnumerate({mask}), "
                                "CAST([], 'Array(UInt64)'))")
    return [finding(index["required_steps"], f"length({found}) < {count}",
                    observed=f"length({found})", ids=f"arrayMap(p -> a_id[p], {found})")]


def _budgets(rb: Runbook, b: Builder, index) -> list[str]:
    out = []
    for key, limit in rb.budgets:
        rule = f"budgets.{key}"
        if key == "max_duration_ms":
            out.append(_duration(b, index[rule], b.param(float(limit), "Float64")))
            continue
        if key == "max_steps":
            lim = b.param(int(limit), "UInt64")
            out.append(finding(index[rule], f"length(a_id) > {lim}", observed="length(a_id)",
                               ids=f"[a_id[{lim} + 1]]"))
            continue
        is_cost = key == "max_total_cost_usd"
        lim = b.param(float(limit) if is_cost else int(limit), "Float64" if is_cost else "UInt64")
        sums = b.derive(f"cum_{key}", f"arrayCumSum({b.field(key, _BUDGET_FIELD[key])})")
        crossing = b.derive(f"cross_{key}", f"arrayFirstIndex(x -> x > {lim}, {sums})", level=2)
        if key not in _DECLARED_FIELD:
            out.append(finding(index[rule], f"{crossing} > 0", observed=f"{sums}[-1]", ids=f"[a_id[{crossing}]]"))
            continue
        # The greater of the llm steps' sum and the root's declared total; the proof is the
        # step where the sum crossed the limit, else the root that declared too much.
        declared = b.field(f"declared_{key}", _DECLARED_FIELD[key])
        over = b.derive(f"over_{key}", f"arrayFirstIndex(x -> x > {lim}, {declared})", level=2)
        most = b.derive(f"declared_max_{key}", f"arrayMax({declared})")
        out.append(finding(index[rule], f"{crossing} > 0 OR {over} > 0", observed=f"greatest({sums}[-1], {most})",
                           ids=f"[a_id[if({crossing} > 0, {crossing}, {over})]]"))
    return out


def _duration(b: Builder, index: str, limit: str) -> str:
    start = b.field("start_ns", "toUnixTimestamp64Nano(start_time)")
    end = b.field("end_ns", "toUnixTimestamp64Nano(end_time)")
    root = b.derive("root_index", "arrayFirstIndex(x -> x, a_root)")
    duration = b.derive("duration_ms", f"if({root} > 0, greatest({end}[{root}] - {start}[{root}], 0), "
                                       f"greatest(arrayMax({end}) - arrayMin({start}), 0)) / 1e6", level=2)
    return finding(index, f"{duration} > {limit}", observed=duration, ids=f"if({root} > 0, [a_id[{root}]], [])")


def _step_rule(i: int, rule, b: Builder, index) -> list[str]:
    prefix, out = f"steps[{i}].", []
    m = b.matcher(rule.match)
    matched = b.field(f"s{i}", m)
    if rule.max_latency_ms is not None:
        lim = b.param(float(rule.max_latency_ms), "Float64")
        slow = b.field(f"s{i}_slow", f"{m} AND duration_ns / 1e6 > {lim}")
        dur = b.field("duration_ns", "duration_ns")
        out.append(finding(index[prefix + "max_latency_ms"], f"has({slow}, 1)",
                           observed=f"arrayMax(arrayFilter((d, s) -> s, {dur}, {slow})) / 1e6",
                           ids=ids_where(slow)))
    if rule.status is not None:
        bad = b.field(f"s{i}_status", f"if({m} AND status != {b.param(rule.status, 'String')}, toString(status), '')")
        out.append(_named_offenders(index[prefix + "status"], bad))
    count = f"arrayCount(x -> x, {matched})"
    if rule.max_count is not None:
        lim = b.param(int(rule.max_count), "UInt64")
        out.append(finding(index[prefix + "max_count"], f"{count} > {lim}", observed=count,
                           ids=f"arraySlice({ids_where(matched)}, {lim} + 1)"))
    if rule.min_count is not None:
        lim = b.param(int(rule.min_count), "UInt64")
        out.append(finding(index[prefix + "min_count"], f"{count} < {lim}", observed=count,
                           ids=ids_where(matched)))
    if rule.arguments:
        out += _arguments(prefix + "arguments.", i, rule.arguments, m, b, index)
    return out


def _arguments(prefix: str, i: int, rules, m: str, b: Builder, index) -> list[str]:
    out = []
    if rules.required:
        keys = b.param(list(rules.required), "Array(String)")
        missing = b.field(f"s{i}_missing", f"if({m}, arrayFilter(k -> NOT JSONHas(tool_arguments, k), {keys}), [])")
        out.append(finding(index[prefix + "required"], f"arrayExists(x -> notEmpty(x), {missing})",
                           strings=f"arraySort(arrayDistinct(arrayFlatten({missing})))",
                           ids=f"arrayFilter((i, x) -> notEmpty(x), a_id, {missing})"))
    if rules.url_allowlist:
        is_url = "JSONType(tool_arguments, 'url') = 'String'"
        url = "JSONExtractString(tool_arguments, 'url')"
        bad_expr = f"{m} AND {is_url} AND NOT {b.glob_any(url, rules.url_allowlist)}"
        bad = b.field(f"s{i}_url_bad", bad_expr)
        urls = b.field(f"s{i}_url", f"if({bad_expr}, {url}, '')")
        out.append(finding(index[prefix + "url_allowlist"], f"has({bad}, 1)",
                           strings=distinct_sorted(urls, bad), ids=ids_where(bad)))
    if rules.matches:
        failing = []
        for key, regex in rules.matches:
            k = b.param(key, "String")
            ok = (f"JSONType(tool_arguments, {k}) = 'String' AND "
                  f"match(JSONExtractString(tool_arguments, {k}), {b.param(regex.sql, 'String')})")
            failing.append(f"if({ok}, '', {k})")
        fails = b.field(f"s{i}_nomatch", f"if({m}, arrayFilter(x -> x != '', [{', '.join(failing)}]), [])")
        out.append(finding(index[prefix + "matches"], f"arrayExists(x -> notEmpty(x), {fails})",
                           strings=f"arraySort(arrayDistinct(arrayFlatten({fails})))",
                           ids=f"arrayFilter((i, x) -> notEmpty(x), a_id, {fails})"))
    return out


def _loops(rb: Runbook, b: Builder, index) -> list[str]:
    loops, out = rb.loops, []
    if loops.max_repeats is None and loops.max_retries_per_tool is None:
        return out
    # The run's tool calls in step order, and their positions 1..n (level 1 and 2).
    call = b.field("is_call", "tool_name != ''")
    ids = b.derive("call_ids", f"arrayFilter((i, c) -> c, a_id, {call})")
    idx = b.derive("call_idx", f"arrayEnumerate({ids})", level=2)
    if loops.max_repeats is not None:
        # Equal tool name and byte-equal arguments, compared by a 64-bit hash of both.
        call_hash = b.field("call_hash", "if(tool_name != '', cityHash64(tool_name, tool_arguments), 0)")
        same = b.derive("call_hash_seq", f"arrayFilter((h, c) -> c, {call_hash}, {call})")
        starts = b.derive("streak_start", f"arrayFill(x -> x > 0, arrayMap(i -> if(i > 1 AND {same}[i] = "
                                          f"{same}[greatest(i - 1, 1)], 0, i), {idx}))", level=3)
        streak = b.derive("streak", f"arrayMap((f, i) -> i - f + 1, {starts}, {idx})", level=4)
        lim = b.param(int(loops.max_repeats), "UInt64")
        out.append(finding(index["loops.max_repeats"], f"arrayExists(k -> k > {lim}, {streak})",
                           observed=f"arrayMax({streak})", ids=f"arrayFilter((i, k) -> k > {lim}, {ids}, {streak})"))
    if loops.max_retries_per_tool is not None:
        tool_hash = b.field("tool_hash", "if(tool_name != '', cityHash64(tool_name), 0)")
        tools = b.derive("call_tools", f"arrayFilter((t, c) -> c, {tool_hash}, {call})")
        is_error = b.field("is_error", "status = 'error'")
        errors = b.derive("call_errors", f"arrayFilter((e, c) -> c, {is_error}, {call})")
        # A retry: a call of the same tool right after that tool's failed call.
        retry = b.derive("retry", f"arrayMap(i -> i > 1 AND {tools}[i] = {tools}[greatest(i - 1, 1)] "
                                  f"AND {errors}[greatest(i - 1, 1)], {idx})", level=3)
        counts = b.derive("retry_count", f"arrayMap(i -> if({retry}[i], arrayCount((r, t, j) -> r AND j <= i "
                                         f"AND t = {tools}[i], {retry}, {tools}, {idx}), 0), {idx})", level=4)
        lim = b.param(int(loops.max_retries_per_tool), "UInt64")
        out.append(finding(index["loops.max_retries_per_tool"], f"arrayExists(k -> k > {lim}, {counts})",
                           observed=f"arrayMax({counts})", ids=f"arrayFilter((i, k) -> k > {lim}, {ids}, {counts})"))
    return out


# A step's failure category and whether it failed, as reference.failure_category.
_CATEGORY = "if(failure_category != '', toString(failure_category), if(status = 'error', 'unknown', ''))"


def _failures(rb: Runbook, b: Builder, index) -> list[str]:
    out = []
    if rb.forbid_failure_categories:
        listed = b.param(list(rb.forbid_failure_categories), "Array(String)")
        bad = b.field("forbidden", f"if(has({listed}, {_CATEGORY}), {_CATEGORY}, '')")
        out.append(_named_offenders(index["forbid_failure_categories"], bad))
    if rb.max_retries is not None:
        family = b.field("family", "multiIf(kind = 'tool', 1, kind IN ('llm', 'embedding'), 2, 0)")
        target = b.field("target", "cityHash64(if(kind = 'tool', if(tool_name != '', tool_name, name), "
                                   "if(model != '', toString(model), name)))")
        failed = b.field("failed", f"{_CATEGORY} != ''")
        found = []
        for number in (1, 2):
            # Positions (in step order) of this family's calls, then those right after a failed
            # call of the same target: reference.retries, one family at a time.
            pos = b.derive(f"family{number}_pos", f"arrayFilter((i, f) -> f = {number}, arrayEnumerate(a_id), {family})")
            found.append(b.derive(f"family{number}_retries",
                                  f"arrayFilter((p, k) -> k > 1 AND {target}[p] = {target}[{pos}[greatest(k - 1, 1)]] "
                                  f"AND {failed}[{pos}[greatest(k - 1, 1)]], {pos}, arrayEnumerate({pos}))", level=2))
        retried = b.derive("retry_pos", f"arraySort(arrayConcat({found[0]}, {found[1]}))", level=3)
        lim = b.param(int(rb.max_retries), "UInt64")
        out.append(finding(index["max_retries"], f"length({retried}) > {lim}", observed=f"length({retried})",
                           ids=f"arrayMap(p -> a_id[p], arraySlice({retried}, {lim} + 1))"))
    return out
