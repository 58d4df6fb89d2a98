"""DynamoDB adapters over an injected boto3 client (low-level: cheaper to create than resources)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import StorageThrottled, StorageUnavailable
from chalicelib.model import HotMark, PlayerRecord, PostRecord, ViewEvent
from chalicelib.storage import codec, gate, keys
from chalicelib.storage.ports import Admission, GateClaim

T = TypeVar("T")

# Errors that mean "the storage is not answering": the caller may retry later.
_UNAVAILABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "ResourceNotFoundException",
    "TransactionConflictException",
}
# Of those, the ones that mean "too much at once on this key or table": another key may pass.
_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException"}


def is_conditional_failure(error: ClientError) -> bool:
    code: object = error.response.get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"


def guarded(call: Callable[[], T]) -> T:
    """Run one DynamoDB call; infrastructure faults become ``StorageUnavailable``."""
    try:
        return call()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _THROTTLED:
            raise StorageThrottled(f"DynamoDB answered {code}") from error
        if code in _UNAVAILABLE or code.startswith("5"):
            raise StorageUnavailable(f"DynamoDB answered {code}") from error
        raise
    except BotoCoreError as error:
        raise StorageUnavailable(f"DynamoDB unreachable: {type(error).__name__}") from error


BATCH_ROUNDS = 8  # rounds for unprocessed keys or items before StorageUnavailable


def until_processed(
    sleep: Callable[[float], None],
    call: Callable[..., dict[str, Any]],
    pending: dict[str, Any],
    unprocessed: str,
) -> list[dict[str, Any]]:
    """The answers to one batch request (``call(RequestItems=pending)``: BatchGetItem or
    BatchWriteItem) and to its retries of what DynamoDB left ``unprocessed``, which means
    throttling: a pause before each retry, ``StorageUnavailable`` after ``BATCH_ROUNDS``."""
    answers = []
    for attempt in range(BATCH_ROUNDS):
        answers.append(guarded(partial(call, RequestItems=pending)))
        pending = answers[-1].get(unprocessed) or {}
        if not pending:
            return answers
        sleep(min(2.0, 0.05 * 2**attempt))
    raise StorageUnavailable(f"DynamoDB left {unprocessed} after retries")


@dataclass(frozen=True)
class ConditionalWrite:
    """What became of one conditional write (``conditional_write``)."""

    applied: bool  # its ConditionExpression held, so DynamoDB made the write
    # Applied: DynamoDB's answer (with ``Attributes`` when the call asked for ReturnValues).
    answer: dict[str, Any] = field(default_factory=dict)
    # Refused: the item as it was, typed, when the call asked for
    # ``ReturnValuesOnConditionCheckFailure="ALL_OLD"`` and the item existed; else {}.
    old_item: dict[str, Any] = field(default_factory=dict)


def conditional_write(call: Callable[[], dict[str, Any]]) -> ConditionalWrite:
    """Run one write carrying a ``ConditionExpression`` (put, update or delete) through
    ``guarded``. A failed condition is an answer, not an error: ``applied`` is False, with
    the ``old_item`` DynamoDB returned. Any other error raises as from ``guarded``."""
    try:
        return ConditionalWrite(applied=True, answer=guarded(call))
    except ClientError as error:
        if not is_conditional_failure(error):
            raise
        return ConditionalWrite(applied=False, old_item=error.response.get("Item") or {})


class DynamoEventStore:
    def __init__(self, client: Any, table: str, ttl_days: int) -> None:
        self._client = client
        self._table = table
        self._ttl_days = ttl_days

    def put_view(self, event: ViewEvent) -> bool:
        item = codec.to_typed(codec.event_item(event, self._ttl_days))
        written = conditional_write(
            lambda: self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        )
        return written.applied

    def put_impression(self, event: ViewEvent) -> None:
        item = codec.to_typed(codec.event_item(event, self._ttl_days))
        guarded(lambda: self._client.put_item(TableName=self._table, Item=item))

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.event_pk(post_id, day, shard)}},
        )
        iterator = iter(pages)
        while True:
            page = guarded(lambda: next(iterator, None))
            if page is None:
                return
            for raw in page.get("Items", []):
                yield codec.event_from_item(codec.from_typed(raw))


REGISTRY_READ_BATCH = 100  # BatchGetItem's limit
REGISTRY_WRITE_BATCH = 25  # BatchWriteItem's limit


class DynamoRegistry:
    def __init__(
        self, client: Any, table: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep

    def _batch_get(self, keys_: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Plain items by key: BatchGetItem by 100, retrying what DynamoDB left
        unprocessed (throttling) with a growing pause; ``StorageUnavailable`` past that."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        unique = sorted(set(keys_))
        for start in range(0, len(unique), REGISTRY_READ_BATCH):
            chunk = unique[start : start + REGISTRY_READ_BATCH]
            pending: dict[str, Any] = {
                self._table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in chunk]}
            }
            for answer in until_processed(
                self._sleep, self._client.batch_get_item, pending, "UnprocessedKeys"
            ):
                for raw in answer.get("Responses", {}).get(self._table, []):
                    item = codec.from_typed(raw)
                    found[(str(item["pk"]), str(item["sk"]))] = item
        return found

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        """Whole items by BatchWriteItem (25 a request; the last item of a key wins)."""
        latest = {(item["pk"], item["sk"]): item for item in items}
        unique = list(latest.values())
        for start in range(0, len(unique), REGISTRY_WRITE_BATCH):
            requests = [
                {"PutRequest": {"Item": codec.to_typed(item)}}
                for item in unique[start : start + REGISTRY_WRITE_BATCH]
            ]
            until_processed(
                self._sleep,
                self._client.batch_write_item,
                {self._table: requests},
                "UnprocessedItems",
            )

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = guarded(
            lambda: self._client.get_item(
                TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
            )
        )
        raw = answer.get("Item")
        return codec.from_typed(raw) if raw else None

    def _delete(self, pk: str, sk: str) -> bool:
        answer = guarded(
            lambda: self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                ReturnValues="ALL_OLD",
            )
        )
        return bool(answer.get("Attributes"))

    def get_post(self, post_id: int) -> PostRecord | None:
        item = self._get(*keys.post_key(post_id))
        return codec.post_from_item(post_id, item) if item else None

    def get_posts(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        return self._read_posts(post_ids, hot=False)

    def get_posts_with_hot(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        return self._read_posts(post_ids, hot=True)

    def _read_posts(self, post_ids: Iterable[int], *, hot: bool) -> dict[int, PostRecord]:
        ids = {int(post_id) for post_id in post_ids}
        wanted = [keys.post_key(post_id) for post_id in ids]
        if hot:
            wanted += [keys.hot_key(post_id) for post_id in ids]
        items = self._batch_get(wanted)
        found = {}
        for post_id in ids:
            item = items.get(keys.post_key(post_id))
            if item is None:
                continue
            post = codec.post_from_item(post_id, item)
            mark = items.get(keys.hot_key(post_id))
            found[post_id] = replace(post, hot=codec.hot_from_item(mark)) if mark else post
        return found

    def mark_hot(self, post_id: int, mark: HotMark) -> None:
        item = codec.to_typed(codec.hot_item(post_id, mark))
        # Refused when a mark lasting as long is there: nothing to do.
        conditional_write(
            lambda: self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #u < :u",
                ExpressionAttributeNames={"#u": "until"},
                ExpressionAttributeValues={":u": item["until"]},
            )
        )

    def put_post(self, post: PostRecord) -> None:
        item = codec.to_typed(codec.post_item(post))
        guarded(lambda: self._client.put_item(TableName=self._table, Item=item))

    def put_posts(self, posts: Iterable[PostRecord]) -> None:
        self._batch_put([codec.post_item(post) for post in posts])

    def delete_post(self, post_id: int) -> bool:
        return self._delete(*keys.post_key(post_id))

    def get_player(self, player_key: str) -> PlayerRecord | None:
        item = self._get(*keys.player_key(player_key))
        return codec.player_from_item(player_key, item) if item else None

    def get_players(self, player_keys: Iterable[str]) -> dict[str, PlayerRecord]:
        wanted = set(player_keys)
        items = self._batch_get([keys.player_key(key) for key in wanted])
        found = {}
        for key in wanted:
            item = items.get(keys.player_key(key))
            if item is not None:
                found[key] = codec.player_from_item(key, item)
        return found

    def put_player(self, player: PlayerRecord) -> None:
        item = codec.to_typed(codec.player_item(player))
        guarded(lambda: self._client.put_item(TableName=self._table, Item=item))

    def put_players(self, players: Iterable[PlayerRecord]) -> None:
        self._batch_put([codec.player_item(player) for player in players])

    def delete_player(self, player_key: str) -> bool:
        return self._delete(*keys.player_key(player_key))

    def take_slot(
        self, scope: str, subject: str, interval_s: int, now: datetime, token: str | None = None
    ) -> float | None:
        pk, sk = keys.rate_key(scope, subject)
        now_ms = int(now.timestamp() * 1000)
        until_ms = now_ms + interval_s * 1000
        values = {
            ":until": {"N": str(until_ms)},
            ":now": {"N": str(now_ms)},
            ":exp": {"N": str(until_ms // 1000 + 60)},
        }
        # TTL deletion lags: an expired slot is free whether or not it is gone.
        condition = "attribute_not_exists(pk) OR until_ms <= :now"
        update = "SET until_ms = :until, expires_at = :exp"
        if token is None:
            update += " REMOVE tok"
        else:
            condition += " OR tok = :tok"
            update += ", tok = :tok"
            values[":tok"] = {"S": token}
        written = conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        )
        if written.applied:
            return None
        held_ms = int(written.old_item.get("until_ms", {}).get("N", until_ms))
        return max(0.0, (held_ms - now_ms) / 1000)

    def mark_once(
        self, scope: str, subject: str, ttl_s: int, now: datetime, token: str | None = None
    ) -> bool:
        pk, sk = keys.once_key(scope, subject)
        now_ms = int(now.timestamp() * 1000)
        until_ms = now_ms + ttl_s * 1000
        item = {
            "pk": {"S": pk},
            "sk": {"S": sk},
            "until_ms": {"N": str(until_ms)},
            "expires_at": {"N": str(math.ceil(until_ms / 1000) + 60)},
        }
        condition = "attribute_not_exists(pk) OR until_ms <= :now"
        values = {":now": {"N": str(now_ms)}}
        if token is not None:
            item["tok"] = {"S": token}
            condition += " OR tok = :tok"
            values[":tok"] = {"S": token}
        written = conditional_write(
            lambda: self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        )
        return written.applied

    def admit(self, claim: GateClaim, *, unless_marked: bool = True) -> Admission:
        size = gate.checked_ring_size(claim)
        now_ms = claim.now_ms
        index = gate.ring_index(claim, size)
        values: dict[str, Any] = {
            ":now": {"N": str(now_ms)},
            ":until": {"N": str(now_ms + claim.interval_s * 1000)},
            ":m": {"S": gate.message_digest(claim.message)},
            ":u": {"N": str(now_ms + claim.window_s * 1000)},
            ":tag": {"S": gate.token_tag(claim.token)},
            ":exp": {"N": str(gate.expires_at(claim))},
        }
        # TTL deletion lags: an expired slot or ring entry is free whether or not it is gone.
        slot = "attribute_not_exists(until_ms) OR until_ms <= :now"
        update = f"SET until_ms = :until, m{index} = :m, u{index} = :u, t{index} = :tag"
        update += ", expires_at = :exp"
        if claim.token is None:
            update += " REMOVE tok"
            other = ""
        else:
            slot += " OR tok = :tok"
            update += ", tok = :tok"
            values[":tok"] = {"S": claim.token}
            other = " AND t{i} <> :tag"
        clauses = [f"({slot})"]
        if unless_marked:
            clauses.append("(attribute_not_exists(mu) OR mu <= :now)")
        clauses += [f"NOT (m{i} = :m AND u{i} > :now{other.format(i=i)})" for i in range(size)]
        written = conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=self._gate_key(claim),
                UpdateExpression=update,
                ConditionExpression=" AND ".join(clauses),
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        )
        if written.applied:
            return Admission(admitted=True)
        return gate.read(codec.from_typed(written.old_item), claim, size)

    def peek_gate(self, claim: GateClaim) -> Admission:
        size = gate.checked_ring_size(claim)
        answer = guarded(
            lambda: self._client.get_item(
                TableName=self._table, Key=self._gate_key(claim), ConsistentRead=True
            )
        )
        return gate.read(codec.from_typed(answer.get("Item") or {}), claim, size)

    def note_marked(self, claim: GateClaim, until_ms: int) -> Admission:
        size = gate.checked_ring_size(claim)
        expires = max(gate.expires_at(claim), until_ms // 1000 + 61)
        written = conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=self._gate_key(claim),
                UpdateExpression="SET mu = :mu, expires_at = :exp",
                # Never lower it: another container may have noted a later marker.
                ConditionExpression="attribute_not_exists(mu) OR mu < :mu",
                ExpressionAttributeValues={
                    ":mu": {"N": str(until_ms)},
                    ":exp": {"N": str(expires)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        )
        # The gate as this call left it: the new item when raised, else the item as it was.
        item = (written.answer.get("Attributes") or {}) if written.applied else written.old_item
        return gate.read(codec.from_typed(item), claim, size)

    @staticmethod
    def _gate_key(claim: GateClaim) -> dict[str, Any]:
        pk, sk = keys.rate_key(claim.scope, claim.subject)
        return {"pk": {"S": pk}, "sk": {"S": sk}}


class DynamoDropStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def add_drops(self, day: str, counts: Mapping[str, int]) -> None:
        counts = {reason: n for reason, n in counts.items() if n}
        if not counts:
            return
        pk, sk = keys.drops_day_key(day)
        names = {f"#r{i}": reason for i, reason in enumerate(counts)}
        values = {f":n{i}": {"N": str(n)} for i, n in enumerate(counts.values())}
        expression = "ADD " + ", ".join(f"#r{i} :n{i}" for i in range(len(counts)))
        guarded(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        )

    def note_last_report(self, report: Mapping[str, str]) -> None:
        pk, sk = keys.last_player_report_key()
        fields = {"at": "", **report}
        names = {f"#f{i}": f"r_{name}" for i, name in enumerate(fields)}
        values = {f":v{i}": {"S": str(value)} for i, value in enumerate(fields.values())}
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        # An update (not a put): the same write the drop counters already make. Refused when
        # another container kept a later report: nothing more to do.
        conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression=f"SET {assignments}",
                ConditionExpression="attribute_not_exists(#f0) OR #f0 < :v0",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        )

    def last_report(self) -> dict[str, str] | None:
        pk, sk = keys.last_player_report_key()
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        answer = guarded(lambda: self._client.get_item(TableName=self._table, Key=key))
        item = codec.from_typed(answer.get("Item") or {})
        found = {k[2:]: str(v) for k, v in item.items() if k.startswith("r_")}
        return found or None

    def get_drops(self, days: Iterable[str]) -> dict[str, int]:
        totals: dict[str, int] = {}
        for day in days:
            pk, sk = keys.drops_day_key(day)
            key = {"pk": {"S": pk}, "sk": {"S": sk}}
            answer = guarded(lambda key=key: self._client.get_item(TableName=self._table, Key=key))  # type: ignore[misc]
            for name, value in codec.from_typed(answer.get("Item") or {}).items():
                if name in ("pk", "sk"):
                    continue
                totals[name] = totals.get(name, 0) + int(value)
        return totals
