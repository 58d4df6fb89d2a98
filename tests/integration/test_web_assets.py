"""The front-end routes through the real app (Chalice test client): the tracker script and
the dashboard's page and hashed assets, with their content types, CORS and caching."""

from __future__ import annotations

import gzip
import re
import shutil
from typing import Any

import pytest

from chalicelib.web.assets import STATIC_DIR

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def built() -> None:
    if not (STATIC_DIR / "vts.js").exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is missing, so the front end is not built")
        pytest.fail("the front end is not built: run `make setup` (npm ci && npm run build)")


def test_the_tracker_is_javascript_open_to_every_origin_and_cached(api: Any) -> None:
    answer = api.http.get("/v1/vts.js")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/javascript")
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age=3600" in answer.headers["Cache-Control"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert len(gzip.compress(answer.body, compresslevel=9)) < 1024
    # No cookies, no storage: the tracker keeps nothing on the visitor's device.
    assert b"cookie" not in answer.body.lower() and b"localStorage" not in answer.body


def test_the_tracker_answers_304_to_a_matching_etag(api: Any) -> None:
    first = api.http.get("/v1/vts.js")
    again = api.http.get("/v1/vts.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.body == b""
    other = api.http.get("/v1/vts.js", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_the_dashboard_page_is_html_with_a_strict_policy_and_always_revalidated(api: Any) -> None:
    answer = api.http.get("/dashboard")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert b"<a href='https://db-ip.com'>IP Geolocation by DB-IP</a>" in answer.body


def test_the_dashboard_assets_it_names_are_served_immutable(api: Any) -> None:
    page = api.http.get("/dashboard").body.decode()
    names = re.findall(r'dashboard/assets/(dashboard-[A-Za-z0-9]+\.(?:js|css))', page)
    assert sorted(name.rsplit(".", 1)[1] for name in names) == ["css", "js"]
    for name in names:
        answer = api.http.get(f"/dashboard/assets/{name}")
        assert answer.status_code == 200
        assert "immutable" in answer.headers["Cache-Control"]
        expected = "application/javascript" if name.endswith(".js") else "text/css"
        assert answer.headers["Content-Type"].startswith(expected)


@pytest.mark.parametrize(
    "name", ["dashboard-AAAAAAAA.js", "..%2Fvts.js", "vts.js", "dashboard-x.html", "dashboard.html"]
)
def test_unknown_or_odd_asset_names_are_a_json_404(api: Any, name: str) -> None:
    answer = api.http.get(f"/dashboard/assets/{name}")
    assert answer.status_code == 404
    assert answer.json_body["error"]["code"] == "not_found"


def test_the_bundled_libraries_licences_are_served_as_text(api: Any) -> None:
    [legal] = sorted(path.name for path in (STATIC_DIR / "assets").glob("*.LEGAL.txt"))
    answer = api.http.get(f"/dashboard/assets/{legal}")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert b"Chart.js" in answer.body and b"MIT" in answer.body
