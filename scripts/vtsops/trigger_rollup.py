"""Local stand-ins for the rollup's AWS triggers: the events-stream -> Lambda mapping (a pump
reading moto's DynamoDB Stream) and the hourly EventBridge schedule of ``close_days``.

Both invoke the very handlers of app.py with the event shapes AWS would send. The pump
behaves like Lambda's event source mapping with ``ReportBatchItemFailures``: a batch that
raised, or answered ``batchItemFailures``, is retried from the failed record; records
before it count as done.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.config import Settings
from chalicelib.wiring import dynamodb_client

logger = logging.getLogger("vts.local.rollup")

Handler = Callable[[dict[str, Any], Any], Any]
GET_RECORDS_MAX = 250  # per GetRecords call (DynamoDB allows 1000; moto takes ~4 ms a record)


class Every:
    """A daemon thread that calls ``work`` every ``interval_s`` seconds until stopped, as a
    scheduled trigger would; a failed call is logged and the next one comes as planned.
    ``at_once``: the first call right away, not after one interval."""

    def __init__(
        self, name: str, work: Callable[[], Any], interval_s: float, *, at_once: bool
    ) -> None:
        self._name = name
        self._work = work
        self._interval_s = interval_s
        self._at_once = at_once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait at most 2 s: a call cut short is safe here (both
        handlers are idempotent and resume where they stood), so Ctrl-C need not wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        if not self._at_once and self._stop.wait(self._interval_s):
            return
        while True:
            try:
                self._work()
            except Exception:  # the stand-in keeps running, like the AWS trigger would
                logger.exception("%s: a call failed", self._name)
            if self._stop.wait(self._interval_s):
                return


class LocalContext:
    """The parts of Lambda's context object a handler may read."""

    def __init__(self, function_name: str, timeout_s: int = 60) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 256
        self._deadline = datetime.now(UTC).timestamp() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - datetime.now(UTC).timestamp()) * 1000))


def lambda_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it (creation time in epoch seconds, the ARN)."""
    body = dict(raw["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        body["ApproximateCreationDateTime"] = int(created.timestamp())
    dynamodb = {
        name: body[name]
        for name in (
            "ApproximateCreationDateTime",
            "Keys",
            "NewImage",
            "OldImage",
            "SequenceNumber",
            "SizeBytes",
            "StreamViewType",
        )
        if name in body
    }
    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in raw:
        record["userIdentity"] = raw["userIdentity"]
    return record


def _aggregate_handler() -> Handler:
    from app import aggregate

    return aggregate  # type: ignore[no-any-return]


def _close_handler() -> Handler:
    from app import close_days

    return close_days  # type: ignore[no-any-return]


@dataclass
class PumpReport:
    batches: int = 0
    records: int = 0
    failures: int = 0
    skipped_batches: int = 0
    lag_records: int = 0  # records left in the stream when the cycle stopped


@dataclass
class _Shard:
    shard_id: str
    after: str | None = None  # last sequence number fully handled
    iterator: str | None = None
    attempts: int = 0  # consecutive failed attempts of the batch at `after`


class StreamPump:
    """Reads the events table's stream (moto in server mode) and invokes ``aggregate``."""

    name = "stream pump (events stream -> aggregate)"

    def __init__(
        self,
        settings: Settings,
        handler: Handler | None = None,
        *,
        batch_size: int = 100,
        interval_s: float = 1.0,
        retries_per_cycle: int = 3,
        max_attempts: int | None = None,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000 (Lambda's BatchSize)")
        self._settings = settings
        self._handler = handler
        self._batch_size = batch_size
        self._retries_per_cycle = retries_per_cycle
        # Like MaximumRetryAttempts: a batch failing this often is skipped (and kept in
        # `dead_letters`, as the on-failure destination would). None: retry forever.
        self._max_attempts = max_attempts
        self._client = dynamodb_client(settings)
        self._streams = dynamodb_client(settings, "dynamodbstreams")
        self._arn: str | None = None
        self._shards: dict[str, _Shard] = {}
        self.dead_letters: list[dict[str, Any]] = []
        self.totals = PumpReport()
        self._every = Every("stream-pump", self.pump_once, interval_s, at_once=True)
        self._lock = threading.Lock()

    # ---- the component ------------------------------------------------------------------------

    def start(self) -> None:
        self._every.start()

    def stop(self) -> None:
        self._every.stop()

    # ---- one cycle ----------------------------------------------------------------------------

    def pump_once(self) -> PumpReport:
        """Hand every record now in the stream to the handler, in batches; stop early on a
        batch that keeps failing (it is retried next cycle, from the failed record)."""
        with self._lock:
            report = PumpReport()
            arn = self._stream_arn()
            description = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]
            for shard in description.get("Shards", []):
                state = self._shards.setdefault(shard["ShardId"], _Shard(shard["ShardId"]))
                self._pump_shard(arn, state, report)
            self._add(report)
            return report

    def _stream_arn(self) -> str:
        if self._arn is None:
            table = self._client.describe_table(TableName=self._settings.events_table)["Table"]
            self._arn = str(table["LatestStreamArn"])
        return self._arn

    def _iterator(self, arn: str, state: _Shard) -> str:
        if state.iterator is None:
            kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": state.shard_id}
            if state.after is None:
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=state.after)
            state.iterator = str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])
        return state.iterator

    def _read_batch(self, arn: str, state: _Shard) -> tuple[list[dict[str, Any]], str | None]:
        records: list[dict[str, Any]] = []
        iterator: str | None = self._iterator(arn, state)
        while iterator and len(records) < self._batch_size:
            limit = min(GET_RECORDS_MAX, self._batch_size - len(records))
            answer = self._streams.get_records(ShardIterator=iterator, Limit=limit)
            got = answer.get("Records", [])
            iterator = answer.get("NextShardIterator")
            records.extend(got)
            if len(got) < limit:
                break
        return records, iterator

    def _pump_shard(self, arn: str, state: _Shard, report: PumpReport) -> None:
        failures_this_cycle = 0
        while True:
            records, next_iterator = self._read_batch(arn, state)
            if not records:
                state.iterator = next_iterator
                return
            event = {"Records": [lambda_record(r, arn, self._settings.region) for r in records]}
            failed_at = self._invoke(event)
            report.batches += 1
            if failed_at is None:
                report.records += len(records)
                state.after = str(records[-1]["dynamodb"]["SequenceNumber"])
                state.iterator, state.attempts = next_iterator, 0
                continue
            # Records before the failed one are done; the rest come again (as Lambda does).
            done = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < failed_at]
            report.records += len(done)
            if done:
                state.after, state.attempts = str(done[-1]["dynamodb"]["SequenceNumber"]), 0
            state.iterator = None
            state.attempts += 1
            report.failures += 1
            failures_this_cycle += 1
            if self._max_attempts is not None and state.attempts >= self._max_attempts:
                rest = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= failed_at]
                self.dead_letters.append({"Records": rest})
                report.skipped_batches += 1
                state.after = str(records[-1]["dynamodb"]["SequenceNumber"])
                state.attempts = 0
                continue
            if failures_this_cycle >= self._retries_per_cycle:
                report.lag_records = len(records) - len(done)
                return

    def _invoke(self, event: dict[str, Any]) -> int | None:
        """The handler's answer as the sequence number to retry from (None: all done)."""
        handler = self._handler or _aggregate_handler()
        first = int(event["Records"][0]["dynamodb"]["SequenceNumber"])
        try:
            answer = handler(event, LocalContext("aggregate"))
        except Exception:
            logger.exception("stream pump: aggregate raised; retrying the batch")
            return first
        failures = (answer or {}).get("batchItemFailures") or []
        if not failures:
            return None
        return min(int(f["itemIdentifier"]) for f in failures)

    def _add(self, report: PumpReport) -> None:
        for name in ("batches", "records", "failures", "skipped_batches"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))


@dataclass
class CloseScheduler:
    """Calls ``close_days`` like its EventBridge rule, more often than hourly by default
    (locally a demo should not wait an hour)."""

    handler: Handler | None = None
    interval_s: float = 60.0
    name: str = "scheduler (close_days)"
    runs: list[Any] = field(default_factory=list)
    _every: Every | None = None

    def start(self) -> None:
        self._every = Every("close-scheduler", self.run_once, self.interval_s, at_once=False)
        self._every.start()

    def stop(self) -> None:
        if self._every is not None:
            self._every.stop()

    def run_once(self) -> Any:
        handler = self.handler or _close_handler()
        answer = handler(scheduled_event(), LocalContext("close_days", timeout_s=900))
        self.runs.append(answer)
        return answer


def scheduled_event(now: datetime | None = None) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" a rate rule sends (the handler ignores its time)."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/vts-dev-close_days"],
        "detail": {},
    }


def components(services: Any) -> list[Any]:
    """The local stack's rollup triggers (started in this order, stopped in reverse)."""
    return [StreamPump(services.settings), CloseScheduler()]
