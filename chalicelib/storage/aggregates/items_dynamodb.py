"""``DynamoAggregateStore``: the ``aggregates`` table over an injected boto3 client.

Batched where DynamoDB allows it (BatchWriteItem by 25, BatchGetItem by 100, with the
unprocessed part retried by one loop), one ``UpdateItem`` per counter update (ADD cannot be
batched); conditional writes go through ``storage.dynamodb.conditional_write``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError

from chalicelib.counts import Target
from chalicelib.storage import codec
from chalicelib.storage.aggregates import layout
from chalicelib.storage.aggregates.cursor import decode_cursor, encode_cursor, lifetime_rows
from chalicelib.storage.dynamodb import conditional_write, guarded, until_processed
from chalicelib.storage.ports import CounterUpdate
from chalicelib.storage.tables import BY_VIEWS_INDEX

T = TypeVar("T")
Key = tuple[str, str]

WRITE_BATCH = 25  # BatchWriteItem's limit (moto accepts more; DynamoDB does not)
READ_BATCH = 100  # BatchGetItem's limit
UPDATE_WORKERS = 8  # concurrent UpdateItems (the client's connection pool holds 20)
MAX_TERMS = 100  # attributes per UpdateItem expression


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most ``size`` items, in order."""
    if size < 1:
        raise ValueError("a chunk holds at least one item")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def unique_by_key(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last item for each (pk, sk): one request may not name an item twice."""
    latest: dict[Key, dict[str, Any]] = {}
    for item in items:
        latest[(item["pk"], item["sk"])] = item
    return list(latest.values())


def _typed_key(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def _decode(raw: dict[str, Any]) -> dict[str, Any]:
    item = codec.from_typed(raw)
    for name, value in item.items():
        if isinstance(value, Binary):
            item[name] = bytes(value.value)
    return item


def _is_too_large(error: ClientError) -> bool:
    body = error.response.get("Error", {})
    # DynamoDB has no distinct code for this ValidationException; its text is stable.
    return body.get("Code") == "ValidationException" and "maximum allowed size" in str(
        body.get("Message", "")
    )


class DynamoAggregateStore:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep

    # ---- writes -----------------------------------------------------------------------------

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        # Updates of one item go in order, in one worker: they never race each other for the
        # item (DynamoDB would serialise them; moto, and the item's write capacity, need not).
        by_item: dict[Key, list[CounterUpdate]] = {}
        for update in updates:
            by_item.setdefault((update.pk, update.sk), []).append(update)
        groups = list(by_item.values())
        if len(groups) <= 1:
            outcomes = [self._update_all(group) for group in groups]
        else:
            # UpdateItem cannot be batched; concurrent calls cut a big batch's latency ~4x.
            with ThreadPoolExecutor(max_workers=min(UPDATE_WORKERS, len(groups))) as pool:
                outcomes = list(pool.map(self._update_all, groups))
        return [refused for outcome in outcomes for refused in outcome]

    def _update_all(self, updates: list[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        """Apply updates of one item in order; those refused, each with why."""
        refused = []
        for update in updates:
            reason = self._update(update)
            if reason:
                refused.append((update, reason))
        return refused

    def _update(self, update: CounterUpdate) -> str | None:
        """Apply one update; the reason it was refused, or None. A split update stops at
        its first refused part (the rest would be refused alike)."""
        for request in update_requests(update):
            try:
                guarded(partial(self._client.update_item, TableName=self._table, **request))
            except ClientError as error:
                if _is_too_large(error):
                    return "too_large"
                raise
        return None

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        for chunk in chunked(unique_by_key(items), WRITE_BATCH):
            requests = [{"PutRequest": {"Item": codec.to_typed(item)}} for item in chunk]
            until_processed(
                self._sleep, self._client.batch_write_item, {self._table: requests}, "UnprocessedItems"
            )

    def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
        typed = codec.to_typed(item)
        names = {"#a": attribute}
        if expected is None:
            condition = "attribute_not_exists(#a)"
            values: dict[str, Any] = {}
        else:
            condition = "#a = :e"
            values = {":e": codec.to_typed({"e": expected})["e"]}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": typed,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        return conditional_write(lambda: self._client.put_item(**kwargs)).applied

    # ---- reads ------------------------------------------------------------------------------

    def get_items(self, keys_: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        found: dict[Key, dict[str, Any]] = {}
        for chunk in chunked(sorted(set(keys_)), READ_BATCH):
            pending = {self._table: {"Keys": [_typed_key(k) for k in chunk]}}
            answers = until_processed(
                self._sleep, self._client.batch_get_item, pending, "UnprocessedKeys"
            )
            for answer in answers:
                for raw in answer.get("Responses", {}).get(self._table, []):
                    item = _decode(raw)
                    found[(item["pk"], item["sk"])] = item
        return found

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            page_kwargs = dict(kwargs, TableName=self._table)
            if start:
                page_kwargs["ExclusiveStartKey"] = start
            answer = guarded(partial(self._client.query, **page_kwargs))
            for raw in answer.get("Items", []):
                yield _decode(raw)
            start = answer.get("LastEvaluatedKey")
            if not start:
                return

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        return list(
            self._query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
                ExpressionAttributeValues={
                    ":pk": {"S": pk},
                    ":first": {"S": first_sk},
                    ":last": {"S": last_sk},
                },
            )
        )

    def query_artist_posts(
        self, artist_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        gpk = layout.pk_of(Target.artist(artist_id))
        limit = max(1, limit)
        kwargs: dict[str, Any] = {
            "IndexName": BY_VIEWS_INDEX,
            "KeyConditionExpression": "gpk = :g",
            "ExpressionAttributeValues": {":g": {"S": gpk}},
            "ScanIndexForward": False,
            # One more than asked: tells whether another page exists without a blank page.
            "Limit": limit + 1,
        }
        if cursor:
            v, pk, sk = decode_cursor(cursor, gpk)
            kwargs["ExclusiveStartKey"] = {
                "gpk": {"S": gpk},
                "v": {"N": str(v)},
                "pk": {"S": pk},
                "sk": {"S": sk},
            }
        entries: list[dict[str, Any]] = []
        for entry in self._query(**kwargs):
            entries.append(entry)
            if len(entries) > limit:
                break
        more = len(entries) > limit
        entries = entries[:limit]
        next_cursor = encode_cursor(entries[-1]) if more and entries else None
        return lifetime_rows(entries), next_cursor

    # ---- the close watermark ----------------------------------------------------------------

    def get_watermark(self) -> str | None:
        # GetItem, not BatchGetItem: the stream handler reads it every batch with a narrow policy.
        answer = guarded(
            partial(
                self._client.get_item, TableName=self._table, Key=_typed_key(layout.watermark_key())
            )
        )
        item = answer.get("Item")
        return str(_decode(item)["day"]) if item else None

    def advance_watermark(self, day: str) -> bool:
        written = conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=_typed_key(layout.watermark_key()),
                UpdateExpression="SET #d = :d",
                ConditionExpression="attribute_not_exists(#d) OR #d < :d",
                ExpressionAttributeNames={"#d": "day"},
                ExpressionAttributeValues={":d": {"S": day}},
            )
        )
        return written.applied


def update_requests(update: CounterUpdate) -> list[dict[str, Any]]:
    """The UpdateItem arguments for one counter update: one request, or several when it
    has more than ``MAX_TERMS`` attributes (DynamoDB caps an expression at 4 KB; moto's
    parser gives up near 200 terms). Empty when it changes nothing."""
    adds = [(attribute, int(n)) for attribute, n in update.add.items()]
    sets = [(a, v) for a, v in update.set.items() if v is not None]
    keeps = [(a, v) for a, v in update.set_if_absent.items() if v is not None]
    head = MAX_TERMS - len(sets) - len(keeps)
    if head < 1:
        raise ValueError("a counter update sets more attributes than one request can")
    chunks = [adds[:head]] + [adds[i : i + MAX_TERMS] for i in range(head, len(adds), MAX_TERMS)]
    requests = []
    for n, chunk in enumerate(chunks):
        request = _one_request(update, chunk, sets if n == 0 else [], keeps if n == 0 else [])
        if request is not None:
            requests.append(request)
    return requests


def _one_request(
    update: CounterUpdate,
    adds: list[tuple[str, int]],
    sets: list[tuple[str, Any]],
    keeps: list[tuple[str, Any]],
) -> dict[str, Any] | None:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def name(attribute: str) -> str:
        placeholder = f"#n{len(names)}"
        names[placeholder] = attribute
        return placeholder

    def value(plain: Any) -> str:
        placeholder = f":v{len(values)}"
        values[placeholder] = codec.to_typed({"x": plain})["x"]
        return placeholder

    added = [f"{name(attribute)} {value(n)}" for attribute, n in adds]
    setting = [f"{name(attribute)} = {value(plain)}" for attribute, plain in sets]
    for attribute, plain in keeps:
        placeholder = name(attribute)
        setting.append(f"{placeholder} = if_not_exists({placeholder}, {value(plain)})")
    if not added and not setting:
        return None
    clauses = []
    if setting:
        clauses.append("SET " + ", ".join(setting))
    if added:
        clauses.append("ADD " + ", ".join(added))
    request: dict[str, Any] = {
        "Key": _typed_key((update.pk, update.sk)),
        "UpdateExpression": " ".join(clauses),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return request
