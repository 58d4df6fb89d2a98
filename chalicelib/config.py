"""Settings from the environment, read lazily through one cached ``get_settings()``.

Nothing may read the environment at import time: ``chalice.test.Client`` applies a
stage's environment only during each call, and tests run stacks side by side.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.errors import ConfigError

_PREFIX = "VTS_"
# An HS256 key shorter than the hash itself (32 bytes) is open to offline guessing (RFC 7518
# §3.2); a shorter secret stops the stack rather than signing weak tokens.
MIN_JWT_SECRET_BYTES = 32


def check_jwt_secret(secret: str, name: str = "VTS_JWT_SECRET") -> None:
    """``ConfigError`` naming the variable when the token secret is missing or too short."""
    size = len(secret.encode())
    if size < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"{name} must be at least {MIN_JWT_SECRET_BYTES} bytes (it has {size}); generate "
            "one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


@dataclass(frozen=True)
class Settings:
    """Every knob the Lambdas read. Defaults suit the local stack."""

    stage: str = "dev"
    region: str = "us-east-1"
    events_table: str = "vts-dev-events"
    aggregates_table: str = "vts-dev-aggregates"
    registry_table: str = "vts-dev-registry"
    dynamodb_endpoint: str | None = None
    jwt_secret: str = ""
    visitor_key: str = ""
    # In AWS the secrets live in SSM (SecureString); wiring resolves these names at runtime.
    jwt_secret_param: str | None = None
    visitor_key_param: str | None = None
    # Checked in bearer tokens only when set (DESIGN §8); Makapix's tokens carry neither.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # JWKS mode (DESIGN §7): tokens signed by the issuer's published keys (RS256/EdDSA),
    # with ``jwt_issuer`` and ``jwt_audience`` pinned.
    jwks_url: str | None = None
    # Where a post's page lives ({site_url}/p/{sqid}) and the origins artwork images may come
    # from (the dashboard's Content-Security-Policy img-src).
    site_url: str = "https://makapix.club"
    art_origins: tuple[str, ...] = ("https://vault.makapix.club",)
    geoip_db: str | None = None
    event_ttl_days: int = 35
    impression_interval_s: int = 3
    # Per (post, UTC day, network) at most this many anonymous Views / Impressions count
    # (chalicelib/netcap.py).
    net_views: int = 20
    net_impressions: int = 200
    # Only the local stack, playing API Gateway, takes the client address from the first
    # X-Forwarded-For address; in AWS it comes from API Gateway's sourceIp.
    trust_forwarded_for: bool = False
    player_interval_s: int = 5
    retransmission_window_s: int = 60
    # Client ids that may speak for any player key: bridges whose own broker already holds
    # each frame to its key (DESIGN §4, §7).
    player_bridges: tuple[str, ...] = ("vts-bridge-makapix",)
    # How far back a player's own clock may place a report for the rate check, so a backlog
    # a bridge delivers at once after an outage is measured as it was sent (players/gate.py).
    player_backlog_s: int = 3600
    post_cache_s: int = 60
    ack_transport: str = "none"  # none | mqtt | iot
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    iot_data_endpoint: str | None = None
    # Drop counters are buffered per container (EMF lines are not): chalicelib/drops.py.
    drop_flush_s: int = 60
    # The stream handler notes its position (PUMP/STATE, for health and fresh_as_of) at most
    # this often: at low traffic nearly every look is its own batch.
    stream_state_every_s: int = 60
    close_budget_s: int = 600
    # A Day closes this long after it ends, so the stream has delivered all of it.
    close_grace_s: int = 3600
    # A post whose looks the stream handler sees stored faster than this (per second) is
    # marked hot: its looks go to ``hot_shards`` write shards (docs/adr/0016). 0: never
    # marked (a throttled write still falls back to the shards).
    hot_views_per_s: int = 50
    # 0: no write shards at all (no hot marks, no fallback): one partition key per post and Day.
    hot_shards: int = 10

    def table_names(self) -> dict[str, str]:
        """Each table's logical name (``storage.tables.TABLES``) -> its physical name."""
        return {
            "events": self.events_table,
            "aggregates": self.aggregates_table,
            "registry": self.registry_table,
        }

    def require_secrets(self) -> None:
        """Fail clearly when a secret the request path needs is missing."""
        if not self.jwt_secret:
            raise ConfigError("VTS_JWT_SECRET is not set (nor resolved from VTS_JWT_SECRET_PARAM)")
        where = (
            " (or the SSM parameter VTS_JWT_SECRET_PARAM names)" if self.jwt_secret_param else ""
        )
        check_jwt_secret(self.jwt_secret, "VTS_JWT_SECRET" + where)
        if not self.visitor_key:
            raise ConfigError(
                "VTS_VISITOR_KEY is not set (nor resolved from VTS_VISITOR_KEY_PARAM)"
            )


_INT_FIELDS = {
    "event_ttl_days": (1, 3650),
    "impression_interval_s": (0, 3600),
    "net_views": (1, 1_000_000),
    "net_impressions": (1, 1_000_000),
    "player_interval_s": (0, 3600),
    "retransmission_window_s": (0, 3600),
    "player_backlog_s": (0, 86_400),
    "post_cache_s": (0, 3600),
    "mqtt_port": (1, 65535),
    "drop_flush_s": (0, 3600),
    "stream_state_every_s": (0, 3600),
    "close_budget_s": (1, 900),
    "close_grace_s": (0, 86_400),
    "hot_views_per_s": (0, 1_000_000),
    "hot_shards": (0, 100),
}


_CLIENT_ID = re.compile(r"^[A-Za-z0-9:_.\-]{1,128}$")


def parse_client_ids(text: str) -> tuple[str, ...]:
    """``VTS_PLAYER_BRIDGES``: comma-separated MQTT client ids (empty: no bridge trusted)."""
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    for client_id in ids:
        if not _CLIENT_ID.match(client_id):
            raise ConfigError(
                f"VTS_PLAYER_BRIDGES: {client_id!r} is not a client id "
                "(letters, digits and : _ . - only, at most 128)"
            )
    return ids


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


def parse_origin(text: str, name: str) -> str:
    """An origin such as ``https://makapix.club`` (scheme, host, optional port; no path)."""
    origin = text.strip().rstrip("/")
    if not _ORIGIN.match(origin):
        raise ConfigError(f"{name}: {text!r} is not an origin such as https://makapix.club")
    return origin


def _env_snapshot() -> tuple[tuple[str, str], ...]:
    keys = [k for k in os.environ if k.startswith(_PREFIX)]
    keys += ["AWS_DEFAULT_REGION", "AWS_REGION"]
    return tuple(sorted((k, os.environ[k]) for k in keys if k in os.environ))


def get_settings() -> Settings:
    """The settings for the current environment (cached per distinct environment)."""
    return _build(_env_snapshot())


@lru_cache(maxsize=8)
def _build(snapshot: tuple[tuple[str, str], ...]) -> Settings:
    env = dict(snapshot)
    values: dict[str, object] = {}
    stage = env.get("VTS_STAGE", "dev")
    values["stage"] = stage
    values["region"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    for name in ("events", "aggregates", "registry"):
        values[f"{name}_table"] = env.get(f"VTS_{name.upper()}_TABLE", f"vts-{stage}-{name}")
    values["dynamodb_endpoint"] = env.get("VTS_DYNAMODB_ENDPOINT") or None
    values["jwt_secret"] = env.get("VTS_JWT_SECRET", "")
    if values["jwt_secret"]:
        check_jwt_secret(env["VTS_JWT_SECRET"])
    values["jwt_issuer"] = env.get("VTS_JWT_ISSUER") or None
    values["jwt_audience"] = env.get("VTS_JWT_AUDIENCE") or None
    values["visitor_key"] = env.get("VTS_VISITOR_KEY", "")
    values["jwt_secret_param"] = env.get("VTS_JWT_SECRET_PARAM") or None
    values["visitor_key_param"] = env.get("VTS_VISITOR_KEY_PARAM") or None
    values["geoip_db"] = env.get("VTS_GEOIP_DB") or None
    values["ack_transport"] = env.get("VTS_ACK_TRANSPORT", "none")
    if values["ack_transport"] not in ("none", "mqtt", "iot"):
        raise ConfigError(
            f"VTS_ACK_TRANSPORT must be one of none, mqtt, iot (got {values['ack_transport']!r})"
        )
    values["mqtt_host"] = env.get("VTS_MQTT_HOST", "127.0.0.1")
    forwarded = env.get("VTS_TRUST_FORWARDED_FOR", "")
    if forwarded not in ("", "0", "1", "true", "false"):
        raise ConfigError(f"VTS_TRUST_FORWARDED_FOR must be 1 or 0 (got {forwarded!r})")
    values["trust_forwarded_for"] = forwarded in ("1", "true")
    if "VTS_PLAYER_BRIDGES" in env:
        values["player_bridges"] = parse_client_ids(env["VTS_PLAYER_BRIDGES"])
    values["iot_data_endpoint"] = env.get("VTS_IOT_DATA_ENDPOINT") or None
    values["jwks_url"] = env.get("VTS_JWKS_URL") or None
    if values["jwks_url"]:
        # Checked at start-up, not at the first token (auth imports config: a local import).
        from chalicelib.auth.jwks import check_jwks_settings

        check_jwks_settings(
            env["VTS_JWKS_URL"], env.get("VTS_JWT_ISSUER"), env.get("VTS_JWT_AUDIENCE")
        )
    if "VTS_SITE_URL" in env:
        values["site_url"] = parse_origin(env["VTS_SITE_URL"], "VTS_SITE_URL")
    if "VTS_ART_ORIGINS" in env:
        values["art_origins"] = tuple(
            parse_origin(part.strip(), "VTS_ART_ORIGINS")
            for part in env["VTS_ART_ORIGINS"].split(",")
            if part.strip()
        )
    for field, (low, high) in _INT_FIELDS.items():
        raw = env.get(f"VTS_{field.upper()}")
        if raw is None or raw == "":
            continue
        try:
            number = int(raw)
        except ValueError:
            raise ConfigError(f"VTS_{field.upper()} must be an integer (got {raw!r})") from None
        if not low <= number <= high:
            raise ConfigError(
                f"VTS_{field.upper()} must be between {low} and {high} (got {number})"
            )
        values[field] = number
    return Settings(**values)  # type: ignore[arg-type]
