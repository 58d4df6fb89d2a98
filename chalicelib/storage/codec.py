"""Item codecs: domain values <-> DynamoDB items (plain and typed JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast

from chalicelib.days import iso, parse_iso
from chalicelib.model import HotMark, Intent, PlayerRecord, PostRecord, Source, ViewEvent
from chalicelib.storage import keys
from chalicelib.storage.tables import TTL_ATTRIBUTE


@lru_cache(maxsize=1)
def _types() -> tuple[Any, Any]:
    # boto3 costs ~130 ms to import: only pay it where items are really (de)serialised.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


# Short attribute names keep raw events well under 1 KB.
_EVENT_OPTIONAL = {
    "country": "cc",
    "channel": "ch",
    "channel_context": "cx",
    "play_order": "po",
    "referrer_domain": "rf",
    "playlist_id": "pl",
    "player_key": "pk_",
    "timezone": "tz",
    "net": "net",
}


def to_typed(item: dict[str, Any]) -> dict[str, Any]:
    serializer = _types()[0]
    return {k: serializer.serialize(v) for k, v in item.items() if v is not None}


def from_typed(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = _types()[1]
    return {k: _plain(deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_plain(v) for v in value]
    return value


def event_item(event: ViewEvent, ttl_days: int) -> dict[str, Any]:
    """The plain item for one event (keys included; a hot post's under its ``shard``)."""
    day = event.day
    if event.intent == "view":
        sk = keys.view_sk(event.visitor)
    else:
        if not event.event_id:
            raise ValueError("an Impression needs an event_id")
        sk = keys.impression_sk(event.event_id)
    item: dict[str, Any] = {
        "pk": keys.event_pk(event.post_id, day, event.shard),
        "sk": sk,
        "post": event.post_id,
        "own": event.owner_id,
        "at": iso(event.occurred_at),
        "vis": event.visitor,
        "au": event.authenticated,
        "src": event.source,
        "dev": event.device,
        TTL_ATTRIBUTE: keys.event_expires_at(day, ttl_days),
    }
    for attr, short in _EVENT_OPTIONAL.items():
        value = getattr(event, attr)
        if value is not None:
            item[short] = value
    if event.device_at is not None:
        item["dat"] = iso(event.device_at)
    return item


def event_from_item(item: dict[str, Any]) -> ViewEvent:
    """Decode a plain event item (e.g. a stream NEW_IMAGE after ``from_typed``)."""
    sk = str(item["sk"])
    intent: Intent = "view" if sk.startswith("V#") else "impression"
    optional = {attr: item.get(short) for attr, short in _EVENT_OPTIONAL.items()}
    if optional["play_order"] is not None:
        optional["play_order"] = int(optional["play_order"])
    return ViewEvent(
        post_id=int(item["post"]),
        owner_id=str(item["own"]),
        intent=intent,
        occurred_at=parse_iso(str(item["at"])),
        visitor=str(item["vis"]),
        authenticated=bool(item["au"]),
        source=cast(Source, item["src"]),
        device=str(item["dev"]),
        device_at=parse_iso(str(item["dat"])) if item.get("dat") else None,
        event_id=sk[2:] if intent == "impression" else None,
        shard=keys.event_shard(str(item["pk"])),
        **optional,
    )


_POST_OPTIONAL = ("sqid", "title", "art_url")


def post_item(post: PostRecord) -> dict[str, Any]:
    pk, sk = keys.post_key(post.post_id)
    item: dict[str, Any] = {
        "pk": pk,
        "sk": sk,
        "owner_id": post.owner_id,
        "registered_at": iso(post.registered_at),
    }
    item.update({name: getattr(post, name) for name in _POST_OPTIONAL if getattr(post, name)})
    # Only the exceptions are stored: items written before these flags read as counting.
    if not post.visible:
        item["visible"] = False
    if post.deleted:
        item["deleted"] = True
    return item


def post_from_item(post_id: int, item: dict[str, Any]) -> PostRecord:
    optional = {name: str(item[name]) for name in _POST_OPTIONAL if item.get(name)}
    return PostRecord(
        post_id,
        str(item["owner_id"]),
        parse_iso(str(item["registered_at"])),
        sqid=optional.get("sqid"),
        title=optional.get("title"),
        art_url=optional.get("art_url"),
        visible=bool(item.get("visible", True)),
        deleted=bool(item.get("deleted", False)),
    )


def hot_item(post_id: int, mark: HotMark) -> dict[str, Any]:
    """A post's hot mark; it expires (TTL) when the mark ends, and reads ignore it after
    ``until`` as TTL deletion lags."""
    pk, sk = keys.hot_key(post_id)
    until = keys.epoch_s(mark.until)
    return {"pk": pk, "sk": sk, "n": mark.shards, "until": until, TTL_ATTRIBUTE: until}


def hot_from_item(item: dict[str, Any]) -> HotMark:
    return HotMark(shards=int(item["n"]), until=datetime.fromtimestamp(int(item["until"]), UTC))


def player_item(player: PlayerRecord) -> dict[str, Any]:
    pk, sk = keys.player_key(player.player_key)
    return {
        "pk": pk,
        "sk": sk,
        "owner_id": player.owner_id,
        "registered_at": iso(player.registered_at),
        "country": player.country,
        "timezone": player.timezone,
        "name": player.name,
        "revoked": True if player.revoked else None,
    }


def player_from_item(player_key: str, item: dict[str, Any]) -> PlayerRecord:
    return PlayerRecord(
        player_key=player_key,
        owner_id=str(item["owner_id"]),
        registered_at=parse_iso(str(item["registered_at"])),
        country=item.get("country"),
        timezone=item.get("timezone"),
        name=item.get("name"),
        revoked=bool(item.get("revoked", False)),
    )


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8), numbers about 21 bytes max."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        size += _value_size(value)
    return size


def _value_size(value: Any) -> int:
    if isinstance(value, str):  # first: most attributes are strings
        return len(value.encode())
    if value is None:
        return 1
    if isinstance(value, bool):
        return 1
    if isinstance(value, (int, float, Decimal)):
        digits = len(str(abs(value)).replace(".", "").lstrip("0")) or 1
        return 1 + (digits + 1) // 2 + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return 3 + sum(_value_size(v) + 1 for v in value)
    raise TypeError(f"cannot size {type(value).__name__}")
