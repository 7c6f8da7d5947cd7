"""Thin compatible names for the two SDK shapes seed users wrote against.

``ObsClient`` (seed 000)::

    client = ObsClient(base_url="http://localhost:8000", api_key="dev-key", project_id="demo")
    with client.run(runbook="shortify") as run:
        with run.step(name="shorten", tool="httpx.post", input={...}) as s:
            s.set_output({"status_code": 200})
        run.set_totals(tokens=123, cost_usd=0.01)
    client.validate_run(run.run_id, runbook_yaml="...")

``AgentTracer`` (seed 003)::

    tracer = AgentTracer(agent_id="support-agent", agent_version="v1.0.0",
                         environment="production", api_url="http://localhost:8000")
    with tracer.start_run() as run:
        with run.step("plan", "analyze_query"):
            ...
        run.record_failure(failure_type="tool", failure_code="timeout", message="...")

Both send OpenTelemetry spans (OTLP/HTTP to port 4318 of the API's host unless
``otlp_endpoint`` says otherwise) and read through :class:`Client`.  docs/sdk.md maps each
call to the native API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from . import _setup
from ._run import Run
from ._steps import Step
from .client import Client
from .models import Validation


def _default_otlp_endpoint(api_url: str, protocol: str) -> str:
    host = urlparse(api_url).hostname or "localhost"
    return f"http://{host}:{4317 if protocol == 'grpc' else 4318}"


class _Connected:
    """Shared set-up: one configure() call and one REST client."""

    def __init__(self, api_url: str, api_key: str | None, project: str | None, otlp_endpoint: str | None,
                 protocol: str, configure: bool, options: dict):
        self.client = Client(api_url, api_key)
        self.telemetry = None
        if configure:
            self.telemetry = _setup.configure(
                endpoint=otlp_endpoint or _default_otlp_endpoint(api_url, protocol),
                project=project, api_key=api_key, protocol=protocol, **options)

    def flush(self, timeout: float = 10.0) -> bool:
        """Send the spans still queued; returns False if they could not all be sent in time."""
        return _setup.flush(timeout)


class ObsClient(_Connected):
    """Seed 000's client: ``run()`` / ``step()`` / ``set_totals()`` / ``validate_run()``."""

    def __init__(self, base_url: str = "http://localhost:8000", api_key: str | None = None,
                 project_id: str | None = None, *, otlp_endpoint: str | None = None,
                 protocol: str = "http", configure: bool = True, **options: Any):
        super().__init__(base_url, api_key, project_id, otlp_endpoint, protocol, configure, options)
        self.project_id = project_id

    def run(self, runbook: str | None = None, *, agent: str | None = None, session: str | None = None,
            **options: Any) -> Run:
        """A run (``with client.run(...) as run``); ``run.step(name=, tool=, input=)`` as in the seed."""
        return Run(agent, session, runbook, **options)

    def validate_run(self, run_id: str, runbook_yaml: str | None = None, *, runbook: str | None = None,
                     flush_timeout: float = 10.0) -> Validation:
        """Send queued spans, then validate the run on the server."""
        self.flush(flush_timeout)
        return self.client.validate(run_id, runbook_yaml, runbook=runbook)

    def get_run(self, run_id: str):
        """The stored run with its steps."""
        return self.client.run(run_id)


class TracedRun:
    """Seed 003's run object: ``step(step_type, name)`` and the failure/decision/quality calls."""

    def __init__(self, run: Run):
        self._run = run

    def __enter__(self) -> "TracedRun":
        self._run.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        return self._run.__exit__(*exc)

    async def __aenter__(self) -> "TracedRun":
        return self.__enter__()

    async def __aexit__(self, *exc) -> bool:
        return self.__exit__(*exc)

    @property
    def run_id(self) -> str:
        """The run's id (trace id, 32 hex)."""
        return self._run.run_id

    def step(self, step_type: str, name: str, metadata: dict | None = None, **options: Any) -> Step:
        """A step of type ``plan``/``tool``/``retrieval``/``respond``/…; ``tool`` steps are tool calls."""
        tool = name if step_type == "tool" else None
        return self._run.step(name, tool, step_type=step_type, attributes=_metadata(metadata), **options)

    def record_failure(self, failure_type: str, failure_code: str, message: str | None = None, **options: Any) -> None:
        """Seed 003's semantic failure (tool / model / retrieval / orchestration)."""
        self._run.record_failure(failure_type, failure_code, message, **options)

    def record_decision(self, decision_type: str, selected: str, reason_code: str | None = None, **options: Any) -> None:
        """Seed 003 phase 2: a decision point."""
        self._run.record_decision(decision_type, selected, reason_code, **options)

    def record_quality_signal(self, signal_type: str, signal_code: str, value: bool = True, **options: Any) -> None:
        """Seed 003 phase 2: a quality signal."""
        self._run.record_quality_signal(signal_type, signal_code, value, **options)


def _metadata(metadata: dict | None) -> dict | None:
    if not isinstance(metadata, dict):
        return None
    return {f"agenttrail.metadata.{k}": v for k, v in metadata.items()}


class AgentTracer(_Connected):
    """Seed 003's tracer: ``start_run()`` gives a :class:`TracedRun`."""

    def __init__(self, agent_id: str, agent_version: str | None = None, environment: str | None = None,
                 api_url: str = "http://localhost:8000", api_key: str | None = None, *,
                 project: str | None = None, otlp_endpoint: str | None = None, protocol: str = "http",
                 configure: bool = True, **options: Any):
        super().__init__(api_url, api_key, project, otlp_endpoint, protocol, configure, options)
        self.agent_id, self.agent_version, self.environment = agent_id, agent_version, environment

    def start_run(self, session: str | None = None, **options: Any) -> TracedRun:
        """A run of this agent (``with tracer.start_run() as run``)."""
        return TracedRun(Run(self.agent_id, session, agent_id=self.agent_id, agent_version=self.agent_version,
                             environment=self.environment, **options))
