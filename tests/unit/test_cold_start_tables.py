"""The precomputed user-agent tables (chalicelib/enrich/data/) and the engines that read them.

The classifier reads the rules of ua-parser, crawlerdetect and device-detector from tables
built ahead of time, compiling a pattern only when the user agent holds a literal it needs
(docs/adr/0015-cold-start.md). These tests hold the two promises that makes: the committed
tables are what the pinned libraries give, and the engines answer as the libraries do.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import device_detector
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.enrich import ua_tables
from chalicelib.enrich.ua_devices import DeviceTypes
from chalicelib.enrich.ua_engines import WebRules
from chalicelib.enrich.ua_tables_build import build, required_literals
from tests.unit.test_device import BOT, DESKTOP, MOBILE, PLAYER_TOKENS_ON_SCRIPTS_AND_BOTS, TABLET

# Written for these tests: shapes that reach each engine's corners. The Kelvin sign and the
# long s match "k" and "s" case-insensitively, so a robot may hide behind them.
ODD = [
    "Mozilla/5.0 (compatible; YandexBot/3.0)",
    "Mozilla/5.0 (compatible; Yandex\u212aBot/3.0)",
    "my-\u017fpider/1.0",
    "Mozilla/5.0 (Linux; Android 13; \u212aFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/120.3.1 like Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 9; SM-T290) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; 2201117TY) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; Smart TV Pro Build/RP1A) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/110.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Unknownphone X1) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) "
    "Presto/2.5.25 Version/10.54",
    "Mozilla/5.0 (Windows NT 6.2; ARM; Trident/7.0; Touch; rv:11.0) like Gecko",
    "chrome",
    "\u00fc\u00e4\u00f6 \u0130stanbul \u0131",
]
UAS = DESKTOP + MOBILE + TABLET + BOT + PLAYER_TOKENS_ON_SCRIPTS_AND_BOTS + ODD
DD_FIXTURES = Path(device_detector.__file__).parent / "tests" / "fixtures" / "upstream"
FOLD = ua_tables.Folder(ua_tables.load(ua_tables.WEB)["fold"])


def _fixture_sample(every: int) -> list[str]:
    """Every n-th user agent of device-detector's own test fixtures (installed with it): many
    shapes no test here would think of. Used as inputs only, never as expected answers."""
    import yaml_rs

    uas: list[str] = []
    for path in sorted(DD_FIXTURES.glob("*.yml")):
        rows: Any = yaml_rs.loads(path.read_text(encoding="utf-8")) or []
        uas += [r["user_agent"] for r in rows if isinstance(r, dict) and r.get("user_agent")]
    return sorted(set(uas))[::every]


@pytest.fixture(scope="module")
def web() -> WebRules:
    return WebRules.load()


@pytest.fixture(scope="module")
def devices() -> DeviceTypes:
    return DeviceTypes.load()


@pytest.mark.slow
def test_committed_tables_are_what_the_pinned_libraries_give() -> None:
    for name, data in build().items():
        committed = (ua_tables.DATA_DIR / name).read_bytes()
        assert json.loads(gzip.decompress(committed)) == json.loads(gzip.decompress(data)), (
            f"{name} is stale: run python -m chalicelib.enrich.ua_tables_build"
        )


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["tests", "fixtures"])
def test_engines_answer_as_the_libraries(sample: str, web: WebRules, devices: DeviceTypes) -> None:
    import ua_parser
    from crawlerdetect import CrawlerDetect
    from device_detector import Bot, Device
    from ua_parser.basic import Resolver

    uas = UAS if sample == "tests" else _fixture_sample(every=150)
    resolver = Resolver(ua_parser.load_lazy_builtins())
    crawlers = CrawlerDetect()
    for ua in uas:
        parsed = resolver(ua, ua_parser.Domain.ALL)
        families = (
            parsed.user_agent.family if parsed.user_agent else "Other",
            parsed.os.family if parsed.os else "Other",
            parsed.device.family if parsed.device else "Other",
        )
        assert web.families(ua) == families, ua
        assert web.crawlers(ua) == crawlers.is_crawler(ua), ua
        assert web.robots(ua) == bool(Bot(ua, None).parse().ua_data), ua
        os_family = families[1] if families[1] != "Other" else None
        details = {"name": os_family} if os_family else {}
        kind = Device(ua, None, os_details=details).parse().ua_data.get("type")
        expected = str(getattr(kind, "value", kind) or "").lower() or None
        assert devices.device_type(ua, os_family) == expected, ua


def test_a_robot_hiding_behind_a_case_fold_is_still_found(web: WebRules) -> None:
    assert web.crawlers("my-\u017fpider/1.0")
    assert web.families("Mozilla/5.0 (compatible; Yandex\u212aBot/3.0)")[2] == "Spider"


@pytest.mark.parametrize(
    ("pattern", "flags", "literals"),
    [
        (r"(Chrome)/(\d+)\.(\d+)", 0, ["chrome/"]),
        (r"(?:ZXY-ZTE_|ZTE\-U |ZTE[\- _])([^;/]+)", re.I, ["zte ", "zte-", "zte_"]),
        (r"[Ss]treak ?7", 0, ["streak 7", "streak7"]),
        (
            r"(?:Dell|DELL)[ _]Venue(?: Build|\) AppleWebKit)",
            0,
            [
                "dell venue build",
                "dell venue) applewebkit",
                "dell_venue build",
                "dell_venue) applewebkit",
            ],
        ),
        (r"x?y?", 0, None),
        (r"\d+\.\d+", 0, ["."]),
        (r"Andr(?:oid|0id)|TV", re.I, ["andr0id", "android", "tv"]),
        (r"[[:alpha:]]bot", re.I, None),  # POSIX class: the regex module reads it otherwise
    ],
)
def test_required_literals(pattern: str, flags: int, literals: list[str] | None) -> None:
    assert required_literals(pattern, flags) == literals


PATTERNS = [
    r"(Chrome)/(\d+)\.(\d+)",
    r"(?:ZXY-ZTE_|ZTE\-U |ZTE[\- _])([a-z]+)",
    r"; {0,2}(SH\-?\d\d[a-z]{1,5}|SBM\d[a-z]{1,5}?)(?: Build|\) AppleWebKit)",
    r"\b(?:Kindle|Silk)/\d",
    r"(?:^|[^A-Z0-9_-])(?:SM-[TPX]\d{3})",
    r"(?i:iPad)|Tablet(?! PC)",
    r"(?:x|yz)+abc?",
    r"a{2,3}b",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_match_holds_one_of_the_literals(data: st.DataObject) -> None:
    pattern = data.draw(st.sampled_from(PATTERNS))
    flags = data.draw(st.sampled_from([0, re.IGNORECASE]))
    compiled = re.compile(pattern, flags)
    text = data.draw(st.from_regex(compiled))
    literals = required_literals(pattern, flags)
    assert compiled.search(text)
    assert literals is None or any(s in FOLD(text) for s in literals), (pattern, text)
