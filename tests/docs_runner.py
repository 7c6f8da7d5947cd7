"""Running one documentation page's commands against a server: see tests/test_docs_commands.py."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from docs_pages import Block, commands, compare

ROOT = Path(__file__).resolve().parent.parent


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
                    self.fail(block, command, "no rule runs this command: add one to tests/docs_runner.py "
                                              "or mark the block <!-- docs-test: skip REASON -->")
            except subprocess.TimeoutExpired as exc:
                self.fail(block, command, f"still running after {exc.timeout:.0f} s")

    def run_curl(self, block: Block, command: str, comment: str, answer: Block | None) -> None:
        done = self.shell(self.localize(command))
        bounded = re.search(r"(?<!\S)(--max-time|-m)\s", command)  # a stream, cut at its time limit
        if done.returncode and not (bounded and done.returncode == 28):
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
