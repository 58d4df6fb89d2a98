"""How DynamoAggregateStore cuts its requests: BatchWriteItem by 25, BatchGetItem by 100,
one key once per request, long counter updates split under the expression limit."""

from __future__ import annotations

import pytest

from chalicelib.storage.aggregates_dynamodb import (
    MAX_TERMS,
    READ_BATCH,
    WRITE_BATCH,
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


def test_a_long_update_is_split_and_each_part_keeps_the_condition() -> None:
    add = {f"vr:d{n}.example": 1 for n in range(250)}
    update = CounterUpdate(
        "P#1",
        "D#2026-11-24",
        add=add,
        set={"owner": "a"},
        set_if_absent={"first_at": "t"},
        only_open=True,
    )
    requests = update_requests(update)
    assert len(requests) == 3
    terms = [len(r["ExpressionAttributeNames"]) - 1 for r in requests]  # minus `closed`
    assert all(t <= MAX_TERMS for t in terms) and sum(terms) == 252
    assert all(r["ConditionExpression"].startswith("attribute_not_exists(") for r in requests)
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
