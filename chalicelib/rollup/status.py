"""How far the rollup has got: the close watermark, the open Days, the stream's position.

Read by ``/v1/health`` and by the stats readers (``live_as_of``); the close reports the
watermark's age as a CloudWatch EMF metric (alarmed in infra/functions/close_days.yaml).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from chalicelib.days import day_of, parse_iso
from chalicelib.storage.aggregates import layout
from chalicelib.storage.ports import AggregateStore

_OPEN_DAYS_SHOWN = 40


def pump_state(store: AggregateStore) -> dict[str, Any]:
    """The ``PUMP``/``STATE`` item the stream handler keeps (empty before its first batch)."""
    key = layout.pump_state_key()
    return store.get_items([key]).get(key) or {}


def live_as_of(store: AggregateStore) -> datetime | None:
    """The newest look the live counters are known to include."""
    last = pump_state(store).get("last_event_at")
    return parse_iso(str(last)) if last else None


def day_end(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.min, tzinfo=UTC) + timedelta(days=1)


def rollup_status(store: AggregateStore, now: datetime) -> dict[str, Any]:
    watermark = store.get_watermark()
    today = date.fromisoformat(day_of(now))
    open_days: list[str] | None = None
    if watermark is not None:
        first = date.fromisoformat(watermark) + timedelta(days=1)
        count = (today - first).days + 1
        open_days = [
            (first + timedelta(days=n)).isoformat() for n in range(min(count, _OPEN_DAYS_SHOWN))
        ]
    state = pump_state(store)
    stream: dict[str, Any] = {
        name: state.get(name) for name in ("last_record_at", "last_event_at", "processed_at")
    }
    stream["lag_s"] = round(int(state["lag_ms"]) / 1000, 3) if "lag_ms" in state else None
    processed = state.get("processed_at")
    stream["idle_s"] = (
        round((now - parse_iso(str(processed))).total_seconds(), 3) if processed else None
    )
    return {
        "watermark": watermark,
        "watermark_age_s": watermark_age_s(watermark, now),
        "open_days": open_days,
        "stream": stream,
    }


def watermark_age_s(watermark: str | None, now: datetime) -> int | None:
    """Seconds since the end of the last closed Day."""
    if watermark is None:
        return None
    return int((now - day_end(watermark)).total_seconds())


def watermark_age_emf(stage: str, watermark: str | None, now: datetime) -> str | None:
    """One CloudWatch EMF line: VTS/CloseWatermarkAge (Seconds) by Stage."""
    age = watermark_age_s(watermark, now)
    if age is None:
        return None
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(now.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": "VTS",
                        "Dimensions": [["Stage"]],
                        "Metrics": [{"Name": "CloseWatermarkAge", "Unit": "Seconds"}],
                    }
                ],
            },
            "Stage": stage,
            "CloseWatermarkAge": age,
            "Watermark": watermark,
        },
        separators=(",", ":"),
    )
