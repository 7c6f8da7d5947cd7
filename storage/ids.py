"""Run and step identifiers as agenttrail stores them: lowercase hex."""

from __future__ import annotations

import re

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def normalize_run_id(value: str) -> str:
    """A run id as 32 lowercase hex characters; the UUID form (with dashes) is accepted.

    Raises ValueError for anything else.
    """
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("run_id must be 32 hex characters (a trace id) or a UUID")
    candidate = value.strip().lower().replace("-", "")
    if not _HEX32.match(candidate) or (len(value.strip()) == 36 and value.count("-") != 4):
        raise ValueError("run_id must be 32 hex characters (a trace id) or a UUID")
    return candidate
