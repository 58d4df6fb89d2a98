"""Closed Days in the ``aggregates`` table: how the close stores them, how readers find them.

A reader must pay the same for a 30-day range whatever the number of Views, so a closed
Day is split in two kinds of items (docs/data-model.md, docs/adr/0008-closed-pieces.md):

* **Series chunks** ``S#{first day}``: the small per-Day figures (totals, exact distinct
  Visitors, UTC hour buckets, first and last View) of 8 aligned Days in one item. A range
  reads its chunks with one Query.
* **Pieces** ``B{level}#{first day}``: breakdowns (country, device, source, channel, play
  order, referrer) and HLL sketches of Visitors, for one Day (level 0) or for an aligned
  block of 2**level Days (levels 1..5). A range is covered by at most two blocks per level,
  so a 30-day range reads about ten pieces, never thirty Days of them.

Which pieces exist follows from the target's activity bitmap (``act``/``act0`` on its
``TOTAL`` item: the closed Days with any stored look), so a reader knows, before reading
them, which items hold the Days it wants:

* a level-0 piece exists for every active closed Day;
* a block exists when both of its halves hold an active Day and the target has an active
  closed Day on or after the block's last Day (the close builds blocks lazily, when it
  closes the target's first active Day at or after the block's end; see ``to_build``).

Everything here is pure: encoding, decoding and day arithmetic. Only the adapters talk to
DynamoDB.
"""

from __future__ import annotations

import base64
import json
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.counts import OPEN_ENDED, OTHER
from chalicelib.days import day_name as day_name  # re-exported: tests address pieces by Day
from chalicelib.days import day_number as day_number
from chalicelib.storage.aggregates import layout

MAX_LEVEL = 5  # blocks of up to 32 Days
CHUNK_DAYS = 8  # Days per series chunk
# The measures whose Visitors a piece keeps a sketch of, the attribute and lg_k of each.
SKETCHES = {"v": ("hll", 12), "av": ("ahll", 11)}
# Open-ended breakdowns (counts.OPEN_ENDED) keep this many named values per measure in a
# piece; the rest add up under OTHER, so sums stay exact and a top-10 over blocks stays
# right but for near-ties.
PIECE_CAP = 40


# ---- days as numbers --------------------------------------------------------------------


def chunk_start(day: str) -> str:
    n = day_number(day)
    return day_name(n - n % CHUNK_DAYS)


def series_key(pk: str, day: str) -> tuple[str, str]:
    """The series chunk holding ``day``."""
    return pk, layout.series_sk(chunk_start(day))


def piece_key(pk: str, level: int, start: int) -> tuple[str, str]:
    return pk, layout.piece_sk(level, day_name(start))


def piece_of_sk(sk: str) -> tuple[int, int]:
    """``B3#2026-11-01`` -> (3, day number)."""
    head, _, day = sk.partition("#")
    return int(head[1:]), day_number(day)


def block_end(level: int, start: int) -> int:
    return start + (1 << level) - 1


# ---- the activity bitmap ----------------------------------------------------------------


class Activity:
    """The closed Days (as numbers) on which a target had any stored look."""

    def __init__(self, days: Iterable[int] = ()) -> None:
        self.days = sorted(set(days))

    def __contains__(self, day: int) -> bool:
        i = bisect_left(self.days, day)
        return i < len(self.days) and self.days[i] == day

    def any_in(self, first: int, last: int) -> bool:
        i = bisect_left(self.days, first)
        return i < len(self.days) and self.days[i] <= last

    def before(self, day: int) -> int | None:
        """The newest active Day strictly before ``day``."""
        i = bisect_left(self.days, day)
        return self.days[i - 1] if i else None

    @property
    def last(self) -> int | None:
        return self.days[-1] if self.days else None

    def with_day(self, day: int) -> Activity:
        return Activity([*self.days, day])

    def attributes(self) -> dict[str, Any]:
        """``act0`` (the first Day's number) and ``act`` (a little-endian bitmap from it)."""
        if not self.days:
            return {}
        first = self.days[0]
        bits = 0
        for day in self.days:
            bits |= 1 << (day - first)
        length = (self.days[-1] - first) // 8 + 1
        return {"act0": first, "act": bits.to_bytes(length, "little")}

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> Activity:
        if not item or item.get("act0") is None:
            return cls()
        raw = raw_bytes(item.get("act"))
        if raw is None:
            return cls()
        first, bits = int(item["act0"]), int.from_bytes(raw, "little")
        days = []
        offset = 0
        while bits:
            if bits & 1:
                days.append(first + offset)
            bits >>= 1
            offset += 1
        return cls(days)


# ---- which pieces ------------------------------------------------------------------------


def exists(level: int, start: int, active: Activity) -> bool:
    """Whether the close has written this piece (the rule in the module docstring)."""
    if level == 0:
        return start in active
    half = 1 << (level - 1)
    end = block_end(level, start)
    last = active.last
    return (
        last is not None
        and last >= end
        and active.any_in(start, start + half - 1)
        and active.any_in(start + half, end)
    )


def _cover_block(level: int, start: int, active: Activity, out: list[tuple[int, int]]) -> None:
    if not active.any_in(start, block_end(level, start)):
        return
    if exists(level, start, active):
        out.append((level, start))
        return
    half = 1 << (level - 1)
    _cover_block(level - 1, start, active, out)
    _cover_block(level - 1, start + half, active, out)


def canonical(first: int, last: int) -> list[tuple[int, int]]:
    """first..last as the fewest aligned blocks (levels up to MAX_LEVEL), in Day order."""
    out = []
    n = first
    while n <= last:
        level = 0
        while (
            level < MAX_LEVEL and n % (1 << (level + 1)) == 0 and n + (1 << (level + 1)) - 1 <= last
        ):
            level += 1
        out.append((level, n))
        n += 1 << level
    return out


def cover(first: int, last: int, active: Activity) -> list[tuple[int, int]]:
    """The existing pieces that together hold every active closed Day of first..last once."""
    out: list[tuple[int, int]] = []
    for level, start in canonical(first, last):
        _cover_block(level, start, active, out)
    return out


def to_build(day: int, active: Activity) -> list[tuple[int, int]]:
    """The blocks to (re)write when the close closes ``day`` for a target, lowest level first.

    ``active`` already holds ``day``. These are the complete blocks ending between the
    target's previous active Day and ``day`` whose two halves both hold an active Day: each
    becomes readable (``exists``) exactly now, and is built from pieces that exist.
    """
    previous = active.before(day)
    lowest = day if previous is None else previous + 1
    out = []
    for level in range(1, MAX_LEVEL + 1):
        size = 1 << level
        # Blocks of this level ending in lowest..day.
        first_start = (lowest - size + 1) + (-(lowest - size + 1)) % size
        for start in range(first_start, day - size + 2, size):
            if exists(level, start, active):
                out.append((level, start))
    return out


def children(level: int, start: int, active: Activity) -> list[tuple[int, int]]:
    """The existing pieces a block is built from (its halves' covers)."""
    half = 1 << (level - 1)
    out: list[tuple[int, int]] = []
    _cover_block(level - 1, start, active, out)
    _cover_block(level - 1, start + half, active, out)
    return out


# ---- series chunks -----------------------------------------------------------------------


@dataclass
class DayRow:
    """One closed Day's small figures, as a series chunk keeps them."""

    totals: dict[str, int] = field(default_factory=dict)  # v, i, av, ai (non-zero only)
    unique: dict[str, int] = field(default_factory=dict)  # "v": uv, "av": auv
    hours: dict[str, dict[str, int]] = field(default_factory=dict)  # measure -> "HH" -> n
    first_at: str | None = None
    last_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.totals, "u": self.unique, "h": self.hours}
        if self.first_at:
            out["f"], out["l"] = self.first_at, self.last_at
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DayRow:
        return cls(
            totals={k: int(v) for k, v in (data.get("t") or {}).items()},
            unique={k: int(v) for k, v in (data.get("u") or {}).items()},
            hours={
                m: {h: int(n) for h, n in hours.items()}
                for m, hours in (data.get("h") or {}).items()
            },
            first_at=data.get("f"),
            last_at=data.get("l"),
        )


def pack(data: Any) -> bytes:
    return zlib.compress(json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), 9)


def unpack(value: Any) -> Any:
    raw = raw_bytes(value)
    if raw is None:
        return None
    try:
        return json.loads(zlib.decompress(raw))
    except (zlib.error, ValueError):
        return None


def series_rows(item: Mapping[str, Any] | None) -> dict[str, DayRow]:
    """A series chunk item's Days (empty for a missing or damaged item)."""
    data = unpack((item or {}).get("s"))
    if not isinstance(data, dict):
        return {}
    return {day: DayRow.from_json(row) for day, row in data.items() if isinstance(row, dict)}


def series_item(pk: str, start: str, rows: Mapping[str, DayRow], rev: int) -> dict[str, Any]:
    data = {day: rows[day].as_json() for day in sorted(rows)}
    return {"pk": pk, "sk": layout.series_sk(start), "s": pack(data), "rev": rev}


# ---- pieces ------------------------------------------------------------------------------


@dataclass
class Piece:
    """Breakdowns and sketches of one Day or one block of Days."""

    level: int
    start: int  # Day number
    totals: dict[str, int] = field(default_factory=dict)
    parts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # m -> dim -> n
    sketches: dict[str, bytes] = field(default_factory=dict)  # "v"/"av" -> serialized HLL
    first_at: str | None = None
    last_at: str | None = None

    @property
    def days(self) -> tuple[int, int]:
        return self.start, block_end(self.level, self.start)

    def item(self, pk: str) -> dict[str, Any]:
        data: dict[str, Any] = {"t": self.totals, "p": self.parts}
        if self.first_at:
            data["f"], data["l"] = self.first_at, self.last_at
        out: dict[str, Any] = {
            "pk": pk,
            "sk": layout.piece_sk(self.level, day_name(self.start)),
            "b": pack(data),
        }
        for measure, (attribute, _) in SKETCHES.items():
            if measure in self.sketches:
                out[attribute] = zlib.compress(self.sketches[measure], 9)
        return out

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Piece:
        level, start = piece_of_sk(str(item["sk"]))
        data = unpack(item.get("b")) or {}
        piece = cls(
            level=level,
            start=start,
            totals={k: int(v) for k, v in (data.get("t") or {}).items()},
            parts={
                m: {d: {k: int(n) for k, n in c.items()} for d, c in dims.items()}
                for m, dims in (data.get("p") or {}).items()
            },
            first_at=data.get("f"),
            last_at=data.get("l"),
        )
        for measure, (attribute, _) in SKETCHES.items():
            raw = raw_bytes(item.get(attribute))
            if raw is not None:
                try:
                    piece.sketches[measure] = zlib.decompress(raw)
                except zlib.error:
                    continue
        return piece


def cap_parts(
    parts: Mapping[str, Mapping[str, Mapping[str, int]]], cap: int = PIECE_CAP
) -> dict[str, dict[str, dict[str, int]]]:
    """Open-ended breakdowns keep their ``cap`` largest named values; the rest go to OTHER."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for measure, dims in parts.items():
        for dimension, counts in dims.items():
            kept = {k: n for k, n in counts.items() if n}
            if dimension in OPEN_ENDED:
                named = sorted((k for k in kept if k != OTHER), key=lambda k: (-kept[k], k))
                if len(named) > cap:
                    rest = sum(kept[k] for k in named[cap:]) + kept.get(OTHER, 0)
                    kept = {k: kept[k] for k in named[:cap]}
                    kept[OTHER] = rest
            if kept:
                out.setdefault(measure, {})[dimension] = kept
    return out


def sketch_of(visitors: Iterable[str], lg_k: int) -> bytes:
    import datasketches  # only the close builds sketches: kept off the stream handler's import

    sketch = datasketches.hll_sketch(lg_k, datasketches.tgt_hll_type.HLL_4)
    for visitor in sorted(visitors):
        sketch.update(visitor)
    return bytes(sketch.serialize_compact())


def union_bytes(serialized: Sequence[bytes], lg_k: int) -> bytes | None:
    if not serialized:
        return None
    import datasketches

    union = datasketches.hll_union(lg_k)
    for raw in serialized:
        union.update(datasketches.hll_sketch.deserialize(raw))
    return bytes(union.get_result(datasketches.tgt_hll_type.HLL_4).serialize_compact())


def merge(level: int, start: int, pieces: Iterable[Piece]) -> Piece:
    """One block from the pieces that cover it: sums, capped breakdowns, united sketches."""
    out = Piece(level=level, start=start)
    parts: dict[str, dict[str, dict[str, int]]] = {}
    sketches: dict[str, list[bytes]] = {}
    for piece in pieces:
        for measure, n in piece.totals.items():
            out.totals[measure] = out.totals.get(measure, 0) + n
        for measure, dims in piece.parts.items():
            for dimension, counts in dims.items():
                into = parts.setdefault(measure, {}).setdefault(dimension, {})
                for key, n in counts.items():
                    into[key] = into.get(key, 0) + n
        for measure, raw in piece.sketches.items():
            sketches.setdefault(measure, []).append(raw)
        for at in (piece.first_at, piece.last_at):
            if at:
                out.first_at = at if out.first_at is None else min(out.first_at, at)
                out.last_at = at if out.last_at is None else max(out.last_at, at)
    out.parts = cap_parts(parts)
    for measure, raws in sketches.items():
        united = union_bytes(raws, SKETCHES[measure][1])
        if united is not None:
            out.sketches[measure] = united
    return out


def raw_bytes(value: Any) -> bytes | None:
    """Bytes of a Binary attribute: boto3's Binary, bytes, or base64 text."""
    if value is None:
        return None
    raw = getattr(value, "value", value)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True)
        except ValueError:
            return None
    return None
