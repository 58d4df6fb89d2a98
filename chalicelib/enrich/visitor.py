"""Visitor identity: a signed-in user's ``sub``, else a keyed hash of client IP + user agent.

Neither the IP nor the user agent is stored: only this truncated HMAC is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def user_visitor(sub: str) -> str:
    """A signed-in Visitor (also a Player's owner): the same id on every device."""
    return f"u:{sub}"


def anonymous_visitor(key: str, ip: str | None, user_agent: str | None) -> str:
    """HMAC-SHA256 of IP and user agent, truncated to 128 bits (collisions stay negligible)."""
    if not key:
        raise ValueError("a visitor key is required")
    message = f"{ip or ''}\x00{user_agent or ''}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()[:16]
    return "h:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
