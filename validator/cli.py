"""``agenttrail validate``: check runs against a runbook, for people and for CI.

Exit codes: 0 every judged run passed; 1 a run failed or is incomplete (or no run matched,
unless ``--allow-empty``/``--allow-incomplete`` relax it); 2 a bad runbook, bad arguments,
an unknown run or an unreachable backend.  Runs are read from a store (``--storage DSN``,
judged in-process) or through a server's REST API (``--server URL --api-key K``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime, timezone

from agenttrail.storage import StorageError

from .parser import RunbookError, parse_runbook
from .report import json_document, junit_xml, text_report

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(ValueError):
    """Bad arguments: reported on stderr, exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``validate``'s options to ``parser``."""
    parser.add_argument("--runbook", required=True, metavar="FILE", help="runbook YAML file ('-' for stdin)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", action="append", metavar="RUN_ID", help="a run (trace) id; repeatable")
    what.add_argument("--since", metavar="WHEN", help="judge the project's runs started since: 1h, 30m, 2d or ISO time")
    parser.add_argument("--project", metavar="P", help="project id (required with --since)")
    parser.add_argument("--until", metavar="WHEN", help="end of the window (default: now)")
    parser.add_argument("--agent", metavar="GLOB", help="only runs of agents matching GLOB")
    parser.add_argument("--service", metavar="GLOB", help="only runs of services matching GLOB")
    parser.add_argument("--server", default=os.environ.get("AGENTTRAIL_SERVER"), metavar="URL",
                        help="agenttrail server base URL [env AGENTTRAIL_SERVER]")
    parser.add_argument("--api-key", default=os.environ.get("AGENTTRAIL_API_KEY"), metavar="KEY",
                        help="API key for --server [env AGENTTRAIL_API_KEY]")
    parser.add_argument("--storage", default=os.environ.get("AGENTTRAIL_STORAGE"), metavar="DSN",
                        help="read a store directly: chdb:///path or http://host:8123 [env AGENTTRAIL_STORAGE]")
    parser.add_argument("--database", default=os.environ.get("AGENTTRAIL_DATABASE"), metavar="D",
                        help="ClickHouse database with --storage")
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a TTY")
    parser.add_argument("--allow-incomplete", action="store_true", help="incomplete runs do not fail the check")
    parser.add_argument("--allow-empty", action="store_true", help="no matching run is not a failure")
    parser.add_argument("--engine", choices=("python", "sql"), default="python",
                        help="with --run: judge each run by the reference evaluator (default) or by the "
                             "compiled query that project windows use; both give the same verdicts")


def parse_when(text: str, now: float) -> int:
    """``1h``/``30m``/``2d`` ago, or an ISO 8601 time (UTC if no zone) → epoch nanoseconds."""
    m = _DURATION.match(text.strip())
    if m:
        seconds = now - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"cannot read time {text!r}: use 1h, 30m, 2d or an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp()
    if not 0 <= seconds < 9.2e9:  # Int64 nanoseconds cover 1970 to 2262
        raise UsageError(f"time {text!r} is outside 1970–2262")
    return int(seconds * 1e9)


def run(args: argparse.Namespace) -> int:
    """Run ``agenttrail validate``; returns the exit code."""
    try:
        text = sys.stdin.read() if args.runbook == "-" else _read(args.runbook)
        runbook = parse_runbook(text)
        if args.since is not None and not args.project:
            raise UsageError("--since needs --project")
        now = time.time()
        args.since_ns = parse_when(args.since, now) if args.since is not None else None
        args.until_ns = parse_when(args.until, now) if args.until is not None else None
        if bool(args.server) == bool(args.storage):
            raise UsageError("give exactly one of --server URL (with --api-key) or --storage DSN")
        progress = _Progress(enabled=args.progress or sys.stderr.isatty())
        if args.server:
            from .remote import validate_remote
            outcome = validate_remote(args, text, progress)
        else:
            from .local import validate_local
            outcome = validate_local(args, runbook, progress)
    except RunbookError as exc:
        print(f"agenttrail validate: bad runbook {args.runbook}: {exc}", file=sys.stderr)
        return 2
    except (UsageError, LookupError, OSError, ConnectionError, ValueError, StorageError) as exc:
        print(f"agenttrail validate: {exc}", file=sys.stderr)
        return 2
    return _emit(args, outcome)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(1024 * 1024 + 1)
    except OSError as exc:
        raise UsageError(f"cannot read runbook: {exc}") from None
    return data  # bytes: the parser enforces size and UTF-8


def _emit(args, outcome: dict) -> int:
    sys.stdout.write(text_report(outcome) if args.json != "-" else json_document(outcome))
    if args.json and args.json != "-":
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json_document(outcome))
    if args.junit:
        with open(args.junit, "wb") as f:
            f.write(junit_xml(outcome))
    counts = outcome["counts"]
    if counts["total"] == 0 and not args.allow_empty:
        print("agenttrail validate: no run matched the selection", file=sys.stderr)
        return 1
    if counts["failed"] or (counts["incomplete"] and not args.allow_incomplete):
        return 1
    return 0


class _Progress:
    """A one-line progress bar on stderr (only on a TTY unless forced)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.started = time.monotonic()

    def update(self, done: int, total: int, label: str = "") -> None:
        """Redraw the bar: ``done`` of ``total`` units."""
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label} {elapsed:5.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
