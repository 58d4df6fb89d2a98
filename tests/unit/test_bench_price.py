"""bench/bench_price.py on a tiny measured sample: structure and arithmetic, no timings."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "scripts", ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import bench_price  # noqa: E402


@pytest.fixture(scope="module")
def measured() -> Any:
    return bench_price.measure(looks=600, front_requests=40, reports=40, low_looks=120)


def test_measured_quantities_are_there(measured: Any) -> None:
    assert set(measured.paces) == {bench_price.pace_scenario(n) for n in bench_price.PACES}
    assert measured.front["requests"] == 40
    assert measured.front["cpu_s"] > 0
    # The recording requests' metrics reach the logs (summed: one EMF line per flush).
    assert measured.front["log_bytes"] > 0
    assert {"accepted", "counted"} <= set(measured.front["metric_names"])
    assert measured.players["reports"] == 40
    for pace in measured.paces.values():
        assert pace["stored"] > 0
        # The raw event costs at least one write unit per stored look.
        assert pace["wru"]["record"] >= 1.0
        assert pace["records_per_batch"] >= 1
    assert measured.paces["full"]["dashboard"]["rru"] > 0


def test_items_sum_to_the_total_and_scale_per_million(measured: Any) -> None:
    month = bench_price.SECONDS_PER_MONTH
    for name, rate in bench_price.PACES.items():
        items = bench_price.price_web(measured, bench_price.pace_scenario(name), rate)
        assert all(v >= 0 for v in items.values())
        result = bench_price.summary(items, rate * month)
        assert math.isclose(result["total"], sum(items.values()))
        assert math.isclose(result["per_million"], result["total"] / (rate * month) * 1e6)
        assert result["items"][result["biggest"]] == max(items.values())
        # The front door is one request per look at the listed price.
        assert math.isclose(items["front door"], rate * month * bench_price.price("rest_api_request"))


def test_variable_items_scale_with_the_pace_and_the_door_changes_only_the_door(
    measured: Any,
) -> None:
    one = bench_price.price_web(measured, "full", 100.0)
    ten = bench_price.price_web(measured, "full", 1000.0)
    for item in ("front door", "DynamoDB writes", "DynamoDB reads", "data transfer out"):
        assert math.isclose(ten[item], 10 * one[item], rel_tol=1e-9)
    # Fixed monthly items do not grow with traffic.
    assert ten["CloudWatch metrics+alarms"] == one["CloudWatch metrics+alarms"]
    http = bench_price.price_web(measured, "full", 100.0, door="http")
    assert {k: v for k, v in http.items() if k != "front door"} == {
        k: v for k, v in one.items() if k != "front door"
    }
    assert math.isclose(one["front door"] / http["front door"], 3.5)
    url = bench_price.price_web(measured, "full", 100.0, door="url")
    assert url["front door"] == 0.0  # a function URL: the Lambda invocation only
    assert url["Lambda requests"] == one["Lambda requests"] > 0


def test_player_and_dashboard_prices(measured: Any) -> None:
    players = bench_price.price_players_per_million(measured, "full", 100.0)
    total = bench_price.summary(players, 1_000_000)
    assert math.isclose(total["per_million"], sum(players.values()))
    # Every report is at least one IoT message, one rule and one action.
    assert players["IoT messages"] >= 1.0
    assert math.isclose(players["IoT rules+actions"], 0.30)
    dashboard = bench_price.price_dashboard_view(measured, "full")
    assert math.isclose(dashboard["front door"], 3.5e-6)


def test_report_ends_with_figures(measured: Any, capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench_price.report(measured)
    out = capsys.readouterr().out
    assert "per million web views all-in at 100 views/s" in out
    assert figures["bench"] == "price"
    assert set(figures["paces"]) == set(bench_price.PACES)
    for pace in figures["paces"].values():
        assert math.isclose(sum(pace["items_rest"].values()), pace["usd_per_month_rest"], abs_tol=0.1)
