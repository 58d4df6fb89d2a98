"""``POST /v1/registry/batch``: many posts and players registered at once (DESIGN §7).

The body is ``{"posts": [...], "players": [...]}``, at most ``MAX_RECORDS`` records in all
and ``MAX_BODY_BYTES`` of JSON. Each record is validated on its own (registry/schema.py):
a bad one is refused with its place (``kind`` and ``index`` in its own list) and a code,
the others are applied. Applying is idempotent: what is already stored as sent is not
written again, and an artist's post count moves only when a post is new or changes owner.
Within one batch, the last record of an id wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.errors import BadRequest, PayloadTooLarge
from chalicelib.jsonbody import json_object
from chalicelib.players.directory import PlayerDetails, PlayerDirectory
from chalicelib.registry.posts import PostDetails, PostDirectory
from chalicelib.registry.schema import PlayerRecordIn, PostRecordIn, validated

MAX_RECORDS = 500
MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: 500 records of Makapix's size take about 150 KB

Kind = Literal["post", "player"]


@dataclass(frozen=True)
class Refusal:
    kind: Kind
    index: int  # the record's position in its own list (``posts`` or ``players``), from 0
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index, "code": self.code,
                "message": self.message}


@dataclass(frozen=True)
class BatchOutcome:
    applied: int  # records accepted: now stored as sent (whether or not that changed them)
    changed: int  # posts and players written because they were new or different
    refused: list[Refusal] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The answer's JSON: the same for the same batch sent again."""
        return {"applied": self.applied, "refused": [r.as_dict() for r in self.refused]}


def _records(data: dict[str, Any], name: str) -> list[Any]:
    records = data.get(name)
    if records is None:
        return []
    if not isinstance(records, list):
        raise BadRequest(f"{name} must be a list of records", code="invalid_field")
    return records


class RegistryBatch:
    def __init__(self, posts: PostDirectory, players: PlayerDirectory) -> None:
        self._posts = posts
        self._players = players

    def apply_body(self, raw: bytes | None) -> BatchOutcome:
        """A request's body, checked whole (size, JSON, shape, count), then applied."""
        if raw and len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the body is {len(raw)} bytes; at most {MAX_BODY_BYTES} allowed: "
                "send fewer records a request"
            )
        data = json_object(raw)
        posts, players = _records(data, "posts"), _records(data, "players")
        total = len(posts) + len(players)
        if total > MAX_RECORDS:
            raise PayloadTooLarge(
                f"the batch holds {total} records; at most {MAX_RECORDS} a request "
                "(posts and players together)",
                code="too_many_records",
            )
        return self.apply(posts, players)

    def apply(self, posts: list[Any], players: list[Any]) -> BatchOutcome:
        refused: list[Refusal] = []
        wanted_posts: dict[int, PostDetails] = {}
        for index, raw in enumerate(posts):
            try:
                post = validated(PostRecordIn, raw)
            except BadRequest as error:
                refused.append(Refusal("post", index, error.code, error.message))
                continue
            wanted_posts.pop(post.id, None)  # the last record of an id wins
            wanted_posts[post.id] = post.details()
        wanted_players: dict[str, PlayerDetails] = {}
        for index, raw in enumerate(players):
            try:
                player = validated(PlayerRecordIn, raw)
            except BadRequest as error:
                refused.append(Refusal("player", index, error.code, error.message))
                continue
            wanted_players.pop(player.key, None)
            wanted_players[player.key] = player.details()
        saved_posts = self._posts.save(wanted_posts)
        saved_players = self._players.save(wanted_players)
        return BatchOutcome(
            applied=len(posts) + len(players) - len(refused),
            changed=len(saved_posts.changed) + len(saved_players.changed),
            refused=refused,
        )
