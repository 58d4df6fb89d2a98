"""An artist's post listing (the ``by_views`` index), the same for both ``AggregateStore``
adapters: the opaque page cursor (base64url JSON of the last entry's index key) and the
rows a page returns (each listed post's lifetime figures, projected from its ``RANK`` item)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.errors import BadRequest
from chalicelib.storage.tables import RANK_ROW_ATTRIBUTES

IndexKey = tuple[int, str, str]
_MAX_KEY = 1024  # DynamoDB's limit for a sort key, in bytes; our keys are far shorter


def index_key(item: Mapping[str, Any]) -> IndexKey:
    """Where an item sits in the index: Views, then the table key (ties)."""
    return int(item["v"]), str(item["pk"]), str(item["sk"])


def encode_cursor(item: Mapping[str, Any]) -> str:
    body = {"g": item["gpk"], "v": int(item["v"]), "pk": item["pk"], "sk": item["sk"]}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, gpk: str) -> IndexKey:
    """The index key a cursor points after; ``BadRequest`` for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
        if body["g"] != gpk:
            raise ValueError("a cursor of another listing")
        # Only the shape encode_cursor writes: a forged 1e999, 1.5 or "" must never reach a
        # store (int(inf) overflows; DynamoDB refuses such a start key with a 500).
        v, pk, sk = body["v"], body["pk"], body["sk"]
        if type(v) is not int or not 0 <= v < 2**63:
            raise ValueError("v is not a count")
        if not all(isinstance(k, str) and 0 < len(k.encode()) <= _MAX_KEY for k in (pk, sk)):
            raise ValueError("pk and sk are not keys")
        return v, pk, sk
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise BadRequest(
            "the cursor is not valid for this listing", code="invalid_cursor"
        ) from None


def lifetime_rows(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The listed posts' lifetime figures in index order, as the index projects them from
    their ``RANK`` items (a post listed twice appears once)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in entries:
        pk = str(entry["pk"])
        if pk in seen:
            continue
        seen.add(pk)
        row = {"pk": pk, "v": int(entry.get("v", 0))}
        row.update({k: entry[k] for k in RANK_ROW_ATTRIBUTES if entry.get(k) is not None})
        rows.append(row)
    return rows
