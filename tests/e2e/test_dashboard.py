"""The artist dashboard in a real browser over the real API (``chalice local`` + moto):
a View sent by vts.js from another origin shows up after the stream pump; the first load
for an artist with 500 posts and a year of data makes a bounded number of API calls;
sign-in, empty and error states say what happened. Screenshots go to test-output/."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.sync_api import expect

from chalicelib.days import day_of
from chalicelib.model import PostRecord
from tests import statsdata
from tests.conftest import BROWSER_UA
from tests.e2e.conftest import DESKTOP, PHONE, LocalApi, screenshot, wait_until

pytestmark = pytest.mark.e2e

READY = "body[data-state='ready']"


def api_calls(page: Any) -> list[str]:
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url) if "/v1/" in request.url else None)
    return calls


def open_dashboard(context: Any, api: LocalApi, token: str | None, state: str = "ready") -> Any:
    page = context.new_page()
    page.goto(f"{api.url}/dashboard" + (f"#token={token}" if token else ""))
    page.wait_for_selector(f"body[data-state='{state}']")
    return page


def fits_phone(page: Any) -> None:
    """Wait for the charts to follow the narrow viewport, then nothing may overflow it."""
    width = PHONE["width"]
    # (wait_for_function would eval a string, which the dashboard's CSP rightly forbids)
    chart = "document.getElementById('daily-chart').getBoundingClientRect().width"
    wait_until(lambda: page.evaluate(chart) < width, "the chart to fit a phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def total(page: Any, name: str) -> str:
    return str(page.text_content(f"[data-total='{name}'] .value")).strip()


@pytest.fixture(scope="module")
def pump(local_api: LocalApi) -> Callable[[], None]:
    """Drain the events stream into the aggregates, as the local stack's pump does."""
    from vtsops.trigger_rollup import StreamPump

    from chalicelib.wiring import use

    services = local_api.services()
    stream = StreamPump(services.settings)

    def run() -> None:
        # The pump invokes app.aggregate in this process: over the local API's tables.
        with use(services):
            report = stream.pump_once()
        assert report.failures == 0, report

    return run


def test_a_view_sent_from_another_origin_shows_in_the_chart_and_the_totals(
    browser: Any,
    context: Any,
    local_api: LocalApi,
    page_server: tuple[str, Path],
    pump: Callable[[], None],
) -> None:
    artist, post = "artist-e2e", 201
    local_api.services().posts.register(post, artist)
    base, root = page_server
    (root / "artwork.html").write_text(
        "<!doctype html><title>An artwork</title><h1>An artwork</h1>"
        f"<script async src='{local_api.url}/v1/vts.js' data-post='{post}'></script>"
    )
    # A visitor on the artwork's site; its own context, since a fake clock is per context.
    visitor = browser.new_context(user_agent=BROWSER_UA, viewport=DESKTOP)
    page = visitor.new_page()
    start = datetime.now(UTC)
    page.clock.install(time=start)
    page.clock.pause_at(start + timedelta(seconds=10))  # time moves only by run_for
    page.goto(f"{base}/artwork.html", wait_until="load")
    page.clock.run_for(2_000)  # the page has been visible for 2 s
    today = day_of(datetime.now(UTC))
    wait_until(lambda: list(local_api.services().events.day_events(post, today)), "the View to be stored")
    visitor.close()

    pump()

    token = local_api.token(artist)
    dashboard = open_dashboard(context, local_api, token)
    assert total(dashboard, "views") == "1"
    assert total(dashboard, "impressions") == "0"
    views = dashboard.evaluate("window.vtsDashboard.chartData('daily-chart')")["Views"]
    assert len(views) == 30 and views[-1] == 1 and sum(views) == 1
    row = dashboard.locator(f"#daily-table tr[data-date='{today}'] td").first
    assert row.text_content() == "1"
    assert dashboard.locator(f"#posts tr[data-post='{post}']").count() == 1
    # The token left the address bar for this tab's session storage.
    assert "token" not in dashboard.url
    assert dashboard.evaluate("sessionStorage.getItem('vts.token')") == token
    screenshot(dashboard, "dashboard-desktop")
    dashboard.set_viewport_size(PHONE)
    fits_phone(dashboard)
    screenshot(dashboard, "dashboard-phone")


@pytest.fixture(scope="module")
def big_artist(local_api: LocalApi) -> str:
    """An artist with 500 posts and a year of looks, written as the aggregates they make."""
    artist = "artist-500"
    today = datetime.now(UTC).date()
    first = today - timedelta(days=364)
    posts = {10_000 + n: artist for n in range(500)}
    looks = statsdata.random_looks(random.Random(7), n=4_000, first=first, days=365, posts=posts)
    watermark = (today - timedelta(days=2)).isoformat()
    closed = {d.isoformat() for d in _days(first, today) if d.isoformat() <= watermark}
    items = [
        item for item in statsdata.aggregate_items(looks, closed) if item["pk"] == f"A#{artist}"
    ]
    items += statsdata.total_items(looks)
    services = local_api.services()
    services.aggregate_items.put_items(items)
    # Every post registered (one put each), and the artist's post count the registry keeps
    # added once rather than post by post: the same items, a third of the requests.
    registered_at = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    for post in sorted(posts):
        services.registry.put_post(PostRecord(post, artist, registered_at))
    services.aggregates.add_artist_posts(artist, len(posts))
    return artist


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_first_load_for_500_posts_and_a_year_makes_a_bounded_number_of_calls(
    context: Any, local_api: LocalApi, big_artist: str
) -> None:
    page = context.new_page()
    calls = api_calls(page)
    page.goto(f"{local_api.url}/dashboard#token={local_api.token(big_artist)}")
    page.wait_for_selector(READY)
    # This period's stats, the previous period's (for the changes), one page of posts.
    assert len(calls) == 3, calls
    assert sum("/stats" in url for url in calls) == 2
    assert sum("/posts?" in url for url in calls) == 1
    assert total(page, "total_posts") == "500"
    assert page.locator("#posts tbody tr").count() == 25

    page.select_option("#preset", "90")
    page.wait_for_selector(READY)
    assert len(calls) == 5  # a new period: its stats and the previous period's
    views = page.evaluate("window.vtsDashboard.chartData('daily-chart')")["Views"]
    assert len(views) == 90 and sum(views) > 0
    screenshot(page, "dashboard-500-posts")

    page.click("#more-posts")
    expect(page.locator("#posts tbody tr")).to_have_count(50)
    assert len(calls) == 6


def test_a_post_opens_its_own_panel_with_a_csv_download(
    context: Any, local_api: LocalApi, big_artist: str
) -> None:
    page = open_dashboard(context, local_api, local_api.token(big_artist))
    first = page.locator("#posts tbody tr").first
    post = first.get_attribute("data-post")
    assert first.locator("a.open").text_content() == f"Post {post}"  # no title registered
    assert first.locator("a.site-link").count() == 0  # nor a sqid: no link to the site
    first.locator("a.open").click()
    page.wait_for_selector("#post-body:not([hidden])")
    assert page.text_content("#post-title").startswith(f"Post {post}")
    with page.expect_download() as download:
        page.click("#post-csv")
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0].startswith("date,views,impressions,unique_visitors")
    assert len(text.splitlines()) == 31  # a header and 30 days


def test_without_a_token_it_asks_for_one_and_a_pasted_token_works(
    context: Any, local_api: LocalApi
) -> None:
    page = open_dashboard(context, local_api, None, state="signin")
    assert page.is_visible("#token")
    page.fill("#token", "not a token")
    page.click("#signin-form button")
    assert "does not look like" in str(page.text_content("#signin-reason"))

    forged = jwt.encode({"sub": "artist-x", "role": "artist"}, "another-secret-0123456789abcdef-0123", algorithm="HS256")
    page.fill("#token", forged)
    page.click("#signin-form button")
    expect(page.locator("#signin-reason")).to_contain_text("not valid")
    assert page.evaluate("sessionStorage.getItem('vts.token')") is None

    page.fill("#token", local_api.token("artist-nobody"))
    page.click("#signin-form button")
    page.wait_for_selector(READY)
    assert page.is_visible("#empty")
    assert total(page, "views") == "0"
    screenshot(page, "dashboard-empty")


def test_an_expired_token_is_refused_before_any_call(context: Any, local_api: LocalApi) -> None:
    past = datetime.now(UTC) - timedelta(days=2)
    from chalicelib.auth import issue_token

    token = issue_token(local_api.env["VTS_JWT_SECRET"], sub="artist-1", role="artist", now=past, ttl_s=60)
    page = context.new_page()
    calls = api_calls(page)
    page.goto(f"{local_api.url}/dashboard#token={token}")
    page.wait_for_selector("body[data-state='signin']")
    assert "expired" in str(page.text_content("#signin-reason"))
    assert calls == []


def test_a_busy_api_shows_an_error_with_a_retry_that_works(
    context: Any, local_api: LocalApi
) -> None:
    page = context.new_page()
    busy = {"error": {"code": "storage_unavailable", "message": "try later"}}

    def answer_busy(route: Any) -> None:
        route.fulfill(status=503, json=busy, headers={"Retry-After": "5"})

    page.route("**/v1/artists/*/stats*", answer_busy)
    page.goto(f"{local_api.url}/dashboard#token={local_api.token('artist-nobody')}")
    page.wait_for_selector("body[data-state='error']")
    assert "busy" in str(page.text_content("#status"))
    screenshot(page, "dashboard-error")
    page.unroute("**/v1/artists/*/stats*")
    page.click("#status button")
    page.wait_for_selector(READY)
    assert page.is_hidden("#status .spinner")


def test_the_layout_fits_a_phone(context: Any, local_api: LocalApi, big_artist: str) -> None:
    page = open_dashboard(context, local_api, local_api.token(big_artist))
    page.set_viewport_size(PHONE)
    fits_phone(page)
    screenshot(page, "dashboard-year-500-posts-phone")
    page.set_viewport_size(DESKTOP)
