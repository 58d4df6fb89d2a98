"""Registered players: validation of registrations, and a short cache for the report path.

A player is a physical frame registered with a ``player_key`` (a UUID, also its IoT thing
name and the third level of its MQTT topics), an owner, and optionally the country and IANA
timezone its views are attributed to. Deleting a registration revokes the player.
"""

from __future__ import annotations

import re
import time
import zoneinfo
from collections.abc import Callable

from chalicelib.clock import Clock
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import PlayerRecord
from chalicelib.players.schema import canonical_player_key
from chalicelib.registry.cache import TtlCache
from chalicelib.registry.posts import check_owner_id
from chalicelib.storage.ports import Registry

_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


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


def player_body(record: PlayerRecord) -> dict[str, str | None]:
    """A registration as the registry routes answer it."""
    return {
        "player_key": record.player_key,
        "owner_id": record.owner_id,
        "country": record.country,
        "timezone": record.timezone,
    }


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
        self, player_key: object, owner_id: object, country: object = None, timezone: object = None
    ) -> tuple[PlayerRecord, bool]:
        """Register or update a player. Returns the record and whether it is new."""
        key = check_player_key(player_key)
        record_owner = check_owner_id(owner_id)
        record_country = check_country(country)
        record_timezone = check_timezone(timezone)
        existing = self._registry.get_player(key)
        record = PlayerRecord(
            player_key=key,
            owner_id=record_owner,
            registered_at=existing.registered_at if existing else self._clock.now(),
            country=record_country,
            timezone=record_timezone,
        )
        self._registry.put_player(record)
        self._forget(key)
        return record, existing is None

    def delete(self, player_key: object) -> None:
        """Revoke a player: its reports are dropped as unregistered from now on."""
        key = check_player_key(player_key)
        if not self._registry.delete_player(key):
            raise NotFound(f"player {key} is not registered", code="unknown_player")
        self._forget(key)

    def _forget(self, player_key: str) -> None:
        self._cache.forget(player_key)
