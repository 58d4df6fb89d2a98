"""Folding looks into counts and live counter updates: names, one update per item per batch,
the container's cap on open-ended names."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from vtsops.replay import Trace, generate_trace

from chalicelib.counts import Target, counter_names, event_counts, fold
from chalicelib.rollup.livecap import LiveCap
from chalicelib.storage import keys
from chalicelib.storage.aggregates.live import day_updates
from tests.unit.rollupkit import AT, look


def test_a_view_counts_in_every_dimension() -> None:
    event = look(
        authenticated=True,
        channel="reactions",
        play_order=2,
        referrer_domain="makapix.club",
        occurred_at=AT.replace(hour=13),
    )
    counts = event_counts(event)
    assert counts == {
        "v": 1,
        "vc:BR": 1,
        "vd:mobile": 1,
        "vs:web": 1,
        "vch:reactions": 1,
        "vh:13": 1,
        "vpo:2": 1,
        "vr:makapix.club": 1,
        "av": 1,
        "avc:BR": 1,
        "avd:mobile": 1,
        "avs:web": 1,
        "avch:reactions": 1,
        "avh:13": 1,
        "avpo:2": 1,
        "avr:makapix.club": 1,
    }


def test_an_impression_without_country_or_channel() -> None:
    counts = event_counts(look(intent="impression", country=None, source="player"))
    assert counts == {"i": 1, "ic:??": 1, "id:mobile": 1, "is:player": 1, "ich:-": 1, "ih:10": 1}


def test_a_viral_post_costs_one_update_per_item_per_batch() -> None:
    events = [look(visitor=f"h:{n}", occurred_at=AT + timedelta(seconds=n)) for n in range(1000)]
    tallies = fold(events)
    updates = day_updates(tallies, ttl_days=35)
    assert sorted((u.pk, u.sk) for u in updates) == [
        ("A#artist-1", "D#2026-11-24"),
        ("P#7", "D#2026-11-24"),
        ("SITE", "D#2026-11-24"),
    ]
    post = next(u for u in updates if u.pk == "P#7")
    assert post.add["v"] == 1000 and post.add["vc:BR"] == 1000
    assert post.set == {"owner": "artist-1", "last_at": "2026-11-24T10:16:39.000Z"}
    # A live Day item expires with its Day's raw events (the close keeps the Day elsewhere).
    assert post.set_if_absent == {
        "first_at": "2026-11-24T10:00:00.000Z",
        "expires_at": keys.event_expires_at("2026-11-24", 35),
    }
    artist = next(u for u in updates if u.pk == "A#artist-1")
    assert "owner" not in artist.set


def test_impressions_alone_set_no_first_view_and_days_stay_apart() -> None:
    events = [look(occurred_at=AT - timedelta(days=1)), look(intent="impression", post=8)]
    updates = {(u.pk, u.sk): u for u in day_updates(fold(events), 10)}
    assert sorted(updates) == [
        ("A#artist-1", "D#2026-11-23"),
        ("A#artist-1", "D#2026-11-24"),
        ("P#7", "D#2026-11-23"),
        ("P#8", "D#2026-11-24"),
        ("SITE", "D#2026-11-23"),
        ("SITE", "D#2026-11-24"),
    ]
    assert updates[("P#8", "D#2026-11-24")].set_if_absent == {
        "expires_at": keys.event_expires_at("2026-11-24", 10)
    }
    assert updates[("P#7", "D#2026-11-23")].set_if_absent["expires_at"] == keys.event_expires_at(
        "2026-11-23", 10
    )


def test_live_cap_keeps_the_first_names_per_item_and_sums_exact() -> None:
    cap = LiveCap({"v": 2, "i": 1})
    first = fold(
        [look(referrer_domain=d, visitor=f"h:{d}") for d in ("a.example", "b.example", "c.example")]
    )
    cap.apply(first)
    counts = first[(Target.post(7), "2026-11-24")].counts
    assert counts["vr:a.example"] == 1 and counts["vr:b.example"] == 1
    assert "vr:c.example" not in counts and counts["vr:~other"] == 1
    assert counts["v"] == 3  # totals untouched
    # A later batch: a known name keeps it, a new one goes to ~other; other items are apart.
    later = fold(
        [
            look(referrer_domain="a.example", visitor="h:x"),
            look(referrer_domain="d.example", visitor="h:y"),
            look(post=8, referrer_domain="d.example", visitor="h:z"),
        ]
    )
    cap.apply(later)
    assert later[(Target.post(7), "2026-11-24")].counts["vr:a.example"] == 1
    assert later[(Target.post(7), "2026-11-24")].counts["vr:~other"] == 1
    assert later[(Target.post(8), "2026-11-24")].counts["vr:d.example"] == 1


def test_counter_names_pick_only_counters() -> None:
    item = {
        "pk": "P#1",
        "sk": "D#2026-11-24",
        "v": 3,
        "vc:BR": 3,
        "closed": True,
        "uv": 3,
        "rev": 4,
        "first_at": "x",
        "ai": 1,
        "aich:-": 1,
        "gpk": "A#a",
    }
    assert counter_names(item) == {"v": 3, "vc:BR": 3, "ai": 1, "aich:-": 1}


def test_a_trace_round_trips_through_jsonl(tmp_path: Path) -> None:
    trace = generate_trace(looks=300, days=2, posts=5, artists=2, seed=3)
    path = tmp_path / "t.jsonl"
    trace.to_jsonl(path)
    again = Trace.from_jsonl(path)
    assert again.looks == trace.looks and again.posts == trace.posts
