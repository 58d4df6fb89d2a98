"""The retransmission and rate checks of a player's report (DESIGN §4), in one write if it can.

The rules: the same (player, post, device timestamp) again within the window is a
retransmission, dropped, and never spends the player's slot (it is checked first); otherwise
one report per interval per player; a redelivered event (the same token: a Lambda retry)
passes both, as it did the first time.

Each player has one gate item in the registry (layout: storage/gate.py) holding its rate
slot and the messages it admitted within the window. A report the player is allowed to send
is admitted by ONE conditional write there; a retransmission of an admitted report is refused
by that same write (ALL_OLD tells it from a held slot).

A report refused by the slot still needs a seen-once marker of its own, as before, so that
its own retransmission is known later, even once the slot is free. The gate then notes
``marked_until`` (about once per window per player): until then the gate refuses one-write
admissions, and reports take the rules' own order instead: the gate is read (repeat? slot?),
the report's marker is written (first sighting?), then the slot is taken. The read comes
first so that a marker is never written for a report the gate already admitted (it would
stretch that report's window). A container that learned ``marked_until`` (it only grows)
reads instead of trying a write that would be refused.

Writes per report, against 2 before (a marker and a slot, always): admitted 1;
retransmission of an admitted report 1; rate-limited 2 (+1 when the gate notes markers; 1
once the container knows); while markers may be live, admitted 2 (3 the first time a
container meets them) and refused 1-2. A read is a fifth of a write's price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chalicelib.known import Lru, epoch_ms
from chalicelib.storage.gate import ring_size
from chalicelib.storage.ports import Admission, Registry

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
        message = f"{post_id}#{timestamp or '-'}"
        if not self._one_write:
            return self._separately(player_key, message, now, token)
        if (self._marked.get(player_key) or 0) > epoch_ms(now):
            found = self._learn(player_key, self._call("peek", player_key, message, now, token))
        else:
            found = self._learn(player_key, self._call("admit", player_key, message, now, token))
        if found.admitted:
            return ADMITTED
        if found.repeat:
            return RETRANSMISSION
        if found.wait_s is not None:
            return self._refused(found, player_key, message, now, token, marked=False)
        # The slot is free but markers of refused reports may be live: the rules' order.
        if not self._mark(player_key, message, now, token):
            return RETRANSMISSION
        found = self._learn(player_key, self._call("claim", player_key, message, now, token))
        if found.admitted:
            return ADMITTED
        if found.repeat:
            return RETRANSMISSION
        return self._refused(found, player_key, message, now, token, marked=True)

    def _refused(
        self,
        found: Admission,
        player_key: str,
        message: str,
        now: datetime,
        token: str | None,
        *,
        marked: bool,
    ) -> Verdict:
        """The slot is held. The report still needs its marker, and the gate must know one may
        be live before a later copy of this report could be admitted in one write."""
        now_ms = epoch_ms(now)
        window_ms = self._window_s * 1000
        if found.marked_until_ms < now_ms + window_ms:
            noted = self._learn(
                player_key,
                self._registry.note_marked(
                    SLOT_SCOPE,
                    player_key,
                    message,
                    self._interval_s,
                    self._window_s,
                    now_ms + MARKED_AHEAD_WINDOWS * window_ms,
                    now,
                    token,
                ),
            )
            if noted.repeat:  # another copy of this report was admitted meanwhile
                return RETRANSMISSION
        if not marked and not self._mark(player_key, message, now, token):
            return RETRANSMISSION
        return Verdict("rate_limited", found.wait_s or 0.0)

    def _separately(
        self, player_key: str, message: str, now: datetime, token: str | None
    ) -> Verdict:
        if not self._mark(player_key, message, now, token):
            return RETRANSMISSION
        wait_s = self._registry.take_slot(
            SLOT_SCOPE, player_key, self._interval_s, now, token=token
        )
        return ADMITTED if wait_s is None else Verdict("rate_limited", wait_s)

    def _call(
        self,
        how: Literal["peek", "admit", "claim"],
        player_key: str,
        message: str,
        now: datetime,
        token: str | None,
    ) -> Admission:
        """``admit``: one write, unless markers may be live; ``claim``: one write, the
        report's marker being written; ``peek``: a read of what ``admit`` would say."""
        args = (SLOT_SCOPE, player_key, message, self._interval_s, self._window_s, now, token)
        if how == "peek":
            return self._registry.peek_gate(*args)
        return self._registry.admit(*args, unless_marked=how == "admit")

    def _learn(self, player_key: str, found: Admission) -> Admission:
        if found.marked_until_ms > (self._marked.get(player_key) or 0):
            self._marked.put(player_key, found.marked_until_ms)
        return found

    def _mark(self, player_key: str, message: str, now: datetime, token: str | None) -> bool:
        return self._registry.mark_once(
            MARKER_SCOPE, f"{player_key}#{message}", self._window_s, now, token=token
        )
