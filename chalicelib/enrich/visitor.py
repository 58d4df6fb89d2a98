"""Visitor identity: a keyed hash of a signed-in user's ``sub``, else of client IP + user agent.

Neither the IP, the user agent nor the ``sub`` is stored: only these truncated HMACs are
(DESIGN §5, §8). The prefix tells a signed-in Visitor (``u:``) from an anonymous one (``h:``)
when reading raw events; counting goes by the event's ``authenticated`` flag, not by it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def _keyed_hash(key: str, message: str) -> str:
    """HMAC-SHA256 truncated to 128 bits (collisions stay negligible), base64url."""
    if not key:
        raise ValueError("a visitor key is required")
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_visitor(key: str, sub: str) -> str:
    """A signed-in Visitor (also a Player's owner): the same id on every device, for one key."""
    return "u:" + _keyed_hash(key, f"sub\x00{sub}")


def anonymous_visitor(key: str, ip: str | None, user_agent: str | None) -> str:
    """HMAC-SHA256 of IP and user agent."""
    return "h:" + _keyed_hash(key, f"{ip or ''}\x00{user_agent or ''}")
