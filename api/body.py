"""JSON bodies read by hand: bounded while they arrive, and described to OpenAPI by the
endpoint itself (``/v1/events`` and ``/v1/agent-runs`` read theirs this way so that a huge body
stops early and one bad item cannot fail the whole body)."""

from __future__ import annotations

import json

from fastapi import Request
from pydantic import BaseModel

from .errors import ApiError


async def read_json(request: Request, max_bytes: int):
    """The request's body parsed as JSON: 413 past ``max_bytes`` (declared or streamed), 400
    when it is not JSON (deep nesting included)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"body larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, f"body larger than {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "body is not valid JSON") from None


def inlined_schema(model: type[BaseModel]) -> dict:
    """``model``'s JSON schema with every ``$ref`` to its ``$defs`` replaced by the definition,
    so it can sit inside an ``openapi_extra`` request body, where ``#/$defs/…`` resolves to nothing."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)
