"""ua-parser's families and the two robot lists, run from the precomputed tables.

Each class gives the answer of the library it stands for (checked against the library by
tests/unit/test_cold_start_tables.py), with the patterns from ``data/ua_web.json.gz``
compiled only when a user agent holds one of their literals:

* :class:`Families`: ua-parser's browser, OS and device family (uap-core's ``regexes.yaml``,
  first match in order, its family templates), as ua-parser's pure-Python resolver finds them;
* :class:`CrawlerList`: crawlerdetect's ``is_crawler`` (its exclusions removed first, then any
  of its robot patterns);
* :class:`RobotList`: device-detector's ``Bot`` parser (its word prefilter, then any pattern
  of matomo's ``bots.yml``, compiled with the ``regex`` module as device-detector does).
"""

from __future__ import annotations

import re
from typing import Any

import ahocorasick_rs

from chalicelib.enrich import ua_tables
from chalicelib.enrich.ua_tables import Folder, PatternList

_TEMPLATE_GROUP = re.compile(r"\$(\d)")


class WebRules:
    """The web table's three engines, which every user agent past the fast path consults."""

    def __init__(self, table: dict[str, Any]) -> None:
        fold = Folder(table["fold"])
        self.families = Families(table["ua_parser"], fold)
        self.crawlers = CrawlerList(table["crawlerdetect"], fold)
        self.robots = RobotList(table["dd_bots"], fold)

    @classmethod
    def load(cls) -> WebRules:
        return cls(ua_tables.load(ua_tables.WEB))


class Families:
    """(browser, OS, device) families of a user agent; ``"Other"`` where nothing matches."""

    def __init__(self, table: dict[str, Any], fold: Folder) -> None:
        self._fold = fold
        rows = table["user_agent"]
        self._browsers = PatternList([r[0] for r in rows], [r[2] for r in rows], re.compile)
        self._browser_families: list[str | None] = [r[1] for r in rows]
        rows = table["os"]
        self._oses = PatternList([r[0] for r in rows], [r[2] for r in rows], re.compile)
        self._os_families: list[str | None] = [r[1] for r in rows]
        rows = table["device"]
        self._devices = PatternList(
            [("(?i)" if r[1] else "") + r[0] for r in rows], [r[3] for r in rows], re.compile
        )
        self._device_families: list[str | None] = [r[2] for r in rows]

    def __call__(self, ua: str) -> tuple[str, str, str]:
        key = self._fold(ua)
        return (
            self._browser(ua, key),
            _family(self._oses, self._os_families, ua, key),
            _family(self._devices, self._device_families, ua, key),
        )

    def _browser(self, ua: str, key: str) -> str:
        # ua-parser's browser family takes only "$1", and no stripping (unlike OS and device).
        for index in self._browsers.candidates(key):
            match = self._browsers.compiled(index).search(ua)
            if match:
                family = self._browser_families[index] or "$1"
                return family.replace("$1", match[1] or "") if "$1" in family else family
        return "Other"


def _family(
    patterns: PatternList[re.Pattern[str]], families: list[str | None], ua: str, key: str
) -> str:
    for index in patterns.candidates(key):
        match = patterns.compiled(index).search(ua)
        if match:
            return _replace(families[index] or "$1", match) or "Other"
    return "Other"


def _replace(template: str, match: re.Match[str]) -> str | None:
    """ua-parser's template rule: "$n" is group n (empty when absent), stripped; "" is None."""

    def group(ref: re.Match[str]) -> str:
        index = int(ref[1])
        return (match[index] or "") if 0 < index <= match.re.groups else ""

    return _TEMPLATE_GROUP.sub(group, template).strip() or None


class CrawlerList:
    """crawlerdetect's verdict: a robot when any of its patterns matches what is left of the
    user agent once its exclusions (browser fragments that look like robots) are removed."""

    def __init__(self, table: dict[str, Any], fold: Folder) -> None:
        self._fold = fold
        self._exclusions = re.compile(table["exclusions"], re.IGNORECASE)
        rows = table["crawlers"]
        self._patterns = PatternList(
            [r[0] for r in rows], [r[1] for r in rows], lambda p: re.compile(p, re.IGNORECASE)
        )

    def __call__(self, ua: str) -> bool:
        agent = self._exclusions.sub("", ua.strip())
        if not agent:
            return False
        patterns = self._patterns
        return any(
            patterns.compiled(i).search(agent) for i in patterns.candidates(self._fold(agent))
        )


class RobotList:
    """device-detector's ``Bot`` verdict: one of its words in the lower-cased user agent (or a
    bare generic name such as "chrome"), and then one of its patterns matching."""

    def __init__(self, table: dict[str, Any], fold: Folder) -> None:
        self._fold = fold
        self._words = ahocorasick_rs.AhoCorasick(table["words"])
        self._generic = frozenset(table["generic"])
        bounded: str = table["bounded"]
        rows = table["patterns"]
        self._patterns = PatternList(
            [bounded.format(r[0]) for r in rows], [r[1] for r in rows], _compile_dd
        )

    def __call__(self, ua: str) -> bool:
        lower = ua.lower()
        if not (self._words.find_matches_as_strings(lower) or lower in self._generic):
            return False
        patterns = self._patterns
        return any(patterns.compiled(i).search(ua) for i in patterns.candidates(self._fold(ua)))


def _compile_dd(pattern: str) -> Any:
    """Compiled as device-detector compiles (the ``regex`` module, case-insensitive); imported
    here so that user agents no robot word matches never load it."""
    import regex

    return regex.compile(pattern, regex.IGNORECASE)
