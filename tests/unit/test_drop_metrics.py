"""The drop counter's CloudWatch metrics: summed in the process, one EMF line per flush."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from chalicelib.clock import FixedClock
from chalicelib.drops import DropCounter
from chalicelib.metrics import stdout_sink
from chalicelib.storage.memory import MemoryDropStore


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_emf_line_per_flush_carries_every_count_since_the_last() -> None:
    out = io.StringIO()
    clock = FixedClock(datetime(2026, 12, 5, 10, tzinfo=UTC))
    store = MemoryDropStore()
    counter = DropCounter(store, clock, 60, stdout_sink("prod", out))
    for n in range(100):
        counter.accepted(counted=n % 4 != 0)
        clock.advance(0.1)
    counter.count("bot")
    counter.count("duplicate", 2)
    assert out.getvalue() == ""  # 10 s in: nothing written yet

    clock.advance(51)
    counter.accepted(counted=True)  # the first call past the interval flushes
    (line,) = lines(out)
    assert (line["accepted"], line["counted"]) == (101, 76)
    assert (line["drop_bot"], line["drop_duplicate"]) == (1, 2)
    names = {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}  # type: ignore[index]
    assert names == {"accepted", "counted", "drop_bot", "drop_duplicate"}
    assert store.get_drops([clock.now().strftime("%Y-%m-%d")]) == {"bot": 1, "duplicate": 2}

    counter.flush()  # nothing new: no empty line
    assert len(lines(out)) == 1


def test_without_a_sink_nothing_is_summed_for_metrics() -> None:
    clock = FixedClock(datetime(2026, 12, 5, 10, tzinfo=UTC))
    store = MemoryDropStore()
    counter = DropCounter(store, clock, 0)
    counter.accepted(counted=True)
    counter.count("bot")
    assert store.get_drops(["2026-12-05"]) == {"bot": 1}
