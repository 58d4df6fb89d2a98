"""Builds the user-agent tables in ``chalicelib/enrich/data/`` from the pinned libraries.

Usage: ``python -m chalicelib.enrich.ua_tables_build [--check]`` (``--check``: exit 1 when
the committed tables differ from what the installed libraries give).

The classifier (:mod:`chalicelib.enrich.device`) uses the rules of ua-parser, crawlerdetect and
device-detector, but loading those libraries costs a new Lambda container hundreds of
milliseconds (YAML parsing, and compiling thousands of regexes, most of which a given user
agent can never match). This module does the slow part once, at build time, and writes what
the classifier needs as two small gzipped JSON files:

* ``ua_web.json.gz``: ua-parser's regexes and family templates, crawlerdetect's robot and
  exclusion patterns, device-detector's robot list (``bots.yml``) and its word prefilter;
* ``ua_devices.json.gz``: device-detector's device database (``mobiles.yml``), reduced to what
  decides a device *type*: each brand's pattern and type, and its models' patterns up to the
  last one whose type differs from the brand's (model names are not needed).

Beside each pattern it stores the **literals** the pattern needs: a set of lower-case ASCII
strings at least one of which occurs in any text the pattern matches, case-insensitively. At
run time one Aho-Corasick scan of the user agent tells which patterns can match at all, and
only those are compiled and tried, in their original order, so the answers are the libraries'
answers. The literals come from Python's own regex parser (``re._parser``, used here only, at
build time); a pattern it cannot parse, or with no literal, is tried on every user agent.

``FOLD`` maps the few non-ASCII characters that a case-insensitive ASCII letter matches (the
Kelvin sign matches ``k``) to that letter, so the literal scan stays sound for any input.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from chalicelib.enrich.ua_tables import DATA_DIR, DEVICES, WEB

# The private modules of ``re`` that parse a pattern into its syntax tree (typed as Any).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")
_REPEATS = frozenset({_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT})

# An exact set (every string a piece of pattern can match) is given up beyond this size.
_EXACT_LIMIT = 32
# A literal found in these ordinary browser user agents is no use as a filter: nearly every
# user agent has it. The choice between a pattern's literal sets avoids them.
_COMMON = "\n".join(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.6 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/142.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; Nexus 5 Build/KOT49H) AppleWebKit/534.30 "
        "(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
    ]
).lower()

Literals = frozenset[str]


# ---- literals a pattern needs ---------------------------------------------------------------


def required_literals(pattern: str, flags: int = 0) -> list[str] | None:
    """Lower-case ASCII strings one of which any match of ``pattern`` contains (sorted), or
    None when none can be told (the pattern is then tried on every input)."""
    return _as_list(_choose(_pattern_candidates(pattern, flags), {}))


def _pattern_candidates(pattern: str, flags: int) -> list[Literals]:
    try:
        with warnings.catch_warnings():
            # "Possible nested set" and the like: a syntax ``re`` may read otherwise than the
            # ``regex`` module does, so no literal is trusted from it.
            warnings.simplefilter("error")
            tree = _parser.parse(pattern, flags)
    except (re.error, FutureWarning, DeprecationWarning, RecursionError):
        return []
    return _necessary(list(tree))


def _as_list(literals: Literals | None) -> list[str] | None:
    return sorted(literals) if literals else None


def _choose(candidates: Sequence[Literals], frequency: dict[str, int]) -> Literals | None:
    """The most selective of several necessary sets: no common browser token, longer
    strings, and strings few other patterns share."""
    if not candidates:
        return None

    def cost(literals: Literals) -> tuple[bool, bool, bool, int, int, int]:
        shortest = min(map(len, literals))
        return (
            any(s in _COMMON for s in literals),
            shortest < 2,
            shortest < 3,
            max(frequency.get(s, 0) for s in literals),
            -shortest,
            len(literals),
        )

    return min(candidates, key=cost)


def _necessary(items: list[tuple[Any, Any]]) -> list[Literals]:
    """Sets of strings, each such that any match of the sequence contains one of them."""
    found: list[Literals] = []
    run: Literals = frozenset({""})  # the exact strings of the current run of exact items

    def close() -> None:
        nonlocal run
        if "" not in run:
            found.append(_minimal(run))
        run = frozenset({""})

    for op, av in items:
        part = _exact_item(op, av)
        if part is not None:
            joined = _product(run, part)
            if joined is None:
                close()
                run = part
            else:
                run = joined
            continue
        close()
        if op is _c.SUBPATTERN:
            found += _necessary(list(av[3]))
        elif op is _c.ATOMIC_GROUP:
            found += _necessary(list(av))
        elif op in _REPEATS and av[0] >= 1:
            found += _necessary(list(av[2]))
        elif op is _c.BRANCH:
            alternatives = [_choose(_necessary(list(alt)), {}) for alt in av[1]]
            known = [literals for literals in alternatives if literals]
            if len(known) == len(alternatives):  # every alternative needs one of its own
                found.append(_minimal(frozenset().union(*known)))
    close()
    return found


def _exact(items: Iterable[tuple[Any, Any]]) -> Literals | None:
    """Every string the sequence can match, lower-cased, when they are few and ASCII."""
    result: Literals | None = frozenset({""})
    for op, av in items:
        part = _exact_item(op, av)
        if part is None or result is None:
            return None
        result = _product(result, part)
    return result


def _exact_item(op: Any, av: Any) -> Literals | None:
    if op is _c.LITERAL:
        return frozenset({chr(av).lower()}) if av < 128 else None
    if op is _c.AT:
        return frozenset({""})  # zero-width: a run of literals goes on across it
    if op is _c.IN:
        return _exact_class(av)
    if op is _c.SUBPATTERN:
        return _exact(av[3])
    if op is _c.ATOMIC_GROUP:
        return _exact(av)
    if op is _c.BRANCH:
        union: set[str] = set()
        for alternative in av[1]:
            strings = _exact(alternative)
            if strings is None:
                return None
            union |= strings
        return frozenset(union) if len(union) <= _EXACT_LIMIT else None
    if op in _REPEATS:
        low, high, sub = av
        strings = _exact(sub)
        if strings is None or high > 3:
            return None
        repeated: set[str] = set()
        power: Literals | None = frozenset({""})
        for count in range(high + 1):
            if power is None:
                return None
            if count >= low:
                repeated |= power
            power = _product(power, strings)
        return frozenset(repeated) if len(repeated) <= _EXACT_LIMIT else None
    return None


def _exact_class(items: list[tuple[Any, Any]]) -> Literals | None:
    chars: set[str] = set()
    for op, av in items:
        if op is _c.LITERAL and av < 128:
            chars.add(chr(av).lower())
        elif op is _c.RANGE and av[1] < 128 and av[1] - av[0] < _EXACT_LIMIT:
            chars.update(chr(code).lower() for code in range(av[0], av[1] + 1))
        else:
            return None  # negated sets, categories, non-ASCII
    return frozenset(chars) if len(chars) <= _EXACT_LIMIT else None


def _product(left: Literals, right: Literals) -> Literals | None:
    if len(left) * len(right) > _EXACT_LIMIT:
        return None
    return frozenset(a + b for a in left for b in right)


def _minimal(strings: Literals) -> Literals:
    """Drop strings that contain another member: finding the shorter one is implied."""
    return frozenset(s for s in strings if not any(o != s and o in s for o in strings))


def _ops(node: Any) -> set[Any]:
    """Every operator in a parsed pattern, nested ones included."""
    if isinstance(node, _parser.SubPattern):
        return set().union(*({op} | _ops(av) for op, av in node))
    if isinstance(node, list | tuple):
        return set().union(*(_ops(value) for value in node))
    return set()


def _literal_column(patterns: Sequence[tuple[str, int]]) -> list[list[str] | None]:
    """Each pattern's chosen literals; literals many patterns share are avoided."""
    candidates = [_pattern_candidates(pattern, flags) for pattern, flags in patterns]
    frequency = Counter(s for found in candidates for literals in found for s in literals)
    return [_as_list(_choose(found, frequency)) for found in candidates]


# ---- case folding ---------------------------------------------------------------------------


def fold_table() -> dict[str, str]:
    """Non-ASCII characters that match an ASCII character case-insensitively, in ``re`` or in
    the ``regex`` module, mapped to that character (lower-cased)."""
    import regex

    engines = [re.compile(r"[\x00-\x7f]", re.IGNORECASE), regex.compile(r"[\x00-\x7f]", regex.I)]
    table: dict[str, str] = {}
    for code in range(128, sys.maxunicode + 1):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or not any(e.fullmatch(char) for e in engines):
            continue
        matches = {
            chr(a).lower()
            for a in range(128)
            if re.fullmatch(re.escape(chr(a)), char, re.IGNORECASE)
            or regex.fullmatch(regex.escape(chr(a)), char, regex.IGNORECASE)
        }
        if len(matches) != 1:
            raise ValueError(f"U+{code:04X} matches {sorted(matches)} case-insensitively")
        table[char] = matches.pop()
    return table


# ---- sources --------------------------------------------------------------------------------


def _ua_parser() -> dict[str, Any]:
    from ua_parser_builtins.lazy import MATCHERS  # type: ignore[import-untyped, unused-ignore]

    user_agents, oses, devices = MATCHERS
    ua_rows = [(m.regex, m.family) for m in user_agents]
    os_rows = [(m.regex, m.family) for m in oses]
    device_rows = [(m.regex, m.regex_flag == "i", m.family) for m in devices]
    ua_literals = _literal_column([(p, 0) for p, _ in ua_rows])
    os_literals = _literal_column([(p, 0) for p, _ in os_rows])
    device_literals = _literal_column([(p, re.I if i else 0) for p, i, _ in device_rows])
    return {
        "user_agent": [[p, f, lit] for (p, f), lit in zip(ua_rows, ua_literals, strict=True)],
        "os": [[p, f, lit] for (p, f), lit in zip(os_rows, os_literals, strict=True)],
        "device": [
            [p, i, f, lit] for (p, i, f), lit in zip(device_rows, device_literals, strict=True)
        ],
    }


def _crawlerdetect() -> dict[str, Any]:
    from crawlerdetect.providers.crawlers import (  # type: ignore[import-untyped, unused-ignore]
        data as crawlers,
    )
    from crawlerdetect.providers.exclusions import (  # type: ignore[import-untyped, unused-ignore]
        data as exclusions,
    )

    for pattern in crawlers:
        # crawlerdetect searches one alternation of all its patterns; trying them one by one
        # is the same only if none can match an empty string or refers to a group by number.
        tree = _parser.parse(pattern, re.IGNORECASE)
        if tree.getwidth()[0] == 0 or _c.GROUPREF in _ops(tree):
            raise ValueError(f"crawlerdetect pattern cannot be tried on its own: {pattern!r}")
    literals = _literal_column([(p, re.IGNORECASE) for p in crawlers])
    return {
        "exclusions": f"({'|'.join(exclusions)})",
        "crawlers": [[p, lit] for p, lit in zip(crawlers, literals, strict=True)],
    }


def _dd_yaml(name: str) -> Any:
    from device_detector.yaml_loader import (  # type: ignore[import-untyped, unused-ignore]
        _load_from_yaml,
    )

    return _load_from_yaml(name)


def _dd_bounded() -> str:
    """device-detector's wrapper around each YAML ``regex`` (see its yaml_loader)."""
    from device_detector.settings import (  # type: ignore[import-untyped, unused-ignore]
        BOUNDED_REGEX,
    )

    return str(BOUNDED_REGEX)


def _dd_literals(patterns: Sequence[str]) -> list[list[str] | None]:
    """Literals of device-detector patterns (YAML ``regex`` values, already unquoted), as
    it compiles them: bounded and case-insensitive."""
    bounded = _dd_bounded()
    return _literal_column([(bounded.format(p), re.IGNORECASE) for p in patterns])


def _dd_bots() -> dict[str, Any]:
    from device_detector.parser.device.bot import (  # type: ignore[import-untyped, unused-ignore]
        GENERIC_BOT_UAS,
    )

    manual = _dd_yaml("regexes/ahocorasick/classes/Bot.yml") or {}
    words = set(manual.get("Words", ())) | set(_dd_yaml("regexes/ahocorasick/upstream/bots.yml"))
    if not words or not all(isinstance(w, str) and w for w in words):
        raise ValueError("device-detector's bot words changed shape")
    patterns = [unquote(entry["regex"]) for entry in _dd_yaml("regexes/upstream/bots.yml")]
    literals = _dd_literals(patterns)
    return {
        "bounded": _dd_bounded(),
        "words": sorted(words),
        "generic": sorted(GENERIC_BOT_UAS),
        "patterns": [[p, lit] for p, lit in zip(patterns, literals, strict=True)],
    }


def _dd_devices() -> dict[str, Any]:
    brands = _dd_yaml("regexes/upstream/device/mobiles.yml")
    rows: list[tuple[str, str, str | None, list[tuple[str, str | None]]]] = []
    for name, entry in brands.items():
        device = entry.get("device")
        models = [(unquote(m["regex"]), m.get("device")) for m in entry.get("models", ())]
        # Past the last model of another type than the brand's, a match changes nothing.
        while models and models[-1][1] in (None, device):
            models.pop()
        rows.append((str(name), unquote(entry["regex"]), device, models))
    brand_literals = _dd_literals([p for _, p, _, _ in rows])
    model_literals = _dd_literals([p for _, _, _, models in rows for p, _ in models])
    out = []
    position = 0
    for (name, pattern, device, models), literals in zip(rows, brand_literals, strict=True):
        out_models = []
        for model_pattern, model_device in models:
            out_models.append([model_pattern, model_device, model_literals[position]])
            position += 1
        out.append([name, pattern, device, literals, out_models])
    return {"bounded": _dd_bounded(), "brands": out}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("ua-parser-builtins", "crawlerdetect", "device-detector")
    return {name: version(name) for name in names}


def build() -> dict[str, bytes]:
    """File name -> gzipped JSON, deterministic for given library versions."""
    sources = _versions()
    fold = fold_table()
    web = {
        "sources": sources,
        "fold": fold,
        "ua_parser": _ua_parser(),
        "crawlerdetect": _crawlerdetect(),
        "dd_bots": _dd_bots(),
    }
    devices = {"sources": sources, "fold": fold, **_dd_devices()}
    return {WEB: _encode(web), DEVICES: _encode(devices)}


def _encode(table: dict[str, Any]) -> bytes:
    text = json.dumps(table, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return gzip.compress(text.encode("ascii"), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for name, data in build().items():
        path = DATA_DIR / name
        if args.check:
            if not path.is_file() or gzip.decompress(path.read_bytes()) != gzip.decompress(data):
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path} ({len(data):,} bytes)")  # noqa: T201
    if stale:
        print(f"stale: {', '.join(stale)}; run python -m chalicelib.enrich.ua_tables_build")  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
