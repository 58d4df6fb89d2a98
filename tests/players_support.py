"""Helpers shared by the player tests: firmware-shaped payloads and rule events built by
the real rule (iot_rules/player_views.json), never by hand."""

from __future__ import annotations

import itertools
import json
from typing import Any

from iot_rules import player_views_rule
from tests.conftest import load_event

PLAYER = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"  # the key the p3a_* fixtures carry
FIXTURES = (
    "p3a_channel_reactions",
    "p3a_channel_all",
    "p3a_named_default",
    "p3a_by_user",
    "p3a_hashtag",
    "p3a_artwork_ack",
    "p3a_unset_clock",
    "p3a_unknown_channel",
)
RULE = player_views_rule()
# Each delivery gets its own receive time, as IoT Core stamps it (timestamp()).
_RECEIVED = itertools.count(1_795_514_400_000)


def firmware_payload(name: str = "p3a_channel_reactions", **changes: Any) -> dict[str, Any]:
    """A stored firmware payload, optionally changed (keys keep the firmware's order)."""
    payload: dict[str, Any] = load_event(name)
    payload.update(changes)
    return payload


def view_topic(player_key: str) -> str:
    return f"makapix/player/{player_key}/view"


def rule_event(
    payload: dict[str, Any] | bytes,
    topic_key: str | None = None,
    received_at: int | None = None,
    client_id: str | None = "",
) -> dict[str, Any]:
    """What the rule hands the Lambda for ``payload`` published on the player's topic, by
    the frame itself (``p3a-{key}``) unless another ``client_id`` is given."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    key = topic_key if topic_key is not None else (
        payload.get("player_key", PLAYER) if isinstance(payload, dict) else PLAYER
    )
    if client_id == "":
        client_id = f"p3a-{key}"
    received = next(_RECEIVED) if received_at is None else received_at
    event = RULE.build_event(view_topic(str(key)), raw, client_id, received)
    assert event is not None, "the rule would not invoke the Lambda for this payload"
    return event
