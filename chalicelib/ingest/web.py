"""Recording web, widget and API looks: a pipeline of named steps over one ``WebHit``.

Each step may drop the hit with a named reason, which is counted, not raised. Only a
client's mistake (unknown post, rate limit) or a storage fault raises. In order: ``gpc``
(the browser asked not to be tracked: nothing is read or stored), ``bot``, unknown post,
``author_view``, ``net_cap`` (one network cannot inflate a post: chalicelib/netcap.py),
then the View's dedup (``duplicate``) or the Impression's rate slot.

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

from chalicelib.auth import Claims
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
        self._events = events
        self._registry = registry
        self._posts = posts
        self._drops = drops
        self._clock = clock
        self._classify = classify
        self._country = country
        self._visitor_key = visitor_key
        self._impression_interval_s = impression_interval_s
        self._known_views = known_views if known_views is not None else KnownViews()
        self._known_slots = known_slots if known_slots is not None else KnownSlots()
        self._net_caps = net_caps if net_caps is not None else NetCaps(Caps(20, 200))

    def _drop(self, reason: DropReason) -> Outcome:
        self._drops.count(reason)
        return Outcome(False, reason)

    def record(self, hit: WebHit) -> Outcome:
        if hit.gpc:
            return self._drop(DropReason.GPC)
        now = self._clock.now()
        device = self._classify(hit.user_agent)
        if device == "bot":
            return self._drop(DropReason.BOT)
        post = self._posts.get(hit.post_id)
        if post is None:
            self._drops.count(DropReason.UNKNOWN_POST)
            raise NotFound(f"post {hit.post_id} is not registered", code="unknown_post")
        if hit.viewer is not None and hit.viewer.sub == post.owner_id:
            return self._drop(DropReason.AUTHOR_VIEW)
        event = self._event(hit, post, device, now)
        if self._net_caps.full(event):
            return self._drop(DropReason.NET_CAP)
        if event.intent == "impression":
            return self._impression(event, now)
        return self._view(event)

    def _view(self, event: ViewEvent) -> Outcome:
        if self._known_views.holds(event):
            return self._drop(DropReason.DUPLICATE)
        counted = self._events.put_view(event)
        # Stored or refused as present: either way the store now holds this key.
        self._known_views.remember(event)
        if counted:
            self._net_caps.stored(event)
            self._drops.accepted(counted=True)
            return COUNTED
        return self._drop(DropReason.DUPLICATE)

    def _impression(self, event: ViewEvent, now: datetime) -> Outcome:
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
        self._events.put_impression(event)
        self._net_caps.stored(event)
        self._drops.accepted(counted=False)
        return Outcome(False, "impression")

    def _event(self, hit: WebHit, post: PostRecord, device: str, now: datetime) -> ViewEvent:
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
