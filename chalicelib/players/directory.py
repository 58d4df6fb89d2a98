"""Registered players: validation of registrations, and a short cache for the report path.

A player is a physical frame registered with a ``player_key`` (a UUID, also its IoT thing
name and the third level of its MQTT topics), an owner, and optionally the country and IANA
timezone its views are attributed to and a ``name``. Its reports are refused as
unregistered (``player_unregistered``) once its registration is deleted or marked
``revoked`` (a frame torn down in Makapix). A registration is a whole record: a field left
out is cleared.
"""

from __future__ import annotations

import re
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chalicelib.clock import Clock
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import PlayerRecord
from chalicelib.players.schema import canonical_player_key
from chalicelib.registry.cache import TtlCache
from chalicelib.registry.posts import Saved, check_flag, check_label, check_owner_id
from chalicelib.storage.ports import Registry

_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
NAME_MAX = 128


def check_player_key(text: object) -> str:
    key = canonical_player_key(text)
    if key is None:
        raise BadRequest(
            "player_key must be a UUID (8-4-4-4-12 hexadecimal digits)", code="invalid_player_key"
        )
    return key


def check_country(value: object) -> str | None:
    """ISO 3166 alpha-2, stored upper-case; absent, null or "" means unknown."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _COUNTRY.match(value):
        raise BadRequest("country must be an ISO 3166 alpha-2 code such as BR", code="invalid_country")
    return value.upper()


def check_timezone(value: object) -> str | None:
    """An IANA zone known to this system's tz database; absent, null or "" means unknown."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest("timezone must be an IANA zone name such as America/Sao_Paulo",
                         code="invalid_timezone")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
        raise BadRequest(f"timezone {value!r} is not a known IANA zone", code="invalid_timezone") from None
    return value


def check_name(value: object) -> str | None:
    """The frame's name as its owner calls it: at most ``NAME_MAX`` characters
    (``check_label``)."""
    return check_label(value, "name", NAME_MAX)


@dataclass(frozen=True)
class PlayerDetails:
    """A player's registration as sent, validated (everything but its key)."""

    owner_id: str
    country: str | None = None
    timezone: str | None = None
    name: str | None = None
    revoked: bool = False


def player_details(
    owner_id: object,
    country: object = None,
    timezone: object = None,
    name: object = None,
    revoked: object = None,
) -> PlayerDetails:
    """Validate a player's fields (``BadRequest`` with an ``invalid_{field}`` code)."""
    return PlayerDetails(
        owner_id=check_owner_id(owner_id),
        country=check_country(country),
        timezone=check_timezone(timezone),
        name=check_name(name),
        revoked=check_flag(revoked, "revoked", False),
    )


def player_body(record: PlayerRecord) -> dict[str, str | bool | None]:
    """A registration as the registry routes answer it (``name`` when set, ``revoked``
    when true)."""
    body: dict[str, str | bool | None] = {
        "player_key": record.player_key,
        "owner_id": record.owner_id,
        "country": record.country,
        "timezone": record.timezone,
    }
    if record.name is not None:
        body["name"] = record.name
    if record.revoked:
        body["revoked"] = True
    return body


class PlayerDirectory:
    """Register, revoke and look up players. Lookups go through a small TTL cache: every
    report needs one, and a registration rarely changes (a revocation reaches other Lambda
    containers within ``cache_s``)."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        cache_s: int,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = 50_000,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._cache: TtlCache[str, PlayerRecord] = TtlCache(cache_s, monotonic, max_entries)

    def get(self, player_key: str) -> PlayerRecord | None:
        return self._cache.get(player_key, self._registry.get_player)

    def register(
        self,
        player_key: object,
        owner_id: object,
        country: object = None,
        timezone: object = None,
        **fields: object,
    ) -> tuple[PlayerRecord, bool]:
        """Register or update a player (``fields``: name, revoked; a field left out is
        cleared). Returns the record and whether it is new."""
        key = check_player_key(player_key)
        return self.put(key, player_details(owner_id, country, timezone, **fields))

    def put(self, player_key: object, details: PlayerDetails) -> tuple[PlayerRecord, bool]:
        """Store one validated player. Returns the record and whether it is new."""
        key = check_player_key(player_key)
        saved = self.save({key: details})
        return saved.records[key], key in saved.created

    def save(self, wanted: Mapping[str, PlayerDetails]) -> Saved[str, PlayerRecord]:
        """Store each player (keys already canonical) as ``wanted`` says: one batched read
        of what is registered, one batched write of only what changes. Sending the same
        records again writes nothing."""
        existing = self._registry.get_players(wanted) if wanted else {}
        now = self._clock.now()
        records: dict[str, PlayerRecord] = {}
        writes: list[PlayerRecord] = []
        for key, details in wanted.items():
            old = existing.get(key)
            record = PlayerRecord(
                player_key=key,
                owner_id=details.owner_id,
                registered_at=old.registered_at if old else now,
                country=details.country,
                timezone=details.timezone,
                name=details.name,
                revoked=details.revoked,
            )
            records[key] = record
            if record != old:
                writes.append(record)
        if writes:
            self._registry.put_players(writes)
            for record in writes:
                self._forget(record.player_key)
        return Saved(
            records=records,
            created=frozenset(key for key in wanted if key not in existing),
            changed=frozenset(r.player_key for r in writes),
        )

    def delete(self, player_key: object) -> None:
        """Revoke a player: its reports are dropped as unregistered from now on."""
        key = check_player_key(player_key)
        if not self._registry.delete_player(key):
            raise NotFound(f"player {key} is not registered", code="unknown_player")
        self._forget(key)

    def _forget(self, player_key: str) -> None:
        self._cache.forget(player_key)
