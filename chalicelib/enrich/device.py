"""User agent → device class, for enriching view events.

Owns :func:`classify`, which maps a ``User-Agent`` header to one of ``desktop``, ``mobile``,
``tablet`` or ``bot``, and the in-process cache and
lazy loading around it. The rules of our own live in :mod:`chalicelib.enrich.device_rules`;
the decision order and the reasons for it are in docs/adr/0002-user-agent-classification.md.

Libraries, each used for what it is best at:

* ua-parser 1.0 (new API, with the ``ua-parser-rs`` resolver when installed): browser, OS and
  device family; its ``Spider`` device family marks well-known robots.
* crawlerdetect and device-detector's bot list (matomo's ``bots.yml``): two independently
  maintained robot lists; a robot on either is a bot.
* device-detector's device database (matomo's ``mobiles.yml``): whether an Android model is a
  phone, a tablet or a laptop, which the user agent itself does not say (many tablets send
  "Mobile", and Android laptops look like tablets).

Importing this module is cheap (a few compiled patterns). The parsers cost hundreds of
milliseconds to load, so they load on the first :func:`classify` call that needs them, and
device-detector's device database only when an Android user agent names its model.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.enrich import device_rules as rules

if TYPE_CHECKING:
    from collections.abc import Callable

Device = Literal["desktop", "mobile", "tablet", "bot"]

# Sized for the few thousand distinct user agents a warm Lambda is expected to see: 8192
# entries of typical user agents take about 2 MB (measured), and a full miss costs from
# ~0.5 ms to ~10 ms (see bench/bench_ua.py), so the cache is what keeps the median low.
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


def preload() -> None:
    """Load every parser now instead of on first use.

    Meant for a Lambda's init phase, before the first request: it moves the parsers' load
    (about 0.3 s for ua-parser's matchers and the two bot lists, and the device database's
    first load, another ~0.5-1 s) out of the first request's latency.
    """
    _ENGINES.families("Mozilla/5.0")
    _ENGINES.crawlerdetect_is_bot("Mozilla/5.0")
    _ENGINES.dd_is_bot("Mozilla/5.0")
    _ENGINES.dd_device_type("Mozilla/5.0 (Linux; Android 14; SM-S921B) Mobile", "Android")


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
    # device-detector's bot check is a few µs for browsers (an Aho-Corasick prefilter);
    # crawlerdetect's single large regex is the slower one, so it runs last.
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
    """The parser libraries, each loaded on first use (they are slow to import and build)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ua_parser: Callable[[str], tuple[str, str, str]] | None = None
        self._crawlerdetect: Callable[[str], bool] | None = None
        self._dd_bot: Any = None
        self._dd_device: Any = None

    def families(self, ua: str) -> tuple[str, str, str]:
        """(browser family, OS family, device family) from ua-parser; "Other" when unknown."""
        parse = self._ua_parser or self._load_ua_parser()
        return parse(ua)

    def crawlerdetect_is_bot(self, ua: str) -> bool:
        check = self._crawlerdetect or self._load_crawlerdetect()
        return check(ua)

    def dd_is_bot(self, ua: str) -> bool:
        bot_parser = self._dd_bot or self._load_dd()[0]
        return bool(bot_parser(ua, None).parse().ua_data)

    def dd_device_type(self, ua: str, os_family: str) -> Device | None:
        device_parser = self._dd_device or self._load_dd()[1]
        os_details = {"name": os_family} if os_family != "Other" else {}
        data = device_parser(ua, None, os_details=os_details).parse().ua_data
        kind = data.get("type") if data else None
        # DeviceType is a str enum; its value is the name used in _DD_TYPES.
        return _DD_TYPES.get(str(getattr(kind, "value", kind) or "").lower())

    def _load_ua_parser(self) -> Callable[[str], tuple[str, str, str]]:
        with self._lock:
            if self._ua_parser is None:
                import ua_parser

                # The Rust resolver (ua-parser-rs) takes ~30 µs a parse against ~600 µs for
                # the pure-Python one, and wants the lazily compiled matchers; ua-parser
                # picks the best resolver installed. Its own cache is left out: ours sits
                # in front of the whole classification.
                resolver_type = ua_parser.BestAvailableResolver
                if resolver_type is ua_parser.BasicResolver:
                    matchers = ua_parser.load_builtins()
                else:
                    matchers = ua_parser.load_lazy_builtins()
                resolver = resolver_type(matchers)
                domains = ua_parser.Domain.ALL

                def parse(ua: str) -> tuple[str, str, str]:
                    result = resolver(ua, domains)
                    return (
                        result.user_agent.family if result.user_agent else "Other",
                        result.os.family if result.os else "Other",
                        result.device.family if result.device else "Other",
                    )

                self._ua_parser = parse
            return self._ua_parser

    def _load_crawlerdetect(self) -> Callable[[str], bool]:
        with self._lock:
            if self._crawlerdetect is None:
                from crawlerdetect import CrawlerDetect  # type: ignore[import-untyped, unused-ignore]

                detector = CrawlerDetect()

                def check(ua: str) -> bool:
                    return bool(detector.is_crawler(ua))

                self._crawlerdetect = check
            return self._crawlerdetect

    def _load_dd(self) -> tuple[Any, Any]:
        with self._lock:
            if self._dd_bot is None or self._dd_device is None:
                # The parser classes, not DeviceDetector: it would also run the OS and client
                # parsers, which we do not need, at several times the cost.
                from device_detector import Bot, Device  # type: ignore[import-untyped, unused-ignore]

                self._dd_bot, self._dd_device = Bot, Device
            return self._dd_bot, self._dd_device


# Constructing it loads nothing; each library loads on its first use.
_ENGINES = _Engines()
