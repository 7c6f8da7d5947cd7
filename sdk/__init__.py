"""agenttrail.sdk — instrument an agent with standard OpenTelemetry, and query agenttrail.

Instrumentation (every span is plain OpenTelemetry GenAI semantic conventions)::

    from agenttrail import sdk

    sdk.configure(endpoint="http://localhost:4317", project="demo", api_key="dev-key-123")
    with sdk.run(agent="support-agent", session="conv-1") as r:
        with r.step("order_lookup", tool="orders_api", input={"order_id": 42}) as s:
            s.set_output({"status": "shipped"})
        with r.llm(model="gpt-4o-mini", provider="openai") as c:
            c.set_usage(input_tokens=120, output_tokens=30)

Client for the REST API::

    client = sdk.Client("http://localhost:8000", api_key="dev-key-123")
    for run in client.runs(project_id="demo", status="error"):
        print(run.run_id, run.duration_ms)

Nothing here ever raises into the agent because of telemetry: unreachable, slow or
overloaded servers only show up in :func:`stats`.  See docs/sdk.md.
"""

try:  # the instrumentation's dependencies are the "sdk" extra, not the server's
    import opentelemetry.sdk.trace  # noqa: F401
except ImportError as exc:
    raise ImportError("agenttrail.sdk needs the OpenTelemetry SDK: pip install 'agenttrail[sdk]' "
                      "(from a clone: .venv/bin/pip install -e '.[sdk]')") from exc

from ._export import ExportStats
from ._run import Run, current_run, llm, run, step
from ._scope import SpanScope
from ._setup import Telemetry, configure, flush, settings, shutdown, stats
from ._steps import LLMCall, Step
from ._version import VERSION as __version__
from .client import Client
from .compat import AgentTracer, ObsClient
from .errors import (
    AgentTrailError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AgentTracer",
    "AgentTrailError",
    "AuthenticationError",
    "Client",
    "ExportStats",
    "InvalidRequestError",
    "LLMCall",
    "NotFoundError",
    "ObsClient",
    "PermissionDeniedError",
    "Run",
    "ServiceUnavailableError",
    "SpanScope",
    "Step",
    "Telemetry",
    "configure",
    "current_run",
    "flush",
    "llm",
    "run",
    "settings",
    "shutdown",
    "stats",
    "step",
]
