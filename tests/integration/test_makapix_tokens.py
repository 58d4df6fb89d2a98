"""Signing in with Makapix Club's tokens (DESIGN §7) through the Chalice app, over aggregate
items in moto: tokens built exactly as Makapix's ``create_access_token`` builds them (a user,
a moderator, the site owner) reading post, artist and site stats; the token shapes refused;
and the JWKS mode against a real key-set server the test starts (RS256 and Ed25519 keys the
test makes): wrong kid, wrong iss or aud, HS256 beside it, an unreachable key set."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.wiring import Services, dynamodb_services, use
from tests.conftest import auth, free_port, fresh_tables
from tests.statsdata import aggregate_items, random_looks
from tests.unit.test_tokens import makapix_access_token

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
RANGE = "from=2026-11-01&to=2026-11-20"
# Makapix's public sqids: a user, a moderator (an artist too), the site owner.
USER, MODERATOR, OWNER = "Xk9dT2", "pQ7mZ4", "a1Rb8N"
POSTS = {1: USER, 2: USER, 3: MODERATOR, 4: OWNER}
ISSUER, AUDIENCE = "https://makapix.club", "vts"


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> Services:
    """Posts owned by Makapix sqids, with a month of looks (closed through the 20th)."""
    with fresh_tables(moto_endpoint, "m", "makapix-shared") as settings:
        services = dynamodb_services(settings, clock=FixedClock(NOW))
        for post_id, owner in POSTS.items():
            services.posts.register(post_id, owner)
        looks = random_looks(random.Random(7), n=400, first=date(2026, 11, 1), days=24, posts=POSTS)
        closed = {look.day for look in looks if look.day <= "2026-11-20"}
        services.aggregate_items.put_items(aggregate_items(looks, closed))
        services.aggregate_items.advance_watermark("2026-11-20")
        return services


@pytest.fixture(scope="module")
def api(world: Services) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="dev") as client:
        yield client


@pytest.fixture
def services(world: Services) -> Iterator[Services]:
    with use(world):
        yield world


def makapix(services: Services, sub: str | None, roles: list[str], **shape: Any) -> dict[str, str]:
    """The Authorization header of a Makapix access token under the shared secret."""
    token = makapix_access_token(services.settings.jwt_secret, public_sqid=sub, roles=roles, **shape)
    return {"Authorization": f"Bearer {token}"}


def get(api: Any, path: str, headers: dict[str, str]) -> Any:
    return api.http.get(path, headers=headers)


def body(response: Any) -> Any:
    return json.loads(response.body)


def code(response: Any) -> str:
    return str(body(response)["error"]["code"])


def post_paths(post_id: int) -> list[str]:
    return [f"/v1/posts/{post_id}/stats?{RANGE}", f"/v1/posts/{post_id}/stats.csv?{RANGE}"]


def artist_paths(artist: str) -> list[str]:
    return [f"/v1/artists/{artist}/stats?{RANGE}", f"/v1/artists/{artist}/posts"]


SITE = f"/v1/site/stats?{RANGE}"


# ---- the shared secret: Makapix's own access tokens -----------------------------------------


def test_a_user_reads_their_own_posts_and_artist_stats_only(api: Any, services: Services) -> None:
    user = makapix(services, USER, ["user"])
    for path in post_paths(1) + post_paths(2) + artist_paths(USER):
        assert get(api, path, user).status_code == 200, path
    own = body(get(api, f"/v1/artists/{USER}/stats?{RANGE}", user))
    assert own["artist_id"] == USER and own["total_posts"] == 2
    for path, reason in [
        *((p, "not_your_post") for p in post_paths(3) + post_paths(4)),
        *((p, "not_your_artist") for p in artist_paths(MODERATOR)),
        (SITE, "forbidden"),
    ]:
        answer = get(api, path, user)
        assert answer.status_code == 403 and code(answer) == reason, path
    assert body(api.http.get("/v1/health", headers=user)) == {"status": "ok"}


def test_a_moderator_reads_every_posts_stats_and_only_their_own_artist_stats(
    api: Any, services: Services
) -> None:
    moderator = makapix(services, MODERATOR, ["user", "moderator"])
    admin = auth(services.settings, "ops", "admin")
    for post_id in POSTS:
        for path in post_paths(post_id):
            answer = get(api, path, moderator)
            assert answer.status_code == 200, path
            assert answer.body == get(api, path, admin).body  # the same figures an admin reads
    assert body(get(api, post_paths(1)[0], moderator))["views"] > 0
    for path in artist_paths(MODERATOR):
        assert get(api, path, moderator).status_code == 200
    for path in artist_paths(USER) + artist_paths(OWNER):
        answer = get(api, path, moderator)
        assert answer.status_code == 403 and code(answer) == "not_your_artist", path
    answer = get(api, SITE, moderator)
    assert answer.status_code == 403 and code(answer) == "forbidden"
    # An unknown post is still 404 (not 403) for whoever may read any post.
    assert code(get(api, f"/v1/posts/99/stats?{RANGE}", moderator)) == "unknown_post"
    assert body(api.http.get("/v1/health", headers=moderator)) == {"status": "ok"}


def test_the_site_owner_reads_everything(api: Any, services: Services) -> None:
    owner = makapix(services, OWNER, ["user", "moderator", "owner"])
    paths = [SITE, *artist_paths(USER), *artist_paths(MODERATOR)]
    paths += [path for post_id in POSTS for path in post_paths(post_id)]
    for path in paths:
        assert get(api, path, owner).status_code == 200, path
    site = body(get(api, SITE, owner))
    assert site["site"] is True and site["views"] > 0
    health = body(api.http.get("/v1/health", headers=owner))
    assert {"status", "drops", "rollup"} <= set(health)  # the operator's report


def test_a_refresh_type_token_is_refused(api: Any, services: Services) -> None:
    refresh = makapix(services, OWNER, ["owner"], token_type="refresh")
    for path in (SITE, post_paths(4)[0], artist_paths(OWNER)[0]):
        answer = get(api, path, refresh)
        assert answer.status_code == 401 and code(answer) == "wrong_token_type"


def test_a_makapix_token_without_exp_is_refused(api: Any, services: Services) -> None:
    answer = get(api, post_paths(1)[0], makapix(services, USER, ["user"], drop=["exp"]))
    assert answer.status_code == 401 and code(answer) == "token_without_exp"


def test_an_expired_makapix_token_is_refused(api: Any, services: Services) -> None:
    an_hour_and_more_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=61)
    expired = makapix(services, USER, ["user"], now=an_hour_and_more_ago)
    answer = get(api, post_paths(1)[0], expired)
    assert answer.status_code == 401 and code(answer) == "token_expired"


def test_a_legacy_token_without_sub_is_refused(api: Any, services: Services) -> None:
    answer = get(api, post_paths(1)[0], makapix(services, None, ["user"]))
    assert answer.status_code == 401 and code(answer) == "token_without_sub"


def test_role_and_roles_together_are_refused(api: Any, services: Services) -> None:
    now = datetime.now(UTC)
    claims = {"sub": USER, "role": "artist", "roles": ["owner"], "type": "access",
              "iat": now, "exp": now + timedelta(hours=1)}
    token = jwt.encode(claims, services.settings.jwt_secret, algorithm="HS256")
    answer = get(api, SITE, {"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and code(answer) == "ambiguous_role"


def test_vts_own_tokens_work_as_before(api: Any, services: Services) -> None:
    settings = services.settings
    assert get(api, SITE, auth(settings, "ops", "admin")).status_code == 200
    assert get(api, SITE, auth(settings, "sync", "service")).status_code == 200
    assert get(api, post_paths(1)[0], auth(settings, USER, "artist")).status_code == 200
    assert get(api, post_paths(3)[0], auth(settings, USER, "artist")).status_code == 403
    assert get(api, post_paths(3)[0], auth(settings, "m", "moderator")).status_code == 200
    assert get(api, post_paths(3)[0], auth(settings, USER, "viewer")).status_code == 403


def test_makapix_tokens_are_shut_out_once_an_issuer_is_required(
    api: Any, world: Services
) -> None:
    with use(services_with(world, jwt_issuer=ISSUER)) as services:
        answer = get(api, post_paths(1)[0], makapix(services, USER, ["user"]))
        assert answer.status_code == 401 and code(answer) == "token_without_iss"


# ---- JWKS mode ------------------------------------------------------------------------------


def services_with(world: Services, **changes: Any) -> Services:
    """The same tables under other token settings (the registry and aggregates are shared)."""
    return dynamodb_services(replace(world.settings, **changes), clock=FixedClock(NOW))


@dataclass
class KeySet:
    """What the test's key-set server answers, and how often it was asked."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    raw: bytes | None = None
    fetches: int = 0


@contextmanager
def serve(keyset: KeySet) -> Iterator[str]:
    """A real HTTP server on a free local port publishing ``keyset``; yields its JWKS URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            keyset.fetches += 1
            payload = keyset.raw if keyset.raw is not None else json.dumps(
                {"keys": keyset.keys}
            ).encode()
            self.send_response(keyset.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class Signer:
    kid: str
    algorithm: str
    private: Any
    jwk: dict[str, Any]


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_jwk = {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "kid": "rsa-1",
               "use": "sig", "alg": "RS256"}
    ed_jwk = {**OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True), "kid": "ed-1",
              "use": "sig", "alg": "EdDSA"}
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "rsa": Signer("rsa-1", "RS256", rsa_key, rsa_jwk),
        "ed": Signer("ed-1", "EdDSA", ed_key, ed_jwk),
        "stranger": Signer("rsa-1", "RS256", stranger, {}),  # claims rsa-1's kid
    }


def issued(signer: Signer, *, kid: str | None = "same", **overrides: Any) -> dict[str, str]:
    """A VTS-scoped token as the issuer would sign it: Makapix's claims plus iss and aud
    (``None`` in ``overrides`` removes a claim)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": USER, "roles": ["user"], "type": "access", "iat": now,
                              "exp": now + timedelta(hours=1), "iss": ISSUER, "aud": AUDIENCE}
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    headers = {} if kid is None else {"kid": signer.kid if kid == "same" else kid}
    token = jwt.encode(claims, signer.private, algorithm=signer.algorithm, headers=headers)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def keyset(signers: dict[str, Signer]) -> KeySet:
    return KeySet(keys=[signers["rsa"].jwk, signers["ed"].jwk])


@pytest.fixture
def jwks(world: Services, keyset: KeySet) -> Iterator[Services]:
    """The app in JWKS mode against a key-set server of its own (a fresh client per URL)."""
    with serve(keyset) as url, use(
        services_with(world, jwks_url=url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    ) as services:
        yield services


def test_rs256_and_eddsa_tokens_from_the_key_set_are_accepted(
    api: Any, jwks: Services, signers: dict[str, Signer], keyset: KeySet
) -> None:
    for name in ("rsa", "ed"):
        user = issued(signers[name])
        assert get(api, post_paths(1)[0], user).status_code == 200
        assert get(api, post_paths(3)[0], user).status_code == 403
        owner = issued(signers[name], sub=OWNER, roles=["user", "moderator", "owner"])
        assert get(api, SITE, owner).status_code == 200
        moderator = issued(signers[name], sub=MODERATOR, roles=["moderator"])
        assert get(api, post_paths(1)[0], moderator).status_code == 200
        assert get(api, SITE, moderator).status_code == 403
    assert keyset.fetches == 1  # one fetch, then the client's cache


def test_cached_keys_outlive_a_short_outage_of_the_key_set(
    api: Any, world: Services, signers: dict[str, Signer]
) -> None:
    keyset = KeySet(keys=[signers["ed"].jwk])
    with serve(keyset) as url:
        services = services_with(world, jwks_url=url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
        with use(services):
            assert get(api, post_paths(1)[0], issued(signers["ed"])).status_code == 200
    with use(services):  # the server is gone; the set is cached for 5 minutes
        assert get(api, post_paths(2)[0], issued(signers["ed"])).status_code == 200
    assert keyset.fetches == 1


def test_a_kid_the_key_set_does_not_hold_is_refused(
    api: Any, jwks: Services, signers: dict[str, Signer], keyset: KeySet
) -> None:
    for kid in ("rsa-2", "", None):
        answer = get(api, post_paths(1)[0], issued(signers["rsa"], kid=kid))
        assert answer.status_code == 401 and code(answer) == "unknown_key", kid
    # Made-up kids do not make VTS fetch the set again and again (the client's cooldown).
    for n in range(5):
        get(api, post_paths(1)[0], issued(signers["rsa"], kid=f"made-up-{n}"))
    assert keyset.fetches == 1


def test_a_token_signed_by_another_key_or_algorithm_is_refused(
    api: Any, jwks: Services, signers: dict[str, Signer]
) -> None:
    forged = issued(signers["stranger"])  # the right kid, the wrong key
    assert code(get(api, post_paths(1)[0], forged)) == "invalid_token"
    # An EdDSA signature under the RSA key's kid: the key's algorithm rules.
    crossed = issued(signers["ed"], kid="rsa-1")
    answer = get(api, post_paths(1)[0], crossed)
    assert answer.status_code == 401 and code(answer) == "invalid_token"


def test_issuer_and_audience_are_required_and_pinned(
    api: Any, jwks: Services, signers: dict[str, Signer]
) -> None:
    for overrides, expected in (
        ({"iss": "https://elsewhere.example"}, "invalid_issuer"),
        ({"aud": "another-service"}, "invalid_audience"),
        ({"aud": ["another-service"]}, "invalid_audience"),
        ({"iss": None}, "token_without_iss"),
        ({"aud": None}, "token_without_aud"),
        ({"exp": None}, "token_without_exp"),
        ({"type": "refresh"}, "wrong_token_type"),
        ({"exp": datetime.now(UTC) - timedelta(minutes=5)}, "token_expired"),
        ({"exp": datetime.now(UTC) + timedelta(days=2)}, "token_lifetime_too_long"),
    ):
        answer = get(api, post_paths(1)[0], issued(signers["ed"], **overrides))
        assert answer.status_code == 401 and code(answer) == expected, overrides


def test_hs256_beside_jwks_is_only_vts_own_service_token(
    api: Any, jwks: Services, signers: dict[str, Signer]
) -> None:
    settings = jwks.settings
    # Makapix's shared-secret tokens and VTS's own tokens for people: refused.
    for headers in (
        makapix(jwks, OWNER, ["owner"]),
        makapix(jwks, USER, ["user"]),
        auth(settings, "ops", "admin"),
        auth(settings, USER, "artist"),
    ):
        answer = get(api, SITE, headers)
        assert answer.status_code == 401 and code(answer) == "hs256_not_accepted"
    # VTS's service token (vts token sets iss/aud from the settings): accepted.
    assert get(api, SITE, auth(settings, "makapix-sync", "service")).status_code == 200
    bare = auth(replace(settings, jwt_issuer=None, jwt_audience=None), "makapix-sync", "service")
    answer = get(api, SITE, bare)
    assert answer.status_code == 401 and code(answer) == "token_without_iss"
    # The RSA public key used as an HMAC secret (algorithm confusion) is just a bad signature.
    public_pem = signers["rsa"].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = get(api, SITE, {"Authorization": f"Bearer {hs256_with(public_pem, settings)}"})
    assert answer.status_code == 401 and code(answer) == "invalid_token"
    # Anything but RS256, EdDSA and HS256: refused.
    none = jwt.encode({"sub": "x", "role": "service"}, None, algorithm="none")  # type: ignore[arg-type]
    assert code(get(api, SITE, {"Authorization": f"Bearer {none}"})) == "invalid_token"


def hs256_with(key: bytes, settings: Settings) -> str:
    """A service-shaped HS256 token keyed with ``key`` (PyJWT refuses a PEM as an HMAC key,
    so the signature is made by hand, as an attacker would)."""
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "x", "role": "service", "iat": now, "exp": now + 60,
              "iss": settings.jwt_issuer, "aud": settings.jwt_audience}

    def part(value: dict[str, Any]) -> str:
        return base64url_encode(json.dumps(value).encode()).decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{part(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64url_encode(signature).decode()}"


def test_an_unreachable_key_set_is_503_with_retry_after(
    api: Any, world: Services, signers: dict[str, Signer]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    with use(services_with(world, jwks_url=nowhere, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)):
        answer = get(api, post_paths(1)[0], issued(signers["rsa"]))
        assert answer.status_code == 503 and code(answer) == "jwks_unavailable"
        assert answer.headers["Retry-After"] == "5"
        # Without a token nothing is fetched: the public routes do not depend on the issuer.
        assert api.http.get("/v1/posts/1/counter").status_code == 200


@pytest.mark.parametrize(
    "keyset",
    [KeySet(status=500, raw=b"oops"), KeySet(raw=b"<html>"), KeySet(raw=b"[]"),
     KeySet(keys=[]), KeySet(keys=[{"kty": "RSA", "kid": "rsa-1", "n": "x"}])],
    ids=["http-500", "not-json", "not-an-object", "no-keys", "no-usable-key"],
)
def test_a_broken_key_set_is_503_not_a_bad_token(
    api: Any, world: Services, signers: dict[str, Signer], keyset: KeySet
) -> None:
    with serve(keyset) as url, use(
        services_with(world, jwks_url=url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    ):
        answer = get(api, post_paths(1)[0], issued(signers["rsa"]))
        assert answer.status_code == 503 and code(answer) == "jwks_unavailable"


def test_jwks_without_issuer_and_audience_stops_the_stack_naming_them(
    api: Any, world: Services, signers: dict[str, Signer]
) -> None:
    url = "https://makapix.club/.well-known/jwks.json"
    with use(services_with(world, jwks_url=url, jwt_issuer=ISSUER)):
        answer = get(api, post_paths(1)[0], issued(signers["rsa"]))
        error = body(answer)["error"]
        assert answer.status_code == 500 and error["code"] == "config_error"
        assert "VTS_JWT_ISSUER and VTS_JWT_AUDIENCE" in error["message"]
        assert error["message"].endswith("missing: VTS_JWT_AUDIENCE")
