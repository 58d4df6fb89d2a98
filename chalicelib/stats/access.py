"""Who may read which stats. Only ``Claims`` come in, so any verifier can sit in front
(our bearer tokens, Makapix's, a JWKS issuer's; a Cognito or custom authorizer in AWS).

| role | a post's stats and CSV | an artist's stats and post listing | the site's stats |
|---|---|---|---|
| ``admin``, ``service`` | every post | every artist | yes |
| ``moderator`` | every post | their own only | no |
| ``artist`` | their own posts | their own only | no |
| ``viewer`` and any other | no (403) | no (403) | no (403) |

A moderator (Makapix's ``moderator`` role, chalicelib/auth) reads every post's stats, as
DESIGN §7 says and no more: Makapix moderators see every post to judge it, so the post's
figures are theirs to read too; an artist's totals, their post listing and the site's
figures are not a moderation tool and stay with the artist and the site's admins. A
moderator is also an artist on Makapix, so their own artist stats remain readable.
"""

from __future__ import annotations

from chalicelib.claims import Claims, require_role
from chalicelib.errors import Forbidden

READER_ROLES = ("artist", "moderator", "admin", "service")
# Admins and the platform's own backend read everything; artists read their own.
ALL_SEEING = ("admin", "service")
# Who reads the stats of any post, whoever owns it.
ALL_POSTS = (*ALL_SEEING, "moderator")


def reader(claims: Claims | None) -> Claims:
    """401 without a token, 403 for a role that reads no stats."""
    return require_role(claims, READER_ROLES)


def check_artist(claims: Claims | None, artist_id: str) -> Claims:
    """An artist (or a moderator) reads only their own artist stats and post listing."""
    who = reader(claims)
    if who.role not in ALL_SEEING and who.sub != artist_id:
        raise Forbidden("an artist may read only their own stats", code="not_your_artist")
    return who


def check_post_owner(who: Claims, owner_id: str) -> None:
    """An artist reads only the stats of posts they own (owner from the registry); a
    moderator, admin or service reads any post's."""
    if who.role not in ALL_POSTS and who.sub != owner_id:
        raise Forbidden(
            "an artist may read only the stats of their own posts", code="not_your_post"
        )


def check_site(claims: Claims | None) -> Claims:
    return require_role(claims, ALL_SEEING)
