"""The same contract for the DynamoDB adapters (moto over HTTP) and the in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.config import Settings
from chalicelib.model import HotMark, PlayerRecord, PostRecord, ViewEvent
from chalicelib.storage import codec
from chalicelib.storage.dynamodb import ConditionalWrite, conditional_write
from chalicelib.wiring import Services, dynamodb_services, memory_services

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamodb"])
def services(request: pytest.FixtureRequest) -> Services:
    if request.param == "memory":
        return memory_services(Settings())
    settings: Settings = request.getfixturevalue("aws_env")
    return dynamodb_services(settings)


def view(visitor: str = "h:abc", **changes: Any) -> ViewEvent:
    base: dict[str, Any] = dict(
        post_id=7,
        owner_id="artist-1",
        intent="view",
        occurred_at=AT,
        visitor=visitor,
        authenticated=False,
        source="web",
        device="mobile",
        country="BR",
        channel="all",
        referrer_domain="example.com",
    )
    base.update(changes)
    return ViewEvent(**base)


def test_a_view_is_stored_once_per_visitor_post_and_day(services: Services) -> None:
    assert services.events.put_view(view()) is True
    assert services.events.put_view(view()) is False
    assert services.events.put_view(view(occurred_at=AT + timedelta(hours=1))) is False
    assert services.events.put_view(view(occurred_at=AT + timedelta(days=1))) is True
    assert services.events.put_view(view(visitor="h:other")) is True
    stored = list(services.events.day_events(7, "2026-11-24"))
    assert sorted(e.visitor for e in stored) == ["h:abc", "h:other"]
    assert stored[0].country == "BR" and stored[0].channel == "all"


def test_a_hot_posts_write_shards_are_keys_of_their_own(services: Services) -> None:
    events = services.events
    assert events.put_view(view()) is True  # the Day's base key, before the post was hot
    assert events.put_view(view(shard=3)) is True  # the same Visitor again, on its shard
    assert events.put_view(view(shard=3, device="desktop")) is False  # the shard's dedup
    assert events.put_view(view(visitor="h:other", shard=5)) is True
    events.put_impression(view(intent="impression", event_id="01J" + "0" * 23, shard=3))
    assert [e.visitor for e in events.day_events(7, "2026-11-24")] == ["h:abc"]
    on_three = list(events.day_events(7, "2026-11-24", 3))
    assert [(e.intent, e.shard) for e in on_three] == [("impression", 3), ("view", 3)]
    assert on_three[1] == view()  # the same look, wherever it is kept
    assert [e.visitor for e in events.day_events(7, "2026-11-24", 5)] == ["h:other"]
    assert list(events.day_events(7, "2026-11-24", 4)) == []


def test_a_hot_mark_lives_beside_the_registration(services: Services) -> None:
    registry = services.registry
    registry.put_posts([PostRecord(1, "artist-1", AT), PostRecord(2, "artist-2", AT)])
    later = AT + timedelta(days=2)
    registry.mark_hot(1, HotMark(10, later))
    registry.mark_hot(1, HotMark(4, AT + timedelta(days=1)))  # never shortened
    registry.mark_hot(3, HotMark(10, later))  # not registered: read as absent
    registry.put_posts([PostRecord(1, "artist-1", AT, title="Dawn")])  # the sync: META whole
    found = registry.get_posts_with_hot([1, 2, 3])
    assert sorted(found) == [1, 2]
    assert found[1].title == "Dawn" and found[1].hot == HotMark(10, later)
    assert found[2].hot is None
    assert registry.get_posts([1])[1].hot is None and registry.get_post(1) == found[1]
    assert registry.delete_post(1) is True and registry.get_posts_with_hot([1]) == {}


def test_impressions_are_never_deduplicated(services: Services) -> None:
    for n in range(3):
        services.events.put_impression(view(intent="impression", event_id=f"01J{n:023d}"))
    stored = list(services.events.day_events(7, "2026-11-24"))
    assert [e.intent for e in stored] == ["impression"] * 3


def test_events_round_trip_every_field(services: Services) -> None:
    event = view(
        intent="view",
        authenticated=True,
        visitor="u:42",
        source="player",
        device="player",
        channel_context="k3Jx9",
        play_order=2,
        playlist_id="pl-1",
        player_key="abc-key",
        device_at=AT - timedelta(seconds=3),
        timezone="Europe/Berlin",
        referrer_domain=None,
    )
    services.events.put_view(event)
    [stored] = list(services.events.day_events(7, "2026-11-24"))
    assert stored == event


def test_posts_and_players_register_and_delete(services: Services) -> None:
    registry = services.registry
    assert registry.get_post(1) is None
    registry.put_post(PostRecord(1, "artist-1", AT))
    assert registry.get_post(1) == PostRecord(1, "artist-1", AT)
    assert registry.delete_post(1) is True
    assert registry.delete_post(1) is False
    player = PlayerRecord("key-1", "owner-1", AT, country="BR", timezone="America/Sao_Paulo")
    registry.put_player(player)
    assert registry.get_player("key-1") == player
    assert registry.delete_player("key-1") is True
    assert registry.get_player("key-1") is None


def test_rate_slots_free_after_their_interval(services: Services) -> None:
    registry = services.registry
    assert registry.take_slot("imp", "v1", 3, AT) is None
    wait = registry.take_slot("imp", "v1", 3, AT + timedelta(seconds=1))
    assert wait == pytest.approx(2.0)
    assert registry.take_slot("imp", "v2", 3, AT + timedelta(seconds=1)) is None
    assert registry.take_slot("imp", "v1", 3, AT + timedelta(seconds=3)) is None


def test_once_markers_expire(services: Services) -> None:
    registry = services.registry
    assert registry.mark_once("rt", "k#1#t", 60, AT) is True
    assert registry.mark_once("rt", "k#1#t", 60, AT + timedelta(seconds=59)) is False
    assert registry.mark_once("rt", "k#1#t", 60, AT + timedelta(seconds=61)) is True


def test_drop_counters_add_up_by_day(services: Services) -> None:
    services.drop_store.add_drops("2026-11-24", {"bot": 2, "duplicate": 1})
    services.drop_store.add_drops("2026-11-24", {"bot": 1})
    services.drop_store.add_drops("2026-11-25", {"bot": 5, "none": 0})
    assert services.drop_store.get_drops(["2026-11-24"]) == {"bot": 3, "duplicate": 1}
    assert services.drop_store.get_drops(["2026-11-24", "2026-11-25"]) == {"bot": 8, "duplicate": 1}


def test_event_items_stay_well_under_one_kilobyte() -> None:
    event = view(
        visitor="u:" + "x" * 128,
        channel_context="c" * 100,
        playlist_id="p" * 64,
        referrer_domain="d" * 253,
        player_key="k" * 36,
        timezone="America/Argentina/ComodRivadavia",
        device_at=AT,
        play_order=2,
        authenticated=True,
        intent="impression",
        event_id="01JD0000000000000000000000",
    )
    assert codec.item_size(codec.event_item(event, 35)) < 1024


def test_the_last_player_report_is_the_latest_one_kept(services: Services) -> None:
    assert services.drop_store.last_report() is None
    later = {"at": "2026-11-24T10:00:05+00:00", "player_key": "k", "client_id": "vts-bridge-makapix",
             "post_id": "1", "sent_at": "", "outcome": "counted"}
    earlier = {**later, "at": "2026-11-24T10:00:01+00:00", "outcome": "impression"}
    services.drop_store.note_last_report(later)
    services.drop_store.note_last_report(earlier)  # a slower container flushing late
    assert services.drop_store.last_report() == later


def test_a_conditional_write_answers_whether_it_was_applied(aws_env: Settings) -> None:
    client = dynamodb_services(aws_env).client
    key = {"pk": {"S": "TEST#cw"}, "sk": {"S": "x"}}

    def put(n: int, **extra: Any) -> ConditionalWrite:
        return conditional_write(
            lambda: client.put_item(
                TableName=aws_env.registry_table,
                Item={**key, "n": {"N": str(n)}},
                ConditionExpression="attribute_not_exists(pk)",
                **extra,
            )
        )

    first = put(1)
    assert (first.applied, first.old_item) == (True, {})
    again = put(2, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert (again.applied, again.old_item) == (False, {**key, "n": {"N": "1"}})
    assert put(3) == ConditionalWrite(applied=False)  # no ALL_OLD asked: no old item
    with pytest.raises(ClientError, match="ValidationException"):
        conditional_write(lambda: client.put_item(TableName=aws_env.registry_table, Item={}))


def test_posts_and_players_read_and_write_in_batches(services: Services) -> None:
    registry = services.registry
    assert registry.get_posts([]) == {} and registry.get_players([]) == {}
    posts = [PostRecord(n, f"artist-{n % 3}", AT) for n in range(1, 131)]  # > one read batch
    posts[0] = PostRecord(1, "artist-1", AT, sqid="k3Jx9", title="Dawn",
                          art_url="https://vault.makapix.club/a/1.png", visible=False)
    posts[1] = PostRecord(2, "artist-2", AT, deleted=True)
    registry.put_posts(posts)
    found = registry.get_posts([*range(1, 141), 1, 2])  # unknown ids and repeats
    assert found == {post.post_id: post for post in posts}
    assert not found[1].counting and not found[2].counting and found[3].counting
    registry.put_posts([PostRecord(3, "artist-9", AT), PostRecord(3, "artist-8", AT)])
    assert registry.get_posts([3]) == {3: PostRecord(3, "artist-8", AT)}  # the last one wins
    players = [PlayerRecord(f"key-{n}", "owner-1", AT) for n in range(30)]  # > one write batch
    players[0] = PlayerRecord("key-0", "owner-2", AT, country="BR", timezone="America/Sao_Paulo",
                              name="hall frame", revoked=True)
    registry.put_players(players)
    assert registry.get_players(["key-0", "key-29", "key-x"]) == {
        "key-0": players[0], "key-29": players[29]
    }


class UnprocessedClient:
    """A DynamoDB client that leaves the last key of every batch read unprocessed for the
    first ``rounds`` calls (as DynamoDB does when throttled)."""

    def __init__(self, client: Any, rounds: int) -> None:
        self._client = client
        self.rounds = rounds
        self.calls = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls > self.rounds:
            return dict(self._client.batch_get_item(RequestItems=RequestItems))
        [(table, request)] = RequestItems.items()
        *asked, held = request["Keys"]
        answer: dict[str, Any] = {"Responses": {table: []}}
        if asked:
            answer = dict(self._client.batch_get_item(RequestItems={table: {"Keys": asked}}))
        answer["UnprocessedKeys"] = {table: {"Keys": [held]}}
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_batch_reads_retry_what_dynamodb_left_unprocessed(aws_env: Settings) -> None:
    from chalicelib.errors import StorageUnavailable
    from chalicelib.storage.dynamodb import DynamoRegistry

    client = dynamodb_services(aws_env).client
    DynamoRegistry(client, aws_env.registry_table).put_posts(
        [PostRecord(n, "artist-1", AT) for n in range(1, 4)]
    )
    pauses: list[float] = []
    flaky = UnprocessedClient(client, rounds=2)
    registry = DynamoRegistry(flaky, aws_env.registry_table, sleep=pauses.append)
    assert sorted(registry.get_posts([1, 2, 3, 4])) == [1, 2, 3]
    assert flaky.calls == 3 and len(pauses) == 2 and pauses[0] < pauses[1]
    stuck = DynamoRegistry(UnprocessedClient(client, rounds=99), aws_env.registry_table,
                           sleep=pauses.append)
    with pytest.raises(StorageUnavailable):
        stuck.get_posts([1, 2, 3])
