"""vts.js in a real browser, on a page of another origin: when it counts a View, what it
sends, and what it never does (send under GPC, carry cookies on the fetch fallback).

Time is Playwright's fake clock, so "2 s visible" is exact and no test waits for it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.days import day_of
from tests.e2e.conftest import LocalApi, wait_until

pytestmark = pytest.mark.e2e
START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

# Records every beacon the page sends (and still sends it).
RECORD_BEACONS = """
window.__beacons = [];
const realBeacon = Navigator.prototype.sendBeacon;
Navigator.prototype.sendBeacon = function (url, body) {
  window.__beacons.push({ url: String(url), body: String(body) });
  return realBeacon.call(this, url, body);
};
"""

# Lets a test hide and show the page (headless Chromium is always "visible").
CONTROL_VISIBILITY = """
let visibility = "visible";
Object.defineProperty(Document.prototype, "visibilityState", { get: () => visibility, configurable: true });
Object.defineProperty(Document.prototype, "hidden", { get: () => visibility !== "visible", configurable: true });
window.__setVisibility = (state) => {
  visibility = state;
  document.dispatchEvent(new Event("visibilitychange"));
};
"""


def embed_page(pages: tuple[str, Path], api: LocalApi, name: str, attributes: str, before: str = "") -> str:
    base, root = pages
    (root / f"{name}.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>An artwork</title></head><body>"
        "<h1>An artwork</h1>"
        f"{before}"
        f"<script async src='{api.url}/v1/vts.js' {attributes}></script>"
        "</body></html>"
    )
    return f"{base}/{name}.html"


def open_page(context: Any, url: str, *scripts: str, page: Any = None) -> Any:
    """Open ``url`` with the page's clock paused: only ``clock.run_for`` moves time."""
    page = page or context.new_page()
    for script in scripts:
        page.add_init_script(script)
    page.clock.install(time=START)
    page.clock.pause_at(START + timedelta(seconds=10))  # ahead of the running fake clock
    page.goto(url, wait_until="load")  # an async script runs before the load event
    assert page.evaluate("typeof window.vts.view") == "function"
    return page


def beacons(page: Any) -> list[dict[str, Any]]:
    return [
        {"url": b["url"], "body": json.loads(b["body"])} for b in page.evaluate("window.__beacons")
    ]


def stored(api: LocalApi, post_id: int) -> list[Any]:
    """The post's events of today (UTC), straight from the events table."""
    return list(api.services().events.day_events(post_id, day_of(datetime.now(UTC))))


def register(api: LocalApi, post_id: int, owner: str = "artist-1") -> None:
    api.services().posts.register(post_id, owner)


def test_a_view_is_sent_once_after_two_visible_seconds_and_reaches_the_api(
    context: Any, local_api: LocalApi, page_server: tuple[str, Path]
) -> None:
    register(local_api, 101)
    url = embed_page(page_server, local_api, "view", "data-post='101'")
    assert not url.startswith(local_api.url)  # the page is on another origin
    page = open_page(context, url, RECORD_BEACONS)

    page.clock.run_for(1999)
    assert beacons(page) == []
    page.clock.run_for(1)
    assert beacons(page) == [
        {"url": f"{local_api.url}/v1/posts/101/views", "body": {"intent": "view", "source": "web"}}
    ]
    page.clock.run_for(60_000)
    assert len(beacons(page)) == 1

    events = wait_until(lambda: stored(local_api, 101), "the View to reach the events table")
    assert [(e.intent, e.source, e.device) for e in events] == [("view", "web", "desktop")]


def test_only_visible_time_counts_and_it_adds_up(
    context: Any, local_api: LocalApi, page_server: tuple[str, Path]
) -> None:
    url = embed_page(page_server, local_api, "hidden", "data-post='102'")
    page = open_page(context, url, RECORD_BEACONS, CONTROL_VISIBILITY)

    page.evaluate("__setVisibility('hidden')")
    page.clock.run_for(10_000)
    assert beacons(page) == []
    page.evaluate("__setVisibility('visible')")
    page.clock.run_for(1_000)  # 1 s visible so far
    page.evaluate("__setVisibility('hidden')")
    page.clock.run_for(30_000)
    assert beacons(page) == []
    page.evaluate("__setVisibility('visible')")
    page.clock.run_for(900)
    assert beacons(page) == []
    page.clock.run_for(200)
    assert [b["body"] for b in beacons(page)] == [{"intent": "view", "source": "web"}]


def test_global_privacy_control_means_nothing_is_sent(
    context: Any, local_api: LocalApi, page_server: tuple[str, Path]
) -> None:
    gpc = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });"
    url = embed_page(page_server, local_api, "gpc", "data-post='103'")
    sent: list[str] = []
    page = context.new_page()
    page.on("request", lambda request: sent.append(request.url) if "/views" in request.url else None)
    open_page(context, url, RECORD_BEACONS, gpc, page=page)
    page.clock.run_for(5_000)
    page.evaluate("window.vts.view(103); window.vts.impression(103)")
    page.clock.run_for(1_000)
    assert beacons(page) == []
    assert sent == []


def test_without_send_beacon_it_falls_back_to_a_keepalive_fetch_without_cookies(
    context: Any, local_api: LocalApi, page_server: tuple[str, Path]
) -> None:
    register(local_api, 104)
    # A cookie the API's host could see: the tracker must not carry it.
    context.add_cookies([{"name": "session", "value": "secret", "url": local_api.url}])
    no_beacon = "delete Navigator.prototype.sendBeacon;"
    url = embed_page(page_server, local_api, "fetch", "data-source='widget'")
    requests: list[Any] = []
    page = context.new_page()
    page.on("request", lambda request: requests.append(request) if "/views" in request.url else None)
    open_page(context, url, no_beacon, page=page)
    page.evaluate("window.vts.view(104)")

    events = wait_until(lambda: stored(local_api, 104), "the fetch fallback to reach the API")
    assert [(e.intent, e.source) for e in events] == [("view", "widget")]
    [request] = requests
    headers = request.all_headers()
    assert request.method == "POST"
    assert headers["content-type"].startswith("text/plain")
    assert "cookie" not in headers
    assert json.loads(request.post_data) == {"intent": "view", "source": "widget"}


def test_calls_queued_before_the_script_loaded_are_replayed_with_the_data_source(
    context: Any, local_api: LocalApi, page_server: tuple[str, Path]
) -> None:
    queue = "<script>window.vts = [['impression', 105], ['view', 106]];</script>"
    url = embed_page(page_server, local_api, "queue", "data-source='widget'", before=queue)
    page = open_page(context, url, RECORD_BEACONS)
    assert beacons(page) == [
        {"url": f"{local_api.url}/v1/posts/105/views", "body": {"intent": "impression", "source": "widget"}},
        {"url": f"{local_api.url}/v1/posts/106/views", "body": {"intent": "view", "source": "widget"}},
    ]
    # No data-post: nothing is counted on its own, however long the page stays.
    page.clock.run_for(10_000)
    assert len(beacons(page)) == 2
