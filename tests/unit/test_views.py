"""The shared View step: one counted View per (Post, Day, Visitor), and a key the store
confirmed costs no second write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.errors import StorageUnavailable
from chalicelib.known import KnownViews
from chalicelib.model import ViewEvent
from chalicelib.storage.memory import MemoryEventStore
from chalicelib.views import ViewKeeper

VIEW = ViewEvent(
    post_id=7,
    owner_id="artist-1",
    intent="view",
    occurred_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
    visitor="h:fan",
    authenticated=False,
    source="web",
    device="desktop",
)


class FlakyEvents(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def put_view(self, event: ViewEvent) -> bool:
        if self.fail:
            raise StorageUnavailable("DynamoDB answered ThrottlingException")
        return super().put_view(event)


def test_a_new_view_is_counted_once_and_its_repeats_cost_no_write() -> None:
    events = MemoryEventStore()
    keeper = ViewKeeper(events, KnownViews())
    assert keeper.store(VIEW)
    later = replace(VIEW, occurred_at=VIEW.occurred_at + timedelta(hours=5), device="phone")
    assert not keeper.store(VIEW) and not keeper.store(later)
    assert events.writes == 1


def test_another_visitor_or_day_is_a_new_key() -> None:
    events = MemoryEventStore()
    keeper = ViewKeeper(events, KnownViews())
    assert keeper.store(VIEW)
    assert keeper.store(replace(VIEW, visitor="h:other"))
    assert keeper.store(replace(VIEW, occurred_at=VIEW.occurred_at + timedelta(days=1)))
    assert events.writes == 3


def test_a_key_another_container_stored_costs_one_refused_write() -> None:
    events = MemoryEventStore()
    assert ViewKeeper(events, KnownViews()).store(VIEW)
    here = ViewKeeper(events, KnownViews())  # same store, this container's own memory
    assert not here.store(VIEW) and not here.store(VIEW)
    assert events.writes == 2


def test_keepers_sharing_what_the_store_confirmed_ask_once() -> None:
    events, known = MemoryEventStore(), KnownViews()
    assert ViewKeeper(events, known).store(VIEW)  # e.g. the web recorder
    assert not ViewKeeper(events, known).store(replace(VIEW, source="player"))  # a frame
    assert events.writes == 1


def test_a_write_that_failed_is_not_remembered() -> None:
    events = FlakyEvents()
    keeper = ViewKeeper(events, KnownViews())
    events.fail = True
    with pytest.raises(StorageUnavailable):
        keeper.store(VIEW)
    events.fail = False
    assert keeper.store(VIEW)  # the retry is written and counted
