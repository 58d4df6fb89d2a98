"""Recording player view reports: a pipeline of named steps over one rule event (DESIGN §4).

Steps, in the contract's order: ``parse`` -> ``match_key`` -> ``match_client`` -> ``find_player`` ->
``pass_gate`` (retransmission, then rate: players/gate.py) -> ``find_post`` (a hidden or
deleted post: ``player_post_not_counting``) ->
``drop_author_view`` -> ``store``. Each may end the report with an outcome; a drop is
counted by reason, never raised. Only an infrastructure fault raises (the Lambda is then
retried with the same event): the rule's ``received_at`` travels as a redelivery token, and
Impression ids are derived from the event, so a retried event is neither mistaken for its
own retransmission nor stored twice. A View is stored through the step the web shares
(chalicelib/views.py): a key the store confirmed is remembered in the container, so a frame
repeating a counted View costs no second write.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ulid import ULID

from chalicelib.clock import Clock
from chalicelib.drops import PLAYER_DROPS, DropCounter, DropReason
from chalicelib.enrich.visitor import user_visitor
from chalicelib.errors import ConfigError
from chalicelib.known import KnownViews
from chalicelib.model import PlayerRecord, PostRecord, ViewEvent
from chalicelib.players.acks import Ack, AckPublisher, ErrorCode, send_ack
from chalicelib.players.directory import PlayerDirectory
from chalicelib.players.gate import ReportGate
from chalicelib.players.schema import (
    InvalidReport,
    PlayerViewMessage,
    canonical_player_key,
    parse_message,
)
from chalicelib.registry.posts import PostDirectory
from chalicelib.storage.ports import EventStore, Registry
from chalicelib.views import ViewKeeper

COUNTED = "counted"
IMPRESSION = "impression"
# Drop reasons, in pipeline order (what /v1/health counts).
INVALID = DropReason.PLAYER_INVALID
KEY_MISMATCH = DropReason.PLAYER_KEY_MISMATCH
CLIENT_MISMATCH = DropReason.PLAYER_CLIENT_MISMATCH
UNREGISTERED = DropReason.PLAYER_UNREGISTERED
RETRANSMISSION = DropReason.PLAYER_RETRANSMISSION
RATE_LIMITED = DropReason.PLAYER_RATE_LIMITED
UNKNOWN_POST = DropReason.PLAYER_UNKNOWN_POST
POST_NOT_COUNTING = DropReason.PLAYER_POST_NOT_COUNTING
AUTHOR_VIEW = DropReason.PLAYER_AUTHOR_VIEW
DUPLICATE = DropReason.PLAYER_DUPLICATE
DROP_REASONS: tuple[str, ...] = PLAYER_DROPS
OUTCOMES = (COUNTED, IMPRESSION, *DROP_REASONS)

_MAX_ULID_MS = 2**48
# A player clock this far ahead of ours is still taken as the report's time for the rate.
CLOCK_AHEAD_S = 60


@dataclass
class Report:
    """One report as it moves through the steps."""

    event: Any
    now: datetime
    token: str | None = None
    topic_key: str | None = None  # as the topic carried it: where the ack goes
    player_key: str | None = None  # canonical form
    message: PlayerViewMessage | None = None
    player: PlayerRecord | None = None
    post: PostRecord | None = None


@dataclass(frozen=True)
class PlayerOutcome:
    reason: str
    counted: bool = False
    success: bool = True
    error_code: ErrorCode | None = None
    error: str | None = None
    retry_after_s: int | None = None

    @property
    def dropped(self) -> bool:
        return self.reason in DROP_REASONS


def _failure(
    reason: str, code: ErrorCode, error: str, retry_after_s: int | None = None
) -> PlayerOutcome:
    return PlayerOutcome(
        reason, success=False, error_code=code, error=error, retry_after_s=retry_after_s
    )


def redelivery_token(event: Any) -> str | None:
    """What identifies one delivery: the rule's receive time and the message itself.

    A Lambda retry carries the identical event, so the same token. The receive time alone is
    not enough: a flooding player's messages can share a millisecond. Two identical messages
    in the same millisecond get one token; they are then stored once (Views are deduplicated,
    Impression ids derive from the token) though both are reported accepted.
    """
    received = event.get("received_at") if isinstance(event, dict) else None
    if not isinstance(received, int) or isinstance(received, bool):
        return None
    try:
        text = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        return None
    return f"{received}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class PlayerViewRecorder:
    def __init__(
        self,
        *,
        events: EventStore,
        registry: Registry,
        players: PlayerDirectory,
        posts: PostDirectory,
        drops: DropCounter,
        acks: AckPublisher,
        clock: Clock,
        player_interval_s: int,
        retransmission_window_s: int,
        visitor_key: str,
        known_views: KnownViews | None = None,
        bridges: frozenset[str] = frozenset(),
        backlog_s: int = 0,
    ) -> None:
        if not visitor_key:
            # A player's owner is stored only as its keyed hash (DESIGN §8).
            raise ConfigError(
                "VTS_VISITOR_KEY is not set (nor resolved from VTS_VISITOR_KEY_PARAM)"
            )
        self._visitor_key = visitor_key
        self._players = players
        self._posts = posts
        self._drops = drops
        self._acks = acks
        self._clock = clock
        self._interval_s = player_interval_s
        self._bridges = bridges
        self._backlog = timedelta(seconds=backlog_s)
        self._gate = ReportGate(registry, player_interval_s, retransmission_window_s)
        self._views = ViewKeeper(
            events, known_views if known_views is not None else KnownViews(), fallback=posts
        )
        self._steps: tuple[Callable[[Report], PlayerOutcome | None], ...] = (
            self.parse,
            self.match_key,
            self.match_client,
            self.find_player,
            self.pass_gate,
            self.find_post,
            self.drop_author_view,
            self.store,
        )

    # ---- entry point -------------------------------------------------------------------------

    def record(self, event: Any) -> dict[str, Any]:
        """Handle one rule event; a plain result for the Lambda's answer."""
        report = Report(event=event, now=self._clock.now(), token=redelivery_token(event))
        try:
            outcome = self._run(report)
        except Exception:
            # An infrastructure fault: tell the player if it asked, then let Lambda retry.
            self._ack(
                report,
                _failure(
                    "internal_error",
                    "internal_error",
                    "temporarily unavailable; the report will be retried",
                ),
            )
            raise
        if report.player_key is not None:
            self._drops.seen_player_report(_last_report(report, outcome))
        if outcome.dropped:
            self._drops.count(DropReason(outcome.reason))
        elif outcome.reason in (COUNTED, IMPRESSION):
            self._drops.accepted(counted=outcome.counted)
        acked = self._ack(report, outcome)
        return {"outcome": str(outcome.reason), "counted": outcome.counted, "acked": acked}

    def _run(self, report: Report) -> PlayerOutcome:
        for step in self._steps:
            outcome = step(report)
            if outcome is not None:
                return outcome
        raise AssertionError("the store step always ends the pipeline")

    # ---- steps -------------------------------------------------------------------------------

    def parse(self, report: Report) -> PlayerOutcome | None:
        event = report.event
        if not isinstance(event, dict):
            return _failure(INVALID, "invalid", "the report is not a JSON object")
        topic_key = event.get("topic_player_key")
        report.player_key = canonical_player_key(topic_key)
        if report.player_key is None:
            return _failure(INVALID, "invalid", "the topic does not carry a player key (UUID)")
        report.topic_key = str(topic_key)
        try:
            report.message = parse_message(event)
        except InvalidReport as error:
            return _failure(INVALID, "invalid", error.message)
        return None

    def match_key(self, report: Report) -> PlayerOutcome | None:
        # A frame speaks only for itself: the payload's key must be the topic's.
        assert report.message is not None
        if canonical_player_key(report.message.player_key) != report.player_key:
            return _failure(KEY_MISMATCH, "invalid", "player_key does not match the topic")
        return None

    def match_client(self, report: Report) -> PlayerOutcome | None:
        # Who published (the rule's clientid()) must be the frame itself or a trusted bridge
        # whose broker already holds each frame to its own key (DESIGN §4).
        client_id = report.event.get("client_id")
        key, topic_key = report.player_key, report.topic_key
        own = {key, f"p3a-{key}", topic_key, f"p3a-{topic_key}"}
        if isinstance(client_id, str) and (client_id in own or client_id in self._bridges):
            return None
        return _failure(
            CLIENT_MISMATCH, "invalid", "the publishing client may not speak for this player"
        )

    def find_player(self, report: Report) -> PlayerOutcome | None:
        assert report.player_key is not None
        report.player = self._players.get(report.player_key)
        if report.player is None:
            return _failure(UNREGISTERED, "unregistered", "this player is not registered")
        if report.player.revoked:
            # A frame torn down in Makapix: refused exactly like one never registered.
            return _failure(UNREGISTERED, "unregistered", "this player's registration is revoked")
        return None

    def pass_gate(self, report: Report) -> PlayerOutcome | None:
        # A retransmission is told first, so it never spends the player's slot.
        message = report.message
        assert message is not None and report.player_key is not None
        verdict = self._gate.check(
            report.player_key,
            message.post_id,
            message.timestamp,
            self._rate_time(report),
            report.token,
        )
        if verdict.kind == "admitted":
            return None
        if verdict.kind == "retransmission":
            return PlayerOutcome(RETRANSMISSION)
        return _failure(
            RATE_LIMITED,
            "rate_limited",
            f"at most one report per {self._interval_s} s per player",
            retry_after_s=max(1, math.ceil(verdict.wait_s or 0.0)),
        )

    def find_post(self, report: Report) -> PlayerOutcome | None:
        assert report.message is not None
        report.post = self._posts.get_for_recording(report.message.post_id)
        if report.post is None:
            return _failure(
                UNKNOWN_POST, "not_found", f"post {report.message.post_id} is not registered"
            )
        if not report.post.counting:
            # Hidden or deleted: accepted (acked success, not counted), nothing stored.
            return PlayerOutcome(POST_NOT_COUNTING)
        return None

    def drop_author_view(self, report: Report) -> PlayerOutcome | None:
        # Accepted, never counted: an artist's own frame showing their own work.
        assert report.post is not None and report.player is not None
        return (
            PlayerOutcome(AUTHOR_VIEW) if report.post.owner_id == report.player.owner_id else None
        )

    def store(self, report: Report) -> PlayerOutcome:
        event = self._view_event(report)
        assert report.post is not None
        shards = report.post.shards_at(report.now)
        if event.intent == "impression":
            self._views.store_impression(event, shards)
            return PlayerOutcome(IMPRESSION)
        if self._views.store(event, shards):
            return PlayerOutcome(COUNTED, counted=True)
        return PlayerOutcome(DUPLICATE)

    # ---- helpers -----------------------------------------------------------------------------

    def _rate_time(self, report: Report) -> datetime:
        """When the report was sent, for the rate: the player's clock when it is set and
        plausible, else the arrival. A bridge that was cut off delivers its backlog at once;
        measured by arrival, all but one report of each frame would be refused. A player
        cannot gain by lying: its slot only moves forward and its clock is held to
        [arrival - backlog, arrival + CLOCK_AHEAD_S], so at most backlog/interval reports
        ever pass early (ADR 0009)."""
        sent = report.message.device_at if report.message is not None else None
        now = report.now
        if sent is None or not self._backlog:
            return now
        if now - self._backlog <= sent <= now + timedelta(seconds=CLOCK_AHEAD_S):
            return sent
        return now

    def _view_event(self, report: Report) -> ViewEvent:
        message, player, post = report.message, report.player, report.post
        assert message is not None and player is not None and post is not None
        is_view = message.is_view
        return ViewEvent(
            post_id=post.post_id,
            owner_id=post.owner_id,
            intent="view" if is_view else "impression",
            occurred_at=report.now,
            visitor=user_visitor(self._visitor_key, player.owner_id),
            authenticated=True,
            source="player",
            device="player",
            country=player.country,
            channel=message.channel,
            channel_context=message.channel_context,
            play_order=message.play_order,
            playlist_id=message.playlist_id,
            player_key=player.player_key,
            device_at=message.device_at,
            timezone=player.timezone or message.valid_timezone,
            event_id=None if is_view else self._impression_id(report),
        )

    def _impression_id(self, report: Report) -> str:
        """A ULID derived from the delivery, so a retried event overwrites, never duplicates."""
        message = report.message
        assert message is not None
        received = report.event.get("received_at") if report.token else None
        if isinstance(received, int) and 0 <= received < _MAX_ULID_MS:
            ms, salt = received, report.token
        else:
            ms, salt = int(report.now.timestamp() * 1000), uuid.uuid4().hex
        seed = f"{report.player_key}|{message.post_id}|{message.timestamp}|{salt}"
        randomness = hashlib.sha256(seed.encode()).digest()[:10]
        return str(ULID.from_bytes(ms.to_bytes(6, "big") + randomness))

    def _ack(self, report: Report, outcome: PlayerOutcome) -> bool:
        # A stranger's report is not the frame's: its ack would only confuse the frame.
        if report.topic_key is None or outcome.reason == CLIENT_MISMATCH or not _wants_ack(report):
            return False
        message = report.message
        event = report.event if isinstance(report.event, dict) else {}
        post_id = message.post_id if message else event.get("post_id")
        timestamp = message.timestamp if message else event.get("timestamp")
        ack = Ack(
            post_id=post_id if isinstance(post_id, int) and not isinstance(post_id, bool) else None,
            timestamp=timestamp if isinstance(timestamp, str) else None,
            success=outcome.success,
            counted=outcome.counted,
            error_code=outcome.error_code,
            error=outcome.error,
            retry_after=outcome.retry_after_s,
        )
        return send_ack(self._acks, report.topic_key, ack)


def _last_report(report: Report, outcome: PlayerOutcome) -> dict[str, str]:
    client_id = report.event.get("client_id") if isinstance(report.event, dict) else None
    message = report.message
    return {
        "at": report.now.isoformat(),
        "player_key": str(report.player_key),
        "client_id": str(client_id)[:128],
        "post_id": str(message.post_id) if message is not None else "",
        "sent_at": str(message.timestamp or "") if message is not None else "",
        "outcome": str(outcome.reason),
    }


def _wants_ack(report: Report) -> bool:
    if report.message is not None:
        return report.message.request_ack
    # An invalid report is acked only when it plainly asked for one.
    return isinstance(report.event, dict) and report.event.get("request_ack") is True
