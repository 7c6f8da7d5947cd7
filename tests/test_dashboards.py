"""Every query of every dashboard in deploy/grafana/dashboards runs on real, ingested data.

Runs are written through the store's writer and validated by the real validator; each panel's
SQL is expanded the way Grafana and the ClickHouse plugin expand it (test_dashboards_expand)
and must return rows.  Dashboards use unqualified table names: the provisioned datasource's
``defaultDatabase`` is the connection database, as the ``store`` fixture's test database is.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agenttrail.storage.model import StepBatch
from agenttrail.validator.parser import parse_runbook
from agenttrail.validator.service import validate_run
from test_dashboards_expand import ALL, expand

DASHBOARDS = sorted((Path(__file__).parent.parent / "deploy" / "grafana" / "dashboards").glob("*.json"))
_SECOND = 1_000_000_000

# -- data --------------------------------------------------------------------------------------

BASE = datetime.now(timezone.utc).replace(microsecond=0)
BASE_NS = int(BASE.timestamp()) * _SECOND


def _step(batch: StepBatch, project, run, step, parent, name, kind, offset_s, dur_ms, **extra):
    start = BASE_NS - 3600 * _SECOND + offset_s * _SECOND
    batch.append(project_id=project, run_id=run, step_id=step, parent_step_id=parent, name=name,
                 kind=kind, start_time=start, end_time=start + dur_ms * 1_000_000,
                 duration_ns=dur_ms * 1_000_000, service_name="support-bot",
                 resource_attributes={"service.name": "support-bot"}, **extra)


def _llm(model, inp, out, cost):
    return dict(model=model, provider="openai" if model.startswith("gpt") else "anthropic",
                input_tokens=inp, output_tokens=out, total_tokens=inp + out, cost_usd=cost,
                cost_source="price_table", status="ok", operation="chat",
                attributes={"gen_ai.request.model": model})


def ingest(store) -> dict:
    """Four realistic runs in three projects: ok, failed on a tool, another agent, in progress."""
    b = StepBatch()
    # support / triage-agent: ok run with two LLM calls and a tool
    _step(b, "support", "run-ok", "s1", "", "invoke_agent triage", "agent", 0, 9000,
          agent_name="triage-agent", status="ok", operation="invoke_agent")
    _step(b, "support", "run-ok", "s2", "s1", "chat gpt-4o", "llm", 1, 1200, **_llm("gpt-4o", 800, 120, 0.0032))
    _step(b, "support", "run-ok", "s3", "s1", "execute_tool kb.search", "tool", 3, 400,
          tool_name="kb.search", status="ok", tool_arguments='{"q": "refund"}')
    _step(b, "support", "run-ok", "s4", "s1", "chat gpt-4o", "llm", 4, 2000, **_llm("gpt-4o", 1500, 300, 0.0068))
    # support / triage-agent: the tool fails and the run fails
    _step(b, "support", "run-fail", "f1", "", "invoke_agent triage", "agent", 600, 5000,
          agent_name="triage-agent", status="error", status_message="tool http.get failed")
    _step(b, "support", "run-fail", "f2", "f1", "chat gpt-4o-mini", "llm", 601, 700,
          **_llm("gpt-4o-mini", 400, 50, 0.0001))
    _step(b, "support", "run-fail", "f3", "f1", "execute_tool http.get", "tool", 602, 3000,
          tool_name="http.get", status="error", error_type="TimeoutError", status_message="timed out")
    # billing / invoice-agent, a project name with a quote in it (escaping must hold)
    _step(b, "o'billing", "run-bill", "b1", "", "invoice run", "agent", 1200, 4000,
          agent_name="invoice-agent", status="ok")
    _step(b, "o'billing", "run-bill", "b2", "b1", "chat claude-sonnet", "llm", 1201, 2500,
          **_llm("claude-3-5-sonnet", 2000, 400, 0.012))
    # lab: no root span yet
    _step(b, "lab", "run-open", "o2", "o1", "chat gpt-4o", "llm", 1800, 900, **_llm("gpt-4o", 100, 20, 0.0004))
    store.writer.write(b, timeout=60)
    # verdicts through the real validator: run-ok passes, run-fail calls a tool outside the
    # list, run-bill passes, run-open has no root yet (incomplete)
    runbook = parse_runbook("allowed_tools: [kb.search]\n")
    verdicts = {run: validate_run(store, run, runbook, project=project)["status"]
                for project, run in (("support", "run-ok"), ("support", "run-fail"),
                                     ("o'billing", "run-bill"), ("lab", "run-open"))}
    assert verdicts == {"run-ok": "passed", "run-fail": "failed", "run-bill": "passed",
                        "run-open": "incomplete"}
    return {"runs": 4, "projects": ["lab", "o'billing", "support"]}


# -- the tests ---------------------------------------------------------------------------------

def _dashboards():
    return [(p.name, json.loads(p.read_text())) for p in DASHBOARDS]


def _panels(dash):
    for panel in dash["panels"]:
        yield from panel.get("panels", [])  # collapsed rows
        if panel.get("targets"):
            yield panel


def _resolve_variables(store, dash, chosen, start, end):
    """Run each variable query in order (later ones may use earlier ones) → (values, options)."""
    values, options = {}, {}
    for var in dash["templating"]["list"]:
        name = var["name"]
        sql = expand(var["query"]["rawSql"], values, options, start, end)
        options[name] = [str(r[0]) for r in store.query(sql).result_rows]
        if name in chosen:
            values[name] = chosen[name]
        elif var.get("includeAll"):
            values[name] = [ALL]
        else:  # Grafana selects the first option
            values[name] = options[name][:1] or [""]
    return values, options




def _range():
    """The dashboard's time range: the ingested steps (from BASE - 1 h) up to after the verdicts
    (stored at the current time, which a long test session moves past BASE)."""
    start = datetime.fromtimestamp(BASE.timestamp() - 6 * 3600, timezone.utc)
    end = datetime.fromtimestamp(time.time() + 600, timezone.utc)
    return start, end


PLUGIN_FORMATS = {"timeseries": 0, "table": 1, "traces": 3}  # the plugin's Format enum


def test_panel_query_types_and_formats_agree():
    for name, dash in _dashboards():
        for panel in _panels(dash):
            for target in panel["targets"]:
                assert target["editorType"] == "sql"
                assert PLUGIN_FORMATS[target["queryType"]] == target["format"], f"{name}: {panel['title']}"
                if panel["type"] == "traces":
                    assert target["queryType"] == "traces"


def test_dashboards_exist_and_are_valid_json():
    names = [p.name for p in DASHBOARDS]
    assert "agenttrail-overview.json" in names and "agenttrail-run.json" in names
    for name, dash in _dashboards():
        uids = [p["id"] for p in dash["panels"]]
        assert len(uids) == len(set(uids)), f"{name}: duplicate panel ids"
        assert dash["uid"] and dash["title"]


@pytest.mark.parametrize("name", [p.name for p in DASHBOARDS])
def test_every_panel_query_runs_and_returns_rows(store, name):
    dash = dict(_dashboards())[name]
    facts = ingest(store)
    start, end = _range()
    chosen = {"run_id": ["run-fail"]} if "run_id" in {v["name"] for v in dash["templating"]["list"]} else {}
    values, options = _resolve_variables(store, dash, chosen, start, end)
    if "project" in options:
        assert sorted(options["project"]) == facts["projects"]
    ran = 0
    for panel in _panels(dash):
        for target in panel["targets"]:
            sql = expand(target["rawSql"], values, options, start, end)
            result = store.query(sql)
            assert result.result_rows, f"{name} / {panel['title']}: no rows for\n{sql}"
            if target["queryType"] == "timeseries":  # the plugin needs a time column to plot
                assert result.column_names[0] == "time", panel["title"]
                times = [r[0] for r in result.result_rows]
                assert times == sorted(times), f"{panel['title']}: time not ascending"
            ran += 1
    assert ran >= 4


def _overview_query(title):
    dash = dict(_dashboards())["agenttrail-overview.json"]
    return next(p for p in _panels(dash) if p["title"] == title)["targets"][0]["rawSql"]


def _run(store, title, project=(ALL,), agent=(ALL,)):
    start, end = _range()
    options = {"project": ["lab", "o'billing", "support"],
               "agent": ["invoice-agent", "triage-agent"]}
    sql = expand(_overview_query(title), {"project": list(project), "agent": list(agent)},
                 options, start, end)
    return store.query(sql).result_rows


def test_overview_numbers_match_the_ingested_runs(store):
    ingest(store)
    assert _run(store, "Runs") == [(4,)]
    assert _run(store, "Failed runs") == [(1,)]
    # 2 finished ok of 3 finished runs; the in-progress run is left out
    assert _run(store, "Success rate")[0][0] == pytest.approx(2 / 3)
    cost = _run(store, "Cost")[0][0]
    assert cost == pytest.approx(0.0032 + 0.0068 + 0.0001 + 0.012 + 0.0004)
    # latest verdict per (run, runbook): 2 passed of 3 decided; "incomplete" is left out
    assert _run(store, "Validation pass rate")[0][0] == pytest.approx(2 / 3)
    assert _run(store, "Validation pass rate", project=["support"])[0][0] == pytest.approx(1 / 2)
    assert _run(store, "Validation pass rate", agent=["invoice-agent"])[0][0] == pytest.approx(1.0)
    tools = _run(store, "Top failing tools")
    assert [(t[0], t[1], t[2], t[4]) for t in tools] == [("http.get", 1, 1, "TimeoutError")]


def test_variables_filter_projects_and_agents(store):
    ingest(store)
    assert _run(store, "Runs", project=["support"]) == [(2,)]
    assert _run(store, "Runs", project=["support", "lab"]) == [(3,)]
    assert _run(store, "Runs", project=["o'billing"]) == [(1,)]  # the quote is escaped, not cut
    assert _run(store, "Runs", agent=["invoice-agent"]) == [(1,)]
    by_model = _run(store, "Tokens by model", agent=["invoice-agent"])
    assert {r[1] for r in by_model} == {"claude-3-5-sonnet"}


@pytest.mark.parametrize("hostile", [
    "x') OR 1=1 --", "x\\' OR 1=1 --", "x\\", "'; DROP TABLE steps; --", "%27) OR 1=1 --",
    "a" * 10_000, "ünï'cødé", "{support}",
])
def test_hostile_variable_values_stay_literals(store, hostile):
    ingest(store)
    assert _run(store, "Runs", project=[hostile]) == [(0,)]
    assert _run(store, "Runs", agent=[hostile]) == [(0,)]
    assert store.query("SELECT count() FROM steps").result_rows == [(10,)]


def test_run_dashboard_trace_has_the_trace_view_columns(store):
    ingest(store)
    dash = dict(_dashboards())["agenttrail-run.json"]
    start, end = _range()
    values, options = _resolve_variables(store, dash, {"run_id": ["run-ok"]}, start, end)
    trace = next(p for p in dash["panels"] if p["type"] == "traces")
    assert trace["targets"][0]["queryType"] == "traces"
    result = store.query(expand(trace["targets"][0]["rawSql"], values, options, start, end))
    cols = result.column_names
    for needed in ("traceID", "spanID", "parentSpanID", "serviceName", "operationName",
                   "startTime", "duration", "tags", "serviceTags"):
        assert needed in cols
    rows = [dict(zip(cols, r)) for r in result.result_rows]
    assert {r["spanID"] for r in rows} == {"s1", "s2", "s3", "s4"}
    root = next(r for r in rows if r["spanID"] == "s1")
    assert root["parentSpanID"] == "" and root["duration"] == pytest.approx(9000)
    assert root["startTime"] == pytest.approx((BASE_NS - 3600 * _SECOND) / 1e6)


