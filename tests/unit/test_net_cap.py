"""One network cannot inflate a post (DESIGN §8): the recording path's per-container caps,
the close's exact ones, GPC, and player tokens over HTTP. In-memory fakes, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit
from chalicelib.model import ViewEvent
from chalicelib.netcap import Caps, network_of, within_caps
from chalicelib.wiring import Services, memory_services
from tests.conftest import BROWSER_UA
from tests.unit.rollupkit import batch

SETTINGS = Settings(jwt_secret="j" * 32, visitor_key="v" * 32, drop_flush_s=0, net_views=5,
                    net_impressions=8, impression_interval_s=0)
DAY = "2026-11-24"
AT = datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.fixture
def services() -> Services:
    services = memory_services(SETTINGS, FixedClock(AT))
    services.posts.register(7, "artist-1")
    services.posts.register(8, "artist-1")
    return services


def hit(ua: str = BROWSER_UA, ip: str = "203.0.113.9", post_id: int = 7,
        viewer: Claims | None = None, gpc: bool = False, **body: object) -> WebHit:
    return WebHit(post_id=post_id, request=RecordViewRequest(**body), user_agent=ua,
                  referer_header=None, source_ip=ip, viewer=viewer, gpc=gpc)


def chrome(build: int) -> str:
    return BROWSER_UA.replace("Chrome/131.0.0.0", f"Chrome/131.0.{build}.0")


def drops(services: Services) -> dict[str, int]:
    services.drops.flush()
    return services.drop_store.get_drops([DAY])


def test_the_network_is_the_ipv4_address_or_the_ipv6_slash_64() -> None:
    assert network_of("k", "203.0.113.9") == network_of("k", " 203.0.113.9 ")
    assert network_of("k", "203.0.113.9") != network_of("k", "203.0.113.10")
    assert network_of("k", "2001:db8:1:2::1") == network_of("k", "2001:db8:1:2:ffff::9")
    assert network_of("k", "2001:db8:1:2::1") != network_of("k", "2001:db8:1:3::1")
    assert network_of("k", "::ffff:203.0.113.9") == network_of("k", "203.0.113.9")
    assert network_of("other", "203.0.113.9") != network_of("k", "203.0.113.9")  # keyed
    assert network_of("k", None) is None and network_of("k", "not an ip") is None
    assert "203.0.113.9" not in str(network_of("k", "203.0.113.9"))


def test_one_address_with_rotating_user_agents_counts_at_most_the_cap(services: Services) -> None:
    outcomes = [services.web_recorder.record(hit(ua=chrome(n))).reason for n in range(12)]
    assert outcomes == ["counted"] * 5 + ["net_cap"] * 7
    assert drops(services) == {"net_cap": 7}
    assert len(list(services.events.day_events(7, DAY))) == 5
    # Another post, another day's budget per post: the cap is per (post, day, net).
    assert services.web_recorder.record(hit(ua=chrome(99), post_id=8)).counted


def test_one_ipv6_slash_64_is_one_network(services: Services) -> None:
    outcomes = [
        services.web_recorder.record(hit(ip=f"2001:db8:0:1::{n:x}", ua=chrome(n))).reason
        for n in range(1, 8)
    ]
    assert outcomes == ["counted"] * 5 + ["net_cap"] * 2


def test_many_addresses_with_one_user_agent_all_count(services: Services) -> None:
    assert all(
        services.web_recorder.record(hit(ip=f"198.51.100.{n}")).counted for n in range(1, 26)
    )


def test_signed_in_viewers_are_not_held_to_the_cap(services: Services) -> None:
    viewers = [Claims(sub=f"pupil-{n}", role="viewer") for n in range(9)]
    assert all(services.web_recorder.record(hit(viewer=v)).counted for v in viewers)


def test_impressions_have_their_own_cap(services: Services) -> None:
    outcomes = []
    for n in range(10):
        services.clock.advance(1)  # type: ignore[attr-defined]
        outcomes.append(services.web_recorder.record(hit(ua=chrome(n), intent="impression")).reason)
    assert outcomes == ["impression"] * 8 + ["net_cap"] * 2


def test_gpc_is_answered_as_accepted_and_nothing_is_stored(services: Services) -> None:
    outcome = services.web_recorder.record(hit(gpc=True))
    assert (outcome.counted, outcome.reason) == (False, "gpc")
    assert list(services.events.day_events(7, DAY)) == []
    assert drops(services) == {"gpc": 1}


@pytest.mark.parametrize("ua", ["python-requests/2.31 makapix-player/9", "Googlebot/2.1 divoom/1"])
def test_player_tokens_over_http_are_not_players(services: Services, ua: str) -> None:
    outcome = services.web_recorder.record(hit(ua=ua))
    assert outcome.reason == "bot"
    assert list(services.events.day_events(7, DAY)) == []


def _look(n: int, net: str | None, *, intent: str = "view", authenticated: bool = False) -> ViewEvent:
    return ViewEvent(
        post_id=7, owner_id="artist-1", intent=intent,  # type: ignore[arg-type]
        occurred_at=AT + timedelta(seconds=n), visitor=f"visitor-{n}",
        authenticated=authenticated, source="web", device="desktop", net=net,
        event_id=f"e{n:04d}" if intent == "impression" else None,
    )


def test_the_close_keeps_the_earliest_looks_of_each_network() -> None:
    caps = Caps(views=3, impressions=2)
    looks = [_look(n, "a") for n in range(6)] + [_look(10 + n, "b") for n in range(2)]
    looks += [_look(20 + n, "a", intent="impression") for n in range(4)]
    looks += [_look(30 + n, "a", authenticated=True) for n in range(5)]
    looks += [_look(40 + n, None) for n in range(5)]  # players: no network
    kept = within_caps(reversed(looks), caps)
    by = {(e.net, e.intent, e.authenticated): 0 for e in kept}
    for e in kept:
        by[(e.net, e.intent, e.authenticated)] += 1
    assert by == {("a", "view", False): 3, ("b", "view", False): 2, ("a", "impression", False): 2,
                  ("a", "view", True): 5, (None, "view", False): 5}
    assert sorted(e.visitor for e in kept if e.net == "a" and e.intent == "view"
                  and not e.authenticated) == ["visitor-0", "visitor-1", "visitor-2"]


def test_what_several_containers_let_through_the_close_cuts(services: Services) -> None:
    # Two containers, each with its own tally: together they store up to twice the cap.
    other = memory_services(SETTINGS, services.clock)
    other.events, other.posts, other.registry = services.events, services.posts, services.registry
    other.__dict__.pop("web_recorder", None)
    for n in range(10):
        recorder = services.web_recorder if n % 2 else other.web_recorder
        recorder.record(hit(ua=chrome(n)))
    stored = list(services.events.day_events(7, DAY))
    assert len(stored) == 10
    services.aggregator.handle(batch(stored))  # the stream: live counters see all ten
    services.clock.advance(2 * 86_400)  # type: ignore[attr-defined]
    services.day_closer.run(services.clock.now())
    stats = services.stats.post_stats(Claims(sub="artist-1", role="artist"), "7",
                                      {"from": DAY, "to": DAY})
    assert stats["views"] == 5
