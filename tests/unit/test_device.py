"""User agent → device class (chalicelib.enrich.device.classify).

The user agents below were written for these tests in the shape current browsers, players
and robots send; none is copied from the shared corpus, which the last test reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.enrich.device import MAX_UA_CHARS, classify

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "data" / "user-agents-dev.jsonl"
# The libraries whose rules the classifier reads from precomputed tables: loading them is
# what made a new container's first request slow (docs/adr/0015-cold-start.md).
LIBRARIES = {"ua_parser", "ua_parser_rs", "crawlerdetect", "device_detector", "yaml_rs", "regex"}

DESKTOP = [
    # Chrome, Edge, Firefox, Opera on Windows 11 (reports as NT 10.0)
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36 Edg/142.0.3595.65",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/141.0.0.0 Safari/537.36 OPR/126.0.0.0",
    # Safari, Chrome and Firefox on macOS
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/26.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 15.6; rv:145.0) Gecko/20100101 Firefox/145.0",
    # Linux and ChromeOS
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    # An Electron desktop app is a person at a desktop, not a headless browser.
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "discord/1.0.9213 Chrome/134.0.6998.205 Electron/35.3.0 Safari/537.36",
]

MOBILE = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/142.0.7444.46 Mobile/15E148 Safari/604.1",
    # Chrome's reduced Android user agent: no model, "Mobile" is the only signal.
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 15; SM-S931B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 16; Pixel 9 Build/BP2A.250605.031; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/141.0.7390.122 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 15; Mobile; rv:145.0) Gecko/145.0 Firefox/145.0",
]

TABLET = [
    "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.6 Mobile/15E148 Safari/604.1",
    # Galaxy Tab S9 and Lenovo Tab: Android without "Mobile"
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Lenovo TB-X606F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/139.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    # Kindle Fire's Silk browser
    "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/138.4.8 like Chrome/138.0.7204.179 Safari/537.36",
    "Mozilla/5.0 (Android 14; Tablet; rv:145.0) Gecko/145.0 Firefox/145.0",
]

# Player product tokens over HTTP: a web request is never a player (DESIGN §8), and a
# player's name skips no bot check.
PLAYER_TOKENS_ON_SCRIPTS_AND_BOTS = [
    "Makapix-Player/1.4.2 (esp32-s3; fw 2026.10.1)",
    "makapix-player/0.9",
    "Divoom/3.1 (Pixoo-64)",
    "Makapix-Player/1.5.0 libcurl/8.5.0",
    "python-requests/2.31 makapix-player/9",
    "Googlebot/2.1 divoom/1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) PixelFrame/2.0",
    "curl/8.5.0 (makapix-player/1.0)",
]

BOT = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/142.0.7444.59 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "Python-urllib/3.11",
    "Python/3.12 aiohttp/3.10.5",
    "python-httpx/0.27.2",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "Java/17.0.12",
    "libwww-perl/6.72",
    "axios/1.7.7",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "PostmanRuntime/7.42.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.12)",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
    "PhantomJS/2.1.1 Safari/538.1",
    # Made-up or script user agents that name no browser and no platform.
    "my-uptime-checker",
    "Mozilla/5.0",
]


@pytest.mark.parametrize("ua", DESKTOP)
def test_desktop_browsers(ua: str) -> None:
    assert classify(ua) == "desktop"


@pytest.mark.parametrize("ua", MOBILE)
def test_mobile_browsers(ua: str) -> None:
    assert classify(ua) == "mobile"


@pytest.mark.parametrize("ua", TABLET)
def test_tablets(ua: str) -> None:
    assert classify(ua) == "tablet"


@pytest.mark.parametrize("ua", PLAYER_TOKENS_ON_SCRIPTS_AND_BOTS)
def test_player_tokens_neither_skip_bot_checks_nor_make_a_player(ua: str) -> None:
    assert classify(ua) == "bot"


def test_a_browser_naming_a_player_is_still_the_browser() -> None:
    assert classify(DESKTOP[0] + " makapix-player/1.0") == "desktop"


@pytest.mark.parametrize("ua", BOT)
def test_bots(ua: str) -> None:
    assert classify(ua) == "bot"


@pytest.mark.parametrize("ua", [None, "", "   ", "\t\r\n"])
def test_missing_or_blank_user_agent_is_a_bot(ua: str | None) -> None:
    assert classify(ua) == "bot"


def test_ipados_desktop_mode_counts_as_desktop() -> None:
    # iPadOS 13+ sends the Mac user agent by default; the user agent alone cannot tell it
    # from a Mac, and we count Macintosh user agents as desktops.
    mac = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1"
    )
    assert classify(mac) == "desktop"


def test_player_name_must_be_a_product_token() -> None:
    # Mentioning a player's name is not being one.
    assert classify("divoom-firmware-mirror-crawler") == "bot"
    assert classify("XPixelFrame/1.0") == "bot"


def test_surrounding_whitespace_is_ignored() -> None:
    assert classify("  " + DESKTOP[0] + "\n") == "desktop"


def test_repeated_calls_agree() -> None:
    assert [classify(MOBILE[3]) for _ in range(3)] == ["mobile"] * 3


def test_very_long_user_agent_is_classified_from_its_head() -> None:
    assert classify(DESKTOP[0] + " x" * (4 * MAX_UA_CHARS)) == "desktop"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gets_one_of_the_four_classes(ua: str) -> None:
    assert classify(ua) in {"desktop", "mobile", "tablet", "bot"}


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_file(), reason=f"shared user-agent corpus absent: {CORPUS}")
def test_corpus_accuracy_targets() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    outcome: Counter[tuple[str, str]] = Counter((r["label"], classify(r["ua"])) for r in rows)
    total = sum(outcome.values())
    bots = sum(n for (label, _), n in outcome.items() if label == "bot")
    browsers = total - bots
    correct = sum(n for (label, got), n in outcome.items() if label == got)
    browsers_as_bots = sum(
        n for (label, got), n in outcome.items() if label != "bot" and got == "bot"
    )

    assert correct / total >= 0.97, outcome
    assert outcome[("bot", "bot")] / bots >= 0.97, outcome
    assert browsers_as_bots / browsers <= 0.005, outcome


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` in the project root."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(run.stdout.splitlines()[-1]))


def test_importing_the_app_loads_no_user_agent_library() -> None:
    assert not LIBRARIES & modules_after("import app")


def test_a_desktop_browser_is_classified_without_loading_a_library() -> None:
    code = f"from chalicelib.enrich.device import classify\nassert classify({DESKTOP[0]!r}) == 'desktop'"
    assert not LIBRARIES & modules_after(code)


def test_an_android_model_needs_only_device_detectors_parser() -> None:
    code = (
        f"from chalicelib.enrich.device import classify\nassert classify({TABLET[1]!r}) == 'tablet'"
    )
    assert not (LIBRARIES - {"device_detector", "yaml_rs", "regex"}) & modules_after(code)
