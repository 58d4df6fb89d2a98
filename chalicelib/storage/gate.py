"""The layout of a player's report gate: one registry item per player (``keys.rate_key``).

The item holds, beside the rate slot (``until_ms``, ``tok``, the same attributes a plain
``take_slot`` writes), a ring of the messages admitted within the retransmission window
(``m{i}`` message digest, ``u{i}`` window end in epoch ms, ``t{i}`` a tag of the delivery's
token), and ``mu``: until when seen-once markers of refused messages may still be live.

Admitted messages are at least one rate interval apart (each takes the slot, which frees only
after the interval), so at most one is admitted per interval-long period: slot
``(now_ms // interval_ms) % size`` with ``size = ceil(window / interval) + 1`` is never
still in its window when it is written again. Item size stays under 1 KB (one write unit)
for the ring sizes allowed.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from typing import Any

from chalicelib.storage.ports import GATE_MAX_RING, Admission, GateClaim

UNTAGGED = "-"


def ring_size(interval_s: int, window_s: int) -> int | None:
    """How many ring slots cover ``window_s``; None when a gate cannot serve these settings."""
    if interval_s <= 0 or window_s < 0:
        return None
    size = math.ceil(window_s / interval_s) + 1
    return size if size <= GATE_MAX_RING else None


def checked_ring_size(claim: GateClaim) -> int:
    size = ring_size(claim.interval_s, claim.window_s)
    if size is None:
        raise ValueError(
            f"no gate for a {claim.interval_s} s interval and a {claim.window_s} s window"
        )
    return size


def ring_index(claim: GateClaim, size: int) -> int:
    return (claim.now_ms // (claim.interval_s * 1000)) % size


def _digest(text: str, size: int) -> str:
    raw = hashlib.blake2b(text.encode(), digest_size=size).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def message_digest(message: str) -> str:
    """A short stand-in for the message: collisions within one player's window are negligible."""
    return _digest(message, 9)


def token_tag(token: str | None) -> str:
    return UNTAGGED if token is None else _digest(token, 6)


def expires_at(claim: GateClaim) -> int:
    # Past every end this write or an earlier one set (markers are noted up to 2 windows on).
    return math.ceil(claim.now_ms / 1000) + max(claim.interval_s, 2 * claim.window_s) + 60


def read(item: Mapping[str, Any], claim: GateClaim, size: int) -> Admission:
    """What a refused claim learns from the gate as it was (plain item: ints and strs)."""
    now_ms, token = claim.now_ms, claim.token
    digest, tag = message_digest(claim.message), token_tag(token)
    repeat = any(
        item.get(f"m{i}") == digest
        and int(item.get(f"u{i}", 0)) > now_ms
        and (token is None or item.get(f"t{i}") != tag)
        for i in range(size)
    )
    held_ms = int(item.get("until_ms", 0))
    holder = item.get("tok")
    wait_s = None
    if held_ms > now_ms and (token is None or holder != token):
        wait_s = (held_ms - now_ms) / 1000
    return Admission(
        admitted=False, repeat=repeat, wait_s=wait_s, marked_until_ms=int(item.get("mu", 0))
    )
