"""Bearer tokens: HS256 JWTs signed with ``VTS_JWT_SECRET`` locally.

In AWS a Cognito or custom authorizer can verify instead; the services only see ``Claims``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from chalicelib.errors import Forbidden, Unauthorized

ROLES = ("artist", "admin", "service", "viewer")


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str


def issue_token(secret: str, *, sub: str, role: str, now: datetime, ttl_s: int = 86_400) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    payload = {"sub": sub, "role": role, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
    return jwt.encode(payload, secret, algorithm="HS256")


def claims_from_header(header: str | None, secret: str) -> Claims | None:
    """None without a header; the claims of a valid token; ``Unauthorized`` otherwise."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
    try:
        payload = jwt.decode(
            token.strip(), secret, algorithms=["HS256"], options={"require": ["sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired", code="token_expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"the token is not valid: {error}", code="invalid_token") from None
    sub, role = payload.get("sub"), payload.get("role", "viewer")
    if not isinstance(sub, str) or not sub or not isinstance(role, str):
        raise Unauthorized("the token's sub and role must be strings", code="invalid_token")
    return Claims(sub=sub, role=role)


def require_role(claims: Claims | None, roles: Iterable[str]) -> Claims:
    """401 without a token, 403 with one whose role is not allowed."""
    if claims is None:
        raise Unauthorized("a bearer token is required", code="missing_token")
    allowed = tuple(roles)
    if claims.role not in allowed:
        raise Forbidden(f"role {claims.role!r} may not do this (needs {' or '.join(allowed)})")
    return claims
