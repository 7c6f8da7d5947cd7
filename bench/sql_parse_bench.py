"""How fast ClickHouse itself parses OTLP trace requests, against the Python mapping path.

The ingest workers spend ~20 µs of CPU per span decoding, mapping and encoding in Python,
half of ingest's budget on 2 cores.  This measures the alternative: the embedded engine
reading the same requests with its Protobuf input format (``otlp_trace_subset.proto``),
flattening them to one row per span, and computing a few mapped columns (ids as hex, an
attribute map, the operation, model and input tokens, the start time) — all requests in one
query, then one query per request, as a mapping worker would run it.

It also measures what decided against mapping in SQL (docs/performance.md): ClickHouse plans
every query anew, at a cost that grows with its expressions, and the mapping's rules need
thousands of them.  The last lines time the planning of N trivial expressions over one row.

    python bench/sql_parse_bench.py [--requests 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from commit_bench import cpu_seconds  # noqa: E402
from ingest_bench import build_requests  # noqa: E402

import clickhouse_connect  # noqa: E402
from google.protobuf.internal.encoder import _VarintBytes  # noqa: E402

from agenttrail.proto import otlp  # noqa: E402
from agenttrail.receiver.mapping import map_export_request  # noqa: E402
from agenttrail.storage import EncodedSteps  # noqa: E402

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "otlp_trace_subset.proto")
_KV = "Array(Tuple(key String, value Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64)))"
STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KV}), scope_spans Array(Tuple("
    f"scope Tuple(name String, version String), spans Array(Tuple(trace_id String, span_id String, "
    f"parent_span_id String, name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64, "
    f"attributes {_KV}, status Tuple(message String, code Int32)))))))"
)
_SPANS = ("FROM file({path:String}, 'Protobuf', {structure:String}) "
          "ARRAY JOIN resource_spans AS rs ARRAY JOIN rs.scope_spans AS ss ARRAY JOIN ss.spans AS sp")
QUERIES = {
    "parse + one row per span": f"SELECT count(), sum(length(sp.attributes)) {_SPANS}",
    "... + a few mapped columns": f"""SELECT count(), sum(length(a)), sum(inp) FROM (
    SELECT lower(hex(sp.trace_id)) AS run_id, lower(hex(sp.span_id)) AS step_id, sp.name AS name,
           mapFromArrays(arrayMap(x -> x.key, sp.attributes),
                         arrayMap(x -> if(x.value.string_value != '', x.value.string_value,
                                          toString(x.value.int_value)), sp.attributes)) AS a,
           a['gen_ai.operation.name'] AS operation, a['gen_ai.request.model'] AS model,
           toUInt64OrZero(a['gen_ai.usage.input_tokens']) AS inp,
           fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano)) AS start_time
    {_SPANS})""",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64, help="512-span requests (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each path (default 3)")
    args = parser.parse_args()
    if args.requests <= 0 or args.repeat <= 0:
        parser.error("--requests and --repeat must be positive")
    bodies, _ = build_requests(args.requests, 512)
    spans = args.requests * 512
    work = tempfile.mkdtemp(prefix="agenttrail-sqlparse-")
    try:
        path = os.path.join(work, "requests.bin")
        with open(path, "wb") as out:  # ClickHouse's Protobuf format: each message after its length
            for body in bodies:
                out.write(_VarintBytes(len(body)) + body)
        client = clickhouse_connect.get_client(dsn=f"chdb://{os.path.join(work, 'store')}")
        parameters = {"path": path, "structure": STRUCTURE}
        settings = {"format_schema": f"{SCHEMA}:ExportTraceServiceRequest"}
        for label, sql in QUERIES.items():
            costs = []
            for _ in range(args.repeat):
                before = cpu_seconds()
                counted = client.query(sql, parameters=parameters, settings=settings).result_rows[0][0]
                costs.append((cpu_seconds() - before) / spans * 1e6)
            if counted != spans:
                raise SystemExit(f"{label}: ClickHouse read {counted} spans of {spans}")
            print(f"ClickHouse, {label:28} {min(costs):5.2f} µs CPU per span (best of {args.repeat})")
        single = os.path.join(work, "request.bin")
        sql = QUERIES["... + a few mapped columns"]
        costs = []
        for _ in range(args.repeat):
            spent = 0.0
            for body in bodies:
                with open(single, "wb") as out:
                    out.write(_VarintBytes(len(body)) + body)
                before = cpu_seconds()
                counted = client.query(sql, parameters={**parameters, "path": single}, settings=settings).result_rows[0][0]
                spent += cpu_seconds() - before
                if counted != spans // len(bodies):
                    raise SystemExit(f"one query per request: ClickHouse read {counted} spans of {spans // len(bodies)}")
            costs.append(spent / spans * 1e6)
        print(f"ClickHouse, the same, one query per request {min(costs):5.2f} µs CPU per span (best of {args.repeat})")
        for count in (100, 400):
            for label, expr in (("map lookups", "m['k{i}']"), ("lambdas", "arrayFirst(x -> x != 'z{i}', ['a', 'b'])")):
                costs = []
                for _ in range(args.repeat):
                    before = cpu_seconds()
                    client.query("SELECT " + ", ".join(expr.format(i=i) + f" AS c{i}" for i in range(count))
                                 + " FROM (SELECT map('k1', 'v') AS m)")
                    costs.append(cpu_seconds() - before)
                print(f"planning a query of {count} {label:12} {min(costs) * 1e3:6.1f} ms CPU (best of {args.repeat})")
        costs = []
        for _ in range(args.repeat):
            before = time.process_time()
            for body in bodies:
                EncodedSteps.of(map_export_request(otlp.decode_export(body, "protobuf")).batch, 0)
            costs.append((time.process_time() - before) / spans * 1e6)
        print(f"Python, decode + map + encode (the workers)  {min(costs):5.2f} µs CPU per span (best of {args.repeat})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
