"""Bearer tokens (DESIGN §3, §7, §8): VTS's own and Makapix Club's, HS256 under
``VTS_JWT_SECRET``; or, with ``VTS_JWKS_URL`` set, an issuer's published keys
(``chalicelib.auth.jwks``). The services only ever see ``Claims`` (sub, role).

What any token must be to be accepted:

* ``exp``, ``iat`` and ``sub`` are required; PyJWT refuses an expired token and one issued
  in the future (``LEEWAY_S`` of clock skew either way). ``sub`` is a non-empty string.
* Its lifetime ``exp - iat`` is at most 24 h for a person (artist, moderator, admin,
  viewer) and at most 30 days for a service. A token without ``iat`` is refused rather
  than measured from now: both issuers (``vts token``, Makapix) always set it, and
  measuring from now would let a token that once lived for a year pass in its last day.
* ``type``, when present, is ``access`` (Makapix marks its access tokens so); any other
  (``refresh``...) is 401 ``wrong_token_type``.
* The role comes from exactly one of two claims:

  - ``role`` (VTS's own tokens, ``vts token``): taken as it is, ``viewer`` when absent;
    an unknown role reads nothing (``require_role`` answers 403).
  - ``roles`` (Makapix's access tokens: a list of ``user``, ``moderator``, ``owner``):
    ``owner`` -> ``admin``; else ``moderator`` -> ``moderator`` (reads every post's
    stats, ``chalicelib.stats.access``); else -> ``artist`` (whose ``sub``, Makapix's
    ``users.public_sqid``, is the artist id VTS knows). Not a list of strings: 401
    ``invalid_roles``. Makapix never issues ``service``.
  - Both claims at once: 401 ``ambiguous_role``. Neither issuer makes such a token, and
    preferring one would let the other claim decide nothing or everything.

Without ``VTS_JWKS_URL`` (today, beside Makapix):

* HS256 only, under ``VTS_JWT_SECRET`` (at least 32 bytes, ``check_jwt_secret``); Makapix
  signs with the same value (its ``JWT_SECRET_KEY``).
* ``iss``/``aud`` are checked when ``VTS_JWT_ISSUER``/``VTS_JWT_AUDIENCE`` are set. Unset,
  a token without them passes (Makapix's carry neither, so setting either shuts its tokens
  out); one that names an audience is refused (PyJWT's default): it was meant for someone
  else.

With ``VTS_JWKS_URL`` (the future: VTS-scoped tokens from Makapix):

* RS256 or EdDSA tokens verified with the published key their ``kid`` names, ``iss`` and
  ``aud`` required and equal to ``VTS_JWT_ISSUER``/``VTS_JWT_AUDIENCE`` (both must be set:
  ``ConfigError``). Unreachable keys: 503 ``jwks_unavailable``; unknown kid: 401
  ``unknown_key`` (details in ``chalicelib.auth.jwks``).
* HS256 stays only for VTS's own **service** tokens (``role: service``, ``vts token``),
  with ``iss`` and ``aud`` required and pinned as well, so ``makapix-sync`` and operators'
  automation keep working. Every other HS256 token (a person's, anything with ``roles``)
  is 401 ``hs256_not_accepted``: people sign in only through the issuer's keys. Rotate
  ``VTS_JWT_SECRET`` to a value Makapix does not hold when switching (docs/drafts/sign-in.md).
* Any other algorithm (``none``, HS512...) is 401 ``invalid_token``, in both modes.

In AWS a Cognito or custom authorizer can verify instead; the services only see ``Claims``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jwt

from chalicelib.auth.jwks import ALGORITHMS as JWKS_ALGORITHMS
from chalicelib.auth.jwks import KeysUnavailable, check_jwks_settings, signing_key
from chalicelib.claims import Claims, require_role
from chalicelib.config import Settings, check_jwt_secret
from chalicelib.errors import Unauthorized

__all__ = [
    "ROLES",
    "Claims",
    "KeysUnavailable",
    "bearer_claims",
    "claims_from_header",
    "issue_token",
    "makapix_role",
    "max_lifetime_s",
    "require_role",
]

ROLES = ("artist", "moderator", "admin", "service", "viewer")
PERSON_MAX_LIFETIME_S = 86_400
SERVICE_MAX_LIFETIME_S = 30 * 86_400
LEEWAY_S = 30
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
# Makapix's role names (its users.roles) -> VTS's, strongest first.
MAKAPIX_ROLES = (("owner", "admin"), ("moderator", "moderator"))
MAKAPIX_DEFAULT_ROLE = "artist"
# The only ``type`` accepted (Makapix's access tokens; VTS's carry none).
ACCESS_TYPE = "access"


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
    """``claims_from_header`` under the deployment's secret, issuer, audience and JWKS."""
    return claims_from_header(
        header, settings.jwt_secret, issuer=settings.jwt_issuer,
        audience=settings.jwt_audience, jwks_url=settings.jwks_url,
    )


def claims_from_header(
    header: str | None,
    secret: str,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    jwks_url: str | None = None,
) -> Claims | None:
    """None without a header; the claims of a valid token; ``Unauthorized`` otherwise
    (``KeysUnavailable`` when the JWKS cannot be fetched)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
    check_jwt_secret(secret)
    token = token.strip()
    if jwks_url:
        check_jwks_settings(jwks_url, issuer, audience)
        payload = _decode_jwks_mode(token, secret, jwks_url, issuer, audience)
    else:
        payload = _decode(token, secret, ["HS256"], issuer, audience, REQUIRED_CLAIMS)
    claims = Claims(sub=_subject(payload), role=role_of(payload))
    _check_lifetime(payload, claims.role)
    return claims


def role_of(payload: dict[str, Any]) -> str:
    """The VTS role of a verified token's claims (the rules in the module docstring)."""
    token_type = payload.get("type")
    if token_type is not None and token_type != ACCESS_TYPE:
        raise Unauthorized(
            f"only access tokens are accepted (this one's type is {str(token_type)[:32]!r})",
            code="wrong_token_type",
        )
    if "role" in payload and "roles" in payload:
        raise Unauthorized(
            "the token carries both 'role' and 'roles'; it must carry one",
            code="ambiguous_role",
        )
    if "roles" in payload:
        return makapix_role(payload["roles"])
    role = payload.get("role", "viewer")
    if not isinstance(role, str):
        raise Unauthorized("the token's role must be a string", code="invalid_token")
    return role


def makapix_role(roles: object) -> str:
    """Makapix's ``roles`` list -> the VTS role: owner -> admin, moderator -> moderator,
    anything else (``user``, an empty list, a name VTS does not know) -> artist."""
    if not isinstance(roles, list) or not all(isinstance(name, str) for name in roles):
        raise Unauthorized("the token's roles must be a list of strings", code="invalid_roles")
    for makapix, vts in MAKAPIX_ROLES:
        if makapix in roles:
            return vts
    return MAKAPIX_DEFAULT_ROLE


def _subject(payload: dict[str, Any]) -> str:
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("the token's sub must be a non-empty string", code="invalid_token")
    return sub


def _decode_jwks_mode(
    token: str, secret: str, jwks_url: str, issuer: str | None, audience: str | None
) -> dict[str, Any]:
    """An issuer-signed token by its published key, or VTS's own HS256 service token."""
    required = [*REQUIRED_CLAIMS, "iss", "aud"]
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"the token is not valid: {error}", code="invalid_token") from None
    algorithm = header.get("alg")
    if algorithm in JWKS_ALGORITHMS:
        key = signing_key(jwks_url, header.get("kid"))
        return _decode(token, key, JWKS_ALGORITHMS, issuer, audience, required)
    if algorithm == "HS256":
        # Refusing on the unverified claims only ever refuses; acceptance is decided on
        # the verified payload below (the same bytes).
        if not _is_vts_service(_unverified_payload(token)):
            raise _hs256_not_accepted()
        payload = _decode(token, secret, ["HS256"], issuer, audience, required)
        if not _is_vts_service(payload):
            raise _hs256_not_accepted()
        return payload
    raise Unauthorized(
        f"the token's algorithm {str(algorithm)[:16]!r} is not accepted (RS256 or EdDSA)",
        code="invalid_token",
    )


def _is_vts_service(payload: dict[str, Any]) -> bool:
    return payload.get("role") == "service" and "roles" not in payload


def _hs256_not_accepted() -> Unauthorized:
    return Unauthorized(
        "with VTS_JWKS_URL set, people sign in with tokens signed by the issuer's published "
        "keys; an HS256 token is accepted only as VTS's own service token",
        code="hs256_not_accepted",
    )


def _unverified_payload(token: str) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"the token is not valid: {error}", code="invalid_token") from None
    return payload


def _decode(
    token: str,
    key: Any,
    algorithms: list[str],
    issuer: str | None,
    audience: str | None,
    required: list[str],
) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={"require": required},
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
