"""The AggregateStore contract, for DynamoAggregateStore (moto over HTTP) and the in-memory fake."""

from __future__ import annotations

import pytest

from chalicelib.config import Settings
from chalicelib.counts import Target
from chalicelib.errors import BadRequest
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.ports import AggregateStore, CounterUpdate
from chalicelib.wiring import dynamodb_services, memory_services

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> AggregateStore:
    if request.param == "memory":
        return memory_services(Settings()).aggregate_items
    settings: Settings = request.getfixturevalue("aws_env")
    return dynamodb_services(settings).aggregate_items


def test_counters_add_up_and_sets_apply(store: AggregateStore) -> None:
    key = (layout.pk_of(Target.post(7)), layout.day_sk("2026-11-24"))
    first = CounterUpdate(
        *key,
        add={"v": 2, "vc:BR": 2, "i": 0},
        set={"owner": "a1", "last_at": "t2"},
        set_if_absent={"first_at": "t1"},
    )
    second = CounterUpdate(
        *key, add={"v": 1, "vc:PT": 1}, set={"last_at": "t3"}, set_if_absent={"first_at": "t9"}
    )
    assert store.add_counters([first]) == []
    assert store.add_counters([second]) == []
    item = store.get_items([key])[key]
    assert item["v"] == 3 and item["vc:BR"] == 2 and item["vc:PT"] == 1
    assert item["i"] == 0  # an ADD of 0 still creates the counter
    assert item["first_at"] == "t1" and item["last_at"] == "t3" and item["owner"] == "a1"


def test_an_update_past_the_item_size_limit_is_refused_not_raised(store: AggregateStore) -> None:
    key = (layout.pk_of(Target.post(2)), layout.day_sk("2026-11-24"))
    big = CounterUpdate(*key, add={"v": 1}, set={"blob": "x" * 300_000})
    bigger = CounterUpdate(*key, add={"v": 1}, set={"blob2": "y" * 200_000})
    # One call each: the DynamoDB adapter sends a call's updates concurrently, in any order.
    assert store.add_counters([big]) == []
    assert store.add_counters([bigger]) == [(bigger, "too_large")]
    assert store.get_items([key])[key]["v"] == 1


def test_put_and_get_many_items_beyond_one_batch(store: AggregateStore) -> None:
    items = [{"pk": "P#9", "sk": f"D#2026-10-{n % 31 + 1:02d}#{n}", "v": n} for n in range(60)]
    items.append({"pk": "P#9", "sk": "D#2026-10-01#0", "v": 1000})  # same key again: last wins
    items.append({"pk": "P#9", "sk": "B0#2026-10-01", "hll": b"\x00\x01\xff", "ok": True})
    store.put_items(items)
    wanted = [(str(i["pk"]), str(i["sk"])) for i in items] + [("P#9", f"X#{n}") for n in range(50)]
    found = store.get_items(wanted)
    assert len(found) == 61
    assert found[("P#9", "D#2026-10-01#0")]["v"] == 1000
    assert found[("P#9", "B0#2026-10-01")]["hll"] == b"\x00\x01\xff"
    assert type(found[("P#9", "B0#2026-10-01")]["hll"]) is bytes
    assert found[("P#9", "B0#2026-10-01")]["ok"] is True


def test_days_come_in_order_and_within_bounds(store: AggregateStore) -> None:
    days = ["2026-11-20", "2026-11-22", "2026-11-21", "2026-11-25"]
    store.put_items([{"pk": "A#x", "sk": f"D#{d}", "v": 1} for d in days])
    store.put_items(
        [
            {"pk": "A#x", "sk": layout.piece_sk(0, "2026-11-21"), "hll": b"1"},
            {"pk": "A#x", "sk": layout.series_sk("2026-11-19"), "s": b"1", "rev": 1},
            {"pk": "A#x", "sk": "TOTAL"},
        ]
    )
    store.put_items([{"pk": "A#y", "sk": "D#2026-11-21", "v": 1}])
    found = store.query_range("A#x", layout.day_sk("2026-11-21"), layout.day_sk("2026-11-25"))
    assert [i["sk"] for i in found] == ["D#2026-11-21", "D#2026-11-22", "D#2026-11-25"]
    markers = [
        {"pk": layout.marker_pk("2026-11-21"), "sk": f"P#{n}", "own": "a"} for n in range(30)
    ]
    store.put_items(markers)
    listed = store.query_range(layout.marker_pk("2026-11-21"), "P#", "P#~")
    assert sorted(layout.post_of_marker_sk(str(m["sk"])) for m in listed) == list(range(30))


def test_an_artist_s_posts_page_by_views(store: AggregateStore) -> None:
    views = {1: 50, 2: 10, 3: 70, 4: 10, 5: 0, 6: 30, 7: 10}
    items = [
        {"pk": f"P#{p}", "sk": layout.RANK_SK, "gpk": "A#a1", "v": v, "i": p, "own": "x"}
        for p, v in views.items()
    ]
    items.append({"pk": "P#8", "sk": layout.RANK_SK, "gpk": "A#other", "v": 99})
    items.append({"pk": "P#1", "sk": "D#2026-11-24", "v": 12})  # no gpk: not listed
    store.put_items(items)
    seen: list[dict[str, object]] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.query_artist_posts("a1", 3, cursor)
        pages += 1
        seen.extend(page)
        if cursor is None:
            break
    assert pages == 3
    assert [i["v"] for i in seen] == [70, 50, 30, 10, 10, 10, 0]
    assert sorted(str(i["pk"]) for i in seen) == [f"P#{p}" for p in range(1, 8)]
    assert all(i["i"] for i in seen)  # the projected row, not just the index keys
    assert all("own" not in i for i in seen)  # ... and only the projected attributes
    assert store.query_artist_posts("nobody", 5, None) == ([], None)
    page, cursor = store.query_artist_posts("a1", 7, None)
    assert len(page) == 7 and cursor is None
    _, cursor = store.query_artist_posts("a1", 2, None)
    assert cursor is not None
    with pytest.raises(BadRequest):
        store.query_artist_posts("other", 2, cursor)
    with pytest.raises(BadRequest):
        store.query_artist_posts("a1", 2, "not-a-cursor")


def test_the_watermark_only_moves_forward(store: AggregateStore) -> None:
    assert store.get_watermark() is None
    assert store.advance_watermark("2026-11-20") is True
    assert store.advance_watermark("2026-11-20") is False
    assert store.advance_watermark("2026-11-19") is False
    assert store.get_watermark() == "2026-11-20"
    assert store.advance_watermark("2026-11-22") is True
    assert store.get_watermark() == "2026-11-22"


def test_put_if_overwrites_only_an_unchanged_item(store: AggregateStore) -> None:
    item = {"pk": "P#3", "sk": "S#2026-11-19", "s": b"\x78\x01", "rev": 1}
    assert store.put_if(item, "rev", None) is True
    assert store.put_if({**item, "rev": 2, "s": b"x"}, "rev", None) is False
    assert store.put_if({**item, "rev": 2, "s": b"y"}, "rev", 1) is True
    assert store.put_if({**item, "rev": 3, "s": b"z"}, "rev", 1) is False
    assert store.get_items([("P#3", "S#2026-11-19")])[("P#3", "S#2026-11-19")]["s"] == b"y"


def test_total_is_added_to_once_per_day_with_its_bitmap(store: AggregateStore) -> None:
    # The close's TOTAL: guarded by ``thru`` (a Day is added once), activity as Binary.
    active = closed.Activity([20000, 20003, 20011])
    total = {"pk": "P#3", "sk": "TOTAL", "v": 4, "thru": "2024-10-04", **active.attributes()}
    assert store.put_if(total, "thru", None) is True
    assert store.put_if({**total, "v": 9}, "thru", None) is False
    assert store.put_if({**total, "thru": "2024-10-05"}, "thru", "2024-10-03") is False
    found = store.get_items([("P#3", "TOTAL")])[("P#3", "TOTAL")]
    assert found == total and type(found["act"]) is bytes
    assert closed.Activity.from_item(found).days == active.days


def test_the_listing_rows_are_the_rank_items_projection(store: AggregateStore) -> None:
    # RANK items carry the index key and the row; TOTAL items are not read for a page.
    ranks = {1: 5, 2: 9, 3: 0}
    store.put_items(
        [
            {"pk": f"P#{p}", "sk": layout.RANK_SK, "gpk": "A#r1", "v": v, "i": p, "first_at": "x"}
            for p, v in ranks.items()
        ]
    )
    store.put_items([{"pk": f"P#{p}", "sk": layout.TOTAL_SK, "v": 99} for p in ranks])
    page, cursor = store.query_artist_posts("r1", 10, None)
    assert cursor is None
    assert page == [
        {"pk": "P#2", "v": 9, "i": 2, "first_at": "x"},
        {"pk": "P#1", "v": 5, "i": 1, "first_at": "x"},
        {"pk": "P#3", "v": 0, "i": 3, "first_at": "x"},
    ]


def test_an_update_of_hundreds_of_counters_applies_whole(store: AggregateStore) -> None:
    key = (layout.pk_of(Target.post(4)), layout.day_sk("2026-11-24"))
    add = {f"vr:site{n}.example": 1 for n in range(450)}
    add["v"] = 450
    update = CounterUpdate(
        *key, add=add, set={"owner": "a"}, set_if_absent={"first_at": "t", "expires_at": 9}
    )
    assert store.add_counters([update, update]) == []
    item = store.get_items([key])[key]
    assert item["v"] == 900 and item["vr:site449.example"] == 2 and item["owner"] == "a"
    assert item["expires_at"] == 9
