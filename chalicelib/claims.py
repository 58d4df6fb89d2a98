"""What the services see of a bearer token: ``Claims`` (sub, role), and the role check.

Outside ``chalicelib.auth`` (which verifies tokens, and imports PyJWT) so that code which only passes
``Claims`` around (the recorders, stats, health) does not import PyJWT and its
``cryptography`` (about 50 ms) into every Lambda's start: a request without a token never
needs them (docs/adr/0015-cold-start.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str


def require_role(claims: Claims | None, roles: Iterable[str]) -> Claims:
    """401 without a token, 403 with one whose role is not allowed."""
    if claims is None:
        raise Unauthorized("a bearer token is required", code="missing_token")
    allowed = tuple(roles)
    if claims.role not in allowed:
        raise Forbidden(f"role {claims.role!r} may not do this (needs {' or '.join(allowed)})")
    return claims
