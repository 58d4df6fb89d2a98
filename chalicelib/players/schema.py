"""Edge validation of player view reports (DESIGN §4, compatible with the p3a firmware).

A report is the rule's event: the MQTT payload's fields at top level plus the rule's
``topic_player_key``, ``client_id`` and ``received_at``. The model is tolerant where the
firmware is loose (JSON ``null`` for optional fields, ``timezone`` ``""``, an unset clock,
channel tokens it has not heard of) and strict where a value would change what is counted.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.errors import describe

Intent = Literal["artwork", "intentional", "channel", "automated"]
VIEW_INTENTS = frozenset({"artwork", "intentional"})

# A clock that was never set starts at the epoch; anything before this is not a real time.
EARLIEST_DEVICE_TIME = datetime(2001, 1, 1, tzinfo=UTC)
UNSET_CLOCK = "1970-01-01T00:00:00Z"
CONTEXT_MAX = 100
_TOKEN = re.compile(r"^[a-z0-9_]{1,32}$")
_NOT_TOKEN = re.compile(r"[^a-z0-9_]+")
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
RULE_FIELDS = ("topic_player_key", "client_id", "received_at")


def canonical_player_key(text: object) -> str | None:
    """The lower-case hyphenated form of a UUID player key, or None if it is not one."""
    if not isinstance(text, str) or len(text) != 36:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def channel_token(text: str) -> str | None:
    """A channel as stored: a known-shape token as it is; anything else made into one.

    Newer firmware may add channels: an unfamiliar token is never a reason to drop a view.
    """
    if _TOKEN.match(text):
        return text
    token = _NOT_TOKEN.sub("_", text.strip().lower()).strip("_")[:32]
    return token or None


def device_time(text: str | None) -> datetime | None:
    """The player's clock reading, or None when it was never set (or not sent)."""
    if text is None or text == UNSET_CLOCK:
        return None
    at = datetime.fromisoformat(text)
    try:
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00: no real clock, like an unset one.
        return None
    return at if at >= EARLIEST_DEVICE_TIME else None


class PlayerViewMessage(BaseModel):
    """One view report as a player sends it (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    post_id: int
    timestamp: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)
    intent: Intent
    play_order: int | None = Field(default=None, ge=0, le=2)
    channel: str | None = Field(default=None, max_length=64)
    channel_user_sqid: str | None = Field(default=None, max_length=256)
    channel_hashtag: str | None = Field(default=None, max_length=256)
    player_key: str = Field(max_length=64)
    request_ack: bool = False
    playlist_id: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("post_id", mode="before")
    @classmethod
    def _post_id(cls, value: Any) -> int:
        # A positive integer; decimal text is accepted (DESIGN §1), booleans are not numbers.
        if isinstance(value, bool):
            raise ValueError("post_id must be a positive integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
            value = int(value)
        if not isinstance(value, int) or not 0 < value < 2**63:
            raise ValueError("post_id must be a positive integer")
        return value

    @field_validator("play_order", mode="before")
    @classmethod
    def _play_order(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("play_order must be 0, 1 or 2")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                device_time(value)
            except ValueError:
                raise ValueError("timestamp must be an ISO 8601 time") from None
        return value

    @field_validator("timezone", "channel_user_sqid", "channel_hashtag")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value if value else None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return channel_token(value) if value else None

    @field_validator("request_ack", mode="before")
    @classmethod
    def _request_ack(cls, value: Any) -> Any:
        return False if value is None else value

    @property
    def is_view(self) -> bool:
        return self.intent in VIEW_INTENTS

    @property
    def device_at(self) -> datetime | None:
        return device_time(self.timestamp)

    @property
    def channel_context(self) -> str | None:
        """The user sqid or hashtag the channel was built from (the one that fits the channel)."""
        first, second = self.channel_user_sqid, self.channel_hashtag
        if self.channel == "hashtag":
            first, second = second, first
        context = first or second
        return context[:CONTEXT_MAX] if context else None

    @property
    def valid_timezone(self) -> str | None:
        """The reported IANA zone when it looks like one (it is only a fallback)."""
        tz = self.timezone
        return tz if tz and _TZ_NAME.match(tz) else None


class InvalidReport(Exception):
    """The report is not a valid view report; ``message`` says why (never raised past the pipeline)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_message(event: dict[str, Any]) -> PlayerViewMessage:
    """The payload part of a rule event as a message, or ``InvalidReport``."""
    payload = {k: v for k, v in event.items() if k not in RULE_FIELDS}
    try:
        return PlayerViewMessage.model_validate(payload)
    except ValidationError as error:
        raise InvalidReport(describe(error)[:200]) from None
