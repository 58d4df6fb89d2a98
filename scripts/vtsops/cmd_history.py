"""``vts import-history``: Makapix's ``post_stats_daily`` rows as closed Days of VTS, so
artists keep their past (DESIGN §7, docs/adr/0013-imported-history.md).

The rows come from Makapix's database (``--dsn``, a read-only role is enough) or from a JSON
Lines export (``--file``: one row an object, with ``post_id``, ``date``, ``total_views``,
``unique_viewers``, ``total_impressions``, ``views_by_country``, ``views_by_device``, and the
``_authenticated`` variants and ``views_by_type`` when present). Every row is read and
checked, and every post looked up in VTS's registry, before anything is written: a missing
file, a bad line or an unreachable database stops the command with one line and nothing
written. Then the Days are written through the aggregates facade
(``Aggregates.import_closed_days``): a Day VTS closed from its own raw events is never
overwritten, and importing the same rows again changes nothing.

Mapping (the ADR has the reasons):

* Views: Artwork Views. Since the 2026 redesign ``total_views`` counts deduplicated Artwork
  Views (one per Visitor, post and Day, so it equals ``unique_viewers``), as VTS's Views
  do. Where ``views_by_type`` is given, Views are its ``view`` + ``intentional`` and
  Impressions the rest (rows of any era); else ``total_views`` and ``total_impressions``.
* Rows from before the redesign counted every event in ``views_by_country`` and
  ``views_by_device``: those breakdowns are scaled to the Views (largest remainder).
* Countries: ISO codes as they are; Views without one (Makapix keeps none) go to ``??``.
* Devices: Makapix's names are VTS's (desktop, mobile, tablet, player); another name goes
  to ``desktop``, Makapix's own fallback for a user agent it cannot place.
* Distinct viewers: ``unique_viewers`` (at most the Views); an artist's or the site's Day
  sums its posts' (an upper bound). Every figure of uniques over an imported Day is labelled
  approximate.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from chalicelib.counts import apportion

Command = Callable[[argparse.Namespace], int]

DEVICES = ("desktop", "mobile", "tablet", "player")
FALLBACK_DEVICE = "desktop"
UNKNOWN_COUNTRY = "??"  # chalicelib.counts.UNKNOWN_COUNTRY
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# views_by_type keys that are Artwork Views, in any era (Makapix's view_metrics.py).
VIEW_TYPES = ("view", "intentional")


class BadInput(Exception):
    """The input cannot be imported (one line, said as it is)."""


def _fail(message: str, code: int = 2) -> int:
    print(f"vts: error: {message}", file=sys.stderr)
    return code


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Command],
) -> None:
    parser = sub.add_parser(
        "import-history",
        help="load Makapix's post_stats_daily (its database or a JSON Lines export) as closed Days",
        description="Load Makapix's post_stats_daily as closed Days of VTS: Views, distinct "
        "viewers, Impressions, by country and device, for each post and, summed, its artist "
        "and the site. Every row is checked and every post looked up before anything is "
        "written. Days VTS closed from its own raw events are never overwritten; Days VTS "
        "has not closed yet are skipped; importing again changes nothing. Uniques over "
        "ranges holding imported Days are labelled approximate.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dsn",
        help="Makapix's PostgreSQL: a libpq connection string or URI "
        "(postgresql://vts_reader:...@host:5432/makapix); a role with SELECT is enough",
    )
    source.add_argument(
        "--file", type=Path, help="a JSON Lines export of post_stats_daily (one row a line)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="read and check the rows and look their posts up; write nothing",
    )
    commands["import-history"] = cmd_import_history


# ---- Makapix's rows -> figures ---------------------------------------------------------------


@dataclass
class Notes:
    """What the mapping changed, for the summary."""

    devices: Counter[str] = field(default_factory=Counter)  # name -> Views mapped to desktop
    scaled: int = 0  # rows whose breakdowns were scaled to their Views (older rows)
    clamped: int = 0  # rows whose signed-in figures exceeded everyone's


@dataclass(frozen=True)
class Row:
    post_id: int
    day: str
    figures: Any  # chalicelib.storage.aggregates.history.ImportedDay


def _count(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{name} must be a whole number, not {value!r}")
    if value < 0 or value != int(value):
        raise BadInput(f"{name} must be a whole number >= 0, not {value!r}")
    return int(value)


def _counts(raw: Mapping[str, Any], name: str) -> dict[str, int]:
    value = raw.get(name)
    if value is None:
        return {}
    if isinstance(value, str):  # a JSON column exported as text
        try:
            value = json.loads(value)
        except ValueError:
            raise BadInput(f"{name} must be an object of counts") from None
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be an object of counts, not {value!r}")
    out: dict[str, int] = {}
    for key, n in value.items():
        label = f"{name}.{key}"
        out[str(key)] = out.get(str(key), 0) + _count({label: n}, label)
    return {k: n for k, n in out.items() if n}


def _post_id(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadInput(f"post_id must be a positive integer, not {value!r}")
    return value


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        raise BadInput(f"date must be a date (YYYY-MM-DD), not {value!r}")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise BadInput(f"date must be a date (YYYY-MM-DD), not {value!r}")


def _side(
    raw: Mapping[str, Any], suffix: str, notes: Notes
) -> tuple[int, int, int, dict[str, dict[str, int]]]:
    """Views, distinct viewers, Impressions and the Views' breakdowns of one row, for
    everyone (``suffix`` "") or signed-in viewers (``_authenticated``)."""
    total_views = _count(raw, f"total_views{suffix}")
    unique = _count(raw, f"unique_viewers{suffix}")
    impressions = _count(raw, f"total_impressions{suffix}")
    by_type = _counts(raw, f"views_by_type{suffix}")
    views = total_views
    if by_type:
        views = sum(by_type.get(k, 0) for k in VIEW_TYPES)
        impressions = sum(n for k, n in by_type.items() if k not in VIEW_TYPES)
    countries = _counts(raw, f"views_by_country{suffix}")
    devices = _counts(raw, f"views_by_device{suffix}")
    # Rows from before the redesign counted every event (Views and Impressions alike) in
    # their breakdowns: scale them to the Views.
    counted = max(total_views, sum(countries.values()), sum(devices.values()))
    if counted > views:
        countries, devices = apportion(countries, views, counted), apportion(devices, views, counted)
        if countries or devices:
            notes.scaled += 1
    by_country: dict[str, int] = {}
    for code, n in countries.items():
        key = code.upper() if _COUNTRY.match(code.upper()) else UNKNOWN_COUNTRY
        by_country[key] = by_country.get(key, 0) + n
    if views > sum(by_country.values()):
        by_country[UNKNOWN_COUNTRY] = (
            by_country.get(UNKNOWN_COUNTRY, 0) + views - sum(by_country.values())
        )
    by_device: dict[str, int] = {}
    for name, n in devices.items():
        key = name.lower()
        if key not in DEVICES:
            notes.devices[name] += n
            key = FALLBACK_DEVICE
        by_device[key] = by_device.get(key, 0) + n
    viewers = min(unique, views) if unique else views
    parts = {d: c for d, c in (("c", by_country), ("d", by_device)) if c}
    return views, viewers, impressions, parts


def figures_of(raw: Mapping[str, Any], notes: Notes) -> Row:
    """One ``post_stats_daily`` row as VTS's figures of a post's Day (module docstring)."""
    from chalicelib.storage.aggregates.history import ImportedDay

    if "post_id" not in raw or "date" not in raw:
        raise BadInput("a row needs post_id and date")
    post_id, day = _post_id(raw["post_id"]), _day(raw["date"])
    views, viewers, impressions, parts = _side(raw, "", notes)
    a_views, a_viewers, a_impressions, a_parts = _side(raw, "_authenticated", notes)
    if a_views > views or a_impressions > impressions:
        notes.clamped += 1
        a_views, a_impressions = min(a_views, views), min(a_impressions, impressions)
        a_parts = {d: apportion(c, a_views, max(sum(c.values()), 1)) for d, c in a_parts.items()}
    a_viewers = min(a_viewers, a_views)
    measure_parts = {m: p for m, p in (("v", parts), ("av", a_parts)) if p}
    return Row(
        post_id,
        day,
        ImportedDay(
            totals={"v": views, "i": impressions, "av": a_views, "ai": a_impressions},
            unique={"v": viewers, "av": a_viewers},
            parts=measure_parts,
        ),
    )


# ---- the sources --------------------------------------------------------------------------------


def rows_from_file(path: Path, notes: Notes) -> list[Row]:
    """Every row of a JSON Lines export, checked; ``BadInput`` names the first bad line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from None
    rows: list[Row] = []
    seen: dict[tuple[int, str], int] = {}
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError as error:
                    raise BadInput(f"{path}, line {number}: not JSON ({error})") from None
                if not isinstance(data, dict):
                    raise BadInput(f"{path}, line {number}: a row must be a JSON object")
                try:
                    row = figures_of(data, notes)
                except BadInput as error:
                    raise BadInput(f"{path}, line {number}: {error}") from None
                first = seen.setdefault((row.post_id, row.day), number)
                if first != number:
                    raise BadInput(
                        f"{path}, line {number}: a second row for post {row.post_id} on "
                        f"{row.day} (the first is line {first})"
                    )
                rows.append(row)
        except UnicodeDecodeError:
            raise BadInput(f"{path}: not UTF-8 text") from None
    return rows


def rows_from_database(dsn: str, notes: Notes) -> list[Row]:
    """Every ``post_stats_daily`` row of Makapix's database (one read-only transaction)."""
    try:
        import psycopg
        from psycopg.rows import dict_row
    except ImportError:
        raise BadInput("--dsn needs psycopg: pip install 'psycopg[binary]'") from None
    try:
        with psycopg.connect(dsn, connect_timeout=10, row_factory=dict_row) as connection:
            connection.read_only = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM post_stats_daily ORDER BY date, post_id")
                raw_rows = cursor.fetchall()
    except psycopg.OperationalError as error:
        raise BadInput(f"cannot reach Makapix's database: {_first_line(error)}") from None
    except psycopg.ProgrammingError as error:
        raise BadInput(f"bad --dsn or query: {_first_line(error)}") from None
    except psycopg.Error as error:
        raise BadInput(f"cannot read post_stats_daily: {_first_line(error)}") from None
    rows = []
    for raw in raw_rows:
        try:
            rows.append(figures_of(raw, notes))
        except BadInput as error:
            where = f"post {raw.get('post_id')} on {raw.get('date')}"
            raise BadInput(f"post_stats_daily row of {where}: {error}") from None
    return rows


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# ---- the command -----------------------------------------------------------------------------


def _span(days: Iterable[str]) -> str:
    ordered = sorted(set(days))
    return f"{ordered[0]}..{ordered[-1]}" if ordered else "none"


def _ids(ids: Iterable[int], limit: int = 10) -> str:
    ordered = sorted(ids)
    shown = ", ".join(str(i) for i in ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


def cmd_import_history(args: argparse.Namespace) -> int:
    from chalicelib.config import get_settings
    from chalicelib.errors import VTSError
    from chalicelib.wiring import dynamodb_services
    from vtsops.progress import bar

    notes = Notes()
    try:
        rows = rows_from_database(args.dsn, notes) if args.dsn else rows_from_file(args.file, notes)
    except BadInput as error:
        return _fail(str(error))
    posts = {row.post_id for row in rows}
    print(f"read {len(rows)} rows of {len(posts)} posts on Days {_span(r.day for r in rows)}")
    try:
        services = dynamodb_services(get_settings())
        registered = services.registry.get_posts(posts) if posts else {}
        watermark = services.aggregates.watermark()
    except VTSError as error:
        return _fail(error.message, 1)
    except Exception as error:  # botocore's own (no endpoint, no credentials...)
        return _fail(f"cannot reach VTS's tables: {_first_line(error)}", 1)
    owners = {post_id: record.owner_id for post_id, record in registered.items()}
    unknown = posts - set(owners)
    known_rows = {(r.post_id, r.day): r.figures for r in rows if r.post_id in owners}
    if unknown:
        print(
            f"skipped: {len(rows) - len(known_rows)} rows of {len(unknown)} posts VTS does "
            f"not know ({_ids(unknown)}): register them first (scripts/makapix-sync)"
        )
    _print_notes(notes)
    if watermark is None:
        return _fail(
            "VTS has closed no Day yet, so it would read imported Days as open: "
            "run the daily close first (vts close-days), then import",
            1,
        )
    if args.check:
        later = sum(1 for (_, day) in known_rows if day > watermark)
        print(
            f"checked: {len(known_rows)} rows to import, {later} of them after the watermark "
            f"({watermark}); nothing written (--check)"
        )
        return 0
    estimate = len({p for p, _ in known_rows}) + len(set(owners.values())) + 1
    try:
        with bar(estimate, "importing Days") as advance:

            def progress(done: int, total: int) -> None:
                advance(round(done * estimate / total) if total else estimate)

            report = services.aggregates.import_closed_days(known_rows, owners, progress)
    except VTSError as error:
        return _fail(error.message, 1)
    except Exception as error:
        return _fail(
            f"VTS's tables failed part-way (run it again: it resumes): {_first_line(error)}", 1
        )
    _print_report(report.as_dict(), watermark)
    return 0


def _print_notes(notes: Notes) -> None:
    if notes.devices:
        names = ", ".join(f"{name!r} ({n} Views)" for name, n in sorted(notes.devices.items()))
        print(f"mapped: device names VTS does not use, counted as {FALLBACK_DEVICE}: {names}")
    if notes.scaled:
        print(
            f"scaled: {notes.scaled} rows from before Makapix's redesign (breakdowns to their Views)"
        )
    if notes.clamped:
        print(f"clamped: {notes.clamped} rows whose signed-in figures exceeded everyone's")


def _print_report(report: Mapping[str, Any], watermark: str) -> None:
    print(
        f"imported: {report['post_days']} post Days, {report['artist_days']} artist Days, "
        f"{report['site_days']} site Days on Days {_span(report['days'])}; "
        f"{report['writes']} items written"
    )
    lines = [
        (
            "skipped",
            report["vts_closed"],
            "rows on Days VTS closed from its own events (never overwritten)",
        ),
        (
            "skipped",
            report["not_closed"],
            f"rows on Days VTS has not closed yet (after {watermark})",
        ),
        ("unchanged", report["already"], "rows already imported"),
        (
            "left out",
            report["left_out"],
            "rows on Days imported before without their post (those Days' artist and site "
            "sums stay as they were)",
        ),
        ("skipped", report["empty"], "rows with neither Views nor Impressions"),
        ("redone", report["redone"], "Targets the daily close replaced meanwhile, written again"),
    ]
    for label, n, what in lines:
        if n:
            print(f"{label}: {n} {what}")
    print("uniques over ranges holding imported Days are labelled approximate")
