"""The dashboard with Makapix-like demo data, in Chromium over the real API: each post's
title and crisp pixel art linking to its page on the site, the frames' figures (devices,
channels, play order), top posts' all-time figures never below the period's while today's
views are not closed yet; and the page's Content-Security-Policy, which lets images come
only from the page itself and the configured art origins."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit
from chalicelib.model import PostRecord
from tests.conftest import BROWSER_UA
from tests.e2e.conftest import LocalApi, StaticSite, art_site, running_api, wait_until

pytestmark = pytest.mark.e2e

READY = "body[data-state='ready']"
SITE = "https://makapix.club"  # VTS_SITE_URL's default


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    """An art origin the API lists in VTS_ART_ORIGINS (another origin than the page's)."""
    with art_site(tmp_path_factory.mktemp("art")) as site:
        yield site


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    """An origin serving the same pictures that no setting lists."""
    with art_site(tmp_path_factory.mktemp("foreign")) as site:
        yield site


@pytest.fixture(scope="module")
def demo_api(moto_endpoint: str, built_frontend: Path, art: StaticSite) -> Iterator[LocalApi]:
    """An API set up as ``make run`` sets its own (its own origin is an art origin, serving
    the demo's pixel art at /demo-art/), plus one more art origin."""

    def env(own: str) -> dict[str, str]:
        return {"VTS_ART_ORIGINS": f"{own},{art.origin}"}

    with running_api(moto_endpoint, "e2e-demo-api.log", env) as api:
        yield api


def drain(api: LocalApi) -> None:
    """Hand the events stream to ``aggregate``, as the local stack's pump does."""
    from vtsops.trigger_rollup import StreamPump

    from chalicelib.wiring import use

    services = api.services()
    with use(services):
        report = StreamPump(services.settings).pump_once()
    assert report.failures == 0, report


@pytest.fixture(scope="module")
def demo(demo_api: LocalApi) -> dict[str, Any]:
    """The demo data of ``make run`` (fewer looks), a few Views today of artist-1's most
    viewed post, the stream pumped and every finished Day closed: today stays open, as
    for the artist who noticed the top posts lagging."""
    from vtsops.seed import seed_demo

    from chalicelib.wiring import dynamodb_services

    now = datetime.now(UTC)
    seeding = dynamodb_services(demo_api.settings(), clock=FixedClock(now))
    outcome = seed_demo(
        seeding, looks=420, frame_reports=180, art_base=demo_api.url, now=now,
        rng=random.Random(3),
    )
    assert outcome["frame_views"] > 0 and outcome["frame_impressions"] > 0, outcome
    assert isinstance(seeding.clock, FixedClock)
    for n in range(6):  # post 3 (artist-1's most popular) seen today by six people
        seeding.clock.at = now - timedelta(seconds=30 - n)
        seeding.web_recorder.record(
            WebHit(
                post_id=3,
                request=RecordViewRequest(intent="view", source="web"),
                user_agent=BROWSER_UA,
                referer_header=None,
                source_ip=f"81.2.69.{10 + n}",
                viewer=None,
            )
        )
    drain(demo_api)
    services = demo_api.services()
    for _ in range(20):
        if services.day_closer.run(now).stopped is None:
            break
    return {"now": now}


def open_dashboard(context: Any, api: LocalApi, sub: str, fragment: str = "") -> Any:
    page = context.new_page()
    page.goto(f"{api.url}/dashboard#token={api.token(sub)}{fragment}")
    page.wait_for_selector(READY)
    return page


def count(text: str | None) -> int:
    return int(str(text).strip().replace(",", ""))


def loaded(page: Any, selector: str) -> dict[str, Any]:
    """An image's natural width and computed image-rendering, once it has loaded."""
    image = page.locator(selector)
    image.scroll_into_view_if_needed()
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"), selector)
    return dict(
        image.evaluate(
            "img => ({natural: img.naturalWidth, rendering: getComputedStyle(img).imageRendering,"
            " width: img.getBoundingClientRect().width, alt: img.alt})"
        )
    )


def test_the_demo_dashboard_shows_titles_crisp_art_links_and_frames(
    context: Any, demo_api: LocalApi, demo: dict[str, Any], tmp_path: Path
) -> None:
    from vtsops.seed import DEMO_TITLES, demo_sqid

    page = open_dashboard(context, demo_api, "artist-1")
    rows = page.locator("#posts tbody tr")
    posts = [int(str(rows.nth(n).get_attribute("data-post"))) for n in range(rows.count())]
    assert sorted(posts) == [3, 6, 9, 12]  # artist-1's demo posts
    for post in posts:
        row = page.locator(f"#posts tr[data-post='{post}']")
        title = DEMO_TITLES[post - 1]
        assert row.locator("a.open").text_content() == title
        image = loaded(page, f"#posts tr[data-post='{post}'] img.art")
        assert image["natural"] == 16 and image["width"] == 32
        assert image["rendering"] == "pixelated" and image["alt"] == title
        url = f"{SITE}/p/{demo_sqid(post)}"
        assert row.locator("a.art-link").get_attribute("href") == url
        assert row.locator("a.site-link").get_attribute("href") == url
        assert row.locator("a.art-link").get_attribute("rel") == "noopener noreferrer"

    # Frames reported: devices, sources, channels and play order are not empty.
    for section in ("devices", "sources"):
        player = page.locator(f"#{section} li[data-key='player']")
        assert "Frame (player)" in str(player.text_content())
        assert count(player.locator(".count").text_content()) > 0
    assert page.locator("#channels li:not(.none)").count() >= 3
    orders = page.locator("#play-order li:not(.none)")
    assert orders.count() >= 2
    assert sum(count(orders.nth(n).locator(".count").text_content()) for n in range(orders.count())) > 0

    shot = tmp_path / "dashboard-demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_top_posts_all_time_is_never_below_the_30_days_with_today_open(
    context: Any, demo_api: LocalApi, demo: dict[str, Any]
) -> None:
    page = open_dashboard(context, demo_api, "artist-1")
    rows = page.locator("#posts tbody tr")
    table = {
        int(str(rows.nth(n).get_attribute("data-post"))): count(
            rows.nth(n).locator("td.num").first.text_content()
        )
        for n in range(rows.count())
    }
    health = demo_api.services().aggregate_items.get_watermark()
    assert health is not None and health < demo["now"].strftime("%Y-%m-%d")  # today is open
    for post, all_time in table.items():
        page.locator(f"#posts tr[data-post='{post}'] a.open").click()
        page.wait_for_selector(f"#post-body[data-post='{post}']:not([hidden])")
        period = count(page.text_content("#post-totals [data-total='views'] .value"))
        assert all_time >= period, (post, all_time, period)
        # The same figure as the public counter (closed Days and the open ones after them).
        counter = page.request.get(f"{demo_api.url}/v1/posts/{post}/counter").json()
        assert all_time == counter["views"]
    # Post 3 had Views today, not yet closed: its all-time figure includes them.
    assert table[3] >= 6
    # The panel shows the post's art and its page on the site.
    page.evaluate("location.hash = ''")
    page.locator("#posts tr[data-post='3'] a.open").click()
    page.wait_for_selector("#post-body[data-post='3']:not([hidden])")
    assert loaded(page, "#post-art img.art")["width"] == 64
    assert str(page.get_attribute("#post-site", "href")).startswith(f"{SITE}/p/")


def test_the_policy_lets_images_come_only_from_the_page_and_the_art_origins(
    context: Any, demo_api: LocalApi, art: StaticSite, foreign: StaticSite
) -> None:
    answer = context.request.get(f"{demo_api.url}/dashboard")
    policy = dict(
        part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";")
    )
    assert policy["img-src"] == f"'self' {demo_api.url} {art.origin}"
    assert "data:" not in policy["img-src"] and "blob:" not in policy["img-src"]
    assert policy["default-src"] == "'none'"

    services = demo_api.services()
    at = datetime.now(UTC)
    # The registry's API takes https art only; these origins are plain http test servers.
    for post, title, origin in ((801, "Allowed", art.origin), (802, "Elsewhere", foreign.origin)):
        record = PostRecord(post, "artist-csp", at, title=title, art_url=f"{origin}/art/5.png")
        services.registry.put_post(record)

    page = context.new_page()
    page.add_init_script(
        "window.cspBlocked = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.cspBlocked.push([e.effectiveDirective, e.blockedURI]));"
    )
    page.goto(f"{demo_api.url}/dashboard#token={demo_api.token('artist-csp')}&post=801")
    page.wait_for_selector("#post-body[data-post='801']:not([hidden])")
    image = loaded(page, "#post-art img.art")
    assert image["natural"] == 16 and image["rendering"] == "pixelated"
    assert "/art/5.png" in art.requests

    page.evaluate("location.hash = 'post=802'")
    wait_until(lambda: page.evaluate("window.cspBlocked.length") > 0, "a CSP violation")
    blocked = page.evaluate("window.cspBlocked")
    assert ["img-src", f"{foreign.origin}/art/5.png"] in blocked, blocked
    # Not loaded: never asked for, and the panel shows an empty frame in its place.
    page.wait_for_selector("#post-art .art.none")
    assert page.locator("#post-art img").count() == 0
    assert foreign.requests == []
    assert page.text_content("#post-title").startswith("Elsewhere")


def test_demo_art_is_pixel_art_png_served_with_a_long_cache(
    context: Any, demo_api: LocalApi
) -> None:
    answer = context.request.get(f"{demo_api.url}/demo-art/7.png")
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/png"
    assert "immutable" in answer.headers["cache-control"]
    assert answer.body()[:8] == b"\x89PNG\r\n\x1a\n"
    assert context.request.get(f"{demo_api.url}/demo-art/x.png").status == 404
    assert context.request.get(f"{demo_api.url}/demo-art/0.png").status == 404
