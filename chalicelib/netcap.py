"""One network cannot inflate a post (DESIGN §8).

Each raw web look carries ``net``: a keyed hash of the client's IPv4 address or IPv6 /64
(``network_of``). Per (post, UTC day, net), at most ``VTS_NET_VIEWS`` anonymous Views and
``VTS_NET_IMPRESSIONS`` Impressions count; a signed-in viewer is one Visitor wherever it is,
so its Views are not held (its Impressions are). Players carry no ``net``: their own rate
holds them.

Two places enforce it. The recording path, per container and at no extra write (``NetCaps``:
an in-memory tally of what this container stored), so several containers together may
store a little more than the cap: the containers' slack. The daily close, exactly
(``within_caps``): it keeps the earliest looks of each net and drops the rest from the
closed Day, so a closed Day never exceeds the cap whatever the containers did.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.model import ViewEvent

DEFAULT_MAX_TALLIES = 200_000


def network_of(key: str, ip: str | None) -> str | None:
    """A keyed hash of the client's network: the IPv4 address, or the IPv6 /64 (one
    household or phone gets a whole /64). None when there is no address to hash."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            address_text = str(mapped)
        else:
            address_text = str(ipaddress.IPv6Network((address, 64), strict=False))
    else:
        address_text = str(address)
    digest = hmac.new(key.encode(), b"net\x00" + address_text.encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Caps:
    views: int
    impressions: int

    def limit(self, event: ViewEvent) -> int | None:
        """The cap this look falls under, or None when it is held to none."""
        if event.net is None:
            return None
        if event.intent == "impression":
            return self.impressions
        return None if event.authenticated else self.views


def _measure(event: ViewEvent) -> str:
    return "i" if event.intent == "impression" else "v"


class NetCaps:
    """What this container stored per (post, day, net, measure): a bounded tally."""

    def __init__(self, caps: Caps, max_tallies: int = DEFAULT_MAX_TALLIES) -> None:
        self.caps = caps
        self._max = max(1, max_tallies)
        self._lock = threading.Lock()
        self._tallies: OrderedDict[tuple[int, str, str, str], int] = OrderedDict()

    def _key(self, event: ViewEvent) -> tuple[int, str, str, str]:
        return (event.post_id, event.day, event.net or "", _measure(event))

    def full(self, event: ViewEvent) -> bool:
        """Whether storing this look would pass its network's cap (as far as we know)."""
        limit = self.caps.limit(event)
        if limit is None:
            return False
        with self._lock:
            return self._tallies.get(self._key(event), 0) >= limit

    def stored(self, event: ViewEvent) -> None:
        """Note a look the store accepted."""
        if self.caps.limit(event) is None:
            return
        key = self._key(event)
        with self._lock:
            self._tallies[key] = self._tallies.get(key, 0) + 1
            self._tallies.move_to_end(key)
            while len(self._tallies) > self._max:
                self._tallies.popitem(last=False)


def within_caps(events: Iterable[ViewEvent], caps: Caps) -> list[ViewEvent]:
    """The looks of one post and day that count: for each net and measure, the earliest
    ``cap`` (by time, then visitor and event id, so every close agrees)."""
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.visitor, e.event_id or ""))
    seen: dict[tuple[str, str], int] = {}
    kept: list[ViewEvent] = []
    for event in ordered:
        limit = caps.limit(event)
        if limit is not None:
            key = (event.net or "", _measure(event))
            if seen.get(key, 0) >= limit:
                continue
            seen[key] = seen.get(key, 0) + 1
        kept.append(event)
    return kept
