"""A viral post at a small scale (scripts/vtsops/viral.py, as bench/bench_viral.py runs it at
3,000 Views/s): the per-key limit scaled down to 100 write units a second, so one key per
Day cannot take the post's 300 Views/s and its write shards must."""

from __future__ import annotations

import pytest
from vtsops.viral import Scenario, ViralResult, simulate

SMALL = Scenario(
    minutes=1.0,
    peak_per_s=300,
    start_per_s=1.0,
    doubling_s=6.0,  # 300/s after about 50 s
    other_per_s=5.0,
    other_posts=20,
    containers=8,
    post_cache_s=10,
    hot_views_per_s=5,
    wcu_per_key=100,
    rcu_per_key=300,
)


@pytest.fixture(scope="module")
def with_shards() -> ViralResult:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def without_shards() -> ViralResult:
    return simulate(Scenario(**{**SMALL.__dict__, "hot_shards": 0}))


def test_with_shards_nothing_is_throttled_and_the_closed_day_is_exact(
    with_shards: ViralResult,
) -> None:
    result = with_shards
    assert result.looks > 5_000 and result.hot_marked_at_s is not None
    assert result.throttled == 0 and result.answers["503"] == 0
    assert result.peak_wcu[0] <= SMALL.wcu_per_key and result.shard_keys > 1
    hot, others = result.hot, result.others
    assert hot.closed == hot.counted == hot.attempted
    assert others.closed == others.counted == others.attempted
    assert result.others_exact == SMALL.other_posts
    # Live counters may count a Visitor stored before and after the post turned hot twice.
    assert hot.live >= hot.closed and others.live == others.closed


def test_without_shards_the_days_key_is_throttled_and_views_are_lost(
    without_shards: ViralResult,
) -> None:
    result = without_shards
    hot_key = "P#1#2026-11-24"
    assert result.throttled > 0 and set(result.throttled_writes) == {hot_key}
    assert result.answers["503"] == result.throttled and result.shard_keys == 1
    assert result.peak_wcu == (SMALL.wcu_per_key, hot_key)
    # The close is exact about what was stored; what was refused is lost.
    hot = result.hot
    assert hot.closed == hot.counted == hot.live < hot.attempted
    assert result.others.closed == result.others.attempted
