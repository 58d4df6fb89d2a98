"""The close's side of the ``aggregates`` table: which posts a Day marked active, their live
counters, and the write protocol that keeps a recounted Day (the format: closed.py,
docs/adr/0008-closed-pieces.md).

``write_closed_day`` writes, for every Target with a stored look that Day, posts first, then
artists and the site, in an order any crash can resume from:

1. its level-0 piece ``B0#{day}`` (breakdowns without hours, sketches of its named Visitors);
2. its row in the series chunk ``S#{chunk}`` (totals, exact uniques, hours, first/last),
   written only if the chunk's ``rev`` is still what was read;
3. the blocks that become readable now (``closed.to_build``), merged from existing pieces;
4. its ``TOTAL`` takes the Day once (sums, activity bitmap; written only if ``thru`` is still
   what was read), and a post's ``RANK`` (its by_views entry and listing row) the new
   lifetime figures.

Every write is an overwrite skipped when the stored item already equals it, so a second
close of a Day writes nothing. Live ``D#`` items are never touched: readers use them only
past the watermark, and they expire with the Day's raw events.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalicelib.counts import (
    MEASURES,
    SITE,
    Recount,
    Tally,
    Target,
    breakdowns,
    counter_names,
    measures_only,
)
from chalicelib.errors import VTSError
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.ports import AggregateStore
from chalicelib.storage.tables import RANK_ROW_ATTRIBUTES

logger = logging.getLogger("vts.rollup")

Key = tuple[str, str]
_RACE_RETRIES = 5  # rounds of read-modify-write when another writer changed the item first


class CloseRaced(VTSError):
    """Another writer kept changing a Target's item (a second close running at the same
    time): the close stops before the watermark moves, and the next run resumes the Day."""

    code = "close_raced"


def piece_of(recount: Recount, number: int) -> closed.Piece:
    """A Day's level-0 piece: breakdowns without the hour, sketches of named Visitors."""
    parts: dict[str, dict[str, dict[str, int]]] = {}
    for measure, dimension, value, n in breakdowns(recount.tally.counts):
        if dimension != "h":
            parts.setdefault(measure, {}).setdefault(dimension, {})[value] = n
    piece = closed.Piece(
        level=0,
        start=number,
        totals=measures_only(recount.tally.counts),
        parts=closed.cap_parts(parts),
        first_at=recount.tally.first_at,
        last_at=recount.tally.last_at,
    )
    for measure, visitors in (("v", recount.visitors), ("av", recount.signed_in)):
        if visitors:
            piece.sketches[measure] = closed.sketch_of(visitors, closed.SKETCHES[measure][1])
    return piece


def row_of(recount: Recount) -> closed.DayRow:
    """A Day's row in its series chunk."""
    hours: dict[str, dict[str, int]] = {}
    for measure, dimension, value, n in breakdowns(recount.tally.counts):
        if dimension == "h":
            hours.setdefault(measure, {})[value] = n
    return closed.DayRow(
        totals=measures_only(recount.tally.counts),
        unique=recount.unique,
        hours=hours,
        first_at=recount.tally.first_at,
        last_at=recount.tally.last_at,
    )


def total_with_day(
    target: Target, old: Mapping[str, Any] | None, tally: Tally, day: str
) -> dict[str, Any]:
    """``TOTAL`` after adding one closed Day: sums, first/last View, a post's owner as of the
    Day (Days close in order, so the newest), ``thru`` and the activity bitmap."""
    old = old or {}
    active = closed.Activity.from_item(old).with_day(closed.day_number(day))
    item: dict[str, Any] = {"pk": layout.pk_of(target), "sk": layout.TOTAL_SK}
    for measure in MEASURES:
        n = int(old.get(measure, 0)) + int(tally.counts[measure])
        if n or measure == "v":  # every TOTAL has `v` (0 with only Impressions)
            item[measure] = n
    stamps = [
        s for s in (old.get("first_at"), old.get("last_at"), tally.first_at, tally.last_at) if s
    ]
    if stamps:
        item["first_at"], item["last_at"] = min(stamps), max(stamps)
    owner = tally.owner or old.get("owner")
    if target.kind == "post" and owner:
        item["owner"] = owner
    item["thru"] = day
    item.update(active.attributes())
    return item


def _close_order(target: Target) -> tuple[int, int, str]:
    """Posts first (by id), then artists, then the site."""
    if target.kind == "post":
        return 0, target.post_id, ""
    return (1 if target.kind == "artist" else 2), 0, target.id


class ClosedDays:
    items: AggregateStore

    def first_live_day(self) -> str | None:
        """The oldest Day with live counters (every counted look makes a site Day)."""
        site = self.items.query_range(layout.pk_of(SITE), layout.day_sk(""), layout.day_sk("~"))
        return layout.day_of_sk(str(site[0]["sk"])) if site else None

    def active_posts(self, day: str) -> dict[int, list[int]]:
        """The posts marked active on ``day``, each with the write shards its looks used
        that Day (empty for a post that was not hot): one Query of the Day's markers."""
        activity: dict[int, list[int]] = {}
        for marker in self.items.query_range(*layout.marker_range(day)):
            post_id, shard = layout.marker_of_sk(str(marker["sk"]))
            shards = activity.setdefault(post_id, [])
            if shard is not None:
                shards.append(shard)
        return {post_id: sorted(shards) for post_id, shards in sorted(activity.items())}

    def live_tallies(self, post_ids: Sequence[int], day: str) -> dict[int, Tally]:
        """The posts' live counters of ``day`` (one batch read), for those that have any."""
        keys = {(layout.pk_of(Target.post(p)), layout.day_sk(day)): p for p in post_ids}
        found = self.items.get_items(keys)
        return {
            keys[key]: Tally(
                counts=Counter(counter_names(item)),
                first_at=item.get("first_at"),
                last_at=item.get("last_at"),
                owner=item.get("owner"),
            )
            for key, item in found.items()
        }

    def write_closed_day(
        self, day: str, recounts: Mapping[Target, Recount], between: Callable[[], None]
    ) -> int:
        """Keep the recounted Day of every Target that had a look (module docstring); the
        number of items written. ``between`` runs before each step (the caller's budget may
        stop the Day there: a later close resumes it). Raises ``CloseRaced``."""
        looked = sorted((t for t, r in recounts.items() if r.looked), key=_close_order)
        targets = {layout.pk_of(t): t for t in looked}
        pks = list(targets)
        number = closed.day_number(day)
        pieces = {layout.pk_of(t): piece_of(recounts[t], number) for t in looked}
        between()
        writes = _write_pieces(self.items, pks, pieces)
        between()
        rows = {pk: row_of(recounts[target]) for pk, target in targets.items()}
        writes += _write_series(self.items, day, pks, rows)
        between()
        totals = self.items.get_items((pk, layout.TOTAL_SK) for pk in pks)
        writes += _write_blocks(self.items, number, pks, pieces, totals)
        between()
        tallies = {pk: recounts[target].tally for pk, target in targets.items()}
        writes += _add_to_totals(self.items, day, targets, tallies, totals)
        posts = [pk for pk, target in targets.items() if target.kind == "post"]
        writes += move_ranks(self.items, posts, totals)
        return writes

    def closed_day(self, target: Target, day: str) -> dict[str, Any] | None:
        """A closed Day of one Target as flat counters (``v``, ``vc:BR``, ``vh:13``, ``uv``,
        ``auv``, ``first_at``...), read back from its series row and level-0 piece: for tools
        and tests that check a closed Day. None when the Target had no look that Day."""
        pk = layout.pk_of(target)
        series, piece = closed.series_key(pk, day), closed.piece_key(pk, 0, closed.day_number(day))
        found = self.items.get_items([series, piece])
        row = closed.series_rows(found.get(series)).get(day)
        if row is None:
            return None
        out: dict[str, Any] = dict(row.totals)
        for measure, hours in row.hours.items():
            out.update({f"{measure}h:{hour}": n for hour, n in hours.items()})
        if piece in found:
            for measure, dims in closed.Piece.from_item(found[piece]).parts.items():
                for dimension, values in dims.items():
                    out.update({f"{measure}{dimension}:{value}": n for value, n in values.items()})
        out["uv"], out["auv"] = row.unique.get("v", 0), row.unique.get("av", 0)
        if row.first_at:
            out["first_at"], out["last_at"] = row.first_at, row.last_at
        return out


# ---- the writes, in their order -------------------------------------------------------------


def _put_changed(
    items: AggregateStore, wanted: Sequence[dict[str, Any]], existing: Mapping[Key, Any]
) -> int:
    changed = [i for i in wanted if existing.get((i["pk"], i["sk"])) != i]
    items.put_items(changed)
    return len(changed)


def _write_pieces(
    items: AggregateStore, pks: Sequence[str], pieces: Mapping[str, closed.Piece]
) -> int:
    wanted = [pieces[pk].item(pk) for pk in pks]
    existing = items.get_items((str(i["pk"]), str(i["sk"])) for i in wanted)
    return _put_changed(items, wanted, existing)


def _write_series(
    items: AggregateStore, day: str, pks: Sequence[str], rows: Mapping[str, closed.DayRow]
) -> int:
    """Each Target's chunk takes the Day's row: read, replace the row, write back only if
    ``rev`` is unchanged (two Days of one chunk may be written by different runs)."""
    start = closed.chunk_start(day)
    sk = layout.series_sk(start)
    writes = 0
    pending = list(pks)
    for _ in range(_RACE_RETRIES):
        current = items.get_items((pk, sk) for pk in pending)
        raced = []
        for pk in pending:
            old = current.get((pk, sk))
            stored = closed.series_rows(old)
            if stored.get(day) == rows[pk]:
                continue
            stored[day] = rows[pk]
            rev = int(old["rev"]) if old and old.get("rev") is not None else None
            writes += 1
            if not items.put_if(closed.series_item(pk, start, stored, (rev or 0) + 1), "rev", rev):
                raced.append(pk)
        if not raced:
            return writes
        pending = raced
    raise CloseRaced(f"series chunk {sk} of {pending} kept changing")


def _write_blocks(
    items: AggregateStore,
    number: int,
    pks: Sequence[str],
    pieces: Mapping[str, closed.Piece],
    totals: Mapping[Key, Mapping[str, Any]],
) -> int:
    """The blocks each Target's Day completes (``closed.to_build``), lowest level first,
    each merged from its children: built earlier in this loop, the Day's own piece, or read
    (with the blocks already stored, to skip equal ones) in one batch read."""
    plans: dict[str, tuple[closed.Activity, list[tuple[int, int]]]] = {}
    for pk in pks:
        active = closed.Activity.from_item(totals.get((pk, layout.TOTAL_SK))).with_day(number)
        blocks = closed.to_build(number, active)
        if blocks:
            plans[pk] = (active, blocks)
    wanted: set[Key] = set()
    for pk, (active, blocks) in plans.items():
        built = {(0, number), *blocks}
        for level, start in blocks:
            wanted.add(closed.piece_key(pk, level, start))
            wanted.update(
                closed.piece_key(pk, *child)
                for child in closed.children(level, start, active)
                if child not in built
            )
    found = items.get_items(wanted) if wanted else {}
    out: list[dict[str, Any]] = []
    for pk, (active, blocks) in plans.items():
        made = {(0, number): pieces[pk]}
        for level, start in blocks:
            parts = []
            for child in closed.children(level, start, active):
                piece = made.get(child)
                if piece is None and (item := found.get(closed.piece_key(pk, *child))):
                    piece = closed.Piece.from_item(item)
                if piece is None:  # only if someone deleted it: build what is there
                    child_sk = closed.piece_key(pk, *child)[1]
                    logger.error("close: %s lacks %s for a block; left out", pk, child_sk)
                    continue
                parts.append(piece)
            made[(level, start)] = closed.merge(level, start, parts)
            out.append(made[(level, start)].item(pk))
    return _put_changed(items, out, found)


def _add_to_totals(
    items: AggregateStore,
    day: str,
    targets: Mapping[str, Target],
    tallies: Mapping[str, Tally],
    totals: dict[Key, dict[str, Any]],
) -> int:
    """Each ``TOTAL`` takes the Day once: skipped when ``thru`` is already there, else
    written only if ``thru`` is still what was read. ``totals`` ends up current."""
    writes = 0
    for pk, target in targets.items():
        key = (pk, layout.TOTAL_SK)
        for _ in range(_RACE_RETRIES):
            old = totals.get(key)
            if old is not None and str(old.get("thru", "")) >= day:
                break
            new = total_with_day(target, old, tallies[pk], day)
            writes += 1
            if items.put_if(new, "thru", (old or {}).get("thru")):
                totals[key] = new
                break
            totals.update(items.get_items([key]))
        else:
            raise CloseRaced(f"TOTAL of {pk} kept changing")
    return writes


def move_ranks(
    items: AggregateStore, posts: Sequence[str], totals: Mapping[Key, Mapping[str, Any]]
) -> int:
    """Each post's ``RANK`` (its by_views entry) takes its owner and lifetime figures (the
    listing row the index projects: ``tables.RANK_ROW_ATTRIBUTES``)."""
    wanted: list[dict[str, Any]] = []
    for pk in posts:
        total = totals.get((pk, layout.TOTAL_SK))
        if total and total.get("owner"):
            gpk = layout.pk_of(Target.artist(str(total["owner"])))
            rank = {"pk": pk, "sk": layout.RANK_SK, "gpk": gpk, "v": int(total["v"])}
            rank.update({k: total[k] for k in RANK_ROW_ATTRIBUTES if k in total})
            wanted.append(rank)
    existing = items.get_items((str(r["pk"]), layout.RANK_SK) for r in wanted)
    return _put_changed(items, wanted, existing)
