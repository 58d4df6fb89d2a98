"""Recording web, widget and API looks: a pipeline of named steps over one ``WebHit``.

Steps, in order: ``drop_gpc`` (the browser asked not to be tracked: nothing is read or
stored) -> ``drop_bot`` -> ``find_post`` (unknown: 404; hidden or deleted: dropped as
``post_not_counting``) -> ``drop_author_view`` -> ``drop_net_cap`` (one
network cannot inflate a post: chalicelib/netcap.py) -> ``store`` (a View through the shared
dedup step, chalicelib/views.py, or an Impression in its rate slot; a hot post's on its
write shards, which the post cache knows). Each may end the hit with
an outcome; a drop is counted by reason (``chalicelib.drops.DropReason``), never raised. Only
a client's mistake (unknown post, rate limit) or a storage fault raises.

The store answers every dedup and rate question, but what it confirmed once is remembered
in the container (``chalicelib/known.py``): a View key it holds, an Impression slot it reported
taken. Asking again would cost a write (refused conditional writes are charged) for the same
answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ulid import ULID

from chalicelib.claims import Claims
from chalicelib.clock import Clock
from chalicelib.drops import DropCounter, DropReason
from chalicelib.enrich.referrer import referrer_domain
from chalicelib.enrich.visitor import anonymous_visitor, user_visitor
from chalicelib.errors import NotFound, RateLimited
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.known import KnownSlots, KnownViews, epoch_ms
from chalicelib.model import PostRecord, ViewEvent
from chalicelib.netcap import Caps, NetCaps, network_of
from chalicelib.registry.posts import PostDirectory
from chalicelib.storage.ports import EventStore, Registry
from chalicelib.views import ViewKeeper


@dataclass(frozen=True)
class WebHit:
    """What the HTTP edge hands over: the validated body and the request's own facts."""

    post_id: int
    request: RecordViewRequest
    user_agent: str | None
    referer_header: str | None
    source_ip: str | None
    viewer: Claims | None
    # Sec-GPC: 1 (Global Privacy Control): answered as accepted, nothing stored.
    gpc: bool = False


@dataclass
class Look:
    """One hit as it moves through the steps."""

    hit: WebHit
    now: datetime
    device: str | None = None
    post: PostRecord | None = None
    event: ViewEvent | None = None


@dataclass(frozen=True)
class Outcome:
    counted: bool
    reason: str  # "counted" or the drop / acceptance reason


COUNTED = Outcome(True, "counted")


class WebRecorder:
    def __init__(
        self,
        *,
        events: EventStore,
        registry: Registry,
        posts: PostDirectory,
        drops: DropCounter,
        clock: Clock,
        classify: Callable[[str | None], str],
        country: Callable[[str | None], str | None],
        visitor_key: str,
        impression_interval_s: int,
        known_views: KnownViews | None = None,
        known_slots: KnownSlots | None = None,
        net_caps: NetCaps | None = None,
    ) -> None:
        self._registry = registry
        self._posts = posts
        self._drops = drops
        self._clock = clock
        self._classify = classify
        self._country = country
        self._visitor_key = visitor_key
        self._impression_interval_s = impression_interval_s
        self._views = ViewKeeper(
            events, known_views if known_views is not None else KnownViews(), fallback=posts
        )
        self._known_slots = known_slots if known_slots is not None else KnownSlots()
        self._net_caps = net_caps if net_caps is not None else NetCaps(Caps(20, 200))
        self._steps: tuple[Callable[[Look], Outcome | None], ...] = (
            self.drop_gpc,
            self.drop_bot,
            self.find_post,
            self.drop_author_view,
            self.drop_net_cap,
            self.store,
        )

    # ---- entry point -------------------------------------------------------------------------

    def record(self, hit: WebHit) -> Outcome:
        look = Look(hit=hit, now=self._clock.now())
        for step in self._steps:
            outcome = step(look)
            if outcome is not None:
                return outcome
        raise AssertionError("the store step always ends the pipeline")

    # ---- steps -------------------------------------------------------------------------------

    def drop_gpc(self, look: Look) -> Outcome | None:
        return self._drop(DropReason.GPC) if look.hit.gpc else None

    def drop_bot(self, look: Look) -> Outcome | None:
        look.device = self._classify(look.hit.user_agent)
        return self._drop(DropReason.BOT) if look.device == "bot" else None

    def find_post(self, look: Look) -> Outcome | None:
        post_id = look.hit.post_id
        look.post = self._posts.get_for_recording(post_id)
        if look.post is None:
            self._drops.count(DropReason.UNKNOWN_POST)
            raise NotFound(f"post {post_id} is not registered", code="unknown_post")
        if not look.post.counting:
            # Hidden or deleted: accepted like a bot's look (204, the pixel still served),
            # nothing stored; the post's stats stay readable by its owner.
            return self._drop(DropReason.POST_NOT_COUNTING)
        return None

    def drop_author_view(self, look: Look) -> Outcome | None:
        viewer, post = look.hit.viewer, look.post
        assert post is not None
        if viewer is not None and viewer.sub == post.owner_id:
            return self._drop(DropReason.AUTHOR_VIEW)
        return None

    def drop_net_cap(self, look: Look) -> Outcome | None:
        look.event = self._event(look)
        return self._drop(DropReason.NET_CAP) if self._net_caps.full(look.event) else None

    def store(self, look: Look) -> Outcome:
        event, post = look.event, look.post
        assert event is not None and post is not None
        shards = post.shards_at(look.now)
        if event.intent == "impression":
            return self._impression(event, look.now, shards)
        if self._views.store(event, shards):
            self._net_caps.stored(event)
            self._drops.accepted(counted=True)
            return COUNTED
        return self._drop(DropReason.DUPLICATE)

    # ---- helpers -----------------------------------------------------------------------------

    def _drop(self, reason: DropReason) -> Outcome:
        self._drops.count(reason)
        return Outcome(False, reason)

    def _impression(self, event: ViewEvent, now: datetime, shards: int) -> Outcome:
        wait_s = self._known_slots.wait_s(event.visitor, now)
        if wait_s is None:
            # A free slot is claimed in the store: the limit is global, not per container.
            interval_s = self._impression_interval_s
            wait_s = self._registry.take_slot("imp", event.visitor, interval_s, now)
            held_ms = interval_s * 1000 if wait_s is None else round(wait_s * 1000)
            self._known_slots.remember(event.visitor, epoch_ms(now) + held_ms)
        if wait_s is not None:
            self._drops.count(DropReason.RATE_LIMITED)
            raise RateLimited(
                f"at most one impression per {self._impression_interval_s} s per visitor",
                retry_after_s=max(1, math.ceil(wait_s)),
            )
        self._views.store_impression(event, shards)
        self._net_caps.stored(event)
        self._drops.accepted(counted=False)
        return Outcome(False, "impression")

    def _event(self, look: Look) -> ViewEvent:
        hit, post, device, now = look.hit, look.post, look.device, look.now
        assert post is not None and device is not None
        request = hit.request
        if hit.viewer is not None:
            visitor = user_visitor(self._visitor_key, hit.viewer.sub)
        else:
            visitor = anonymous_visitor(self._visitor_key, hit.source_ip, hit.user_agent)
        return ViewEvent(
            post_id=post.post_id,
            owner_id=post.owner_id,
            intent=request.intent,
            occurred_at=now,
            visitor=visitor,
            authenticated=hit.viewer is not None,
            source=request.source,
            device=device,
            country=self._country(hit.source_ip),
            channel=request.channel,
            channel_context=request.channel_context,
            referrer_domain=referrer_domain(request.referrer or hit.referer_header),
            playlist_id=request.playlist_id,
            net=network_of(self._visitor_key, hit.source_ip),
            event_id=str(ULID.from_datetime(now)) if request.intent == "impression" else None,
        )
