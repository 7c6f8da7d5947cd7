"""Every command in README.md and docs/*.md runs here, or is checked, so the docs cannot drift.

Each fenced ```bash block of README.md and of every page under docs/ (new pages are picked up
on their own) is split into commands: lines joined at a trailing backslash, `#` comments and
blank lines dropped. A command is then, by its first word:

* ``curl``: run by bash against a real server this module starts (``localhost:8000``, ``:4317``
  and ``:4318`` become its ports). The server is seeded as docs/api.md's intro says: keys
  ``dev-key-123`` (ingest+read, projects demo and shop) and ``admin-key-456`` (admin), two runs
  of project shop sent by the OpenTelemetry SDK's OTLP/HTTP exporter (the first with a failing
  tool), and the event batch of docs/api.md's ``events.json`` block for project demo. README.md
  runs against a second server, the same data and no keys, as after the quickstart.
  When the next block (blank lines between only) is ```json, the answer must have its shape:
  the same keys at every level, lists of the same length, the same values except ids, times,
  durations and cursors. Ids and cursors seen in a shown answer are replaced by the real ones in
  later commands of the page. A trailing ``# {...}`` comment is an answer too; a plain ```
  answer block must name metrics (first words) that the real output also names. A command that
  streams bounds itself with ``--max-time N``; curl's exit for that limit (28) passes.
* ``agenttrail``: the CLI, run for real; ``https://agenttrail.internal`` is the server and
  ``$AGENTTRAIL_API_KEY`` a key. Exit 0 or 1 (the runs' verdicts) pass; 2 (a usage error) fails.
  ``agenttrail serve`` runs until stopped, so its flags are checked against ``serve --help``
  (tests/test_settings_cli.py starts it).
* ``export OTEL_...``: the block's variables configure a real OpenTelemetry SDK exporter in a
  child process, whose span must reach the server (``YOUR_KEY`` becomes the admin key).
* ``.venv/bin/python bench/...``: every ``--flag`` must be one the script's ``--help`` lists
  (tests/test_bench_scripts.py runs the scripts themselves at small sizes). The same holds for
  bench commands quoted inline in tables and prose (`` `query_bench.py --runs 1000` ``).
* ``python3 -m venv ...``: the quickstart's install commands, checked for form: ``.ci/run`` runs
  command 2 as written, and command 1's ``agenttrail serve`` exists (tests/test_settings_cli.py
  starts it).

Conventions for page authors, as HTML comments on the line before a block (they do not render):

* ``<!-- docs-test: skip REASON -->``: the block cannot run here (Docker, a cluster); the reason
  is required. A skipped block must still parse as bash.
* ``<!-- docs-test: file NAME -->``: the block is the file NAME, written into the directory the
  page's commands run in (``-d @events.json``, ``--runbook support.yaml``).

Any other command fails the test (the rules live in tests/docs_runner.py, the page reading in
tests/docs_pages.py). A page whose examples need more data than the shared seed adds a function
to ``SEEDS`` under its path; it runs once, before the page's commands, and its data stays for
the pages after it (sorted by path), so a project of its own keeps the other pages' answers
unchanged. A page whose examples send no key joins ``OPEN_PAGES``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from docs_pages import Block, commands, compare, outside_blocks, parse_blocks, split_comment
from docs_runner import Page
from otel_helpers import record_support_run

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md"] + sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
KEYS = [{"key": "dev-key-123", "scopes": ["ingest", "read"], "projects": ["demo", "shop"]},
        {"key": "admin-key-456", "scopes": ["admin"], "projects": ["*"]}]
OPEN_PAGES = {"README.md", "docs/failures.md"}  # served with no keys, as the quickstart's server is


def seed_api_examples(service) -> None:
    """docs/api.md's data: two OTLP runs of shop (the first with a failing tool), seed 000's events."""
    exporter = OTLPSpanExporter(endpoint=service.http_endpoint + "/v1/traces",
                                headers={"x-api-key": "dev-key-123", "x-agenttrail-project": "shop"})
    for fail in (True, False):
        spans, _ = record_support_run(fail_tool=fail)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    events = next(b.text for b in parse_blocks((ROOT / "docs/api.md").read_text())
                  if b.marker == ("file", "events.json"))
    answer = httpx.post(service.api_url + "/v1/events", content=events, timeout=30,
                        headers={"x-api-key": "dev-key-123", "content-type": "application/json"})
    assert answer.status_code == 200 and answer.json()["failed"] == 0, answer.text


def seed_support_cohorts(service) -> None:
    """docs/api.md's cross-run examples: 80 runs of project support, versions 1.4.0 and 1.5.0.

    Built with the OpenTelemetry SDK at fixed times and durations, so figures that depend on
    durations (the Mann-Whitney U) are the same on every run; decisions and quality signals are
    the events the agenttrail SDK sends.  1.5.0 more often sends a refund with a bad schema,
    retried once.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": "support-svc"}))
    exporter = OTLPSpanExporter(endpoint=service.http_endpoint + "/v1/traces",
                                headers={"x-api-key": "admin-key-456", "x-agenttrail-project": "support"})
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("docs.support-agent")
    ms = 1_000_000
    base = time.time_ns() - 3 * 3600 * 1000 * ms
    for i in range(40):
        for version, failing, slow in (("1.4.0", i % 7 == 0, 3), ("1.5.0", i % 2 == 0, 4)):
            start = base + (i * 2 + (version == "1.5.0")) * 60_000 * ms
            end = start + (200 + slow * i) * ms
            root = tracer.start_span("invoke_agent support-agent", start_time=start, attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-agent",
                "gen_ai.agent.version": version, "gen_ai.conversation.id": f"conv-{i}"})
            context = trace.set_span_in_context(root)
            at = start + 10 * ms
            tracer.start_span("chat gpt-4o-mini", context=context, start_time=at, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 300 + i + 4 * failing,
                "gen_ai.usage.output_tokens": 60 + (i % 5)}).end(end_time=at + 80 * ms)
            at += 90 * ms
            tracer.start_span("execute_tool orders_api", context=context, start_time=at, attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "orders_api",
                "gen_ai.tool.call.arguments": json.dumps({"order_id": f"A-{i}"})}).end(end_time=at + 30 * ms)
            for attempt in range(2 if failing else 0):
                at += 40 * ms
                refund = tracer.start_span("execute_tool payments_api", context=context, start_time=at, attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "payments_api",
                    "gen_ai.tool.call.arguments": json.dumps({"order_id": f"A-{i}", "amount": 20 + attempt}),
                    "error.type": "ValidationError"})
                refund.set_status(Status(StatusCode.ERROR, "Missing required field: 'customer_id'"))
                refund.end(end_time=at + 20 * ms)
            root.add_event("agenttrail.decision", {
                "agenttrail.decision.type": "tool_selection", "agenttrail.decision.selected": "api" if i % 3 else "cache",
                "agenttrail.decision.reason_code": "fresh_data_required" if i % 3 else "latency_budget",
                "agenttrail.decision.confidence": 0.5 + (i % 5) / 10}, timestamp=start + 5 * ms)
            root.add_event("agenttrail.quality_signal", {
                "agenttrail.quality.type": "schema_valid", "agenttrail.quality.code": "full_match",
                "agenttrail.quality.value": not failing or i % 6 == 0}, timestamp=end - ms)
            if failing:  # as the SDK's record_failure("tool", "tool_schema_mismatch", ...) marks it
                root.add_event("agenttrail.failure", {
                    "agenttrail.failure.type": "tool", "agenttrail.failure.code": "tool_schema_mismatch",
                    "agenttrail.failure.message": "refund rejected twice"}, timestamp=end - ms)
                root.set_attribute("agenttrail.failure.type", "tool")
                root.set_attribute("error.type", "tool_schema_mismatch")
                root.set_status(Status(StatusCode.ERROR, "refund rejected twice"))
            root.end(end_time=end)
    provider.shutdown()
    assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS


def seed_failure_examples(service) -> None:
    """docs/failures.md's data: seed 002's two workflow documents, as written (2024-01-15), for
    project support; the page's windows name that day, so its answers never move."""
    for name in ("seed002_workflow1.json", "seed002_workflow2.json"):
        answer = httpx.post(service.api_url + "/v1/agent-runs?project_id=support", timeout=30,
                            content=(ROOT / "tests/seed_docs" / name).read_bytes(),
                            headers={"content-type": "application/json"})
        assert answer.status_code == 201, answer.text


SEEDS = {"docs/api.md": seed_support_cohorts,  # page path -> function(service), run before its commands
         "docs/failures.md": seed_failure_examples}


@pytest.fixture(scope="module")
def servers(storage_dsn):
    """One server with keys and one open server, both seeded with docs/api.md's data."""
    from agenttrail.service.app import Service
    from agenttrail.service.settings import Settings

    started = {}
    for name, keys in (("keys", tuple(KEYS)), ("open", ())):
        database = f"t{os.getpid()}_docs_{name}"
        settings = Settings(host="127.0.0.1", grpc_port=0, http_port=0, api_port=0, storage=storage_dsn,
                            database=database, ingest_workers=0, api_keys=keys).validate()
        started[name] = Service(settings).start()
        seed_api_examples(started[name])
    yield started
    for service in started.values():
        database = service.settings.database
        service.stop()
        service.store.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.parametrize("path", PAGES)
def test_every_command_of_the_page_runs(path, servers, tmp_path):
    service = servers["open" if path in OPEN_PAGES else "keys"]
    if path in SEEDS:
        SEEDS[path](service)
    page = Page(path, service, tmp_path)
    blocks = parse_blocks((ROOT / path).read_text())
    for block in blocks:
        if block.marker and block.marker[0] == "file":
            (tmp_path / block.marker[1]).write_text(block.text)
    for block in blocks:
        if block.lang == "bash":
            page.run_block(block)
    inline = Block("bash", 0, "", None)  # bench commands quoted in tables and prose
    for command in re.findall(r"`([^`\n]*_bench\.py --[^`\n]*)`", outside_blocks((ROOT / path).read_text())):
        page.check_bench(inline, command)
    assert not page.problems, "\n".join(page.problems)


# --- the checker itself ----------------------------------------------------------------------------

SAMPLE = """\
Intro.

```bash
curl -s localhost:8000/v1/x   # {"a": 1}
```

<!-- docs-test: file body.json -->
```json
{"k": 1}
```

```bash
curl -s localhost:8000/v1/runs \\
  -H 'x: y'  # comment
```

```json
{"runs": []}
```

<!-- docs-test: skip needs Docker -->
```bash
docker compose up -d
```
"""


def test_blocks_answers_and_markers_are_found():
    blocks = parse_blocks(SAMPLE)
    assert [(b.lang, b.line) for b in blocks] == [("bash", 3), ("json", 8), ("bash", 12), ("json", 17), ("bash", 22)]
    assert blocks[0].answer is None and blocks[1].marker == ("file", "body.json")
    assert blocks[2].answer is blocks[3] and blocks[4].marker == ("skip", "needs Docker")
    assert commands(blocks[0]) == [("curl -s localhost:8000/v1/x", '{"a": 1}')]
    assert commands(blocks[2]) == [("curl -s localhost:8000/v1/runs -H 'x: y'", "comment")]
    assert split_comment("grep -v '^#' | grep -v ' 0.0$'  # after") == ("grep -v '^#' | grep -v ' 0.0$'", "after")


def test_shape_comparison_ignores_ids_times_and_timings_only():
    shown = {"run_id": "e3827f7c5b381992a842ec9b1b02a62f", "started_at": "2026-11-23T19:26:59.142051Z",
             "duration_ms": 0.36, "steps": [{"status": "ok", "tokens": 5}], "next_cursor": "eyJz"}
    same = {"run_id": "0" * 32, "started_at": "2027-01-01T00:00:00Z", "duration_ms": 12.5,
            "steps": [{"status": "ok", "tokens": 5}], "next_cursor": "eyJy"}
    ids, problems = {}, []
    compare(shown, same, "", ids, problems)
    assert problems == [] and ids == {"e3827f7c5b381992a842ec9b1b02a62f": "0" * 32, "eyJz": "eyJy"}
    changed = dict(same, steps=[{"status": "error", "tokens": 6}], extra=1)
    compare(shown, changed, "", {}, problems)
    assert any("not shown ['extra']" in p for p in problems)
    assert any(".steps[0].status" in p for p in problems) and any(".steps[0].tokens" in p for p in problems)
    problems.clear()
    compare({"runs": [1, 2]}, {"runs": [1]}, "", {}, problems)
    assert problems == [".runs: expected a list of 2, got [1]"]


BROKEN = """\
```bash
curl -s "http://localhost:8000/health"
```

```json
{"status": "ok", "storage": "ok", "version": 2}
```

```bash
curl -s -H 'x-api-key: dev-key-123' "http://localhost:8000/v1/runs?project_id=shop&limit=1"
rm -rf ./somewhere
agenttrail serve --no-such-flag
.venv/bin/python bench/query_bench.py --runs 10 --no-such-flag
agenttrail validate --runbook absent.yaml --run 0123456789abcdef0123456789abcdef --server http://localhost:8000
```

<!-- docs-test: skip -->
```bash
docker compose up -d
```

Inline: `query_bench.py --rows 5`.
"""


def test_a_page_that_drifted_fails_on_each_drift(servers, tmp_path):
    page = Page("drifted.md", servers["keys"], tmp_path)
    for block in parse_blocks(BROKEN):
        if block.lang == "bash":
            page.run_block(block)
    page.check_bench(Block("bash", 0, "", None), "query_bench.py --rows 5")
    found = "\n".join(page.problems)
    assert "keys differ: missing ['version']" in found
    assert "rm -rf ./somewhere\n    no rule runs this command" in found
    assert "serve --help does not list ['--no-such-flag']" in found
    assert "bench/query_bench.py --help does not list ['--no-such-flag']" in found
    assert "cannot read runbook" in found
    assert "a skipped block must say why" in found
    assert "does not list ['--rows']" in found
    assert len(page.problems) == 7, found
    assert not (tmp_path / "somewhere").exists()
