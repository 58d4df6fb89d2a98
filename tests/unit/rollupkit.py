"""Small builders for the rollup unit tests: events, and Lambda stream records of them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from chalicelib.model import ViewEvent
from chalicelib.storage import codec

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t-events/stream/2026-11-24T00:00:00.000"


def look(post: int = 7, visitor: str = "h:a", **changes: Any) -> ViewEvent:
    base: dict[str, Any] = dict(
        post_id=post,
        owner_id="artist-1",
        intent="view",
        occurred_at=AT,
        visitor=visitor,
        authenticated=False,
        source="web",
        device="mobile",
        country="BR",
    )
    base.update(changes)
    if base["intent"] == "impression" and not base.get("event_id"):
        seed = f"{post}|{visitor}|{base['occurred_at'].isoformat()}".encode()
        base["event_id"] = "01KAT" + hashlib.sha1(seed).hexdigest()[:21].upper()
    return ViewEvent(**base)


def record(event: ViewEvent, seq: int, name: str = "INSERT") -> dict[str, Any]:
    item = codec.event_item(event, 35)
    typed = codec.to_typed(item)
    out: dict[str, Any] = {
        "eventID": f"id-{seq}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": int(event.occurred_at.timestamp()),
            "Keys": {"pk": typed["pk"], "sk": typed["sk"]},
            "SequenceNumber": str(10**20 + seq),
            "SizeBytes": codec.item_size(item),
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": ARN,
    }
    if name != "REMOVE":
        out["dynamodb"]["NewImage"] = typed
    return out


def batch(events: list[ViewEvent], first_seq: int = 1) -> dict[str, Any]:
    return {"Records": [record(e, first_seq + n) for n, e in enumerate(events)]}
