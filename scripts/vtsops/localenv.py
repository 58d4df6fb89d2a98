"""The local stack's environment file (``.vts/local.env``): ports and per-run dev secrets.

The stack writes it at start-up; the CLI reads it so ``vts token`` signs with the same
secret. Variables already in the environment always win.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEFAULT_PORTS = {"VTS_HTTP_PORT": "8000", "VTS_AWS_PORT": "5000", "VTS_MQTT_PORT": "1883"}


def env_file(root: Path) -> Path:
    return root / ".vts" / "local.env"


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{path}:{number}: expected NAME=value, got {line!r}")
        values[name.strip()] = value.strip()
    return values


def local_environment(root: Path, *, fresh_secrets: bool) -> dict[str, str]:
    """The VTS_* variables of a local stack: environment, else file, else defaults/generated."""
    saved = {} if fresh_secrets else read_env_file(env_file(root))
    env: dict[str, str] = {}
    for name, default in DEFAULT_PORTS.items():
        env[name] = os.environ.get(name) or saved.get(name) or default
        if not env[name].isdigit() or not 0 < int(env[name]) < 65536:
            raise ValueError(f"{name} must be a TCP port number (got {env[name]!r})")
    for name in ("VTS_JWT_SECRET", "VTS_VISITOR_KEY"):
        # 32 random bytes (43 characters): the token secret must have at least 32 bytes.
        env[name] = os.environ.get(name) or saved.get(name) or secrets.token_urlsafe(32)
    _check_jwt_secret(env["VTS_JWT_SECRET"])
    env["VTS_DYNAMODB_ENDPOINT"] = f"http://127.0.0.1:{env['VTS_AWS_PORT']}"
    env["VTS_MQTT_HOST"] = "127.0.0.1"
    # The local stack plays API Gateway: the client address is the first X-Forwarded-For
    # address when a request carries one (tests and the demo are many networks).
    env["VTS_TRUST_FORWARDED_FOR"] = "1"
    env["VTS_STAGE"] = os.environ.get("VTS_STAGE") or saved.get("VTS_STAGE") or "dev"
    # The demo's pixel art comes from the local API itself (/demo-art/): its origin is an
    # art origin the dashboard's Content-Security-Policy lets images come from.
    env["VTS_ART_ORIGINS"] = (
        os.environ.get("VTS_ART_ORIGINS")
        or saved.get("VTS_ART_ORIGINS")
        or f"http://127.0.0.1:{env['VTS_HTTP_PORT']}"
    )
    geo = os.environ.get("VTS_GEOIP_DB") or saved.get("VTS_GEOIP_DB")
    default_geo = root / ".data" / "geoip" / "country.mmdb"
    if not geo and default_geo.exists():
        geo = str(default_geo)
    if geo:
        env["VTS_GEOIP_DB"] = geo
    return env


def _check_jwt_secret(secret: str) -> None:
    """A given secret that is too short stops the stack before anything starts."""
    from chalicelib.config import check_jwt_secret
    from chalicelib.errors import ConfigError

    try:
        check_jwt_secret(secret)
    except ConfigError as error:
        raise ValueError(error.message) from None


def write_env_file(root: Path, env: dict[str, str]) -> Path:
    path = env_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by the local stack; dev-only secrets, regenerated per run"]
    lines += [f"{k}={v}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
