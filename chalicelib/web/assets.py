"""Static front-end files built into ``chalicelib/web/static/`` (by ``npm run build``, run
from scripts/setup.sh), and the HTTP caching rules for each: what to send, for how long.

Chalice packages only app.py and chalicelib/, so the build lands here. Sources live in
``frontend/``; this module never builds anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chalice import Response  # type: ignore[attr-defined]

from chalicelib.errors import ConfigError, NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The tracker's URL is unversioned (pages embed it as is): cache it for an hour, then
# revalidate by ETag. Hashed dashboard assets never change under their name.
TRACKER_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
PAGE_CACHE = "no-cache"
HASHED_CACHE = "public, max-age=31536000, immutable"

_ASSET_NAME = re.compile(r"^dashboard-[A-Za-z0-9]{6,16}\.(js|css|svg)(\.LEGAL\.txt)?$")
_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The dashboard talks only to its own origin; nothing inline, nothing framed. Images come
# from itself (its icon) and from the configured art origins only (``VTS_ART_ORIGINS``:
# the artworks' ``art_url``); no ``data:`` or ``blob:`` images.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src {images}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# scheme://host[:port], as config.parse_origin accepts them: nothing that could end or add
# a directive (a space, ';', ',', a quote) gets into the policy.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


def dashboard_csp(art_origins: Iterable[str]) -> str:
    """The dashboard page's Content-Security-Policy for these art origins."""
    origins = [o.rstrip("/") for o in art_origins]
    bad = [o for o in origins if not _ORIGIN.match(o)]
    if bad:
        raise ConfigError(f"not an origin for the dashboard's img-src: {bad[0]!r}")
    return _CSP.format(images=" ".join(["'self'", *dict.fromkeys(origins)]))


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str
    cache_control: str


def tracker_script() -> Asset:
    """``GET /v1/vts.js``."""
    return _load("vts.js", TRACKER_CACHE)


def dashboard_page() -> Asset:
    """``GET /dashboard``: the page itself (always revalidated, it names the hashed assets)."""
    return _load("dashboard.html", PAGE_CACHE)


def dashboard_asset(name: str) -> Asset:
    """``GET /dashboard/assets/{name}``: a content-hashed script or stylesheet."""
    if not _ASSET_NAME.match(name):
        raise NotFound(f"no dashboard asset named {name!r}")
    return _load(f"assets/{name}", HASHED_CACHE, missing=NotFound(f"no dashboard asset named {name!r}"))


def not_modified(asset: Asset, if_none_match: str | None) -> bool:
    """True when the client's cached copy (``If-None-Match``) is this very asset."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return asset.etag in tags or "*" in tags


def respond(
    asset: Asset, if_none_match: str | None, headers: dict[str, str] | None = None
) -> Response:
    """The asset as an HTTP answer: 200 with the body, or 304 when the client has it."""
    out: dict[str, str | list[str]] = {
        "Content-Type": asset.content_type,
        "Cache-Control": asset.cache_control,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        **(headers or {}),
    }
    if not_modified(asset, if_none_match):
        return Response(body="", status_code=304, headers=out)
    return Response(body=asset.body, status_code=200, headers=out)


def _load(relative: str, cache_control: str, missing: Exception | None = None) -> Asset:
    path = STATIC_DIR / relative
    try:
        stat = path.stat()
    except FileNotFoundError:
        if missing is not None:
            raise missing from None
        raise ConfigError(
            f"the front end is not built ({relative} is missing): run `make setup` "
            "(or `npm ci && npm run build`)"
        ) from None
    return _read(str(path), stat.st_mtime_ns, stat.st_size, cache_control)


@lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int, size: int, cache_control: str) -> Asset:
    # Keyed by mtime and size too, so a rebuild under a running `chalice local` is seen.
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:20]
    return Asset(
        body=data.decode("utf-8"),
        content_type=_TYPES.get(Path(path).suffix, "application/octet-stream"),
        etag=f'"{digest}"',
        cache_control=cache_control,
    )
