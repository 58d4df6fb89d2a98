"""The rollup's triggers on moto: ``aggregate`` and ``close_days`` through Chalice's test
client, the local stream pump (Lambda's event shape, retries), and ``/v1/health``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vtsops.trigger_rollup import CloseScheduler, StreamPump

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.counts import Target
from chalicelib.days import day_of
from chalicelib.model import ViewEvent
from chalicelib.wiring import Services, dynamodb_services, use
from tests.conftest import auth, load_event

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)


@pytest.fixture
def services(aws_env: Settings) -> Services:
    return dynamodb_services(aws_env, clock=FixedClock(AT))


def view(n: int, **changes: Any) -> ViewEvent:
    base: dict[str, Any] = dict(
        post_id=1,
        owner_id="artist-1",
        intent="view",
        occurred_at=AT,
        visitor=f"h:{n}",
        authenticated=False,
        source="web",
        device="mobile",
        country="BR",
    )
    base.update(changes)
    return ViewEvent(**base)


def get(services: Services, pk: str, sk: str) -> dict[str, Any]:
    return services.aggregate_items.get_items([(pk, sk)]).get((pk, sk)) or {}


def test_aggregate_and_close_days_through_the_chalice_test_client(
    api: Any, services: Services
) -> None:
    from app import app

    answer = api.lambda_.invoke("aggregate", load_event("dynamodb_stream_batch"))
    assert answer.payload == {"batchItemFailures": []}
    assert get(services, "P#123", "D#2026-11-24")["v"] == 1
    # close_days takes "now" from the clock, never from the event (Chalice stamps 2015).
    services.clock = FixedClock(AT + timedelta(days=1))
    event = api.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    with use(services):
        report = api.lambda_.invoke("close_days", event).payload
    assert report["closed_days"] == ["2026-11-24"] and report["watermark"] == "2026-11-24"
    day = services.aggregates.closed_day(Target.post(123), "2026-11-24") or {}
    # The fixture's looks exist only in the stream, not in the raw table: with no raw
    # events to recount, the close keeps the live counts rather than zeroing the Day.
    assert day["v"] == 1 and day["uv"] == 1 and day["avr:makapix.club"] == 1
    assert get(services, "P#123", "TOTAL")["thru"] == "2026-11-24"
    assert "close_days" in app.handler_map and "aggregate" in app.handler_map


def test_the_pump_hands_the_stream_over_in_lambda_s_shape(services: Services) -> None:
    for n in range(5):
        services.events.put_view(view(n))
    services.events.put_impression(
        view(9, intent="impression", event_id="01KAT00000000000000000000A")
    )
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        assert context.function_name == "aggregate"
        return {"batchItemFailures": []}

    pump = StreamPump(services.settings, handler, batch_size=4)
    report = pump.pump_once()
    assert (report.records, report.batches, report.failures) == (6, 2, 0)
    assert [len(e["Records"]) for e in seen] == [4, 2]
    record = seen[0]["Records"][0]
    assert set(record) == {
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    }
    assert record["eventName"] == "INSERT" and record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"].endswith(record["eventSourceARN"].split("/stream/")[1])
    assert ":table/" + services.settings.events_table + "/stream/" in record["eventSourceARN"]
    body = record["dynamodb"]
    assert set(body) == {
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    }
    assert isinstance(body["ApproximateCreationDateTime"], int)
    assert body["StreamViewType"] == "NEW_IMAGE" and body["NewImage"]["post"] == {"N": "1"}
    assert pump.pump_once().records == 0  # nothing new: nothing handed over again


def test_the_pump_retries_from_the_failed_record_as_lambda_does(services: Services) -> None:
    for n in range(6):
        services.events.put_view(view(n))
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        calls.append(seqs)
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": seqs[3]}]}
        if len(calls) == 2:
            raise RuntimeError("the function failed")
        return {"batchItemFailures": []}

    pump = StreamPump(services.settings, handler, batch_size=10)
    report = pump.pump_once()
    assert report.records == 6 and report.failures == 2
    assert calls[1] == calls[0][3:] and calls[2] == calls[0][3:]


def test_a_batch_failing_too_often_is_set_aside(services: Services) -> None:
    services.events.put_view(view(1))

    def handler(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("always")

    pump = StreamPump(services.settings, handler, max_attempts=2, retries_per_cycle=5)
    report = pump.pump_once()
    assert report.skipped_batches == 1 and len(pump.dead_letters) == 1


def test_the_real_pump_and_scheduler_count_and_close(services: Services) -> None:
    for n in range(3):
        services.events.put_view(view(n))
    with use(services):
        StreamPump(services.settings).pump_once()
        assert get(services, "P#1", "D#2026-11-24")["v"] == 3
        services.clock = FixedClock(AT + timedelta(days=1))
        answer = CloseScheduler().run_once()
    assert answer["closed_days"] == ["2026-11-24"]
    day = services.aggregates.closed_day(Target.post(1), "2026-11-24") or {}
    assert day["v"] == 3 and day["uv"] == 3 and day["vh:13"] == 3


def test_health_reports_the_watermark_open_days_and_stream_lag(
    api: Any, services: Services
) -> None:
    with use(services):
        services.events.put_view(view(1))
        StreamPump(services.settings).pump_once()
        services.aggregate_items.advance_watermark("2026-11-22")
        body = api.http.get("/v1/health", headers=auth(services.settings, "ops", "admin")).json_body
    rollup = body["rollup"]
    assert rollup["watermark"] == "2026-11-22"
    assert rollup["open_days"] == ["2026-11-23", "2026-11-24"]
    assert rollup["stream"]["last_event_at"] == "2026-11-24T13:05:00.000Z"
    assert rollup["stream"]["lag_s"] == 0 and rollup["stream"]["last_record_at"]
    assert day_of(AT) == "2026-11-24"
