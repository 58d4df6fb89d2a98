"""Shared fixtures: moto in server mode (over HTTP, as the local stack uses it), per-test
tables, and the Chalice test client."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings, get_settings

FIXTURES = Path(__file__).parent / "fixtures"
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture(autouse=True)
def _environment_kept() -> Iterator[None]:
    """Whatever a test puts in the environment stays with it: a command it runs in-process
    (``vts`` loads ``.vts/local.env``, written by ``make run``) must not change the settings
    of the tests after it. Wider-scoped fixtures set theirs up before this snapshot."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def load_event(name: str) -> Any:
    """A stored trigger event (IoT rule output, stream batch, API Gateway request)."""
    return json.loads((FIXTURES / "events" / f"{name}.json").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Fresh tables in moto (unique names per test) and the VTS_* environment pointing at them."""
    suffix = uuid.uuid4().hex[:10]
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "VTS_DYNAMODB_ENDPOINT": moto_endpoint,
        "VTS_EVENTS_TABLE": f"t-{suffix}-events",
        "VTS_AGGREGATES_TABLE": f"t-{suffix}-aggregates",
        "VTS_REGISTRY_TABLE": f"t-{suffix}-registry",
        "VTS_JWT_SECRET": "test-jwt-secret-0123456789abcdef-" + suffix,
        "VTS_VISITOR_KEY": "test-visitor-key-" + suffix,
        "VTS_DROP_FLUSH_S": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VTS_GEOIP_DB", raising=False)
    settings = get_settings()
    from chalicelib.storage.provision import ensure_tables
    from chalicelib.wiring import dynamodb_client

    ensure_tables(dynamodb_client(settings), settings.table_names())
    return settings


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC))


@pytest.fixture
def api(aws_env: Settings) -> Iterator[Any]:
    """The Chalice test client over the real app, backed by moto over HTTP."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="dev") as client:
        yield client


def token(settings: Settings, sub: str, role: str) -> str:
    from chalicelib.auth import issue_token

    return issue_token(
        settings.jwt_secret, sub=sub, role=role, now=datetime.now(UTC),
        issuer=settings.jwt_issuer, audience=settings.jwt_audience,
    )


def auth(settings: Settings, sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, sub, role)}"}


@contextmanager
def fresh_tables(moto_endpoint: str, prefix: str, secret_name: str) -> Iterator[Settings]:
    """Settings naming fresh tables (made here) in the session's moto, for one module's own
    world; the dummy AWS credentials hold while the block builds its services (clients take
    them when made)."""
    suffix = uuid.uuid4().hex[:10]
    with pytest.MonkeyPatch.context() as env:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            env.setenv(name, value)
        settings = Settings(
            dynamodb_endpoint=moto_endpoint,
            events_table=f"{prefix}-{suffix}-events",
            aggregates_table=f"{prefix}-{suffix}-aggregates",
            registry_table=f"{prefix}-{suffix}-registry",
            jwt_secret=f"{secret_name}-secret-0123456789abcdef-" + suffix,
            visitor_key=f"{secret_name}-visitor-key",
        )
        from chalicelib.storage.provision import ensure_tables
        from chalicelib.wiring import dynamodb_client

        ensure_tables(dynamodb_client(settings), settings.table_names())
        yield settings
