"""Bearer-token rules (DESIGN §7, §8): exp required, lifetimes by role, iss/aud when
configured, a secret of at least 32 bytes; Makapix's access tokens (``roles``, ``type``) and
their role mapping; JWKS mode's settings; and ``vts token`` issues only what these rules
accept. The JWKS mode itself, against a real key-set server: tests/integration/
test_makapix_tokens.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
from vtsops import cli
from vtsops.localenv import local_environment

from chalicelib.auth import (
    PERSON_MAX_LIFETIME_S,
    SERVICE_MAX_LIFETIME_S,
    Claims,
    claims_from_header,
    issue_token,
    makapix_role,
)
from chalicelib.config import Settings, get_settings
from chalicelib.errors import ConfigError, Unauthorized

SECRET = "a-test-secret-of-at-least-32-bytes-long"
DAY_S = 86_400


def signed(claims: dict[str, Any], secret: str = SECRET) -> str:
    """A token with exactly these claims (``iat``/``exp`` as offsets in seconds from now)."""
    now = datetime.now(UTC)
    payload = dict(claims)
    for name in ("iat", "exp"):
        if name in payload:
            payload[name] = now + timedelta(seconds=payload[name])
    return f"Bearer {jwt.encode(payload, secret, algorithm='HS256')}"


def makapix_access_token(
    secret: str,
    *,
    public_sqid: str | None,
    roles: Sequence[str] | None = ("user",),
    expires_in_seconds: int = 3600,
    token_type: str = "access",
    drop: Sequence[str] = (),
    now: datetime | None = None,
) -> str:
    """A token built exactly as Makapix's ``create_access_token`` (fabkury/makapix
    api/app/auth.py) builds one: PyJWT, HS256 (its default JWT_ALGORITHM), naive-UTC
    ``iat``/``exp`` (JWT_ACCESS_TOKEN_EXPIRE_MINUTES, 60 by default), ``type: access``,
    ``roles`` (``["user"]`` when empty), the legacy ``user_id`` (a UUID), and ``sub`` = the
    public sqid when the user has one. ``token_type``/``drop`` make the shapes it does not
    issue (a refresh type, a claim missing)."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)  # noqa: UP017 (as Makapix)
    payload: dict[str, Any] = {
        "exp": now + timedelta(seconds=expires_in_seconds),
        "iat": now,
        "type": token_type,
        "roles": list(roles or ["user"]),
        "user_id": str(uuid.uuid4()),
    }
    if public_sqid:
        payload["sub"] = public_sqid
    for name in drop:
        payload.pop(name, None)
    return jwt.encode(payload, secret, algorithm="HS256")


def refused(header: str, **rules: Any) -> str:
    with pytest.raises(Unauthorized) as caught:
        claims_from_header(header, SECRET, **rules)
    assert caught.value.status == 401 and caught.value.message
    return caught.value.code


def test_a_token_without_exp_is_refused() -> None:
    assert refused(signed({"sub": "42", "role": "artist", "iat": 0})) == "token_without_exp"


def test_a_token_without_iat_is_refused_rather_than_measured_from_now() -> None:
    assert refused(signed({"sub": "42", "role": "artist", "exp": 60})) == "token_without_iat"


@pytest.mark.parametrize("role", ["artist", "admin", "viewer", None])
def test_a_persons_token_lives_at_most_a_day(role: str | None) -> None:
    claims = {"sub": "42", "iat": 0} | ({"role": role} if role else {})
    assert claims_from_header(signed({**claims, "exp": DAY_S}), SECRET) is not None
    assert refused(signed({**claims, "exp": DAY_S + 1})) == "token_lifetime_too_long"
    assert refused(signed({**claims, "exp": 7 * DAY_S})) == "token_lifetime_too_long"


def test_an_old_iat_cannot_stretch_a_persons_token() -> None:
    # Issued 3 days ago, valid for one more: four days in all.
    assert refused(signed({"sub": "42", "role": "artist", "iat": -3 * DAY_S, "exp": DAY_S})) == (
        "token_lifetime_too_long"
    )


def test_a_token_issued_in_the_future_is_refused() -> None:
    assert refused(signed({"sub": "42", "role": "artist", "iat": 3600, "exp": 7200})) == (
        "invalid_token"
    )


def test_a_service_token_lives_at_most_thirty_days() -> None:
    ok = claims_from_header(signed({"sub": "p", "role": "service", "iat": 0, "exp": 29 * DAY_S}), SECRET)
    assert ok is not None and ok.role == "service"
    too_long = signed({"sub": "p", "role": "service", "iat": 0, "exp": 31 * DAY_S})
    assert refused(too_long) == "token_lifetime_too_long"


def test_expired_tokens_keep_their_code() -> None:
    assert refused(signed({"sub": "42", "role": "artist", "iat": -7200, "exp": -3600})) == (
        "token_expired"
    )


def test_issuer_and_audience_are_checked_when_configured() -> None:
    rules = {"issuer": "https://vts.example", "audience": "vts"}
    good = {"sub": "42", "role": "artist", "iat": 0, "exp": 60,
            "iss": "https://vts.example", "aud": "vts"}
    assert claims_from_header(signed(good), SECRET, **rules) is not None
    assert refused(signed({**good, "iss": "https://evil.example"}), **rules) == "invalid_issuer"
    assert refused(signed({**good, "aud": "someone-else"}), **rules) == "invalid_audience"
    bare = {k: v for k, v in good.items() if k not in ("iss", "aud")}
    assert refused(signed(bare), **rules) == "token_without_iss"
    assert refused(signed({**bare, "iss": "https://vts.example"}), **rules) == "token_without_aud"


def test_unconfigured_issuer_and_audience_are_not_required() -> None:
    plain = {"sub": "42", "role": "artist", "iat": 0, "exp": 60}
    assert claims_from_header(signed({**plain, "iss": "anyone"}), SECRET) is not None
    # A token meant for another audience is not ours to accept.
    assert refused(signed({**plain, "aud": "elsewhere"})) == "invalid_audience"


def test_issue_token_issues_only_what_is_accepted() -> None:
    now = datetime.now(UTC)
    for role, ttl in (("artist", PERSON_MAX_LIFETIME_S), ("service", SERVICE_MAX_LIFETIME_S)):
        token = issue_token(SECRET, sub="s", role=role, now=now, ttl_s=ttl)
        assert claims_from_header(f"Bearer {token}", SECRET) is not None
    for role, ttl in (("artist", 7 * DAY_S), ("admin", DAY_S + 1), ("service", 31 * DAY_S),
                      ("viewer", 0)):
        with pytest.raises(ValueError, match="may live"):
            issue_token(SECRET, sub="s", role=role, now=now, ttl_s=ttl)
    scoped = issue_token(SECRET, sub="s", role="artist", now=now, issuer="i", audience="a")
    assert claims_from_header(f"Bearer {scoped}", SECRET, issuer="i", audience="a") is not None


def test_a_short_secret_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    short = "x" * 31
    with pytest.raises(ConfigError, match="VTS_JWT_SECRET"):
        claims_from_header(signed({"sub": "1", "iat": 0, "exp": 60}), short)
    with pytest.raises(ConfigError, match="VTS_JWT_SECRET"):
        issue_token(short, sub="1", role="artist", now=datetime.now(UTC))
    with pytest.raises(ConfigError, match="VTS_JWT_SECRET must be at least 32 bytes"):
        Settings(jwt_secret=short, visitor_key="k").require_secrets()
    with pytest.raises(ConfigError, match="VTS_JWT_SECRET_PARAM"):  # resolved from SSM
        Settings(jwt_secret=short, jwt_secret_param="/vts/x", visitor_key="k").require_secrets()
    Settings(jwt_secret="x" * 32, visitor_key="k").require_secrets()
    monkeypatch.setenv("VTS_JWT_SECRET", short)
    with pytest.raises(ConfigError, match="VTS_JWT_SECRET must be at least 32 bytes"):
        get_settings()
    monkeypatch.setenv("VTS_JWT_SECRET", "é" * 16)  # bytes, not characters
    assert get_settings().jwt_secret == "é" * 16


def test_issuer_and_audience_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTS_JWT_ISSUER", "https://vts.example")
    monkeypatch.setenv("VTS_JWT_AUDIENCE", "vts")
    settings = get_settings()
    assert (settings.jwt_issuer, settings.jwt_audience) == ("https://vts.example", "vts")
    monkeypatch.setenv("VTS_JWT_ISSUER", "")
    monkeypatch.delenv("VTS_JWT_AUDIENCE")
    assert (get_settings().jwt_issuer, get_settings().jwt_audience) == (None, None)


def test_the_local_stack_generates_long_secrets_and_refuses_a_short_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("VTS_JWT_SECRET", "VTS_VISITOR_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = local_environment(tmp_path, fresh_secrets=True)
    assert len(env["VTS_JWT_SECRET"].encode()) >= 32 and len(env["VTS_VISITOR_KEY"].encode()) >= 32
    monkeypatch.setenv("VTS_JWT_SECRET", "too-short")
    with pytest.raises(ValueError, match="VTS_JWT_SECRET must be at least 32 bytes"):
        local_environment(tmp_path, fresh_secrets=True)


def run_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "_load_local_env", lambda: None)
    code = cli.main(["token", *argv])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_vts_token_refuses_what_the_api_would_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VTS_JWT_SECRET", SECRET)
    monkeypatch.setenv("VTS_JWT_ISSUER", "https://vts.example")
    code, out, err = run_token(monkeypatch, capsys, "--role", "artist", "--sub", "a1")
    assert code == 0 and not err
    claims = claims_from_header(f"Bearer {out}", SECRET, issuer="https://vts.example")
    assert claims is not None and claims.role == "artist"

    code, out, err = run_token(monkeypatch, capsys, "--role", "artist", "--sub", "a1", "--ttl", "604800")
    assert code == 2 and not out and len(err.splitlines()) == 1 and "86400" in err

    code, out, _ = run_token(monkeypatch, capsys, "--role", "service", "--sub", "p", "--ttl", str(29 * DAY_S))
    assert code == 0
    claims = claims_from_header(f"Bearer {out}", SECRET, issuer="https://vts.example")
    assert claims is not None and claims.role == "service"
    code, out, err = run_token(monkeypatch, capsys, "--role", "service", "--sub", "p", "--ttl", str(31 * DAY_S))
    assert code == 2 and not out and "2592000" in err

    monkeypatch.setenv("VTS_JWT_SECRET", "short")
    code, out, err = run_token(monkeypatch, capsys, "--role", "artist", "--sub", "a1")
    assert code == 2 and not out and "VTS_JWT_SECRET" in err and len(err.splitlines()) == 1


# ---- Makapix's access tokens (DESIGN §7) ----------------------------------------------------


def makapix(**shape: Any) -> str:
    return f"Bearer {makapix_access_token(SECRET, **{'public_sqid': 'Xk9dT2', **shape})}"


@pytest.mark.parametrize(
    ("roles", "role"),
    [
        (["user"], "artist"),
        (["user", "moderator"], "moderator"),
        (["moderator"], "moderator"),
        (["user", "moderator", "owner"], "admin"),
        (["owner"], "admin"),
        (["user", "owner"], "admin"),
        (["user", "beta-tester"], "artist"),
        (["admin", "service"], "artist"),  # Makapix has no such roles: nothing more than a user
    ],
)
def test_makapix_roles_map_to_vts_roles(roles: list[str], role: str) -> None:
    assert claims_from_header(makapix(roles=roles), SECRET) == Claims(sub="Xk9dT2", role=role)


def test_an_empty_roles_list_is_an_artist() -> None:
    assert makapix_role([]) == "artist"
    # Makapix itself turns an empty list into ["user"] when it signs.
    assert claims_from_header(makapix(roles=[]), SECRET) == Claims(sub="Xk9dT2", role="artist")


@pytest.mark.parametrize("roles", ["owner", {"owner": True}, [["owner"]], [1], None, 5])
def test_roles_that_are_not_a_list_of_strings_are_refused(roles: Any) -> None:
    header = signed({"sub": "Xk9dT2", "roles": roles, "type": "access", "iat": 0, "exp": 60})
    assert refused(header) == "invalid_roles"


def test_makapix_lifetimes_fit_the_persons_limit() -> None:
    # 60 min (Makapix's default), 240 min (its .env.example), and a day at most.
    for minutes in (60, 240, 1440):
        assert claims_from_header(makapix(expires_in_seconds=minutes * 60), SECRET) is not None
    assert refused(makapix(expires_in_seconds=1441 * 60)) == "token_lifetime_too_long"


def test_only_access_tokens_are_accepted() -> None:
    for kind in ("refresh", "id", "ACCESS", ""):
        assert refused(makapix(token_type=kind)) == "wrong_token_type"
    assert refused(signed({"sub": "Xk9dT2", "role": "admin", "type": "refresh", "iat": 0,
                           "exp": 60})) == "wrong_token_type"
    assert refused(signed({"sub": "Xk9dT2", "roles": ["user"], "type": 1, "iat": 0,
                           "exp": 60})) == "wrong_token_type"
    # No type at all (VTS's own tokens) is fine.
    assert claims_from_header(makapix(drop=["type"]), SECRET) is not None


def test_a_makapix_token_without_exp_iat_or_sub_is_refused() -> None:
    assert refused(makapix(drop=["exp"])) == "token_without_exp"
    assert refused(makapix(drop=["iat"])) == "token_without_iat"
    # A legacy token (only user_id, before the sqid cutover) names no artist VTS knows.
    assert refused(makapix(public_sqid=None)) == "token_without_sub"


def test_an_expired_makapix_token_is_refused() -> None:
    two_hours_ago = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=2)  # noqa: UP017
    assert refused(makapix(now=two_hours_ago)) == "token_expired"
    # Within the leeway it still passes (clock skew between Makapix's host and Lambda).
    just = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=3610)  # noqa: UP017
    assert claims_from_header(makapix(now=just), SECRET) is not None


def test_a_makapix_token_signed_with_another_secret_is_refused() -> None:
    other = makapix_access_token("another-secret-of-at-least-32-bytes!!", public_sqid="Xk9dT2",
                                 roles=["owner"])
    assert refused(f"Bearer {other}") == "invalid_token"


def test_role_and_roles_together_are_refused() -> None:
    for role, roles in (("artist", ["owner"]), ("admin", ["user"]), ("service", [])):
        header = signed({"sub": "Xk9dT2", "role": role, "roles": roles, "iat": 0, "exp": 60})
        assert refused(header) == "ambiguous_role"


def test_vts_tokens_keep_their_role() -> None:
    for role in ("artist", "moderator", "admin", "viewer"):
        claims = claims_from_header(signed({"sub": "a", "role": role, "iat": 0, "exp": 60}), SECRET)
        assert claims == Claims(sub="a", role=role)
    plain = claims_from_header(signed({"sub": "a", "iat": 0, "exp": 60}), SECRET)
    assert plain == Claims(sub="a", role="viewer")


def test_makapix_tokens_pass_only_while_issuer_and_audience_are_unset() -> None:
    assert refused(makapix(), issuer="https://makapix.club") == "token_without_iss"
    assert refused(makapix(), audience="vts") == "token_without_aud"


# ---- JWKS mode's settings ---------------------------------------------------------------


JWKS = "https://makapix.club/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("issuer", "audience", "missing"),
    [(None, None, "VTS_JWT_ISSUER, VTS_JWT_AUDIENCE"), ("https://makapix.club", None,
      "VTS_JWT_AUDIENCE"), (None, "vts", "VTS_JWT_ISSUER")],
)
def test_jwks_without_issuer_and_audience_is_a_config_error(
    issuer: str | None, audience: str | None, missing: str
) -> None:
    header = signed({"sub": "p", "role": "service", "iat": 0, "exp": 60})
    with pytest.raises(ConfigError, match=f"VTS_JWKS_URL is set.*missing: {missing}$"):
        claims_from_header(header, SECRET, issuer=issuer, audience=audience, jwks_url=JWKS)
    with pytest.raises(ConfigError, match="VTS_JWT_ISSUER and VTS_JWT_AUDIENCE"):
        claims_from_header(header, SECRET, issuer=issuer, audience=audience, jwks_url=JWKS)


@pytest.mark.parametrize(
    "url", ["http://makapix.club/jwks.json", "file:///etc/passwd", "ftp://x/jwks", "jwks.json",
            "https:///jwks.json"],
)
def test_jwks_url_must_be_https_but_for_loopback(url: str) -> None:
    header = signed({"sub": "p", "role": "service", "iat": 0, "exp": 60})
    with pytest.raises(ConfigError, match="VTS_JWKS_URL must be an https URL"):
        claims_from_header(header, SECRET, issuer="i", audience="a", jwks_url=url)


def test_jwks_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTS_JWT_ISSUER", raising=False)
    monkeypatch.delenv("VTS_JWT_AUDIENCE", raising=False)
    monkeypatch.setenv("VTS_JWKS_URL", JWKS)
    # JWKS mode without a pinned issuer and audience stops at start-up, naming both.
    with pytest.raises(ConfigError, match="VTS_JWT_ISSUER, VTS_JWT_AUDIENCE"):
        get_settings()
    monkeypatch.setenv("VTS_JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("VTS_JWT_AUDIENCE", "vts")
    assert get_settings().jwks_url == JWKS
    monkeypatch.setenv("VTS_JWKS_URL", "")
    assert get_settings().jwks_url is None


def test_vts_token_issues_moderator_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VTS_JWT_SECRET", SECRET)
    for name in ("VTS_JWT_ISSUER", "VTS_JWT_AUDIENCE", "VTS_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run_token(monkeypatch, capsys, "--role", "moderator", "--sub", "m1")
    assert code == 0 and not err
    assert claims_from_header(f"Bearer {out}", SECRET) == Claims(sub="m1", role="moderator")
