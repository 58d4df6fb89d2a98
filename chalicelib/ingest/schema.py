"""Edge validation of recording requests: bytes in, a typed request or ``BadRequest`` out."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.errors import BadRequest, PayloadTooLarge, describe

MAX_BODY_BYTES = 2048
CHANNEL_PATTERN = r"^[a-z0-9_]{1,32}$"


class RecordViewRequest(BaseModel):
    """The optional body of ``POST /v1/posts/{post_id}/views`` (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    intent: Literal["view", "impression"] = "view"
    source: Literal["web", "widget", "api"] = "web"
    channel: str | None = Field(default=None, pattern=CHANNEL_PATTERN)
    channel_context: str | None = Field(default=None, max_length=100)
    referrer: str | None = Field(default=None, max_length=2048)
    playlist_id: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("referrer")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if (
            value is not None
            and value != ""
            and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value)
        ):
            raise ValueError("referrer must be an absolute URL")
        return value or None


def parse_body(raw: bytes | None) -> RecordViewRequest:
    """JSON object (sent as application/json or text/plain), or nothing, into a request."""
    if raw and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(raw)} bytes; at most {MAX_BODY_BYTES} allowed")
    if not raw or not raw.strip():
        return RecordViewRequest()
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return from_mapping(data)


def from_mapping(data: dict[str, Any]) -> RecordViewRequest:
    try:
        return RecordViewRequest.model_validate(data)
    except ValidationError as error:
        raise BadRequest(describe(error), code="invalid_field") from None
