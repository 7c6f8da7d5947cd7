"""A customer-support agent instrumented with agenttrail.sdk — no LLM key needed.

Each ticket runs plan → order lookup → shipping status → response.  The "LLM" is a fake,
deterministic model (same prompt, same answer and token counts), and the order and shipping
"APIs" are in-memory tables, so every run is reproducible:

* ticket 1 succeeds, but the order API times out once and is retried (two step spans);
* ticket 2 fails: the shipping API is down on every attempt, recorded as a ``tool`` failure;
* ticket 3 fails early: the order does not exist (``tool`` failure ``order_not_found``).

Run it against a local server (``agenttrail serve`` listens on 4317/4318/8000), with the
SDK's dependencies installed (``.venv/bin/pip install -e '.[sdk]'``)::

    .venv/bin/python examples/support_agent.py --endpoint http://localhost:4317 --api-url http://localhost:8000

``--protocol http --endpoint http://localhost:4318`` sends OTLP/HTTP instead; ``--json``
prints a machine-readable summary (the test uses it).  Exit status 0 when every span was
exported and every run could be read back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from agenttrail import sdk

ORDERS = {"A-1001": {"status": "shipped", "tracking": "TRK-9"}, "A-1002": {"status": "shipped", "tracking": "TRK-7"}}
SHIPPING = {"TRK-9": "out for delivery"}
TICKETS = [("t-1", "Where is my order A-1001?"), ("t-2", "Where is my order A-1002?"),
           ("t-3", "Where is my order Z-0000?")]


class FakeLLM:
    """A deterministic stand-in for a chat model: answers and token counts derive from the prompt."""

    model, provider = "fake-gpt-mini", "fake"

    def complete(self, run: sdk.Run, purpose: str, prompt: str) -> str:
        with run.llm(model=self.model, provider=self.provider, input=[{"role": "user", "content": prompt}]) as call:
            digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:6], 16)
            answer = f"[{purpose}] {prompt[:60]}"
            call.set_usage(input_tokens=len(prompt.split()) * 4 + digest % 7, output_tokens=len(answer.split()) * 3)
            call.set_response(model=self.model, finish_reasons=["stop"])
            call.set_output([{"role": "assistant", "content": answer}])
        return answer


class Tools:
    """The order and shipping APIs, with scripted failures so each path is exercised."""

    def __init__(self) -> None:
        self.order_calls = 0

    def order_lookup(self, order_id: str) -> dict:
        self.order_calls += 1
        if self.order_calls == 1:
            raise TimeoutError("orders API did not answer in 5s")  # the retry path
        if order_id not in ORDERS:
            raise LookupError(f"order {order_id} not found")
        return ORDERS[order_id]

    def shipping_status(self, tracking: str) -> str:
        if tracking not in SHIPPING:
            raise ConnectionError("shipping API unavailable (503)")
        return SHIPPING[tracking]


def with_retries(run: sdk.Run, name: str, tool: str, func, arg, attempts: int = 3):
    """Call ``func(arg)`` up to ``attempts`` times; each attempt is its own step span."""
    for attempt in range(1, attempts + 1):
        try:
            with run.step(name, tool=tool, input={"arg": arg}, attempt=attempt) as step:
                result = func(arg)
                step.set_output(result)
                return result
        except (TimeoutError, ConnectionError):
            if attempt == attempts:
                raise


def handle(ticket_id: str, question: str, llm: FakeLLM, tools: Tools) -> str:
    """One support conversation: one run."""
    with sdk.run(agent="support-agent", session=ticket_id, runbook="support-flow", agent_version="1.0") as run:
        with run.step("plan", step_type="plan"):
            llm.complete(run, "plan", f"Plan the tool calls to answer: {question}")
        order_id = question.rstrip("?").split()[-1]
        run.record_decision("tool_selection", "order_lookup", "order_id_present", candidates=["order_lookup", "faq"])
        try:
            order = with_retries(run, "order_lookup", "orders_api", tools.order_lookup, order_id)
        except LookupError as exc:
            run.record_failure("tool", "order_not_found", str(exc))
            return llm.complete(run, "respond", f"Apologise: {exc}")
        try:
            status = with_retries(run, "shipping_status", "shipping_api", tools.shipping_status, order["tracking"])
        except ConnectionError as exc:
            run.record_failure("tool", "shipping_unavailable", str(exc))
            return llm.complete(run, "respond", "Apologise: shipping status is unavailable right now")
        run.record_quality_signal("tool_success", "all_tools_ok", True)
        return llm.complete(run, "respond", f"Order {order_id} is {order['status']}, {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT or localhost)")
    parser.add_argument("--protocol", choices=["grpc", "http"], help="OTLP protocol (default grpc)")
    parser.add_argument("--api-url", default="http://localhost:8000", help="agenttrail REST API, to read runs back")
    parser.add_argument("--project", default="demo")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    args = parser.parse_args(argv)

    sdk.configure(endpoint=args.endpoint, protocol=args.protocol, project=args.project, api_key=args.api_key,
                  service_name="support-agent-example", capture_content=True)
    llm, tools = FakeLLM(), Tools()
    for ticket_id, question in TICKETS:
        handle(ticket_id, question, llm, tools)
    flushed = sdk.flush(20)
    stats = sdk.stats()
    summary = {"flushed": flushed, "exported": stats.spans_exported, "lost": stats.spans_lost, "runs": []}
    with sdk.Client(args.api_url, api_key=args.api_key) as client:
        for run in client.runs(project_id=args.project, agent="support-agent", max_runs=len(TICKETS)):
            summary["runs"].append({"run_id": run.run_id, "session": run.session_id, "status": run.status,
                                    "steps": run.step_count, "errors": run.error_count})
    sdk.shutdown()
    if args.json:
        print(json.dumps(summary))
    else:
        for run in summary["runs"]:
            print(f"{run['session']}: run {run['run_id']} {run['status']} ({run['steps']} steps, {run['errors']} errors)")
        print(f"spans exported {summary['exported']}, lost {summary['lost']}")
    return 0 if flushed and summary["lost"] == 0 and len(summary["runs"]) == len(TICKETS) else 1


if __name__ == "__main__":
    sys.exit(main())
