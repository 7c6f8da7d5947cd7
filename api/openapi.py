"""OpenAPI helpers for endpoints that read their JSON body by hand (to bound it, or so that one
bad item cannot fail the whole body) and so describe it themselves."""

from __future__ import annotations

from pydantic import BaseModel


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
