"""Query parameters shared by the list and summary endpoints, validated into storage terms.

Every failure is a 422 naming the parameter (``{"parameter": "since", "in": "query", ...}``),
the same shape FastAPI's own validation errors get in :mod:`.errors`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone

from fastapi import Query

from agenttrail.storage.queries import RUN_SORTS, Page

from .errors import ApiError

MAX_LIMIT = 500
MAX_TEXT = 256
_MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_TIME = datetime(2262, 1, 1, tzinfo=timezone.utc)  # Int64 nanoseconds end in 2262


def bad_parameter(name: str, message: str, where: str = "query") -> ApiError:
    """A 422 for one named parameter."""
    return ApiError(422, f"{name}: {message}",
                    details=[{"parameter": name, "in": where, "message": message}])


def parse_time(name: str, value: str | None) -> int | None:
    """An ISO-8601 time (``Z``/offset; no zone = UTC) as nanoseconds since the epoch."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_parameter(name, "must be an ISO-8601 time such as 2026-01-21T00:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if not _MIN_TIME <= parsed < _MAX_TIME:
        raise bad_parameter(name, "must lie between 1970 and 2262")
    delta = parsed - _MIN_TIME
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def time_window(since: str | None, until: str | None, default_hours: int | None,
                names: tuple[str, str] = ("since", "until")):
    """(since_ns, until_ns); a missing bound defaults to now / now − ``default_hours``.

    ``names`` are the parameters' names as the caller sent them, for the error message."""
    since_ns, until_ns = parse_time(names[0], since), parse_time(names[1], until)
    if default_hours is not None:
        now_ns = int(datetime.now(timezone.utc).timestamp() * 1e9)
        until_ns = now_ns + 1 if until_ns is None else until_ns
        since_ns = until_ns - default_hours * 3_600_000_000_000 if since_ns is None else since_ns
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise bad_parameter(names[0], f"must be earlier than {names[1]}")
    return since_ns, until_ns


def text(description: str, **extra):
    """An optional free-text filter, bounded in length."""
    return Query(None, max_length=MAX_TEXT, description=description, **extra)


def limit_query(default: int = 50, maximum: int = MAX_LIMIT):
    """The ``limit`` parameter: at least 1, at most ``maximum`` (more is a 422, not a surprise)."""
    return Query(default, ge=1, le=maximum, description=f"Page size, 1–{maximum}.")


# -- opaque cursors ----------------------------------------------------------------------------

def encode_cursor(payload: dict) -> str:
    """An opaque, URL-safe cursor for ``payload``."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> dict:
    """The payload of a cursor made by :func:`encode_cursor`; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_parameter("cursor", "is not a cursor returned by this API") from None
    if not isinstance(payload, dict):
        raise bad_parameter("cursor", "is not a cursor returned by this API")
    return payload


def run_page(cursor: str | None, sort: str, descending: bool) -> Page:
    """The page a run-list cursor continues; the cursor must belong to the same sort order."""
    if cursor is None:
        return Page(sort=sort, descending=descending)
    payload = decode_cursor(cursor)
    value, run_id = payload.get("v"), payload.get("r")
    wants_int = RUN_SORTS[sort][1] != "Float64"
    value_ok = isinstance(value, int) if wants_int else isinstance(value, (int, float))
    if not (isinstance(run_id, str) and len(run_id) <= 64 and value_ok and not isinstance(value, bool)):
        raise bad_parameter("cursor", "is not a cursor returned by this API")
    if payload.get("s") != sort or payload.get("d") != descending:
        raise bad_parameter("cursor", "was made for another sort order: repeat the same sort")
    if wants_int and not (-2**63 <= value < 2**64):
        raise bad_parameter("cursor", "is not a cursor returned by this API")
    return Page(sort=sort, descending=descending, after_value=value, after_run_id=run_id)


def run_cursor(page: Page, last: tuple | None) -> str | None:
    """The cursor of the page after one that ended at ``last``."""
    if last is None:
        return None
    value, run_id = last
    return encode_cursor({"s": page.sort, "d": page.descending, "v": value, "r": run_id})


def parse_sort(value: str) -> tuple[str, bool]:
    """``-started_at`` (newest first, the default) → ("started_at", True); whitelisted names only."""
    descending = value.startswith("-")
    name = value[1:] if descending else value
    if name not in RUN_SORTS:
        raise bad_parameter("sort", f"must be one of {', '.join(sorted(RUN_SORTS))}, optionally prefixed with -")
    return name, descending
