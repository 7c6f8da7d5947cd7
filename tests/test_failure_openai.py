"""The real OpenAI Python SDK, instrumented by opentelemetry-instrumentation-openai-v2, failing
for real against a local stub server (429, 401, a context-length 400): its spans, exported by
the OpenTelemetry SDK to agenttrail, land with the documented categories, root cause and retries."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

openai = pytest.importorskip("openai")
instrumentation = pytest.importorskip("opentelemetry.instrumentation.openai_v2")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402

from api_helpers import client  # noqa: E402

ERRORS = {
    "rate": (429, {"message": "Rate limit reached for gpt-4o-mini in organization org-1 on requests per min",
                   "type": "requests", "code": "rate_limit_exceeded"}),
    "auth": (401, {"message": "Incorrect API key provided: sk-test. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.",
                   "type": "invalid_request_error", "code": "invalid_api_key"}),
    "long": (400, {"message": "This model's maximum context length is 128000 tokens. However, your messages "
                              "resulted in 190000 tokens.", "type": "invalid_request_error",
                   "code": "context_length_exceeded"}),
}
OK = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}


class _Stub(BaseHTTPRequestHandler):
    """Answers each chat completion with the error its first user message names, else 200."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        wanted = body["messages"][0]["content"][:4]
        status, payload = ERRORS[wanted] if wanted in ERRORS else (200, None)
        data = json.dumps({"error": payload} if payload else OK).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture
def traced(server):
    provider = TracerProvider(resource=Resource.create({"service.name": "openai-agent",
                                                        "agenttrail.project": "oai"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.http_endpoint + "/v1/traces")))
    instrumentor = instrumentation.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider.get_tracer("tests.openai-agent")
    instrumentor.uninstrument()
    provider.shutdown()


def _ask(llm, text):
    return llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


def test_openai_failures_land_classified_with_root_cause_and_retry(server, stub, traced):
    llm = openai.OpenAI(base_url=stub, api_key="sk-test", max_retries=0)  # retries done by the agent below
    with traced.start_as_current_span("invoke_agent helper") as root:
        try:
            _ask(llm, "rate limited first")
        except openai.RateLimitError:
            _ask(llm, "ok now")  # the agent's own retry: recovers
        try:
            _ask(llm, "long " + "x" * 100)
        except openai.BadRequestError as exc:
            root.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
        long_run = format(root.get_span_context().trace_id, "032x")
    with traced.start_as_current_span("invoke_agent helper") as root:
        try:
            _ask(llm, "auth please")
        except openai.AuthenticationError:
            root.set_status(Status(StatusCode.ERROR, "cannot call the model"))
        auth_run = format(root.get_span_context().trace_id, "032x")

    with client(server, None) as c:
        run = c.get(f"/v1/runs/{long_run}").json()
        auth = c.get(f"/v1/runs/{auth_run}").json()
        report = c.get(f"/v1/runs/{long_run}/rca").json()
    llm_steps = [s for s in run["steps"] if s["kind"] == "llm"]
    assert [(s["status"], s["failure_category"]) for s in llm_steps] == [
        ("error", "rate_limited"), ("unset", None), ("error", "context_length")]
    assert all(s["failure_type"] in ("model", None) for s in llm_steps)
    failure = run["failure"]
    assert failure["category"] == "context_length" and failure["root_cause_step_id"] == llm_steps[2]["step_id"]
    (chain,) = failure["retries"]
    assert chain["model"] == "gpt-4o-mini" and chain["outcome"] == "recovered"
    assert [a["step_id"] for a in chain["attempts"]] == [llm_steps[0]["step_id"], llm_steps[1]["step_id"]]
    assert llm_steps[2]["error_type"] == "BadRequestError"  # the name alone is weak; the message decides
    assert llm_steps[2]["error_fingerprint"] == ("Error code: <n> - This model's maximum context length is <n> "
                                                 "tokens. However, your messages resulted in <n> tokens.")
    assert report["category"] == "context_length" and report["hypotheses"][0]["confidence"] in ("high", "medium")

    (auth_step,) = [s for s in auth["steps"] if s["kind"] == "llm"]
    assert (auth_step["failure_category"], auth["failure"]["category"]) == ("auth", "auth")
    assert auth["failure"]["root_cause_step_id"] == auth_step["step_id"]
