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
  answer block must name metrics (first words) that the real output also names.
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

Any other command fails the test. A page whose examples need more data than the shared seed
adds a function to ``SEEDS`` under its path; it runs once, before the page's commands.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md"] + sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
KEYS = [{"key": "dev-key-123", "scopes": ["ingest", "read"], "projects": ["demo", "shop"]},
        {"key": "admin-key-456", "scopes": ["admin"], "projects": ["*"]}]
OPEN_PAGES = {"README.md"}  # served with no keys, as the quickstart's server is
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|file)\s*(.*?)\s*-->")
HEX_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")
TIMING_KEY = re.compile(r"(?:_ms|duration|latency|_seconds)$")


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    marker: tuple[str, str] | None  # ("skip", reason) or ("file", name)
    answer: "Block | None" = None


def parse_blocks(text: str) -> list[Block]:
    """The page's fenced blocks, each bash block with the block right after it as its answer."""
    lines = text.splitlines()
    blocks: list[Block] = []
    gap_only = False  # only blank lines since the last block closed
    i = 0
    while i < len(lines):
        fence = re.match(r"^(`{3,})\s*([\w+-]*)", lines[i])
        if not fence:
            gap_only = gap_only and not lines[i].strip()
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence.group(1)):
            body.append(lines[i])
            i += 1
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        found = MARKER.search(previous)
        block = Block(fence.group(2).lower(), start + 1, "\n".join(body) + "\n",
                      (found.group(1), found.group(2)) if found else None)
        if gap_only and blocks and blocks[-1].lang == "bash" and block.lang in ("json", ""):
            blocks[-1].answer = block
        blocks.append(block)
        gap_only = True
        i += 1
    return blocks


def outside_blocks(text: str) -> str:
    """The page's text without its fenced blocks."""
    return re.sub(r"^(`{3,}).*?^\1", "", text, flags=re.M | re.S)


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): a ``#`` outside quotes at the start or after a space starts a comment."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip(), line[k + 1:].strip()
    return line.rstrip(), ""


def commands(block: Block) -> list[tuple[str, str]]:
    """(command, trailing comment) for each command of a bash block."""
    out, pending = [], ""
    for raw in block.text.splitlines():
        command, comment = split_comment(raw.strip())
        if command.endswith("\\"):
            pending += command[:-1].rstrip() + " "
            continue
        command = (pending + command).strip()
        pending = ""
        if command:
            out.append((command, comment))
    return out


# --- comparing an answer with the one the docs show --------------------------------------------

def compare(shown, got, path: str, ids: dict[str, str], problems: list[str], key: str = "") -> None:
    """Record in ``problems`` where ``got`` differs in shape from ``shown``; learn ids into ``ids``."""
    where = path or "answer"
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            problems.append(f"{where}: expected an object, got {type(got).__name__}")
            return
        if set(shown) != set(got):
            problems.append(f"{where}: keys differ: missing {sorted(set(shown) - set(got))}, "
                            f"not shown {sorted(set(got) - set(shown))}")
        for k in shown.keys() & got.keys():
            compare(shown[k], got[k], f"{path}.{k}", ids, problems, k)
    elif isinstance(shown, list):
        if not isinstance(got, list) or len(got) != len(shown):
            problems.append(f"{where}: expected a list of {len(shown)}, got {_short(got)}")
            return
        for n, (a, b) in enumerate(zip(shown, got)):
            compare(a, b, f"{path}[{n}]", ids, problems, key)
    elif isinstance(shown, str) and (HEX_ID.match(shown) or ISO_TIME.match(shown) or "cursor" in key):
        if not isinstance(got, str):
            problems.append(f"{where}: expected a string, got {_short(got)}")
        elif not ISO_TIME.match(shown):
            ids.setdefault(shown, got)  # the first answer that shows an id decides what it stands for
    elif isinstance(shown, bool) or shown is None or isinstance(shown, str):
        if got != shown:
            problems.append(f"{where}: expected {_short(shown)}, got {_short(got)}")
    elif isinstance(shown, (int, float)):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            problems.append(f"{where}: expected a number, got {_short(got)}")
        elif not TIMING_KEY.search(key) and not math.isclose(shown, got, rel_tol=1e-9):
            problems.append(f"{where}: expected {shown}, got {got}")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) < 120 else text[:117] + "..."


# --- servers and their data ----------------------------------------------------------------------

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


SEEDS = {}  # page path -> function(service), run before that page's commands


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


# --- running one page ----------------------------------------------------------------------------

class Page:
    """The state of one page's run: its server, its directory, the ids its answers taught."""

    def __init__(self, path: str, service, workdir: Path):
        self.path, self.service, self.workdir = path, service, workdir
        self.ids: dict[str, str] = {}
        self.problems: list[str] = []
        api = service.api_url
        self.hosts = {"http://localhost:8000": api, "localhost:8000": api.removeprefix("http://"),
                      "https://agenttrail.internal": api,
                      "http://localhost:4318": service.http_endpoint, "localhost:4318": service.http_endpoint.removeprefix("http://"),
                      "http://localhost:4317": "http://" + service.grpc_endpoint, "localhost:4317": service.grpc_endpoint}
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTTRAIL_"))},
                    "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "AGENTTRAIL_API_KEY": "dev-key-123"}

    def localize(self, command: str) -> str:
        command = command.removeprefix(".venv/bin/")  # the test's own environment is on PATH
        for shown, real in sorted(self.hosts.items(), key=lambda kv: -len(kv[0])):
            command = command.replace(shown, real)
        for shown, real in self.ids.items():
            command = command.replace(shown, real)
        return command

    def fail(self, block: Block, command: str, why: str) -> None:
        self.problems.append(f"{self.path}:{block.line}: {command[:100]}\n    {why}")

    def shell(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def run_block(self, block: Block) -> None:
        if block.marker and block.marker[0] == "skip":
            if not block.marker[1]:
                self.fail(block, "", "a skipped block must say why")
            checked = self.shell("bash -n <<'EOF'\n" + block.text + "EOF\n")
            if checked.returncode:
                self.fail(block, block.text, "does not parse as bash: " + checked.stderr)
            return
        listed = commands(block)
        if listed and listed[0][0].startswith("export "):
            return self.run_exports(block, listed)
        for n, (command, comment) in enumerate(listed):
            answer = block.answer if n == len(listed) - 1 else None
            first = command.split()[0].removeprefix(".venv/bin/")
            try:
                if first == "curl":
                    self.run_curl(block, command, comment, answer)
                elif first == "agenttrail" and command.split()[1:2] == ["serve"]:
                    self.check_serve(block, command)
                elif first == "agenttrail":
                    self.run_cli(block, command)
                elif re.match(r"^(\.venv/bin/)?python3? bench/", command):
                    self.check_bench(block, command)
                elif command.startswith("python3 -m venv "):
                    self.check_install(block, command)
                else:
                    self.fail(block, command, "no rule runs this command: add one to tests/test_docs_commands.py "
                                              "or mark the block <!-- docs-test: skip REASON -->")
            except subprocess.TimeoutExpired as exc:
                self.fail(block, command, f"still running after {exc.timeout:.0f} s")

    def run_curl(self, block: Block, command: str, comment: str, answer: Block | None) -> None:
        done = self.shell(self.localize(command))
        if done.returncode:
            return self.fail(block, command, f"exit {done.returncode}: {done.stderr[-300:]}")
        shown = answer.text if answer else (comment if comment.startswith("{") else None)
        if shown is None:
            if not done.stdout.strip():
                self.fail(block, command, "no output")
            return
        if answer is not None and answer.lang == "":
            wanted = {line.split()[0].split("{")[0] for line in shown.splitlines() if line.strip()}
            got = {line.split()[0].split("{")[0] for line in done.stdout.splitlines() if line.strip()}
            if wanted - got:
                self.fail(block, command, f"output lacks {sorted(wanted - got)}:\n{done.stdout[:500]}")
            return
        try:
            got = json.loads(done.stdout)
        except ValueError:
            return self.fail(block, command, f"answer is not JSON: {done.stdout[:300]!r}")
        problems: list[str] = []
        compare(json.loads(shown), got, "", self.ids, problems)
        if problems:
            self.fail(block, command, "\n    ".join(problems[:8]))

    def run_cli(self, block: Block, command: str) -> None:
        done = self.shell(self.localize(command), timeout=120)
        if done.returncode not in (0, 1):
            return self.fail(block, command, f"exit {done.returncode}: {(done.stderr or done.stdout)[-500:]}")
        for option in ("--junit", "--json"):
            written = re.search(option + r" (\S+)", command)
            if written and written.group(1) != "-" and not (self.workdir / written.group(1)).is_file():
                self.fail(block, command, f"{option} {written.group(1)} was not written")

    def run_exports(self, block: Block, listed: list[tuple[str, str]]) -> None:
        env = dict(self.env)
        for command, _ in listed:
            if not command.startswith("export "):
                return self.fail(block, command, "a block of exports holds exports only")
            name, _, value = command.removeprefix("export ").partition("=")
            env[name] = self.localize(shlex.split(value)[0]).replace("YOUR_KEY", "admin-key-456")
        if not any(name.startswith("OTEL_") for name in env):
            return self.fail(block, listed[0][0], "no OTEL_ variable to try")
        script = textwrap.dedent("""
            import os
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
            with provider.get_tracer("docs").start_as_current_span("invoke_agent docs-check") as span:
                span.set_attribute("gen_ai.operation.name", "invoke_agent")
                print(format(span.get_span_context().trace_id, "032x"))
            provider.shutdown()
        """)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        if done.returncode:
            return self.fail(block, listed[0][0], done.stderr[-500:])
        run_id = done.stdout.split()[-1]
        found = httpx.get(f"{self.service.api_url}/v1/runs/{run_id}", headers={"x-api-key": "admin-key-456"})
        if found.status_code != 200:
            self.fail(block, listed[0][0], f"the span sent with these variables was not stored: {found.text}")

    def check_bench(self, block: Block, command: str) -> None:
        script = "bench/" + re.search(r"(\w+)\.py", command).group(0)
        if not (ROOT / script).is_file():
            return self.fail(block, command, f"{script} does not exist")
        unknown = [f for f in re.findall(r"(?<!\S)(--[\w-]+)", command) if f not in bench_flags(script)]
        if unknown:
            self.fail(block, command, f"{script} --help does not list {unknown}")

    def check_serve(self, block: Block, command: str) -> None:
        """``agenttrail serve`` runs until stopped: its flags are checked against ``serve --help``."""
        unknown = [f for f in re.findall(r"(?<!\S)(--[\w-]+)", command) if f not in serve_flags()]
        if unknown:
            self.fail(block, command, f"agenttrail serve --help does not list {unknown}")

    def check_install(self, block: Block, command: str) -> None:
        if "pytest" in command:
            if command not in (ROOT / ".ci/run").read_text():
                self.fail(block, command, ".ci/run does not run this command")
            return
        if not command.endswith(".venv/bin/agenttrail serve") or "pip install -e ." not in command:
            return self.fail(block, command, "command 1 should install the package and run .venv/bin/agenttrail serve")
        done = subprocess.run([sys.executable, "-m", "agenttrail.service.cli", "serve", "--help"],
                              capture_output=True, text=True, timeout=60)
        if done.returncode or 'agenttrail = "agenttrail.service.cli:main"' not in (ROOT / "pyproject.toml").read_text():
            self.fail(block, command, "the agenttrail serve command is missing: " + done.stderr[-300:])


@functools.lru_cache(maxsize=None)
def serve_flags() -> frozenset[str]:
    done = subprocess.run([sys.executable, "-m", "agenttrail.service.cli", "serve", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return frozenset(re.findall(r"--[\w-]+", done.stdout))


@functools.lru_cache(maxsize=None)
def bench_flags(script: str) -> frozenset[str]:
    done = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return frozenset(re.findall(r"--[\w-]+", done.stdout))


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
