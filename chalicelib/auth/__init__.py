"""Bearer tokens: HS256 JWTs signed with ``VTS_JWT_SECRET`` (DESIGN §3, §8).

What a token must be to be accepted:

* ``exp`` and ``iat`` are required; PyJWT refuses an expired token and one issued in the
  future (``LEEWAY_S`` of clock skew either way).
* Its lifetime ``exp - iat`` is at most 24 h for a person (artist, admin, viewer...) and at
  most 30 days for a service. A token without ``iat`` is refused rather than measured from
  now: both issuers (``vts token``, Makapix) always set it, and measuring from now would let
  a token that once lived for a year pass in its last day.
* ``iss``/``aud`` are checked when ``VTS_JWT_ISSUER``/``VTS_JWT_AUDIENCE`` are set. Unset,
  a token without them passes; one that names an audience is refused (PyJWT's default): it
  was meant for someone else.
* The secret is at least 32 bytes (``chalicelib.config.check_jwt_secret``).

In AWS a Cognito or custom authorizer can verify instead; the services only see ``Claims``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from chalicelib.config import Settings, check_jwt_secret
from chalicelib.errors import Forbidden, Unauthorized

ROLES = ("artist", "admin", "service", "viewer")
PERSON_MAX_LIFETIME_S = 86_400
SERVICE_MAX_LIFETIME_S = 30 * 86_400
LEEWAY_S = 30
REQUIRED_CLAIMS = ["exp", "iat", "sub"]


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str


def max_lifetime_s(role: str) -> int:
    """How long a token of this role may live (``exp - iat``)."""
    return SERVICE_MAX_LIFETIME_S if role == "service" else PERSON_MAX_LIFETIME_S


def issue_token(
    secret: str,
    *,
    sub: str,
    role: str,
    now: datetime,
    ttl_s: int = PERSON_MAX_LIFETIME_S,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A token ``claims_from_header`` accepts; ``ValueError`` for one it would refuse."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    limit = max_lifetime_s(role)
    if not 0 < ttl_s <= limit:
        raise ValueError(f"a {role} token may live 1 to {limit} s (asked {ttl_s} s)")
    check_jwt_secret(secret)
    payload: dict[str, Any] = {
        "sub": sub, "role": role, "iat": now, "exp": now + timedelta(seconds=ttl_s)
    }
    if issuer:
        payload["iss"] = issuer
    if audience:
        payload["aud"] = audience
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer_claims(header: str | None, settings: Settings) -> Claims | None:
    """``claims_from_header`` under the deployment's secret, issuer and audience."""
    return claims_from_header(
        header, settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


def claims_from_header(
    header: str | None,
    secret: str,
    *,
    issuer: str | None = None,
    audience: str | None = None,
) -> Claims | None:
    """None without a header; the claims of a valid token; ``Unauthorized`` otherwise."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
    check_jwt_secret(secret)
    payload = _decode(token.strip(), secret, issuer, audience)
    sub, role = payload.get("sub"), payload.get("role", "viewer")
    if not isinstance(sub, str) or not sub or not isinstance(role, str):
        raise Unauthorized("the token's sub and role must be strings", code="invalid_token")
    claims = Claims(sub=sub, role=role)
    _check_lifetime(payload, claims.role)
    return claims


def _decode(token: str, secret: str, issuer: str | None, audience: str | None) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": REQUIRED_CLAIMS},
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired", code="token_expired") from None
    except jwt.MissingRequiredClaimError as error:
        raise Unauthorized(
            f"the token has no {error.claim!r} claim", code=f"token_without_{error.claim}"
        ) from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("the token's issuer (iss) is not accepted", code="invalid_issuer") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(
            "the token's audience (aud) is not accepted", code="invalid_audience"
        ) from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"the token is not valid: {error}", code="invalid_token") from None
    return payload


def _check_lifetime(payload: dict[str, Any], role: str) -> None:
    """``exp - iat`` within the role's limit (both are numbers: PyJWT checked them)."""
    lifetime_s = float(payload["exp"]) - float(payload["iat"])
    limit = max_lifetime_s(role)
    if lifetime_s > limit:
        kind = "a service" if role == "service" else "a person's"
        raise Unauthorized(
            f"{kind} token may live at most {limit} s (this one {int(lifetime_s)} s)",
            code="token_lifetime_too_long",
        )


def require_role(claims: Claims | None, roles: Iterable[str]) -> Claims:
    """401 without a token, 403 with one whose role is not allowed."""
    if claims is None:
        raise Unauthorized("a bearer token is required", code="missing_token")
    allowed = tuple(roles)
    if claims.role not in allowed:
        raise Forbidden(f"role {claims.role!r} may not do this (needs {' or '.join(allowed)})")
    return claims
