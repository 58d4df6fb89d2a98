"""The ``events`` table's stream, read back: a record's NEW_IMAGE (DynamoDB-typed JSON, as
Lambda delivers it) as the look the recording path stored, with the write shard its key
names (storage/keys.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.model import ViewEvent
from chalicelib.storage import codec


def event_from_image(image: Mapping[str, Any]) -> ViewEvent:
    """The stored look; raises KeyError, ValueError or TypeError for an item that is not one
    (another writer's item, a damaged record)."""
    return codec.event_from_item(plain_image(image))


def plain_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """``codec.from_typed`` of an image, with the types an event item holds (strings,
    integers, booleans) decoded directly: the stream handler decodes every look, at a
    busy post's thousands a second, and boto3's deserializer costs several times more."""
    plain: dict[str, Any] = {}
    for name, typed in image.items():
        if len(typed) == 1:
            if "S" in typed:
                plain[name] = typed["S"]
                continue
            if "BOOL" in typed:
                plain[name] = typed["BOOL"]
                continue
            text = typed.get("N")
            if isinstance(text, str) and text.lstrip("-").isdigit():
                plain[name] = int(text)
                continue
        plain.update(codec.from_typed({name: typed}))
    return plain
