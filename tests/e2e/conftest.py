"""Browser fixtures: Debian's chromium driven by Playwright, the API served over real HTTP
by ``chalice local`` (backed by moto over HTTP), and a page server on another origin."""

from __future__ import annotations

import functools
import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import Settings
from tests.conftest import BROWSER_UA, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STATIC = ROOT / "chalicelib" / "web" / "static"
OUTPUT = ROOT / "test-output"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.e2e


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    """Poll until ``check`` returns something truthy (bounded; never a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@dataclass
class LocalApi:
    """The API under ``chalice local`` and the services behind it (same tables, same secrets)."""

    url: str
    env: dict[str, str]

    def settings(self) -> Settings:
        env = self.env
        return Settings(
            events_table=env["VTS_EVENTS_TABLE"],
            aggregates_table=env["VTS_AGGREGATES_TABLE"],
            registry_table=env["VTS_REGISTRY_TABLE"],
            dynamodb_endpoint=env["VTS_DYNAMODB_ENDPOINT"],
            jwt_secret=env["VTS_JWT_SECRET"],
            visitor_key=env["VTS_VISITOR_KEY"],
            drop_flush_s=0,
        )

    def services(self) -> Any:
        from chalicelib.wiring import dynamodb_services

        return dynamodb_services(self.settings())

    def token(self, sub: str, role: str = "artist") -> str:
        from chalicelib.auth import issue_token

        return issue_token(self.env["VTS_JWT_SECRET"], sub=sub, role=role, now=datetime.now(UTC))


@pytest.fixture(scope="session")
def built_frontend() -> Path:
    if not (STATIC / "vts.js").exists() or not (STATIC / "dashboard.html").exists():
        pytest.fail(
            "the front end is not built (chalicelib/web/static/ is empty): run `make setup` "
            "or `npm ci && npm run build`"
        )
    return STATIC


@contextmanager
def running_api(
    moto_endpoint: str, log_name: str, extra_env: Callable[[str], dict[str, str]] | None = None
) -> Iterator[LocalApi]:
    """``chalice local`` on a free port, with its own fresh tables in the session's moto;
    ``extra_env`` adds settings, given the API's own origin."""
    from vtsops.stack import ChaliceLocalComponent

    suffix = uuid.uuid4().hex[:10]
    port = free_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "VTS_STAGE": "dev",
        "VTS_DYNAMODB_ENDPOINT": moto_endpoint,
        "VTS_EVENTS_TABLE": f"e2e-{suffix}-events",
        "VTS_AGGREGATES_TABLE": f"e2e-{suffix}-aggregates",
        "VTS_REGISTRY_TABLE": f"e2e-{suffix}-registry",
        "VTS_JWT_SECRET": "e2e-jwt-secret-0123456789abcdef-" + suffix,
        "VTS_VISITOR_KEY": "e2e-visitor-key-" + suffix,
        "VTS_DROP_FLUSH_S": "0",
        "VTS_GEOIP_DB": "",
        **(extra_env(f"http://127.0.0.1:{port}") if extra_env else {}),
    }
    api = LocalApi(url="", env=env)
    services = api.services()
    from chalicelib.storage.provision import ensure_tables

    ensure_tables(services.client, services.settings.table_names())
    component = ChaliceLocalComponent(port, env, OUTPUT / log_name)
    component.start()
    api.url = component.url
    try:
        yield api
    finally:
        component.stop()


@pytest.fixture(scope="session")
def local_api(moto_endpoint: str, built_frontend: Path) -> Iterator[LocalApi]:
    """``chalice local`` on a free port, with its own fresh tables in the session's moto."""
    with running_api(moto_endpoint, "e2e-api.log") as api:
        yield api


@dataclass
class StaticSite:
    """A static file server on its own port (its own origin), noting each path asked for."""

    origin: str
    root: Path
    requests: list[str] = field(default_factory=list)


@contextmanager
def static_site(root: Path) -> Iterator[StaticSite]:
    site = StaticSite(origin="", root=root)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            site.requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(root))
    )
    site.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static server on another port (another origin) for pages that embed vts.js."""
    with static_site(tmp_path_factory.mktemp("pages")) as site:
        yield site.origin, site.root


def art_site(root: Path) -> Any:
    """A static site holding demo pixel art at ``/art/{n}.png`` (n 1..20)."""
    from chalicelib.web.demo_art import picture

    (root / "art").mkdir()
    for n in range(1, 21):
        (root / "art" / f"{n}.png").write_bytes(picture(n))
    return static_site(root)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed (/usr/bin/chromium): run "
            "scripts/setup_system.sh as root (apt-get install -y chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    # HeadlessChrome is (rightly) dropped as a bot: look like the desktop Chrome a person uses.
    context = browser.new_context(user_agent=BROWSER_UA, viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    try:
        yield context
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

