"""Sustained OTLP ingest throughput, counted only once spans are stored.

Starts ``agenttrail serve`` on a fresh embedded store (or on an existing one, with --storage
and --database: e.g. one filled by ``commit_bench.py --prefill N --data DIR``, to measure
ingest into a large store; give it a --seed its runs were not made with), sends pre-encoded
512-span requests of realistic agent runs over OTLP/HTTP protobuf and/or OTLP/gRPC from
--concurrency client threads, and reports spans/s, p50/p99 export latency, the server's
peak RSS and the CPU time per span of the server, its mapping workers and the client — and of
the server's own threads: Python, ClickHouse's background merges, other native threads.
An export is answered once its spans are durable (in the ingest journal by default, or in
ClickHouse with ``--ack-after commit``); ``spans_per_s`` counts the time until the last of
them is in ClickHouse (the journal drained), ``acknowledged_per_s`` until the last answer.
The script checks a sample of runs through the REST API.

    python bench/ingest_bench.py --protocol both --requests 300 --concurrency 32 [--ingest-workers N]
    python bench/ingest_bench.py --protocol http --storage chdb://$PWD/big --database commit_bench --seed 7
    python bench/ingest_bench.py --protocol http --requests-per-run 4   # runs that span commits
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

TOOLS = ["order_lookup", "shipping_status", "search_docs", "send_email", "refund"]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-20241022"]


def _kv(key, value):
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _span(rng, trace_id, span_id, parent, name, start, dur, attrs, error=False):
    span = trace_pb2.Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
                          kind=trace_pb2.Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start,
                          end_time_unix_nano=start + dur, attributes=[_kv(k, v) for k, v in attrs.items()])
    span.status.code = trace_pb2.Status.STATUS_CODE_ERROR if error else trace_pb2.Status.STATUS_CODE_UNSET
    return span


def agent_run(rng: random.Random, start: int, spans_per_run: int = 8) -> list[trace_pb2.Span]:
    """One run: an invoke_agent root with llm, tool and retrieval children (~15 attributes each)."""
    trace_id = rng.randbytes(16)
    root_id = rng.randbytes(8)
    common = {"gen_ai.conversation.id": f"conv-{rng.randrange(10**6)}", "user.id": f"user-{rng.randrange(1000)}"}
    spans = [_span(rng, trace_id, root_id, b"", "invoke_agent support-agent", start, 5_000_000_000, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-agent",
        "gen_ai.agent.id": "agent-1", **common})]
    t = start
    for i in range(spans_per_run - 1):
        t += rng.randrange(1_000_000, 200_000_000)
        choice = i % 3
        if choice == 0:
            model = rng.choice(MODELS)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
                     "gen_ai.response.model": model, "gen_ai.usage.input_tokens": rng.randrange(50, 4000),
                     "gen_ai.usage.output_tokens": rng.randrange(10, 800), "gen_ai.request.temperature": "0.2",
                     "gen_ai.response.id": f"chatcmpl-{rng.randrange(10**9)}", "gen_ai.response.finish_reasons": "stop",
                     "server.address": "api.openai.com", **common}
            name = f"chat {model}"
        elif choice == 1:
            tool = rng.choice(TOOLS)
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "gen_ai.tool.type": "function",
                     "gen_ai.tool.call.id": f"call_{rng.randrange(10**9)}",
                     "gen_ai.tool.call.arguments": json.dumps({"order_id": str(rng.randrange(10**6)), "verbose": False}),
                     **common}
            name = f"execute_tool {tool}"
        else:
            attrs = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb-main",
                     "db.system": "qdrant", **common}
            name = "retrieval kb-main"
        spans.append(_span(rng, trace_id, rng.randbytes(8), root_id, name, t, rng.randrange(10**6, 10**9), attrs,
                           error=rng.random() < 0.03))
    return spans


# With --requests-per-run K, the K parts of a run go into requests this far apart: further than
# 32 clients' requests in flight, so they land in different commits, as a long run exported by
# a BatchSpanProcessor every few seconds does.
RUN_PART_STRIDE = 64


def build_requests(count: int, spans_per_request: int, seed: int = 1,
                   requests_per_run: int = 1) -> tuple[list[bytes], list[str]]:
    """``count`` serialized ExportTraceServiceRequests, and some run ids to check.

    Each run has 8 spans per request it is spread over: with ``requests_per_run`` K > 1, its
    8K spans (root first) go into K requests :data:`RUN_PART_STRIDE` apart.
    """
    rng = random.Random(seed)
    start = time.time_ns() - 3600 * 10**9
    per_run = 8
    slots: dict[int, list[trace_pb2.Span]] = {}  # request index -> its spans
    sample = []
    block = RUN_PART_STRIDE * requests_per_run  # requests sharing one set of runs
    for first in range(0, count, block):
        for slot in range(min(RUN_PART_STRIDE, count - first)):
            runs = []
            while len(runs) * per_run < spans_per_request:
                runs.append(agent_run(rng, start + rng.randrange(3600 * 10**9), per_run * requests_per_run))
            sample.append(runs[0][0].trace_id.hex())
            for part in range(requests_per_run):
                index = first + slot + part * RUN_PART_STRIDE
                if index < count:
                    spans = [s for run in runs for s in run[part * per_run:(part + 1) * per_run]]
                    slots[index] = spans[:spans_per_request]
    bodies = []
    for index in range(count):
        request = trace_service_pb2.ExportTraceServiceRequest()
        resource = request.resource_spans.add()
        resource.resource.attributes.extend([_kv("service.name", "support-svc"),
                                             _kv("deployment.environment.name", "bench")])
        scope = resource.scope_spans.add()
        scope.scope.name, scope.scope.version = "bench.agent", "1.0"
        scope.spans.extend(slots[index])
        bodies.append(request.SerializeToString())
    return bodies, sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str, extra_args: tuple[str, ...] = ()):
    ports = {"grpc": free_port(), "http": free_port(), "api": free_port()}
    cmd = [sys.executable, "-m", "agenttrail.service.cli", "serve", "--data-dir", data_dir,
           "--grpc-port", str(ports["grpc"]), "--http-port", str(ports["http"]), "--api-port", str(ports["api"]),
           "--log-level", "warning", *extra_args]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/health", timeout=1) as r:
                if r.status == 200:
                    return proc, ports
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def proc_cpu(path: str) -> tuple[int, float]:
    """(parent pid, CPU seconds: user + system) from a /proc ``stat`` file of a process or thread."""
    with open(f"{path}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by ``pid`` (``main``) and its children
    (``workers``: the mapping processes) from /proc, and by this load generator."""
    workers = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, used = proc_cpu(f"/proc/{entry}")
            except OSError:  # gone meanwhile
                continue
            workers += used if ppid == pid else 0.0
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"main": proc_cpu(f"/proc/{pid}")[1], "workers": workers, "load_generator": own.ru_utime + own.ru_stime}


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """The server's CPU seconds so far, split by what its threads do (from their names).

    ``merges``: ClickHouse's background merges (``MergeMutate`` threads); ``python``: threads
    named like the interpreter — the transports, the writer and the ClickHouse work done on the
    calling thread; ``native``: every other thread (ClickHouse query pools, gRPC's core).  A
    thread that has exited no longer shows: ``python`` is the process total less the other two,
    so the CPU of exited threads lands there.
    """
    with open(f"/proc/{pid}/comm") as fh:
        interpreter = fh.read().strip()
    merges = native = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                name = fh.read().strip()
            used = proc_cpu(f"/proc/{pid}/task/{tid}")[1]
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith("MergeMutate"):
            merges += used
        elif name != interpreter:
            native += used
    total = proc_cpu(f"/proc/{pid}")[1]
    return {"python": total - merges - native, "merges": merges, "native": native}


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def writer_counters(ports: dict) -> dict[str, float]:
    """The writer's commits, written spans and commit seconds so far, from the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = {"agenttrail_writer_commits_total": "commits", "agenttrail_writer_written_spans_total": "spans",
              "agenttrail_writer_commit_seconds_total": "seconds"}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
    return found


def run_load(protocol: str, bodies: list[bytes], ports: dict, concurrency: int, spans_per_request: int):
    latencies, errors, lock = [], [], threading.Lock()
    queue = list(range(len(bodies)))

    def drive(send) -> None:
        """Send requests until none are left; ``send`` returns None on success, else an error label."""
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            t = time.perf_counter()
            failure = send(bodies[i])
            elapsed = time.perf_counter() - t
            with lock:
                if failure is None:
                    latencies.append(elapsed)
                else:
                    errors.append(failure)

    def http_worker():
        # The standard library's client on a keep-alive connection: the load generator shares
        # the cores with the server, and httpx cost ~3x more CPU per request here.
        connection = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=30)
        headers = {"content-type": "application/x-protobuf"}

        def send(body):
            try:
                connection.request("POST", "/v1/traces", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
            except (http.client.HTTPException, OSError) as exc:  # counted; reconnects next time
                connection.close()
                return type(exc).__name__
            return None if response.status == 200 else response.status

        try:
            drive(send)
        finally:
            connection.close()

    def grpc_worker():
        import grpc
        channel = grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}",
                                        options=[("grpc.max_send_message_length", 64 << 20)])
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

        def send(body):
            try:
                export(body, timeout=30)
            except grpc.RpcError as exc:
                return exc.code().name
            return None

        try:
            drive(send)
        finally:
            channel.close()

    worker = http_worker if protocol == "http" else grpc_worker
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = time.perf_counter() - start
    wait_until_stored(ports)
    elapsed = time.perf_counter() - start
    spans = len(latencies) * spans_per_request
    latencies.sort()
    return {
        "protocol": protocol, "requests": len(bodies), "acknowledged_spans": spans, "errors": len(errors),
        "seconds": round(elapsed, 2), "spans_per_s": round(spans / elapsed),
        "acknowledged_per_s": round(spans / answered),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
    }


def wait_until_stored(ports: dict) -> None:
    """Wait until the server's ingest journal (its spool) is empty: every acknowledged span is
    in ClickHouse."""
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/health", timeout=10) as response:
            spool = json.loads(response.read()).get("spool")
        if not spool or not spool["batches"]:
            return
        time.sleep(0.01)


def check_sample(ports: dict, run_ids: list[str]) -> int:
    """How many sampled runs are queryable through the REST API right after the load."""
    found = 0
    for run_id in run_ids:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/v1/runs/{run_id}", timeout=10) as r:
                found += r.status == 200
        except OSError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=["http", "grpc", "both"], default="both")
    parser.add_argument("--requests", type=int, default=400, help="requests per protocol")
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ingest-workers", type=int, default=None,
                        help="passed to agenttrail serve (default: the server's own default)")
    parser.add_argument("--ack-after", choices=["journal", "commit"],
                        help="passed to agenttrail serve: answer exports once journaled (its default) or committed")
    parser.add_argument("--storage", help="an existing store's DSN, passed to agenttrail serve (kept afterwards)")
    parser.add_argument("--database", help="its database, passed to agenttrail serve")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated runs (default 1)")
    parser.add_argument("--requests-per-run", type=int, default=1,
                        help=f"spread each run over this many requests, {RUN_PART_STRIDE} apart (default 1)")
    args = parser.parse_args()
    if min(args.requests, args.spans_per_request, args.concurrency, args.requests_per_run) <= 0:
        parser.error("--requests, --spans-per-request, --concurrency and --requests-per-run must be positive")
    if args.database and not args.storage:
        parser.error("--database needs --storage")

    protocols = ["http", "grpc"] if args.protocol == "both" else [args.protocol]
    print(f"encoding {args.requests * len(protocols)} requests of {args.spans_per_request} spans…", file=sys.stderr)
    data_dir = tempfile.mkdtemp(prefix="agenttrail-bench-")
    extra = ("--ingest-workers", str(args.ingest_workers)) if args.ingest_workers is not None else ()
    if args.ack_after:
        extra += ("--ack-after", args.ack_after)
    if args.storage:
        extra += ("--storage", args.storage) + (("--database", args.database) if args.database else ())
    proc, ports = start_server(data_dir, extra)
    try:
        results = []
        for n, protocol in enumerate(protocols):
            bodies, sample = build_requests(args.requests, args.spans_per_request, seed=args.seed + n,
                                            requests_per_run=args.requests_per_run)
            before, threads_before = cpu_seconds(proc.pid), thread_cpu_seconds(proc.pid)
            writer_before = writer_counters(ports)
            result = run_load(protocol, bodies, ports, args.concurrency, args.spans_per_request)
            after, threads_after = cpu_seconds(proc.pid), thread_cpu_seconds(proc.pid)
            writer_after = writer_counters(ports)
            # Where the CPU went, per acknowledged span: server process, mapping workers, and
            # this client (on a small machine it competes with the server for the same cores).
            result["cpu_us_per_span"] = {k: round((after[k] - before[k]) / max(result["acknowledged_spans"], 1) * 1e6, 1)
                                         for k in after}
            result["main_cpu_us_per_span"] = {
                k: round((threads_after[k] - threads_before[k]) / max(result["acknowledged_spans"], 1) * 1e6, 1)
                for k in threads_after}
            # Each commit has a fixed CPU cost whatever its size (commit_bench.py): how many the
            # load took, and how large they were, say how much of the server's CPU that was.
            commits = writer_after["commits"] - writer_before["commits"]
            result["writer"] = {"commits": int(commits),
                                "spans_per_commit": round((writer_after["spans"] - writer_before["spans"]) / max(commits, 1)),
                                "commit_wall_s": round(writer_after["seconds"] - writer_before["seconds"], 2)}
            result["sampled_runs_queryable"] = f"{check_sample(ports, sample[:50])}/{min(50, len(sample))}"
            results.append(result)
            print(json.dumps(result), flush=True)
        print(json.dumps({"server_peak_rss_mib": round(peak_rss_mib(proc.pid), 1)}))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
