"""Write units per counted View, priced from moto's request recorder (scripts/vtsops/wru.py,
the harness of bench/bench_wru.py) at a small size: 120 web looks over 8 posts through the
real app, the stream in the deployed batch size, the close of the Day; every recorded
request replayed against a fresh moto and priced by the items it touched.

Exact facts, the ceiling of issue 16 on the burst's own write units, and no times."""

from __future__ import annotations

from dataclasses import replace

import pytest
from vtsops.wru import PHASES, UNKNOWN, WRITES, Run, Scenario, kind_of, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = Scenario(looks=120, posts=8, artists=3, repeats=12, seed=5)


@pytest.fixture(scope="module")
def measured() -> Run:
    return run(SCENARIO)


def test_every_distinct_visitor_and_post_counts_once(measured: Run) -> None:
    distinct = SCENARIO.looks - SCENARIO.repeats
    assert measured.distinct_pairs == distinct
    assert measured.counted == distinct
    assert dict(measured.statuses) == {201: distinct, 204: SCENARIO.repeats}
    # Each counted View is one stored event, and the stream hands each to the handler once,
    # in one batch: the burst is far under the deployed BatchSize.
    stored = [
        c for c in measured.sheet.charges if c.kind == "event View V#" and c.phase == "record"
    ]
    assert len([c for c in stored if not c.refused]) == measured.counted
    assert measured.records_pumped == measured.counted
    assert measured.batches == 1
    assert measured.close["closed_days"] == [SCENARIO.day.isoformat()]


def test_the_replay_reproduces_the_recorded_tables(measured: Run) -> None:
    assert measured.replay_matches
    assert measured.sheet.errors == []


def test_every_recorded_write_is_priced_as_a_known_item_kind(measured: Run) -> None:
    sheet = measured.sheet
    priced = {c.request for c in sheet.charges if c.operation in WRITES}
    assert len(priced) == measured.priced_writes > 0
    assert UNKNOWN not in sheet.kinds()
    assert all(c.wru >= 1 for c in sheet.charges if c.operation in WRITES)
    for phase in PHASES:
        assert measured.wru([phase]) > 0, phase


def test_the_write_units_per_counted_view_are_computed(measured: Run) -> None:
    total = measured.wru()
    assert total == sum(c.wru for c in measured.sheet.charges)
    assert measured.per_view() == total / measured.counted > 0
    assert 0 < measured.per_view(("record", "aggregate")) < measured.per_view()


def test_item_kinds_follow_the_key_formats() -> None:
    assert kind_of("events", "P#3#2026-11-24", "V#abc") == "event View V#"
    assert kind_of("events", "P#3#2026-11-24", "I#01J") == "event Impression I#"
    assert kind_of("registry", "RATE#imp#v", "RATE") == "registry rate slot RATE#"
    assert kind_of("registry", "POST#3", "META") == "registry post POST#"
    assert kind_of("registry", "POST#3", "X") == UNKNOWN
    assert kind_of("aggregates", "DROPS", "D#2026-11-24") == "drops DROPS D#"
    assert kind_of("aggregates", "DAY#2026-11-24", "P#3") == "day marker DAY#"
    assert kind_of("aggregates", "A#ana", "D#2026-11-24") == "live artist D#"
    assert kind_of("aggregates", "SITE", "B3#2026-11-16") == "site block Bn#"
    assert kind_of("aggregates", "P#3", "B0#2026-11-24") == "post piece B0#"
    assert kind_of("aggregates", "P#3", "X#1") == UNKNOWN
    assert kind_of("other", "P#3", "RANK") == UNKNOWN


@pytest.fixture(scope="module")
def steady() -> Run:
    """The same burst on posts each seen (and closed) the Day before: the steady state."""
    return run(replace(SCENARIO, seen_before=True))


def test_the_burst_itself_costs_at_most_1_3_write_units_per_counted_view(
    measured: Run, steady: Run
) -> None:
    """Issue 16's ceiling on what a burst writes (recording with its guards, live counters,
    markers) on a catalog in its steady state; the close's writes are per (post, Day),
    whatever its Views, and a post's first look ever also pays its listing row once:
    bench_wru prints all of them."""
    assert steady.replay_matches and steady.sheet.errors == []
    assert steady.counted == measured.counted
    assert steady.per_view(("record", "aggregate")) <= 1.3
    # The floor: one conditional put per counted View, nothing else per View on the record path.
    assert steady.per_view(("record",)) < 1.05
    # A post's first look ever writes its RANK (listing row and index entry) too.
    assert measured.per_view(("aggregate",)) > steady.per_view(("aggregate",))
