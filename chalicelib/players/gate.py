"""The retransmission and rate checks of a player's report (DESIGN §4), in one write if it can.

The rules: the same (player, post, device timestamp) again within the window is a
retransmission, dropped, and never spends the player's slot (it is checked first); otherwise
one report per interval per player; a redelivered event (the same token: a Lambda retry)
passes both, as it did the first time.

Each player has one gate item in the registry (layout: storage/gate.py) holding its rate
slot and the messages it admitted within the window. A report the player is allowed to send
is admitted by ONE conditional write there; a retransmission of an admitted report is refused
by that same write (ALL_OLD tells it from a held slot).

A report refused by the slot still needs a seen-once marker of its own, so that its own
retransmission is known later, even once the slot is free. The gate then notes
``marked_until`` (about once per window per player): until then the gate refuses one-write
admissions, and reports take the rules' own order instead: the gate is read (repeat? slot?),
the report's marker is written (first sighting?), then the slot is taken. The read comes
first so that a marker is never written for a report the gate already admitted (it would
stretch that report's window). A container that learned ``marked_until`` (it only grows)
reads instead of trying a write that would be refused.

Why one write, and the writes each case costs: docs/adr/0012-player-gate-in-one-write.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chalicelib.known import Lru
from chalicelib.storage.gate import ring_size
from chalicelib.storage.ports import Admission, GateClaim, Registry

MARKER_SCOPE = "ptx"
SLOT_SCOPE = "player"
# How far ahead ``marked_until`` is noted, in windows: past the one window a marker needs,
# so that a player refused again and again notes it about once per window, not every time.
MARKED_AHEAD_WINDOWS = 2


@dataclass(frozen=True)
class Verdict:
    kind: Literal["admitted", "retransmission", "rate_limited"]
    wait_s: float | None = None


ADMITTED = Verdict("admitted")
RETRANSMISSION = Verdict("retransmission")


class ReportGate:
    def __init__(
        self, registry: Registry, interval_s: int, window_s: int, max_players: int = 100_000
    ) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._window_s = window_s
        # Settings the ring cannot serve (no rate limit, a window of many intervals) keep
        # the separate marker and slot.
        self._one_write = ring_size(interval_s, window_s) is not None
        # player -> the gate's marked_until as last answered (it never moves back).
        self._marked: Lru[str, int] = Lru(max_players)

    def check(
        self, player_key: str, post_id: int, timestamp: str | None, now: datetime, token: str | None
    ) -> Verdict:
        # A QoS 1 redelivery repeats the message byte for byte: same post, same device time.
        claim = GateClaim(
            SLOT_SCOPE,
            player_key,
            f"{post_id}#{timestamp or '-'}",
            self._interval_s,
            self._window_s,
            now,
            token,
        )
        if not self._one_write:
            return self._separately(claim)
        if (self._marked.get(player_key) or 0) > claim.now_ms:
            found = self._learn(claim, self._registry.peek_gate(claim))
        else:
            found = self._learn(claim, self._registry.admit(claim))
        if found.admitted:
            return ADMITTED
        if found.repeat:
            return RETRANSMISSION
        if found.wait_s is not None:
            return self._refused(found, claim, marked=False)
        # The slot is free but markers of refused reports may be live: the rules' order.
        if not self._mark(claim):
            return RETRANSMISSION
        found = self._learn(claim, self._registry.admit(claim, unless_marked=False))
        if found.admitted:
            return ADMITTED
        if found.repeat:
            return RETRANSMISSION
        return self._refused(found, claim, marked=True)

    def _refused(self, found: Admission, claim: GateClaim, *, marked: bool) -> Verdict:
        """The slot is held. The report still needs its marker, and the gate must know one may
        be live before a later copy of this report could be admitted in one write."""
        window_ms = claim.window_s * 1000
        if found.marked_until_ms < claim.now_ms + window_ms:
            until_ms = claim.now_ms + MARKED_AHEAD_WINDOWS * window_ms
            noted = self._learn(claim, self._registry.note_marked(claim, until_ms))
            if noted.repeat:  # another copy of this report was admitted meanwhile
                return RETRANSMISSION
        if not marked and not self._mark(claim):
            return RETRANSMISSION
        return Verdict("rate_limited", found.wait_s or 0.0)

    def _separately(self, claim: GateClaim) -> Verdict:
        if not self._mark(claim):
            return RETRANSMISSION
        wait_s = self._registry.take_slot(
            claim.scope, claim.subject, claim.interval_s, claim.now, token=claim.token
        )
        return ADMITTED if wait_s is None else Verdict("rate_limited", wait_s)

    def _learn(self, claim: GateClaim, found: Admission) -> Admission:
        if found.marked_until_ms > (self._marked.get(claim.subject) or 0):
            self._marked.put(claim.subject, found.marked_until_ms)
        return found

    def _mark(self, claim: GateClaim) -> bool:
        return self._registry.mark_once(
            MARKER_SCOPE,
            f"{claim.subject}#{claim.message}",
            claim.window_s,
            claim.now,
            token=claim.token,
        )
