"""How DynamoAggregateStore cuts its requests: BatchWriteItem by 25, BatchGetItem by 100,
one key once per request, long counter updates split under the expression limit."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import StorageUnavailable
from chalicelib.storage.aggregates.items_dynamodb import (
    MAX_TERMS,
    READ_BATCH,
    WRITE_BATCH,
    DynamoAggregateStore,
    chunked,
    unique_by_key,
    update_requests,
)
from chalicelib.storage.ports import CounterUpdate


def test_chunks_keep_order_and_never_pass_the_limit() -> None:
    assert WRITE_BATCH == 25 and READ_BATCH == 100
    items = list(range(26))
    chunks = list(chunked(items, WRITE_BATCH))
    assert [len(c) for c in chunks] == [25, 1]
    assert [x for c in chunks for x in c] == items
    assert [len(c) for c in chunked(list(range(250)), READ_BATCH)] == [100, 100, 50]
    assert list(chunked([], 25)) == []
    assert [len(c) for c in chunked(list(range(50)), 25)] == [25, 25]
    with pytest.raises(ValueError):
        list(chunked([1], 0))


def test_one_request_names_an_item_once_the_last_version_wins() -> None:
    items = [
        {"pk": "P#1", "sk": "D#1", "v": 1},
        {"pk": "P#2", "sk": "D#1"},
        {"pk": "P#1", "sk": "D#1", "v": 2},
    ]
    assert unique_by_key(items) == [{"pk": "P#1", "sk": "D#1", "v": 2}, {"pk": "P#2", "sk": "D#1"}]


def test_a_long_update_is_split_under_the_expression_limit() -> None:
    add = {f"vr:d{n}.example": 1 for n in range(250)}
    update = CounterUpdate(
        "P#1", "D#2026-11-24", add=add, set={"owner": "a"}, set_if_absent={"first_at": "t"}
    )
    requests = update_requests(update)
    assert len(requests) == 3
    terms = [len(r["ExpressionAttributeNames"]) for r in requests]
    assert all(t <= MAX_TERMS for t in terms) and sum(terms) == 252
    assert all("ConditionExpression" not in r for r in requests)
    assert "SET" in requests[0]["UpdateExpression"] and "SET" not in requests[1]["UpdateExpression"]
    assert all(len(r["UpdateExpression"]) < 4096 for r in requests)


def test_an_empty_update_sends_nothing() -> None:
    assert update_requests(CounterUpdate("P#1", "D#1", add={})) == []
    small = update_requests(CounterUpdate("P#1", "D#1", add={"v": 1}))
    assert small == [
        {
            "Key": {"pk": {"S": "P#1"}, "sk": {"S": "D#1"}},
            "UpdateExpression": "ADD #n0 :v0",
            "ExpressionAttributeNames": {"#n0": "v"},
            "ExpressionAttributeValues": {":v0": {"N": "1"}},
        }
    ]


class ThrottlingClient:
    """A stand-in for boto3's DynamoDB client that leaves part of each batch unprocessed
    the first time, as DynamoDB does under throttling."""

    def __init__(self) -> None:
        self.writes: list[list[dict[str, Any]]] = []
        self.reads: list[list[dict[str, Any]]] = []

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        requests = RequestItems["t"]
        self.writes.append(requests)
        if len(self.writes) == 1:
            return {"UnprocessedItems": {"t": requests[-2:]}}
        return {"UnprocessedItems": {}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        keys = RequestItems["t"]["Keys"]
        self.reads.append(keys)
        if len(self.reads) == 1:
            return {
                "Responses": {"t": [{**keys[0], "v": {"N": "1"}}]},
                "UnprocessedKeys": {"t": {"Keys": keys[1:]}},
            }
        return {"Responses": {"t": [{**k, "v": {"N": "2"}} for k in keys]}}


def test_unprocessed_items_and_keys_are_retried_after_a_pause() -> None:
    client = ThrottlingClient()
    pauses: list[float] = []
    store = DynamoAggregateStore(client, "t", sleep=pauses.append)
    store.put_items({"pk": f"P#{n}", "sk": "D#1", "v": n} for n in range(30))
    assert [len(w) for w in client.writes] == [25, 2, 5]
    assert client.writes[1] == client.writes[0][-2:] and len(pauses) == 1
    found = store.get_items([("P#1", "D#1"), ("P#2", "D#1"), ("P#3", "D#1")])
    assert [len(r) for r in client.reads] == [3, 2]
    assert {k: v["v"] for k, v in found.items()} == {
        ("P#1", "D#1"): 1,
        ("P#2", "D#1"): 2,
        ("P#3", "D#1"): 2,
    }
    assert len(pauses) == 2


def test_throttling_that_never_ends_is_storage_unavailable() -> None:
    class Stuck:
        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            return {"UnprocessedItems": RequestItems}

    store = DynamoAggregateStore(Stuck(), "t", sleep=lambda s: None)
    with pytest.raises(StorageUnavailable):
        store.put_items([{"pk": "P#1", "sk": "D#1"}])
