"""Who may read which stats. Only ``Claims`` come in, so any verifier can sit in front
(our HS256 bearer tokens locally, a Cognito or custom authorizer in AWS)."""

from __future__ import annotations

from chalicelib.auth import Claims, require_role
from chalicelib.errors import Forbidden

READER_ROLES = ("artist", "admin", "service")
# Admins and the platform's own backend read everything; artists read their own.
ALL_SEEING = ("admin", "service")


def reader(claims: Claims | None) -> Claims:
    """401 without a token, 403 for a role that reads no stats."""
    return require_role(claims, READER_ROLES)


def check_artist(claims: Claims | None, artist_id: str) -> Claims:
    """An artist reads only their own artist stats and post listing."""
    who = reader(claims)
    if who.role not in ALL_SEEING and who.sub != artist_id:
        raise Forbidden("an artist may read only their own stats", code="not_your_artist")
    return who


def check_post_owner(who: Claims, owner_id: str) -> None:
    """An artist reads only the stats of posts they own (owner from the registry)."""
    if who.role not in ALL_SEEING and who.sub != owner_id:
        raise Forbidden(
            "an artist may read only the stats of their own posts", code="not_your_post"
        )


def check_site(claims: Claims | None) -> Claims:
    return require_role(claims, ALL_SEEING)
