"""JWKS mode (DESIGN §7): tokens signed with keys an issuer publishes (``VTS_JWKS_URL``).

* Only RS256 and EdDSA (Ed25519), and a token's ``alg`` must be its key's (PyJWT binds a
  ``PyJWK`` to one algorithm). The token names its key with ``kid``.
* ``iss`` and ``aud`` are required and pinned: ``VTS_JWKS_URL`` without both
  ``VTS_JWT_ISSUER`` and ``VTS_JWT_AUDIENCE`` is a ``ConfigError`` (a published key set
  signs tokens for many services; the audience is what makes one ours).
* The URL is https; plain http only for a loopback host (tests, a local issuer).
* One ``PyJWKClient`` per URL and container: it keeps the key set 5 minutes, fetches at
  most once per ``COOLDOWN_S`` for a ``kid`` it does not know (so tokens with made-up
  kids cannot make VTS hammer the issuer), and waits at most ``TIMEOUT_S``.
* A key set that cannot be fetched (or holds no usable key) is the issuer's outage, not a
  bad token: 503 ``jwks_unavailable`` with ``Retry-After``, so a dashboard keeps its token
  and retries instead of sending the artist to sign in again. A ``kid`` the set does not
  hold is 401 ``unknown_key``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import urlparse

import jwt
from jwt import PyJWK, PyJWKClient

from chalicelib.errors import ConfigError, Unauthorized, VTSError

logger = logging.getLogger("vts.auth")

ALGORITHMS = ["RS256", "EdDSA"]
TIMEOUT_S = 5
LIFESPAN_S = 300
COOLDOWN_S = 30
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


# PyJWKClient wraps network errors (URLError, timeouts, HTTP errors) as
# PyJWKClientConnectionError but lets a body that is not JSON through as ValueError, and a
# connection dropped while reading as OSError.
_FETCH_FAILURES: tuple[type[Exception], ...] = (ValueError, OSError)
_UNAVAILABLE: tuple[type[Exception], ...] = (jwt.PyJWTError, *_FETCH_FAILURES)
_REFRESH_FAILED: tuple[type[Exception], ...] = (jwt.PyJWKClientConnectionError, *_FETCH_FAILURES)


class KeysUnavailable(VTSError):
    """The issuer's key set could not be had: retry later (the token may well be good)."""

    status = 503
    code = "jwks_unavailable"
    retry_after_s = 5


def check_jwks_settings(jwks_url: str, issuer: str | None, audience: str | None) -> None:
    """``ConfigError`` naming the variables when JWKS mode is set up unsafely."""
    missing = [
        name
        for name, value in (("VTS_JWT_ISSUER", issuer), ("VTS_JWT_AUDIENCE", audience))
        if not value
    ]
    if missing:
        raise ConfigError(
            "VTS_JWKS_URL is set, so VTS_JWT_ISSUER and VTS_JWT_AUDIENCE must be set too "
            f"(tokens signed by a published key set are pinned to both); missing: "
            f"{', '.join(missing)}"
        )
    parsed = urlparse(jwks_url)
    host = (parsed.hostname or "").lower()
    if not host or parsed.scheme not in ("https", "http") or (
        parsed.scheme == "http" and host not in _LOOPBACK
    ):
        raise ConfigError(
            f"VTS_JWKS_URL must be an https URL (http only for localhost), got {jwks_url!r}"
        )


@lru_cache(maxsize=16)
def jwks_client(url: str) -> PyJWKClient:
    """The container's client for this key set (its cache lives as long as the container)."""
    return PyJWKClient(
        url, cache_jwk_set=True, lifespan=LIFESPAN_S, timeout=TIMEOUT_S,
        cooldown_duration=COOLDOWN_S,
    )


def signing_key(url: str, kid: object) -> PyJWK:
    """The published key named ``kid``; ``Unauthorized`` or ``KeysUnavailable`` otherwise."""
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("the token names no signing key (kid)", code="unknown_key")
    client = jwks_client(url)
    try:
        client.get_signing_keys()  # the set itself, from the cache or the issuer
    except _UNAVAILABLE as error:  # unreachable, an error page, not JSON, no usable key
        logger.warning("the key set at %s is unavailable: %s", url, error)
        raise KeysUnavailable(
            "the issuer's signing keys could not be fetched; try again shortly"
        ) from None
    try:
        return client.get_signing_key(kid)
    except _REFRESH_FAILED as error:  # the refresh for a kid the cached set lacks
        logger.warning("the key set at %s is unavailable: %s", url, error)
        raise KeysUnavailable(
            "the issuer's signing keys could not be fetched; try again shortly"
        ) from None
    except jwt.PyJWTError:
        raise Unauthorized(
            f"no published signing key has the token's kid {kid[:64]!r}", code="unknown_key"
        ) from None
