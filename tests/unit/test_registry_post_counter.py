"""The post registry keeps each artist's post count (``A#{artist}``/``POSTS``), so
ArtistStats reads one item for ``total_posts`` instead of listing every post."""

from __future__ import annotations

import pytest

from chalicelib.config import Settings
from chalicelib.errors import NotFound
from chalicelib.storage.aggregates import layout
from chalicelib.storage.aggregates.reading import POSTS_COUNTER
from chalicelib.wiring import Services, memory_services


def posts_of(services: Services, artist: str) -> int:
    key = layout.artist_posts_key(artist)
    return int((services.aggregate_items.get_items([key]).get(key) or {}).get(POSTS_COUNTER, 0))


def test_register_re_own_and_delete_move_the_count() -> None:
    services = memory_services(Settings())
    services.posts.register(1, "ana")
    services.posts.register(2, "ana")
    services.posts.register(2, "ana")  # the same owner again: no change
    assert (posts_of(services, "ana"), posts_of(services, "bo")) == (2, 0)
    services.posts.register(2, "bo")  # re-owned
    assert (posts_of(services, "ana"), posts_of(services, "bo")) == (1, 1)
    services.posts.delete(1)
    with pytest.raises(NotFound):
        services.posts.delete(1)
    assert (posts_of(services, "ana"), posts_of(services, "bo")) == (0, 1)


def test_the_count_is_its_own_item_so_the_close_never_rebuilds_it() -> None:
    assert layout.artist_posts_key("ana") == ("A#ana", "POSTS")
    assert layout.artist_posts_key("ana")[1] not in (layout.TOTAL_SK, layout.RANK_SK)
