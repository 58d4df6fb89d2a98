"""The precomputed user-agent tables and the literal prefilter that makes them cheap to load.

The tables (``data/*.json.gz``, built by :mod:`chalicelib.enrich.ua_tables_build` from the
pinned ua-parser, crawlerdetect and device-detector) hold ordered regex lists, each pattern
with the literals it needs. :class:`PatternList` compiles a pattern only when a user agent
contains one of its literals, and tries the candidates in the list's order, so it answers
as the library would while a fresh process compiles a handful of patterns instead of
thousands. Loading a table is a gzip read and a JSON parse (milliseconds); nothing here
imports the libraries themselves.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import ahocorasick_rs

DATA_DIR = Path(__file__).resolve().parent / "data"
WEB = "ua_web.json.gz"  # ua-parser, crawlerdetect, device-detector's robots
DEVICES = "ua_devices.json.gz"  # device-detector's device database

P = TypeVar("P")


def load(name: str) -> dict[str, Any]:
    """One table, as the build wrote it."""
    # One read and one parse: several times faster than streaming through gzip.open.
    table: dict[str, Any] = json.loads(gzip.decompress((DATA_DIR / name).read_bytes()))
    return table


class Folder:
    """Lower-cases a user agent for the literal scan, the way case-insensitive matching sees
    it: the few non-ASCII characters that match an ASCII letter become that letter."""

    def __init__(self, fold: Mapping[str, str]) -> None:
        self._table = str.maketrans(dict(fold))

    def __call__(self, text: str) -> str:
        return text.lower() if text.isascii() else text.translate(self._table).lower()


class PatternList(Generic[P]):
    """An ordered list of patterns, each compiled on first need.

    ``candidates(key)`` are the indices, in order, of the patterns that can match a text whose
    folded form is ``key``: those with a literal in ``key`` and those with none known.
    """

    def __init__(
        self,
        patterns: Sequence[str],
        literals: Sequence[Sequence[str] | None],
        compile_pattern: Callable[[str], P],
    ) -> None:
        self._patterns = patterns
        self._compile = compile_pattern
        self._compiled: list[P | None] = [None] * len(patterns)
        self._always = [i for i, needed in enumerate(literals) if not needed]
        owners: dict[str, list[int]] = {}
        for index, needed in enumerate(literals):
            for literal in needed or ():
                owners.setdefault(literal, []).append(index)
        self._owners = list(owners.values())
        self._automaton = ahocorasick_rs.AhoCorasick(list(owners)) if owners else None

    def candidates(self, key: str) -> list[int]:
        found = set(self._always)
        if self._automaton is not None:
            words = {word for word, _, _ in self._automaton.find_matches_as_indexes(key, True)}
            for word in words:
                found.update(self._owners[word])
        return sorted(found)

    def compiled(self, index: int) -> P:
        pattern = self._compiled[index]
        if pattern is None:
            pattern = self._compiled[index] = self._compile(self._patterns[index])
        return pattern
