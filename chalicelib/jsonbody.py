"""JSON request bodies at the edge: one object, or a ``BadRequest`` that says what is wrong."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.errors import BadRequest


def json_object(raw: bytes | None) -> dict[str, Any]:
    """A required JSON object body (the registry routes)."""
    if not raw or not raw.strip():
        raise BadRequest("a JSON object body is required", code="invalid_json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return data
