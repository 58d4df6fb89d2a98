"""Bad input never yields a 5xx or an escaped exception (DESIGN §3, §8; issue 13): HTTP.

At least 10,000 generated requests at every route of ``app.routes``, through the real app
(Chalice's test client) over in-memory services: path parameters (unicode, huge and
negative numbers, empty, percent-encoded), query strings (every parameter a route reads,
plus junk), headers (tokens of every kind, user agents, referrers, content types, GPC,
forwarded-for junk) and bodies (JSON of wrong shapes, huge, nested, invalid UTF-8, text,
forms). Each example sends every drawn target with every drawn envelope (headers and
body), and, for every route, focused requests: one the route accepts, with one part made
bad, so the fuzz gets past the first check of each route. Every answer is below 500, a 4xx
JSON answer of the app has the error shape, and nothing is logged as an unexpected error.
Deterministic (``derandomize``), no database.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import random
import re
import time
import traceback
import uuid
import warnings
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import pytest
from chalice.local import RouteMatcher
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import app
from chalicelib.auth import issue_token
from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.wiring import Services, memory_services, use
from tests.conftest import BROWSER_UA
from tests.statsdata import aggregate_items, random_looks

SECRET = "fuzz-jwt-secret-0123456789abcdef-0123456789"
SETTINGS = Settings(
    jwt_secret=SECRET, visitor_key="fuzz-visitor-key-0123456789abcdef", drop_flush_s=60
)
AT = datetime(2026, 11, 24, 10, tzinfo=UTC)
POSTS = {1: "artist-1", 2: "artist-1", 3: "artist-2"}
PLAYER = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"
MIN_REQUESTS = 10_000
# Requests per example: every target with every envelope, and FOCUS[route] aimed at each route.
TARGETS, ENVELOPES = 2, 2
EXAMPLES = 420
ROUTES = sorted((path, method) for path, methods in app.routes.items() for method in methods)
ASSETS = sorted(p.name for p in (Path(__file__).parents[2] / "chalicelib/web/static/assets").glob("*"))
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")

# ---- values --------------------------------------------------------------------------------

# Strings known to upset parsers, picked in one draw; generated text (char by char, far
# slower to draw) explores the rest.
NAUGHTY = [
    "", " ", "\t", "\r\n", "\x00", "\x7f", "\u200b", "\u202e", "\ufeff", "\uffff", "💥", "👩🏽‍🎨",
    "é", "e\u0301", "ß", "İ", "ǅ", "²", "①", "٣", "１２", "Ⅻ", "∞", "NaN", "-0", "1e999", "0x10",
    "null", "None", "true", "[]", "{}", '{"a":1}', "%s%n%x", "{0}", "${x}", "<script>", "' OR 1=1",
    "../../etc/passwd", "..\\..\\", "%2e%2e%2f", "%00", "%ff", "%", "a\nb", "\\", '"', "'",
    "=", "&", ";", ",", "\ud7ff", "Z" * 64, "Z" * 65, "9" * 19, "9" * 5000, "x" * 3000,
]
# Text that API Gateway could hand over decoded: anything but the characters that would
# change the route or start the query in the test client's own URL.
raw_text = st.text(max_size=12).map(lambda s: s.replace("/", "").replace("?", "").replace("#", ""))
junk = st.one_of(
    st.sampled_from(NAUGHTY),
    st.text(max_size=12),
    st.text(min_size=1, max_size=4).map(lambda s: s * 150),  # long, drawn cheaply
)
# Digits beyond ASCII: int() reads "٣" and "１" (decimal digits), not "²" or "①", which
# str.isdigit() still calls digits.
_DIGITS = [chr(c) for c in range(128, 0x30000) if chr(c).isdigit()]
unicode_digits = st.one_of(
    st.text(st.sampled_from([c for c in _DIGITS if not c.isdecimal()]), min_size=1, max_size=3),
    st.text(st.sampled_from([c for c in _DIGITS if c.isdecimal()]), min_size=1, max_size=3),
)
numbers = st.one_of(
    st.integers(-(2**80), 2**80), st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, 10**30])
).map(str)
ODD = [
    "", " ", "0", "-1", "01", "+1", "1.0", "1e3", "0x1f", "²", "①", "٣", "１", " 1", "1 ",
    "%20", "%2F", "%00", "%zz", "..", ".", "null", "true", "[]", "{}", "\x00", "\n", "💥",
    "a" * 300,
]
post_ids = st.one_of(st.sampled_from(["1", "2", "3", "7", *ODD]), numbers, unicode_digits)
segments = st.one_of(
    post_ids,
    raw_text,
    raw_text.map(lambda s: quote(s, safe="")),
    st.sampled_from([PLAYER, PLAYER.upper(), PLAYER.replace("-", ""), "artist-1", "artist-2",
                     *ASSETS, "../dashboard.html", "%2e%2e%2fdashboard.html"]),
    st.uuids().map(str),
)
# A path parameter is mostly a value its route can go on with, else anything.
PARAM_VALUES: dict[str, st.SearchStrategy[str]] = {
    "post_id": st.sampled_from(["1", "2", "3"]),
    "artist_id": st.sampled_from(["artist-1", "artist-2"]),
    "player_key": st.sampled_from([PLAYER, PLAYER.upper(), str(uuid.UUID(int=7))]),
    "name": st.sampled_from(ASSETS),
}

ZONES = sorted(zoneinfo.available_timezones())
# Every folder of the zone database ("Europe", "America/Argentina"): a path, not a zone.
ZONE_FOLDERS = sorted({z.rsplit("/", n)[0] for z in ZONES for n in (1, 2) if "/" in z})
zones = st.one_of(
    st.sampled_from([  # names that look like zones, or like paths in the zone database
        *ZONE_FOLDERS, "", "UTC", "Etc/GMT+12", "Etc/GMT-14", "right/UTC", "posix/UTC",
        "../etc/passwd", "Europe/../UTC", "/etc/localtime", "zone.tab", "zone1970.tab",
        "tzdata.zi", "iso3166.tab", "leapseconds", "__init__.py", "__pycache__", "posixrules",
        "Factory", "localtime", "EST5EDT", "a" * 64, "a" * 65, "Europe/Berlin\x00",
        "Europe/Berlín", "europe/berlin",
    ]),
    st.sampled_from(ZONES),
    junk,
)
_DATES = [
    "2026-11-01", "2026-11-24", "2026-11-25", "2000-01-01", "1999-12-31", "9998-12-31",
    "9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "2026-11-1", "２０２６-11-01",
    "2026-11-24T00:00:00Z", "20261124", "2026-W48-2", "-2026-11-24", "2025-10-20",
]
dates = st.one_of(
    st.dates().map(date.isoformat),
    st.sampled_from(_DATES),
    junk,
)
_LIMITS = ["1", "20", "100", "101", "0", "-1", "²", "①", "٣", "１", "1.5", "1e2", " 5", "5 ",
           "+5", "0x10", "99999999999999999999999", "9" * 5000, "", "5\n"]
limits = st.one_of(
    st.sampled_from(_LIMITS),
    numbers,
    unicode_digits,
    junk,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_CURSOR_V = ["1e999", "-1e999", "Infinity", "-Infinity", "2E400", "NaN", "1e308",
             "1" + "0" * 400, "-1", "0", "1.5", "true", "null", '"5"', "[]", "{}",
             "9223372036854775808"]


def forged_cursors(artist: str | None = None) -> st.SearchStrategy[str]:
    """Cursors of our shape with forged values (for the listing of ``artist``, mostly)."""
    listings = ["A#artist-1", "A#artist-2", "artist-1", ""]
    return st.builds(
        lambda g, v, pk, sk: _b64(json.dumps({"g": g, "pk": pk, "sk": sk}).replace(
            "{", '{"v":' + v + ",", 1).encode()),
        st.just(f"A#{artist}") if artist else st.sampled_from(listings),
        st.sampled_from(_CURSOR_V),
        st.sampled_from(["P#1", "P#999", "", "P#x", "é", "P#1" * 400]),
        st.sampled_from(["RANK", "", "TOTAL", "\x00"]),
    )


cursors = st.one_of(
    forged_cursors(),
    st.binary(max_size=24).map(_b64),
    st.sampled_from(["", "!!!!", "a", "=", "-_-_", "x" * 1025, _b64(b"[1,2]"), _b64(b'"s"'),
                     _b64(b"\xff\xfe"), _b64(b'{"g":"A#artist-1"}')]),
    junk,
)
channels = st.one_of(
    st.sampled_from(["all", "reactions", "hashtag", "named", "", "ALL", "a" * 33, "é", "a b"]),
    junk,
)
urls = st.one_of(
    st.sampled_from([
        "https://www.example.com/page", "http://reddit.com/r/pixelart", "https://xn--e1a.xn--p1ai/",
        "https://[::1]:99999/", "http://", "https://", "ftp://x", "javascript:alert(1)",
        "//example.com", "example.com", "https://" + "a" * 3000 + ".com", "https://ex ample.com",
        "https://例え.jp/ページ", "https://user:pass@host:0/", "https://host:abc/", "https://[x]/",
    ]),
    junk,
)
QUERY_VALUES: dict[str, st.SearchStrategy[str]] = {
    "from": dates,
    "to": dates,
    "tz": zones,
    "limit": limits,
    "cursor": cursors,
    "sort": st.one_of(st.sampled_from(["views", "", "VIEWS", "date", "-views"]), junk),
    "intent": st.one_of(st.sampled_from(["view", "impression", "", "VIEW", "channel"]), junk),
    "source": st.one_of(st.sampled_from(["web", "widget", "api", "player", ""]), junk),
    "channel": channels,
    "channel_context": st.one_of(st.text(max_size=16), st.just("c" * 100), st.just("c" * 101)),
    "referrer": urls,
    "playlist_id": st.one_of(st.sampled_from(["", "p1", "p" * 65]), junk),
}
query_pairs = st.lists(
    st.one_of(
        st.sampled_from(sorted(QUERY_VALUES)).flatmap(
            lambda name: st.tuples(st.just(name), QUERY_VALUES[name])
        ),
        st.tuples(junk, junk),
    ),
    max_size=3,
)


QUERY_HEAVY = ("/v1/artists/{artist_id}/posts", "/v1/posts/{post_id}/pixel.gif")
ROUTE_PARAMS = {  # the parameters each route reads (app.py, chalicelib/stats/query.py)
    "/v1/posts/{post_id}/pixel.gif": ("intent", "source", "channel", "channel_context",
                                      "referrer", "playlist_id"),
    "/v1/posts/{post_id}/stats": ("from", "to", "tz"),
    "/v1/posts/{post_id}/stats.csv": ("from", "to", "tz"),
    "/v1/artists/{artist_id}/stats": ("from", "to", "tz"),
    "/v1/site/stats": ("from", "to", "tz"),
    "/v1/artists/{artist_id}/posts": ("sort", "limit", "cursor"),
}


def _value(name: str, artist: str | None) -> st.SearchStrategy[str]:
    if name == "cursor" and artist:
        return st.one_of(forged_cursors(artist), forged_cursors(artist), cursors)
    return QUERY_VALUES[name]


@st.composite
def query_strings(draw: st.DrawFn, names: tuple[str, ...] = (), artist: str | None = None) -> str:
    """Half the time only parameters the route reads (each once), else any and junk."""
    own: bool = draw(st.booleans())
    if names and own:
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        pairs = [(name, draw(_value(name, artist))) for name in chosen]
    else:
        pairs = draw(query_pairs)
    style = draw(st.sampled_from(["quote", "quote", "urlencode", "raw", "junk"]))
    if style == "junk":
        return draw(st.sampled_from(["&&", "=", "a", "a=%ff%fe", "%zz=1", "limit", "tz=%00",
                                     "cursor=%E2%91%A0&&limit=%C2%B2", "from&to", ";;;"]))
    if style == "urlencode":
        return urlencode(pairs, errors="surrogatepass")
    if style == "raw":
        return "&".join(f"{k}={v}" for k, v in pairs if not {"#", "\n"} & set(k + v))
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def _token(payload: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def authorizations(now: datetime) -> list[str]:
    """Authorization headers: valid tokens of every role, and every way of being wrong."""
    hour, day = timedelta(hours=1), timedelta(days=1)
    valid = [
        issue_token(SECRET, sub=sub, role=role, now=now)
        for sub, role in [("root", "admin"), ("sync", "service"), ("artist-1", "artist"),
                          ("artist-2", "artist"), ("someone", "viewer")]
    ]
    odd_claims: list[dict[str, Any]] = [
        {"sub": "artist-1", "roles": ["owner"], "type": "access", "iat": now, "exp": now + hour},
        {"sub": "artist-1", "roles": ["moderator"], "type": "access", "iat": now,
         "exp": now + hour},
        {"sub": "artist-1", "roles": ["user"], "type": "refresh", "iat": now, "exp": now + hour},
        {"sub": "artist-1", "roles": "owner", "iat": now, "exp": now + hour},
        {"sub": "root", "role": "admin"},  # no exp
        {"sub": "root", "role": "admin", "iat": now, "exp": now + 400 * day},
        {"sub": "root", "role": "admin", "iat": now + day, "exp": now + 2 * day},
        {"sub": "root", "role": "admin", "nbf": now + day, "exp": now + 2 * day},
        {"role": "admin", "exp": now + hour},
        {"sub": 5, "role": "admin", "exp": now + hour},
        {"sub": "", "role": "admin", "exp": now + hour},
        {"sub": "root", "role": 5, "exp": now + hour},
        {"sub": "root", "role": ["admin"], "exp": now + hour},
        {"sub": "root", "role": "superuser", "exp": now + hour},
        {"sub": "x" * 5000, "role": "artist", "exp": now + hour},
        {"sub": "root", "role": "admin", "exp": "tomorrow"},
        {"sub": "root", "role": "admin", "exp": 10**30},
        {"sub": "root", "role": "admin", "iat": "now", "exp": now + hour},
        {"sub": "root", "role": "admin", "iss": "x", "aud": "y", "exp": now + hour},
    ]
    with warnings.catch_warnings():  # PyJWT finds the key short for HS512: that is the point
        warnings.simplefilter("ignore")
        hs512 = _token({"sub": "root", "role": "admin", "exp": now + hour}, SECRET, "HS512")
    wrong = [
        issue_token(SECRET, sub="root", role="admin", now=now - 2 * day, ttl_s=60),  # expired
        issue_token("another-secret-0123456789abcdef-xyz", sub="root", role="admin", now=now),
        hs512,
        jwt.encode({"sub": "root", "role": "admin", "exp": now + hour}, None,  # type: ignore[arg-type]
                   algorithm="none"),
        _b64(b'{"alg":"HS256"}') + "." + _b64(b"[1]") + ".sig",
        _b64(b'{"alg":"HS256"}') + "." + _b64(b"\xff") + ".sig",
        "a.b.c", "a.b", "....", "eyJ.eyJ.x",
    ]
    tokens = valid + [_token(c) for c in odd_claims] + wrong
    headers = [f"Bearer {t}" for t in tokens]
    headers += [f"bearer  {valid[0]} ", f"BEARER {valid[1]}", f"Basic {valid[0]}", valid[0]]
    headers += ["", " ", "Bearer", "Bearer ", "Bearer   ", "Basic dXNlcjpwYXNz", "Token x",
                "Bearer Bearer x", "Bearer \x00", "Bearer ✓.✓.✓"]
    return headers


AUTHORIZATIONS = authorizations(datetime.now(UTC))
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
    "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "image/gif", "application/octet-stream", "text/html",
    "*/*", "", "json", "application/json; charset=latin-1", "application/vnd.api+json",
]
USER_AGENTS = [
    BROWSER_UA, "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5.0",
    "python-requests/2.32", "Makapix-Player/1.0 p3a", "Mozilla/5.0 (iPad; CPU OS 17_0)",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36", "", "-", "x" * 5000,
]
HEADERS: dict[str, st.SearchStrategy[str]] = {
    "User-Agent": st.one_of(st.sampled_from(USER_AGENTS), junk),
    "Referer": urls,
    "Content-Type": st.one_of(st.sampled_from(CONTENT_TYPES), junk),
    "Accept": st.one_of(st.sampled_from(["*/*", "image/gif", "text/html", "", "image/*"]),
                        junk),
    "Sec-GPC": st.one_of(st.sampled_from(["1", "0", "", "true", "１"]), junk),
    "X-Forwarded-For": st.one_of(
        st.sampled_from(["203.0.113.9", "203.0.113.9, 10.0.0.1", "2001:db8::1", "::1",
                         "999.1.1.1", "", ",", "unknown", "1.1.1.1" * 100]),
        junk,
    ),
    "CloudFront-Viewer-Address": st.sampled_from(["203.0.113.9:443", "[2001:db8::1]:1", "x"]),
    "If-None-Match": st.one_of(st.sampled_from(['"x"', "*", "", 'W/"1"']), junk),
    "Origin": urls,
    "Cookie": junk,
}
header_sets = st.fixed_dictionaries({}, optional=HEADERS)
extra_headers: st.SearchStrategy[dict[str, str]] = st.one_of(st.just({}), st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12), junk, max_size=1
))

# ---- bodies --------------------------------------------------------------------------------

# A JSON body may escape half a surrogate pair ("\ud800"): json.loads gives a str that no
# UTF-8 encoder takes. (Headers and paths cannot carry one past API Gateway.)
LONE_SURROGATES = ["\ud800", "a\udfffb", "\udbff\udbff"]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.sampled_from(NAUGHTY + LONE_SURROGATES), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAUGHTY), inner, max_size=3)
    ),
    max_leaves=6,
)
field_values = st.one_of(json_values, st.sampled_from(
    ["view", "impression", "web", "widget", "api", "player", "all", "BR", "br", "BRA",
     "Europe/Berlin", "Europe", "Etc", "artist-1", "", " ", "https://example.com/a.png",
     "http://example.com/a.png", "x" * 200]
))
RECORD_FIELDS = ["intent", "source", "channel", "channel_context", "referrer", "playlist_id"]
REGISTRY_FIELDS = ["owner_id", "country", "timezone", "sqid", "title", "art_url", "visible",
                   "deleted", "name", "revoked", "key", "id"]
objects = st.dictionaries(
    st.sampled_from(RECORD_FIELDS + REGISTRY_FIELDS + ["", "x", "__proto__", "owner_id "]),
    field_values,
    max_size=5,
)


# Deep enough to overflow json's recursion even under Hypothesis, which raises the limit.
DEPTHS = st.sampled_from([10, 1000, 5000, 20_000, 100_000])


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.just(b""),
    st.sampled_from([b" ", b"{}", b"[]", b"null", b"0", b'""', b"{", b"}", b'{"a":}',
                     b'{"owner_id": NaN}', b'{"intent": Infinity}', b"1e999", b"-1e999",
                     b"\xef\xbb\xbf{}", '{"owner_id": "a"}'.encode("utf-16"),
                     b'{"owner_id": "\xff\xfe"}', b"\xff\xfe\xfd", b'{"owner_id":"a","owner_id":5}',
                     b"owner_id=artist-1&intent=view", b"intent=impression",
                     b'{"owner_id":"artist-1","country":"BR","timezone":"America/Sao_Paulo"}',
                     b'{"intent":"impression","source":"widget","channel":"all"}',
                     b'{"owner_id":"' + b"9" * 5000 + b'"}', b"9" * 5000]),
    objects.map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=64),
    st.text(max_size=24).map(str.encode),
    st.integers(2049, 70_000).map(lambda n: b'{"owner_id":"' + b"a" * n + b'"}'),
    DEPTHS.map(lambda n: b"[" * n + b"]" * n),  # json.loads: RecursionError, not ValueError
    DEPTHS.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    DEPTHS.map(lambda n: b"[" * n),
    objects.map(
        lambda d: urlencode({str(k): str(v) for k, v in d.items()}, errors="surrogatepass").encode()
    ),
)

# ---- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a request goes: a method and a path with its query."""

    method: str
    path: str
    route: tuple[str, str] | None  # the (template, method) of app.routes it exercises
    routed: bool  # a path of app.routes (else API Gateway answers it, not the app)


@dataclass(frozen=True)
class Envelope:
    """What a request carries: headers and a body."""

    headers: dict[str, str]
    body: bytes
    # 0: the drawn Content-Type, on any method (Chalice answers a typed GET 415); else, on a
    # body method, a type the route accepts (one of its content_types), so the body is read.
    typing: int


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    routed: bool


_PARAM = re.compile(r"\{[^}]+\}")
BODY_METHODS = ("POST", "PUT", "PATCH")
_MATCHER = RouteMatcher(list(app.routes))


@st.composite
def targets(draw: st.DrawFn) -> Target:
    template, method = draw(st.sampled_from(ROUTES))
    route: tuple[str, str] | None = (template, method)
    kind = draw(st.integers(0, 19))
    if kind == 0:  # a method the route may not have: 405. (No OPTIONS: API Gateway answers
        # the CORS preflight itself, and Chalice's test client cannot read its empty body.)
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]))
        route = (template, method) if (template, method) in ROUTES else None
    params: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(0)[1:-1]
        own = PARAM_VALUES.get(name, segments)
        params[name] = draw(st.one_of(own, own, own, segments))
        return params[name]

    path = _PARAM.sub(fill, template)
    if kind == 1:  # no route at all
        path = draw(st.sampled_from(["/", "/v1", "/v1/", "/v2/health", "/v1/posts",
                                     "/dashboard/assets", "/V1/HEALTH"]))
    elif kind == 2:
        path += "/"
    names = ROUTE_PARAMS.get(template, ())
    query = draw(st.one_of(st.just(""), query_strings(names, params.get("artist_id"))))
    if query:
        path += "?" + query
    try:
        _MATCHER.match_route(path)
    except ValueError:
        return Target(method, path, None, False)
    return Target(method, path, route, True)


authorization = st.one_of(
    st.none(),
    st.sampled_from(AUTHORIZATIONS[:5]),  # valid, thrice as likely: reach past the token check
    st.sampled_from(AUTHORIZATIONS[:5]),
    st.sampled_from(AUTHORIZATIONS[:5]),
    st.sampled_from(AUTHORIZATIONS),
    junk,
    junk.map(lambda s: "Bearer " + s),
)


def _envelope(
    extra: dict[str, str], headers: dict[str, str], auth: str | None, body: bytes, typed: int
) -> Envelope:
    headers = {**extra, **headers}
    if auth is not None:
        headers["Authorization"] = auth
    return Envelope(headers, body, typed)


envelopes = st.builds(
    _envelope, extra_headers, header_sets, authorization, bodies, st.integers(0, 5)
)


def request_of(target: Target, envelope: Envelope) -> Request:
    headers = dict(envelope.headers)
    if envelope.typing and target.method not in BODY_METHODS:
        headers.pop("Content-Type", None)
    elif envelope.typing and target.route is not None:
        accepted = app.routes[target.route[0]][target.route[1]].content_types
        headers["Content-Type"] = accepted[envelope.typing % len(accepted)]
    if not target.routed and not headers.get("Authorization", "").isascii():
        # Chalice's local gateway (not the app, not API Gateway) cannot echo such a header.
        headers.pop("Authorization")
    return Request(target.method, target.path, headers, envelope.body, target.routed)


# Focused requests: one the route accepts (right token, parameters, type and body), with
# exactly one part made bad, so the fuzz reaches past the first check of every route.
GOOD_PARAMS = {"post_id": "1", "artist_id": "artist-1", "player_key": PLAYER, "name": ASSETS[0]}
GOOD_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/posts/{post_id}/views", "POST"): {"intent": "view", "source": "web"},
    ("/v1/posts/{post_id}", "PUT"): {"owner_id": "artist-1"},
    ("/v1/players/{player_key}", "PUT"): {"owner_id": "artist-2", "country": "BR"},
}


def scalar_or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, json_scalars, json_values)


BODY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **{name: scalar_or(values) for name, values in QUERY_VALUES.items()},
    "owner_id": scalar_or(st.one_of(st.sampled_from(["artist-1", " ", "x" * 129]), junk)),
    "country": scalar_or(st.one_of(st.sampled_from(["BR", "br", "BRA", "ÄÖ", "1a"]), junk)),
    "timezone": scalar_or(zones),
    "art_url": scalar_or(urls),
    **{name: scalar_or(junk) for name in ("sqid", "title", "name", "key", "id")},
    **{name: scalar_or(st.sampled_from(["true", "1"])) for name in ("visible", "deleted",
                                                                    "revoked")},
}
GOOD_QUERY = {
    "from": "2026-11-01", "to": "2026-11-24", "tz": "Europe/Berlin", "sort": "views",
    "limit": "2", "cursor": "", "intent": "impression", "source": "widget", "channel": "all",
    "channel_context": "k3Jx9", "referrer": "https://example.com/", "playlist_id": "p1",
}
GOOD_FIELDS = {
    **GOOD_QUERY, "owner_id": "artist-2", "country": "PT", "timezone": "Europe/Lisbon",
    "sqid": "k3Jx9", "title": "Dawn", "art_url": "https://example.com/a.png", "visible": True,
    "deleted": False, "name": "hall", "revoked": False,
}
ROUTE_FIELDS = {
    ("/v1/posts/{post_id}/views", "POST"): RECORD_FIELDS,
    ("/v1/posts/{post_id}", "PUT"): ["owner_id", "sqid", "title", "art_url", "visible",
                                     "deleted"],
    ("/v1/players/{player_key}", "PUT"): ["owner_id", "country", "timezone", "name",
                                          "revoked"],
}
# Focused requests per route and example: two where a body or a listing has more to get
# wrong (the stats routes parse three parameters, and cost the most to answer).
FOCUS = {route: 2 if route in ROUTE_FIELDS or route[0] in QUERY_HEAVY else 1 for route in ROUTES}
HEADER_VALUES: dict[str, st.SearchStrategy[str | None]] = {
    **HEADERS, "Authorization": authorization
}


Aimed = tuple[tuple[str, str], Request]  # a request and the route it aims at
ZONE_POOL = [*ZONE_FOLDERS, *ZONES[::25], "", "..", "Etc", "__pycache__", "zone.tab", "a" * 65]
POOLS: dict[str, list[Any]] = {  # per parameter or field: values worth trying every run
    "limit": [*_LIMITS, *[c for c in _DIGITS if not c.isdecimal()][::8], "٣", "１０"],
    "cursor": [
        _b64(('{"g":"A#artist-1","v":' + v + ',"pk":"' + pk + '","sk":"RANK"}').encode())
        for v in _CURSOR_V for pk in ("P#1", "", "P#x")
    ],
    "tz": ZONE_POOL,
    "timezone": ZONE_POOL,
    "from": _DATES,
    "to": _DATES,
    "country": ["BR", "br", "", "BRA", "ÄÖ", "1a", None, 1, [], {}, *LONE_SURROGATES],
    "owner_id": ["artist-2", "", " ", "x" * 128, "x" * 129, None, 5, [], {}, *LONE_SURROGATES],
}


@st.composite
def focused(draw: st.DrawFn, route: tuple[str, str]) -> Aimed:
    template, method = route
    names = re.findall(r"\{([^}]+)\}", template)
    params = {name: GOOD_PARAMS.get(name, "1") for name in names}
    query: dict[str, str] = {}
    body: dict[str, Any] | bytes = dict(GOOD_BODIES.get(route, {}))
    headers = {"Authorization": AUTHORIZATIONS[0], "User-Agent": BROWSER_UA}
    if method in BODY_METHODS:
        headers["Content-Type"] = draw(st.sampled_from(app.routes[template][method].content_types))
    part = draw(st.sampled_from(["param", "query", "query", "field", "field", "body", "header"]))
    # Half the values come from the pools of known-nasty ones, picked with a Random that
    # Hypothesis seeds: its own choices repeat themselves too much to reach each of them.
    rnd = draw(st.randoms(use_true_random=True))

    def pick(name: str, strategy: st.SearchStrategy[Any]) -> Any:
        return rnd.choice(POOLS.get(name, NAUGHTY)) if rnd.random() < 0.5 else draw(strategy)

    if part == "param" and names:
        name = draw(st.sampled_from(names))
        params[name] = draw(st.one_of(segments, raw_text.map(lambda s: quote(s, safe=""))))
    elif part == "query" or (part == "param" and not names):
        # One bad value; any other parameter given is a good one, so it cannot mask the bad.
        readable = ROUTE_PARAMS.get(template) or tuple(sorted(QUERY_VALUES))
        bad, *others = draw(st.lists(st.sampled_from(readable), min_size=1, max_size=3,
                                     unique=True))
        query.update({name: GOOD_QUERY[name] for name in others})
        query[bad] = pick(bad, _value(bad, params.get("artist_id")))
    elif part == "field" and route in ROUTE_FIELDS:
        assert isinstance(body, dict)
        fields = ROUTE_FIELDS[route]
        bad, *others = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True))
        body.update({name: GOOD_FIELDS[name] for name in others})
        body[bad] = pick(bad, BODY_FIELDS[bad])
    elif part in ("field", "body"):
        body = draw(bodies)
    else:
        name = draw(st.sampled_from(sorted(HEADER_VALUES)))
        value = draw(HEADER_VALUES[name])
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    path = _PARAM.sub(lambda match: params[match.group(0)[1:-1]], template)
    if query:
        path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body else b"")
    routed = True
    try:
        _MATCHER.match_route(path)
    except ValueError:
        routed = False
        if not headers.get("Authorization", "").isascii():
            headers.pop("Authorization")
    return route, Request(method, path, headers, raw, routed)


# ---- the harness ---------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    escaped: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    routes: Counter[tuple[str, str]] = field(default_factory=Counter)
    logged: list[str] = field(default_factory=list)


class ErrorLog(logging.Handler):
    """Every ERROR record (``answers_errors`` logs an unexpected exception as one)."""

    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.ERROR)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        where = ""
        if error is not None and error.__traceback__ is not None:
            frame = traceback.extract_tb(error.__traceback__)[-1]
            where = f" ({type(error).__name__}: {error} at {frame.filename}:{frame.lineno})"
        self.tally.logged.append(f"{record.name}: {record.getMessage()}{where}")


def seeded_services() -> Services:
    services = memory_services(SETTINGS, FixedClock(AT))
    for post_id, owner in POSTS.items():
        services.posts.register(post_id, owner)
    services.players.register(PLAYER, "artist-2", "BR", "America/Sao_Paulo")
    looks = random_looks(random.Random(13), n=400, first=date(2026, 11, 1),
                         days=24, posts=POSTS)
    closed = {look.day for look in looks if look.day < "2026-11-20"}
    services.aggregate_items.put_items(aggregate_items(looks, closed))
    return services


def header_value(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def check(request: Request, status: int, headers: dict[str, str], body: bytes) -> None:
    where = f"{request.method} {request.path[:300]!r} -> {status}: {body[:300]!r}"
    assert status < 500, where
    json_answer = "json" in header_value(headers, "content-type") or body.startswith(b"{")
    gateway = bool(header_value(headers, "x-amzn-errortype"))  # API Gateway's own answer
    if 400 <= status < 500 and json_answer and request.routed and not gateway:
        answer = json.loads(body)
        assert set(answer) == {"error"}, where
        assert set(answer["error"]) == {"code", "message"}, where
        assert _SNAKE.match(answer["error"]["code"]), where
        assert isinstance(answer["error"]["message"], str), where


@pytest.fixture
def error_log() -> Iterator[Tally]:
    tally = Tally()
    handler = ErrorLog(tally)
    loggers = [logging.getLogger(), app.log]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield tally
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.mark.slow
def test_generated_requests_never_answer_5xx(error_log: Tally) -> None:
    tally = error_log
    services = seeded_services()
    clock = services.clock
    assert isinstance(clock, FixedClock)

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        aims=st.lists(targets(), min_size=TARGETS, max_size=TARGETS),
        loads=st.lists(envelopes, min_size=ENVELOPES, max_size=ENVELOPES),
        aimed=st.tuples(*(focused(route) for route in ROUTES for _ in range(FOCUS[route]))),
    )
    def run(aims: list[Target], loads: list[Envelope], aimed: tuple[Aimed, ...]) -> None:
        # Every target with every envelope (several requests for each value drawn), then the
        # focused requests of every route.
        chaos = [
            (target.route, request_of(target, envelope))
            for target, envelope in itertools.product(aims, loads)
        ]
        for route, request in chaos + list(aimed):
            clock.advance(1.5)
            logged = len(tally.logged)
            try:
                response = client.http.request(
                    request.method, request.path, headers=request.headers, body=request.body
                )
            except Exception:
                tally.escaped += 1
                raise
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            if route is not None and request.routed:
                tally.routes[route] += 1
            if response.status_code >= 500:
                tally.server_errors += 1
            assert len(tally.logged) == logged, (request, tally.logged[logged:][:3])
            check(request, response.status_code, dict(response.headers), response.body or b"")

    started = time.perf_counter()
    with use(services), Client(app, stage_name="dev") as client:
        run()
    elapsed = time.perf_counter() - started
    print(
        f"\nHTTP fuzz: {tally.requests} requests over {len(ROUTES)} routes in {elapsed:.1f} s; "
        f"5xx: {tally.server_errors}, escaped exceptions: {tally.escaped}, "
        f"statuses: {dict(sorted(tally.statuses.items()))}"
    )
    assert tally.requests >= MIN_REQUESTS
    assert tally.server_errors == 0 and tally.escaped == 0 and not tally.logged
    hits = Counter(dict.fromkeys(ROUTES, 0))
    hits.update(tally.routes)
    assert min(hits.values()) >= 100, hits


def _forged_cursor(v: str) -> str:
    return _b64(('{"g":"A#artist-1","v":' + v + ',"pk":"P#1","sk":"RANK"}').encode())


# The causes found by hand before this test existed (issue 13), kept as plain regressions.
KNOWN = [
    ("GET", "/v1/artists/artist-1/posts?limit=%C2%B2", b""),
    ("GET", "/v1/artists/artist-1/posts?limit=%E2%91%A0", b""),
    ("GET", "/v1/artists/artist-1/posts?limit=" + "9" * 5000, b""),
    ("GET", "/v1/artists/artist-1/posts?cursor=" + _forged_cursor("1e999"), b""),
    ("GET", "/v1/artists/artist-1/posts?cursor=" + _forged_cursor("-1e999"), b""),
    ("GET", "/v1/artists/artist-1/posts?cursor=" + _forged_cursor("1" + "0" * 400), b""),
    ("GET", "/v1/artists/artist-1/posts?cursor=" + _forged_cursor("1.5"), b""),
    ("PUT", f"/v1/players/{PLAYER}", b'{"owner_id":"o","timezone":"Europe"}'),
    ("PUT", f"/v1/players/{PLAYER}", b'{"owner_id":"o","timezone":"Etc"}'),
    ("PUT", f"/v1/players/{PLAYER}", b'{"owner_id":"o","timezone":"__pycache__"}'),
    ("PUT", "/v1/posts/1", b"[" * 5000),
    ("PUT", f"/v1/players/{PLAYER}", b'{"a":' * 1000 + b"1" + b"}" * 1000),
    ("POST", "/v1/posts/1/views", b"[" * 1000 + b"]" * 1000),
    ("PUT", "/v1/posts/1", b'{"owner_id":"\\ud800"}'),
    ("PUT", f"/v1/players/{PLAYER}", b'{"owner_id":"a\\udfffb"}'),
]


@pytest.mark.parametrize(("method", "path", "body"), KNOWN, ids=[f"{m} {p[:60]}" for m, p, _ in KNOWN])
def test_known_bad_inputs_answer_400(method: str, path: str, body: bytes) -> None:
    headers = {"Authorization": AUTHORIZATIONS[0]}  # admin
    if body:
        headers["Content-Type"] = "text/plain" if path.endswith("/views") else "application/json"
    with use(seeded_services()), Client(app, stage_name="dev") as client:
        response = client.http.request(method, path, headers=headers, body=body)
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["code"].startswith("invalid_")
