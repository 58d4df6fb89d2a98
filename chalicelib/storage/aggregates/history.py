"""Imported Days: closed Days whose figures come from another system's daily rows (Makapix's
``post_stats_daily``, ``scripts/vts import-history``), kept beside the Days VTS closes from
its own raw events (docs/adr/0013-imported-history.md).

An imported Day is stored as a closed Day is (closed.py, ADR 0008): its row in the series
chunk, a level-0 piece, the blocks that hold it, its place in ``TOTAL`` (sums and activity
bitmap) and, for a post, its ``RANK``. It has no Visitors (no sketch), no hour buckets and
no first/last instant; its row's ``unique`` holds the source's distinct viewers and the
key ``reading.IMPORTED``, so readers label uniques over it approximate.

Closed-Day storage assumes Days close in order; imported Days are usually older than the
first Day VTS closed. ``import_closed_days`` keeps the format's invariants whatever the
order:

* Only Days at or before the watermark are imported (readers take a later Day as open).
* A Day the site holds from VTS's own close is never touched, for any Target: every look
  counts for the site, so that Day's posts and artists are VTS's as well.
* Per Target, a Day already in the activity bitmap is left as it is: re-importing changes
  nothing. ``TOTAL`` takes the other Days (sums and bits together, in one write) under a
  compare-and-set on its bitmap, which every writer that adds a Day changes.
* The blocks that an inserted Day changes or makes exist (``closed.exists`` over the new
  bitmap) are rebuilt, lowest level first, from their children, before ``TOTAL`` makes them
  readable; any other block holds the same Days as before.
* Posts first, then artists, then the site: an artist's and the site's Day are the sums of
  the Day's post rows imported. Once the site holds an imported Day, a post row of that Day
  not imported then is left out (the sums are not reopened); a post or artist Day written
  before an interruption (its row is there, not yet its bit in ``TOTAL``) is completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.counts import MEASURES, SITE, Target, measures_only
from chalicelib.errors import VTSError
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.aggregates.closed import Activity, DayRow, Piece
from chalicelib.storage.aggregates.closing import move_ranks
from chalicelib.storage.aggregates.reading import IMPORTED
from chalicelib.storage.ports import AggregateStore

Key = tuple[str, str]
Parts = dict[str, dict[str, dict[str, int]]]  # measure -> dimension -> value -> n

# Targets written together (their reads are batched).
GROUP = 25
_RETRIES = 5  # rounds of read-modify-write when another writer changed the item first
# Rounds of the final check that every TOTAL written still holds its imported Days.
_CHECKS = 3


class HistoryRefused(VTSError):
    """The import cannot start (nothing was written)."""

    code = "history_refused"


class HistoryRaced(VTSError):
    """Another writer kept changing a Target's item: run the import again (it resumes)."""

    code = "history_raced"


@dataclass(frozen=True)
class ImportedDay:
    """One Target's Day as another system counted it: totals (``v``, ``i``, ``av``,
    ``ai``), its distinct viewers (``v``, ``av``) and breakdowns of Views (measure ->
    dimension -> value -> n; countries and devices)."""

    totals: Mapping[str, int]
    unique: Mapping[str, int] = field(default_factory=dict)
    parts: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)

    @property
    def looked(self) -> bool:
        return bool(self.totals.get("v") or self.totals.get("i"))

    def plus(self, other: ImportedDay) -> ImportedDay:
        totals = dict(self.totals)
        for measure, n in other.totals.items():
            totals[measure] = totals.get(measure, 0) + n
        unique = dict(self.unique)
        for measure, n in other.unique.items():
            unique[measure] = unique.get(measure, 0) + n
        parts: Parts = {m: {d: dict(c) for d, c in dims.items()} for m, dims in self.parts.items()}
        for measure, dims in other.parts.items():
            for dimension, counts in dims.items():
                into = parts.setdefault(measure, {}).setdefault(dimension, {})
                for value, n in counts.items():
                    into[value] = into.get(value, 0) + n
        return ImportedDay(totals, unique, parts)

    def row(self) -> DayRow:
        """Its row in a series chunk: no hours, no instants, ``unique`` marked imported."""
        unique = {m: int(self.unique.get(m, 0)) for m in ("v", "av")}
        unique[IMPORTED] = 1
        return DayRow(totals=measures_only(self.totals), unique=unique)

    def piece(self, number: int) -> Piece:
        """Its level-0 piece: breakdowns, no sketch."""
        parts = {
            m: {d: {k: int(n) for k, n in c.items()} for d, c in dims.items()}
            for m, dims in self.parts.items()
        }
        return Piece(
            level=0, start=number, totals=measures_only(self.totals), parts=closed.cap_parts(parts)
        )


@dataclass
class ImportReport:
    """What ``import_closed_days`` did, in post rows (one post's Day) unless said."""

    rows: int = 0  # post rows handed in
    empty: int = 0  # neither Views nor Impressions: nothing to keep
    not_closed: int = 0  # on Days after the watermark (VTS has not closed them)
    vts_closed: int = 0  # on Days VTS closed from its own raw events: never overwritten
    already: int = 0  # the post already holds the Day: unchanged
    left_out: int = 0  # on Days imported before without this post: left out
    post_days: int = 0  # Days added now, per kind of Target
    artist_days: int = 0
    site_days: int = 0
    redone: int = 0  # Targets whose TOTAL another writer replaced meanwhile: written again
    writes: int = 0  # items written
    days: list[str] = field(default_factory=list)  # the Days that took post rows now

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "empty": self.empty,
            "not_closed": self.not_closed,
            "vts_closed": self.vts_closed,
            "already": self.already,
            "left_out": self.left_out,
            "post_days": self.post_days,
            "artist_days": self.artist_days,
            "site_days": self.site_days,
            "redone": self.redone,
            "writes": self.writes,
            "days": self.days,
        }


def is_imported(row: DayRow | None) -> bool:
    return row is not None and bool(row.unique.get(IMPORTED))


@dataclass
class _Plan:
    """One Target's imported Days: Day -> (figures, whether the site already holds it)."""

    target: Target
    owner: str | None
    days: dict[str, tuple[ImportedDay, bool]] = field(default_factory=dict)

    @property
    def pk(self) -> str:
        return layout.pk_of(self.target)


@dataclass
class _Job:
    """The Days one Target takes now, and what was read of it."""

    plan: _Plan
    total: dict[str, Any] | None
    days: dict[str, ImportedDay]
    written: dict[str, Any] | None = None  # the TOTAL this import wrote


class ImportedDays:
    items: AggregateStore

    def import_closed_days(
        self,
        post_days: Mapping[tuple[int, str], ImportedDay],
        owners: Mapping[int, str],
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Keep ``post_days`` ((post, Day) -> figures; each post's owner in ``owners``) as
        closed Days of their posts, artists and the site (module docstring). Reads first
        (the watermark, the site's Days), then writes Target by Target; ``progress(done,
        total)`` counts Targets. Raises ``HistoryRefused`` before any write when VTS has
        closed no Day yet, ``HistoryRaced`` when another writer keeps changing an item."""
        report = ImportReport(rows=len(post_days))
        watermark = self.items.get_watermark()
        if watermark is None:
            raise HistoryRefused(
                "VTS has closed no Day yet, so it would read imported Days as open: "
                "run the daily close first (vts close-days), then import"
            )
        unknown = sorted({post for post, _ in post_days if post not in owners})
        if unknown:
            raise HistoryRefused(f"posts without an owner: {unknown[:10]}")
        wanted: dict[tuple[int, str], ImportedDay] = {}
        for (post_id, day), figures in post_days.items():
            if not figures.looked:
                report.empty += 1
            elif day > watermark:
                report.not_closed += 1
            else:
                wanted[(post_id, day)] = figures
        if not wanted:
            return report
        site_days = self._site_days(sorted({day for _, day in wanted}))
        plans: dict[Target, _Plan] = {}
        for (post_id, day), figures in sorted(wanted.items()):
            state = site_days.get(day)
            if state == "vts":
                report.vts_closed += 1
                continue
            owner = owners[post_id]
            for target in (Target.post(post_id), Target.artist(owner), SITE):
                plan = plans.setdefault(
                    target, _Plan(target, owner if target.kind == "post" else None)
                )
                held = plan.days.get(day)
                plan.days[day] = (
                    figures if held is None else held[0].plus(figures),
                    state == "imported",
                )
        ordered = sorted(plans.values(), key=lambda p: _order(p.target))
        jobs: list[_Job] = []
        for start in range(0, len(ordered), GROUP):
            group = ordered[start : start + GROUP]
            jobs += self._write_group(group, report)
            if progress:
                progress(min(start + GROUP, len(ordered)), len(ordered))
        report.redone = self._check_totals(jobs, report)
        report.days = sorted(
            {d for job in jobs if job.plan.target.kind == "post" for d in job.days}
        )
        return report

    # ---- reads --------------------------------------------------------------------------------

    def _site_days(self, days: list[str]) -> dict[str, str]:
        """For each Day the site holds: ``vts`` (closed from raw events) or ``imported`` (in
        its ``TOTAL``: that Day's import is complete)."""
        pk = layout.pk_of(SITE)
        key = (pk, layout.TOTAL_SK)
        active = Activity.from_item(self.items.get_items([key]).get(key))
        rows: dict[str, DayRow] = {}
        first, last = closed.chunk_start(days[0]), closed.chunk_start(days[-1])
        for item in self.items.query_range(pk, layout.series_sk(first), layout.series_sk(last)):
            rows.update(closed.series_rows(item))
        out = {}
        for day in days:
            row = rows.get(day)
            if closed.day_number(day) in active:
                out[day] = "imported" if is_imported(row) else "vts"
            elif row is not None and not is_imported(row):
                out[day] = "vts"  # a close that has not finished: never touched
            # else not held yet (or an interrupted import's row, not in TOTAL): to import
        return out

    # ---- writes -------------------------------------------------------------------------------

    def _write_group(self, group: list[_Plan], report: ImportReport) -> list[_Job]:
        """Pieces, series rows, blocks, TOTAL and RANK of a few Targets."""
        keys: set[Key] = set()
        for plan in group:
            keys.add((plan.pk, layout.TOTAL_SK))
            keys.update(closed.series_key(plan.pk, day) for day in plan.days)
        found = self.items.get_items(keys)
        jobs = []
        for plan in group:
            total = found.get((plan.pk, layout.TOTAL_SK))
            active = Activity.from_item(total)
            taking: dict[str, ImportedDay] = {}
            for day, (figures, site_has_it) in sorted(plan.days.items()):
                row = closed.series_rows(found.get(closed.series_key(plan.pk, day))).get(day)
                is_post = int(plan.target.kind == "post")
                if closed.day_number(day) in active:
                    report.already += is_post
                elif row is not None and not is_imported(row):
                    report.vts_closed += is_post  # VTS's own (an unfinished close): never
                elif site_has_it and row is None:
                    report.left_out += is_post
                else:
                    taking[day] = figures
            if taking:
                jobs.append(_Job(plan, total, taking))
        report.writes += self._put(
            [f.piece(closed.day_number(d)).item(j.plan.pk) for j in jobs for d, f in j.days.items()]
        )
        for job in jobs:
            report.writes += self._write_rows(job, found)
        for job in jobs:
            report.writes += self._settle(job, report)
        posts = [job.plan.pk for job in jobs if job.plan.target.kind == "post"]
        totals = {(job.plan.pk, layout.TOTAL_SK): job.written or {} for job in jobs}
        report.writes += move_ranks(self.items, posts, totals)
        return jobs

    def _put(self, items: list[dict[str, Any]]) -> int:
        if items:
            self.items.put_items(items)
        return len(items)

    def _write_rows(self, job: _Job, found: Mapping[Key, dict[str, Any]]) -> int:
        """The Days' rows into their series chunks, each chunk written only if its ``rev`` is
        still what was read; a row VTS wrote is never replaced."""
        pk = job.plan.pk
        by_chunk: dict[str, dict[str, ImportedDay]] = {}
        for day, figures in job.days.items():
            by_chunk.setdefault(closed.chunk_start(day), {})[day] = figures
        writes = 0
        for start, days in sorted(by_chunk.items()):
            key = (pk, layout.series_sk(start))
            old = found.get(key)
            for _ in range(_RETRIES):
                stored = closed.series_rows(old)
                changed = False
                for day, figures in days.items():
                    current, row = stored.get(day), figures.row()
                    if current == row or (current is not None and not is_imported(current)):
                        continue
                    stored[day], changed = row, True
                if not changed:
                    break
                rev = int(old["rev"]) if old and old.get("rev") is not None else None
                if self.items.put_if(
                    closed.series_item(pk, start, stored, (rev or 0) + 1), "rev", rev
                ):
                    writes += 1
                    break
                old = self.items.get_items([key]).get(key)
            else:
                raise HistoryRaced(f"series chunk {key} kept changing")
        return writes

    def _settle(self, job: _Job, report: ImportReport, *, count: bool = True) -> int:
        """The blocks the Days change or make exist, then ``TOTAL`` takes the Days (sums and
        bits), written only if its bitmap is still what was read; on a race, read again and
        redo both for the Days still missing."""
        pk = job.plan.pk
        key = (pk, layout.TOTAL_SK)
        total = job.total
        writes = 0
        for _ in range(_RETRIES):
            old = Activity.from_item(total)
            adding = {d: f for d, f in job.days.items() if closed.day_number(d) not in old}
            if not adding:
                job.written = total
                return writes
            new = Activity([*old.days, *(closed.day_number(d) for d in adding)])
            writes += self._write_blocks(pk, old, new, adding)
            item = _total_with(job.plan, total, adding)
            writes += 1
            if self.items.put_if(item, "act", (total or {}).get("act")):
                job.written = item
                kind = job.plan.target.kind
                counted = len(adding) if count else 0
                if kind == "post":
                    report.post_days += counted
                elif kind == "artist":
                    report.artist_days += counted
                else:
                    report.site_days += counted
                return writes
            total = self.items.get_items([key]).get(key)
        raise HistoryRaced(f"TOTAL of {pk} kept changing")

    def _write_blocks(
        self, pk: str, old: Activity, new: Activity, adding: Mapping[str, ImportedDay]
    ) -> int:
        """Every block that exists over ``new`` and either holds an added Day or did not
        exist over ``old``, merged from its children (over ``new``), lowest level first. Any
        other existing block holds the same Days as before."""
        added = sorted(closed.day_number(d) for d in adding)
        made: dict[tuple[int, int], Piece] = {
            (0, closed.day_number(d)): f.piece(closed.day_number(d)) for d, f in adding.items()
        }
        rebuild = sorted(_changed_blocks(old, new, added))
        if not rebuild:
            return 0
        wanted = {closed.piece_key(pk, *block) for block in rebuild}
        for level, start in rebuild:
            wanted.update(
                closed.piece_key(pk, *child)
                for child in closed.children(level, start, new)
                if child not in made and child not in rebuild
            )
        found = self.items.get_items(wanted)
        out = []
        for level, start in rebuild:
            parts = []
            for child in closed.children(level, start, new):
                piece = made.get(child)
                if piece is None and (item := found.get(closed.piece_key(pk, *child))):
                    piece = Piece.from_item(item)
                if piece is not None:
                    parts.append(piece)
            made[(level, start)] = closed.merge(level, start, parts)
            out.append(made[(level, start)].item(pk))
        changed = [i for i in out if found.get((i["pk"], i["sk"])) != i]
        return self._put(changed)

    def _check_totals(self, jobs: list[_Job], report: ImportReport) -> int:
        """Read every ``TOTAL`` written again: one the daily close replaced meanwhile from an
        older read (its compare-and-set is on ``thru``, which an import leaves as it is)
        lacks imported Days, and blocks it built may lack them too. Such a Target takes its
        Days again, blocks rebuilt. The number of Targets redone."""
        redone: set[Target] = set()
        pending = [job for job in jobs if job.written is not None]
        for _ in range(_CHECKS):
            found = self.items.get_items((job.plan.pk, layout.TOTAL_SK) for job in pending)
            again = []
            for job in pending:
                now = found.get((job.plan.pk, layout.TOTAL_SK))
                active = Activity.from_item(now)
                if all(closed.day_number(d) in active for d in job.days):
                    continue
                redone.add(job.plan.target)
                job.total, job.written = now, None
                again.append(job)
            if not again:
                break
            for job in again:
                # Blocks holding the Days may have been rebuilt without them: all again.
                report.writes += self._redo(job, report)
            pending = again
        return len(redone)

    def _redo(self, job: _Job, report: ImportReport) -> int:
        missing = Activity.from_item(job.total)
        job.days = {d: f for d, f in job.days.items() if closed.day_number(d) not in missing}
        writes = self._settle(job, report, count=False)
        if job.plan.target.kind == "post" and job.written:
            writes += move_ranks(
                self.items, [job.plan.pk], {(job.plan.pk, layout.TOTAL_SK): job.written}
            )
        return writes


def _order(target: Target) -> tuple[int, int, str]:
    """Posts first (by id), then artists, then the site (as the close)."""
    if target.kind == "post":
        return 0, target.post_id, ""
    return (1 if target.kind == "artist" else 2), 0, target.id


def _changed_blocks(old: Activity, new: Activity, added: Iterable[int]) -> set[tuple[int, int]]:
    """Blocks to (re)build when ``added`` Days join ``old`` (giving ``new``): those that exist
    over ``new`` and hold an added Day, or did not exist over ``old``. A block that newly
    exists without holding an added Day does so because the last active Day moved past its
    end, so it holds the old last Day: one candidate per level."""
    added = list(added)
    out: set[tuple[int, int]] = set()
    for level in range(1, closed.MAX_LEVEL + 1):
        size = 1 << level
        candidates = {n - n % size for n in added}
        if old.last is not None:
            candidates.add(old.last - old.last % size)
        for start in candidates:
            end = closed.block_end(level, start)
            if not closed.exists(level, start, new):
                continue
            holds_added = any(start <= n <= end for n in added)
            if holds_added or not closed.exists(level, start, old):
                out.add((level, start))
    return out


def _total_with(
    plan: _Plan, old: Mapping[str, Any] | None, adding: Mapping[str, ImportedDay]
) -> dict[str, Any]:
    """``TOTAL`` after taking imported Days: sums and bits. ``thru`` (the last Day the close
    added) stays; a ``TOTAL`` made now takes the newest imported Day as ``thru``, so a
    close racing to make it fails its compare-and-set and reads again. A post's owner stays
    the close's when there is one."""
    old = dict(old or {})
    item: dict[str, Any] = {**old, "pk": plan.pk, "sk": layout.TOTAL_SK}
    for measure in MEASURES:
        n = int(old.get(measure, 0)) + sum(int(f.totals.get(measure, 0)) for f in adding.values())
        if n or measure == "v":
            item[measure] = n
    if plan.target.kind == "post" and plan.owner and not old.get("owner"):
        item["owner"] = plan.owner
    if not old.get("thru"):
        item["thru"] = max(adding)
    active = Activity([*Activity.from_item(old).days, *(closed.day_number(d) for d in adding)])
    item.update(active.attributes())
    return item
