"""User agent → device class, for enriching view events.

Owns :func:`classify`, which maps a ``User-Agent`` header to one of ``desktop``, ``mobile``,
``tablet`` or ``bot``, and the in-process cache and
lazy loading around it. The rules of our own live in :mod:`chalicelib.enrich.device_rules`;
the decision order and the reasons for it are in docs/adr/0002-user-agent-classification.md.

Rules from three libraries, each used for what it is best at:

* ua-parser (uap-core's regexes): browser, OS and device family; its ``Spider`` device family
  marks well-known robots.
* crawlerdetect and device-detector's bot list (matomo's ``bots.yml``): two independently
  maintained robot lists; a robot on either is a bot.
* device-detector's device database (matomo's ``mobiles.yml``): whether an Android model is a
  phone, a tablet or a laptop, which the user agent itself does not say (many tablets send
  "Mobile", and Android laptops look like tablets).

The libraries' own loading (YAML parsing, thousands of regexes compiled, most of which a given
user agent can never match) cost a new Lambda container about a second. So their rules are
read from tables built ahead of time (:mod:`chalicelib.enrich.ua_tables_build`, checked
against the installed libraries by a test), and a pattern is compiled only when the user
agent holds a literal it needs (:mod:`chalicelib.enrich.ua_tables`); the answers stay the
libraries'. See docs/adr/0015-cold-start.md. Importing this module compiles only our own
patterns; the web table loads on the first :func:`classify` past the fast path (~20 ms), the
device table on the first Android user agent naming its model (~80 ms, device-detector's
``Device`` parser included).
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Literal

from chalicelib.enrich import device_rules as rules

if TYPE_CHECKING:
    from chalicelib.enrich.ua_devices import DeviceTypes
    from chalicelib.enrich.ua_engines import WebRules

Device = Literal["desktop", "mobile", "tablet", "bot"]

# Sized for the few thousand distinct user agents a warm Lambda is expected to see: 8192
# entries of typical user agents take about 2 MB (measured), and a full miss costs from
# ~0.02 ms to ~1 ms (see bench/bench_ua.py), so the cache is what keeps the median low.
CACHE_SIZE = 8192

# Only the head of a user agent is parsed and cached: it bounds the regex work and the cache's
# memory against hostile multi-kilobyte headers, and no real browser needs more to be told.
MAX_UA_CHARS = 512

_BOT: Device = "bot"


def classify(user_agent: str | None) -> Device:
    """Classify a ``User-Agent`` header value.

    A missing or blank user agent is a ``bot``: every browser and every player sends one.
    """
    if not user_agent:
        return _BOT
    ua = user_agent.strip()[:MAX_UA_CHARS]
    if not ua:
        return _BOT
    return _classify_cached(ua)


def cache_info() -> functools._CacheInfo:
    """Hit/miss counters of the classification cache (for benchmarks and metrics)."""
    return _classify_cached.cache_info()


def cache_clear() -> None:
    """Forget cached classifications (for benchmarks and tests)."""
    _classify_cached.cache_clear()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _classify_cached(ua: str) -> Device:
    return _classify_uncached(ua)


def _classify_uncached(ua: str) -> Device:
    # Cheap checks first: automation tools and robots that sign with a contact address are
    # settled by one regex each, before any parser is loaded. A web request is never a
    # player (DESIGN §8): players report over MQTT, so a player's name in a user agent
    # neither skips these checks nor makes the device a player.
    if rules.AUTOMATION_RE.search(ua) or rules.CONTACT_RE.search(ua):
        return _BOT

    engines = _ENGINES
    browser, os_family, device_family = engines.families(ua)
    if device_family == "Spider":
        return _BOT
    # Either robot list is enough; device-detector's goes first, as its word prefilter
    # settles most browsers without a regex.
    if engines.dd_is_bot(ua) or engines.crawlerdetect_is_bot(ua):
        return _BOT
    # Nothing recognised at all (no browser, no OS, no device) and no platform named either:
    # scripts, scanners and made-up strings. A rare client that still names a desktop or
    # phone platform ("... (win10 x64)", "AmigaOS") gets the benefit of the doubt.
    unidentified = browser == "Other" and os_family == "Other" and device_family == "Other"
    if unidentified and not (rules.DESKTOP_TOKEN_RE.search(ua) or rules.PHONE_TOKEN_RE.search(ua)):
        return _BOT
    if rules.BORROWED_BROWSER_RE.search(ua):
        return _BOT
    return _form_factor(ua, browser, os_family, device_family, engines)


def _form_factor(
    ua: str, browser: str, os_family: str, device_family: str, engines: _Engines
) -> Device:
    if os_family == "Android" or "Android" in ua or "android" in ua:
        return _android_form_factor(ua, os_family, engines)
    if device_family in rules.TABLET_DEVICE_FAMILIES or rules.TABLET_TOKEN_RE.search(ua):
        return "tablet"
    if rules.WINDOWS_TABLET_RE.search(ua):
        return "tablet"
    if device_family in rules.MOBILE_DEVICE_FAMILIES or os_family in rules.MOBILE_OS_FAMILIES:
        return "mobile"
    # Desktop platforms are settled before the generic "Mobi" token: a Mac user agent with
    # "Mobile/15E148" is an iPad in desktop mode or a Mac, and we count Macs as desktops.
    if rules.DESKTOP_TOKEN_RE.search(ua):
        return "desktop"
    if browser in rules.MOBILE_BROWSER_FAMILIES or rules.PHONE_TOKEN_RE.search(ua):
        return "mobile"
    # A recognised browser or OS on no known handheld platform: an uncommon desktop.
    return "desktop"


def _android_form_factor(ua: str, os_family: str, engines: _Engines) -> Device:
    # Reduced Chrome user agents carry no model, so only the "Mobile" token can tell.
    if not rules.ANDROID_REDUCED_RE.search(ua):
        kind = engines.dd_device_type(ua, os_family)
        if kind is not None:
            return kind
    if rules.TABLET_TOKEN_RE.search(ua):
        return "tablet"
    # Chrome's documented convention: "Mobile" on phones, absent on tablets.
    return "mobile" if "Mobile" in ua or "mobile" in ua else "tablet"


# device-detector's device types, folded into ours. Big screens that are not handheld count
# as desktops; small handheld ones as mobiles.
_DD_TYPES: dict[str, Device] = {
    "smartphone": "mobile",
    "phablet": "mobile",
    "feature phone": "mobile",
    "wearable": "mobile",
    "portable media player": "mobile",
    "camera": "mobile",
    "tablet": "tablet",
    "desktop": "desktop",
    "tv": "desktop",
    "console": "desktop",
    "car browser": "desktop",
    "smart display": "desktop",
    "smart speaker": "desktop",
    "peripheral": "desktop",
}


class _Engines:
    """The rule tables, each loaded on first use: the web table (ua-parser's families and both
    robot lists) by the first user agent past the fast path, the device table by the first
    Android user agent naming its model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._web: WebRules | None = None
        self._devices: DeviceTypes | None = None

    def families(self, ua: str) -> tuple[str, str, str]:
        """(browser family, OS family, device family) from ua-parser; "Other" when unknown."""
        return (self._web or self._load_web()).families(ua)

    def crawlerdetect_is_bot(self, ua: str) -> bool:
        return (self._web or self._load_web()).crawlers(ua)

    def dd_is_bot(self, ua: str) -> bool:
        return (self._web or self._load_web()).robots(ua)

    def dd_device_type(self, ua: str, os_family: str) -> Device | None:
        devices = self._devices or self._load_devices()
        kind = devices.device_type(ua, os_family if os_family != "Other" else None)
        return _DD_TYPES.get(kind or "")

    def _load_web(self) -> WebRules:
        with self._lock:
            if self._web is None:
                from chalicelib.enrich.ua_engines import WebRules

                self._web = WebRules.load()
            return self._web

    def _load_devices(self) -> DeviceTypes:
        with self._lock:
            if self._devices is None:
                from chalicelib.enrich.ua_devices import DeviceTypes

                self._devices = DeviceTypes.load()
            return self._devices


# Constructing it loads nothing; each table loads on its first use.
_ENGINES = _Engines()
