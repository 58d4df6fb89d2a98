"""Folding looks into counter updates: names, one update per item per batch, TOTAL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from vtsops.replay import Trace, generate_trace

from chalicelib.rollup import counters
from tests.unit.rollupkit import AT, look


def test_a_view_counts_in_every_dimension() -> None:
    event = look(
        authenticated=True,
        channel="reactions",
        play_order=2,
        referrer_domain="makapix.club",
        occurred_at=AT.replace(hour=13),
    )
    counts = counters.event_counts(event)
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
    counts = counters.event_counts(look(intent="impression", country=None, source="player"))
    assert counts == {"i": 1, "ic:??": 1, "id:mobile": 1, "is:player": 1, "ich:-": 1, "ih:10": 1}


def test_a_viral_post_costs_one_update_per_item_per_batch() -> None:
    events = [look(visitor=f"h:{n}", occurred_at=AT + timedelta(seconds=n)) for n in range(1000)]
    tallies = counters.fold(events)
    updates = counters.day_updates(tallies)
    assert sorted((u.pk, u.sk) for u in updates) == [
        ("A#artist-1", "D#2026-11-24"),
        ("P#7", "D#2026-11-24"),
        ("SITE", "D#2026-11-24"),
    ]
    post = next(u for u in updates if u.pk == "P#7")
    assert post.add["v"] == 1000 and post.add["vc:BR"] == 1000
    assert post.only_open is True
    assert post.set == {"owner": "artist-1", "last_at": "2026-11-24T10:16:39.000Z"}
    assert post.set_if_absent == {"first_at": "2026-11-24T10:00:00.000Z"}
    artist = next(u for u in updates if u.pk == "A#artist-1")
    assert "owner" not in artist.set


def test_totals_sum_the_days_of_a_batch_in_the_measures_only() -> None:
    events = [
        look(occurred_at=AT - timedelta(days=1)),
        look(visitor="h:b", authenticated=True),
        look(post=8, intent="impression", owner_id="artist-2"),
    ]
    totals = {(u.pk, u.sk): u for u in counters.total_updates(counters.fold(events))}
    assert totals[("P#7", "TOTAL")].add == {"v": 2, "av": 1, "rev": 1}
    assert totals[("P#7", "TOTAL")].set == {
        "owner": "artist-1",
        "last_at": "2026-11-24T10:00:00.000Z",
    }
    assert totals[("P#7", "TOTAL")].set_if_absent == {"first_at": "2026-11-23T10:00:00.000Z"}
    # Every TOTAL has `v`, 0 when there are only Impressions.
    assert totals[("P#8", "TOTAL")].add == {"v": 0, "i": 1, "rev": 1}
    assert totals[("SITE", "TOTAL")].add == {"v": 2, "av": 1, "i": 1, "rev": 1}
    # No index key on TOTAL: a live batch never rewrites the by_views index.
    assert all("gpk" not in u.set for u in totals.values())


def test_open_ended_breakdowns_are_capped_with_exact_sums() -> None:
    counts = {f"vr:site{n}.example": n + 1 for n in range(150)}
    counts.update({"v": 999, "vc:BR": 5, "vr:~other": 7})
    capped = counters.cap_open_ended(counts, cap=100)
    referrers = {k: v for k, v in capped.items() if k.startswith("vr:")}
    assert len(referrers) == 100
    assert sum(referrers.values()) == sum(n + 1 for n in range(150)) + 7
    assert capped["vr:site149.example"] == 150  # the largest stay named
    assert capped["v"] == 999 and capped["vc:BR"] == 5
    assert counters.cap_open_ended({"vch:a": 1}, cap=100) == {"vch:a": 1}


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
    assert counters.counter_names(item) == {"v": 3, "vc:BR": 3, "ai": 1, "aich:-": 1}


def test_a_trace_round_trips_through_jsonl(tmp_path: Path) -> None:
    trace = generate_trace(looks=300, days=2, posts=5, artists=2, seed=3)
    path = tmp_path / "t.jsonl"
    trace.to_jsonl(path)
    again = Trace.from_jsonl(path)
    assert again.looks == trace.looks and again.posts == trace.posts
