"""How far the rollup has got: the close watermark, the open Days, the stream's position.

Read by ``/v1/health`` and by the stats readers (``live_as_of``); the close reports the
watermark's age as a CloudWatch EMF metric (alarmed in infra/functions/close_days.yaml).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.days import day_end, day_name, day_number, day_of, next_day, parse_iso
from chalicelib.metrics import emf_line
from chalicelib.storage.aggregates import Aggregates

_OPEN_DAYS_SHOWN = 40


def live_as_of(aggregates: Aggregates) -> datetime | None:
    """The newest look the live counters are known to include."""
    last = aggregates.stream_position().last_event_at
    return parse_iso(last) if last else None


def rollup_status(aggregates: Aggregates, now: datetime) -> dict[str, Any]:
    watermark = aggregates.watermark()
    open_days: list[str] | None = None
    if watermark is not None:
        first = day_number(next_day(watermark))
        count = day_number(day_of(now)) - first + 1
        open_days = [day_name(first + n) for n in range(min(count, _OPEN_DAYS_SHOWN))]
    position = aggregates.stream_position()
    stream: dict[str, Any] = {
        "last_record_at": position.last_record_at,
        "last_event_at": position.last_event_at,
        "processed_at": position.processed_at,
        "lag_s": round(position.lag_ms / 1000, 3) if position.lag_ms is not None else None,
        "idle_s": (
            round((now - parse_iso(position.processed_at)).total_seconds(), 3)
            if position.processed_at
            else None
        ),
    }
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
    """One CloudWatch EMF line: VTS/CloseWatermarkAge (Seconds) by Stage, with the Watermark."""
    age = watermark_age_s(watermark, now)
    if age is None:
        return None
    return emf_line(
        stage, {"CloseWatermarkAge": age}, now, unit="Seconds", properties={"Watermark": watermark}
    )
