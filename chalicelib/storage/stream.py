"""The ``events`` table's stream, read back: a record's NEW_IMAGE (DynamoDB-typed JSON, as
Lambda delivers it) as the look the recording path stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.model import ViewEvent
from chalicelib.storage import codec


def event_from_image(image: Mapping[str, Any]) -> ViewEvent:
    """The stored look; raises KeyError, ValueError or TypeError for an item that is not one
    (another writer's item, a damaged record)."""
    return codec.event_from_item(codec.from_typed(dict(image)))
