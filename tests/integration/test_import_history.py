"""``vts import-history``: Makapix's ``post_stats_daily`` as closed Days (ADR 0013).

Over moto (the real tables) through the in-process CLI and the stats routes; over the
in-memory fakes for the storage rules against random activity; and from a real PostgreSQL
holding Makapix's schema (tests/makapix_db.py) for ``--dsn``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from vtsops.cli import main

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.counts import SITE, Target
from chalicelib.days import day_name, day_number
from chalicelib.model import ViewEvent
from chalicelib.rollup.close import DayCloser
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.aggregates.history import ImportedDay, is_imported
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
from chalicelib.wiring import Services, dynamodb_services, memory_services, use
from tests.conftest import auth, free_port
from tests.makapix_db import Cluster, Makapix, running_cluster
from tests.unit.rollupkit import batch

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POSTS = {1: "ana", 2: "ana", 3: "bo"}
POST_1 = Target.post(1)
Items = dict[tuple[str, str], dict[str, Any]]


# ---- helpers ------------------------------------------------------------------------------------


def looks_on(day: str, post: int, n: int, *, owner: str | None = None) -> list[ViewEvent]:
    at = datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)
    return [
        ViewEvent(
            post_id=post,
            owner_id=owner or POSTS[post],
            intent="view",
            occurred_at=at + timedelta(minutes=k),
            visitor=f"h:{post}-{day}-{k}",
            authenticated=k == 0,
            source="web",
            device="mobile",
            country="PT",
        )
        for k in range(n)
    ]


def vts_records(services: Services, events: Iterable[ViewEvent]) -> None:
    """Looks as VTS records them: stored, then the stream's live counters and markers."""
    stored = [e for e in events if services.events.put_view(e)]
    services.aggregator.handle(batch(stored))


def vts_closes(services: Services, through: str) -> None:
    """VTS's daily close of every Day through ``through`` (from the first live one)."""
    aggregates = services.aggregates
    if aggregates.watermark() is None:
        first = aggregates.first_live_day()
        assert first is not None
        aggregates.advance_watermark(day_name(day_number(first) - 1))
    closer = DayCloser(
        aggregates, services.events, services.clock, grace_s=0, budget_s=600, ttl_days=35
    )
    report = closer.run(NOW + timedelta(days=30), through=through)
    assert report.watermark == through and report.stopped is None


def row(post: int, day: str, views: int, **more: Any) -> dict[str, Any]:
    """A post_stats_daily row as Makapix writes it since the redesign."""
    out: dict[str, Any] = {
        "post_id": post,
        "date": day,
        "total_views": views,
        "unique_viewers": views,
        "total_impressions": more.pop("impressions", 0),
        "views_by_country": more.pop("countries", {"BR": views}),
        "views_by_device": more.pop("devices", {"desktop": views}),
    }
    out.update(more)
    return out


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def scan(settings: Settings) -> Items:
    from chalicelib.storage import codec
    from chalicelib.wiring import dynamodb_client

    client = dynamodb_client(settings)
    out: Items = {}
    kwargs: dict[str, Any] = {"TableName": settings.aggregates_table}
    while True:
        page = client.scan(**kwargs)
        for raw in page["Items"]:
            item = codec.from_typed(raw)
            out[(str(item["pk"]), str(item["sk"]))] = item
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _raw(value: Any) -> Any:
    return closed.raw_bytes(value) if not isinstance(value, (str, int, float)) else value


def check_invariants(items: Items) -> None:
    """What readers rely on, for every Target: a level-0 piece and a row for each active
    Day, every block ``closed.exists`` names stored and holding exactly its active Days'
    figures, ``TOTAL`` the sums of its active Days' rows, and the site's Days the sums of
    the posts'."""
    targets = {pk for pk, sk in items if sk == layout.TOTAL_SK}
    rows_of: dict[str, dict[str, closed.DayRow]] = {}
    for pk in targets:
        total = items[(pk, layout.TOTAL_SK)]
        active = closed.Activity.from_item({**total, "act": _raw(total.get("act"))})
        rows: dict[str, closed.DayRow] = {}
        for (ipk, sk), item in items.items():
            if ipk == pk and sk.startswith("S#"):
                rows.update(closed.series_rows({"s": _raw(item["s"])}))
        rows_of[pk] = rows
        assert {day_number(d) for d in rows} == set(active.days), pk
        sums: dict[str, int] = {}
        for r in rows.values():
            for m, n in r.totals.items():
                sums[m] = sums.get(m, 0) + n
        assert {m: n for m, n in total.items() if m in ("v", "i", "av", "ai") and n} == sums, pk
        first, last = active.days[0], active.days[-1]
        for level in range(closed.MAX_LEVEL + 1):
            size = 1 << level
            for start in range(first - first % size, last + 1, size):
                if not closed.exists(level, start, active):
                    continue
                item = items.get((pk, layout.piece_sk(level, day_name(start))))
                assert item is not None, (pk, level, day_name(start))
                piece = closed.Piece.from_item({**item, "b": _raw(item["b"])})
                want: dict[str, int] = {}
                for n in active.days:
                    if start <= n <= closed.block_end(level, start):
                        for m, c in rows[day_name(n)].totals.items():
                            want[m] = want.get(m, 0) + c
                assert piece.totals == want, (pk, level, day_name(start))
    site: dict[str, dict[str, int]] = {}
    for pk, rows in rows_of.items():
        if pk.startswith("P#"):
            for day, r in rows.items():
                into = site.setdefault(day, {})
                for m, n in r.totals.items():
                    into[m] = into.get(m, 0) + n
    assert {d: r.totals for d, r in rows_of.get("SITE", {}).items()} == site


def memory_items(services: Services) -> Items:
    store = services.aggregate_items
    assert isinstance(store, MemoryAggregateStore)
    return dict(store.items)


# ---- the command over moto, read back through the routes ------------------------------------------


@pytest.fixture
def world(aws_env: Settings) -> Iterator[Services]:
    """Three registered posts; VTS recorded and closed 2026-11-20 and 21 on its own."""
    services = dynamodb_services(aws_env, clock=FixedClock(NOW))
    for post_id, owner in POSTS.items():
        services.posts.register(post_id, owner)
    vts_records(services, looks_on("2026-11-20", 1, 3) + looks_on("2026-11-21", 3, 2))
    vts_closes(services, "2026-11-21")
    assert services.aggregates.watermark() == "2026-11-21"
    with use(services):
        yield services


def history_rows() -> list[dict[str, Any]]:
    rows = []
    for n in range(40):  # 2026-10-01 .. 2026-11-09
        day = day_name(day_number("2026-10-01") + n)
        rows.append(row(1, day, 1 + n % 3, countries={"BR": 1, "us": n % 3}, impressions=2))
        if n % 2:
            rows.append(row(2, day, 2, devices={"mobile": 1, "player": 1}))
        if n % 5 == 0:
            rows.append(
                row(
                    3,
                    day,
                    4,
                    total_views_authenticated=1,
                    unique_viewers_authenticated=1,
                    views_by_country_authenticated={"BR": 1},
                    views_by_device_authenticated={"desktop": 1},
                )
            )
    rows.append(row(1, "2026-11-20", 50))  # VTS closed it from its own events
    rows.append(row(3, "2026-11-21", 50))
    rows.append(row(1, "2026-11-23", 50))  # after the watermark: VTS has not closed it
    rows.append(row(99, "2026-10-05", 7))  # a post VTS does not know
    return rows


def stats(api: Any, settings: Settings, path: str) -> dict[str, Any]:
    who = ("admin", "admin") if path.startswith("/v1/site") else ("ana", "artist")
    if "/posts/3/" in path or "/artists/bo/" in path:
        who = ("bo", "artist")
    answer = api.http.get(path, headers=auth(settings, who[0], who[1]))
    assert answer.status_code == 200, answer.body
    body = answer.json_body
    body.pop("computed_at", None)
    return body


def test_history_becomes_closed_days_and_a_second_import_changes_nothing(
    world: Services, api: Any, aws_env: Settings, tmp_path: Path, capsys: Any
) -> None:
    vts_only = "/v1/posts/1/stats?from=2026-11-20&to=2026-11-21"
    before = stats(api, aws_env, vts_only)
    path = write_jsonl(tmp_path / "history.jsonl", history_rows())

    assert main(["import-history", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "read 72 rows of 4 posts on Days 2026-10-01..2026-11-23" in out
    assert "1 rows of 1 posts VTS does not know (99)" in out
    assert (
        "imported: 68 post Days, 48 artist Days, 40 site Days on Days 2026-10-01..2026-11-09" in out
    )
    assert "skipped: 2 rows on Days VTS closed from its own events (never overwritten)" in out
    assert "skipped: 1 rows on Days VTS has not closed yet (after 2026-11-21)" in out

    # VTS's own Days are what they were, byte for byte.
    assert stats(api, aws_env, vts_only) == before
    assert world.aggregates.closed_day(Target.post(1), "2026-11-20")["v"] == 3

    october = stats(api, aws_env, "/v1/posts/1/stats?from=2026-10-01&to=2026-10-31")
    views = sum(1 + n % 3 for n in range(31))
    assert october["views"] == views and october["impressions"] == 62
    assert october["by_country"] == {"BR": 31, "US": views - 31}
    assert october["by_device"] == {"desktop": views, "mobile": 0, "tablet": 0, "player": 0}
    assert october["unique_visitors_approximate"] is True
    assert 0 < october["unique_visitors"] <= views
    assert [d["views"] for d in october["daily"][:3]] == [1, 2, 3]
    assert october["daily_unique_visitors_approximate"] is True

    one_day = stats(api, aws_env, "/v1/posts/3/stats?from=2026-10-06&to=2026-10-06")
    assert (one_day["views"], one_day["unique_visitors"]) == (4, 4)
    assert one_day["unique_visitors_approximate"] is True
    assert one_day["authenticated"]["views"] == 1
    assert one_day["authenticated"]["by_device"]["desktop"] == 1

    both = stats(api, aws_env, "/v1/posts/1/stats?from=2026-11-01&to=2026-11-21")
    assert both["views"] == sum(1 + n % 3 for n in range(31, 40)) + 3
    assert both["unique_visitors_approximate"] is True

    artist = stats(api, aws_env, "/v1/artists/ana/stats?from=2026-10-01&to=2026-10-31")
    assert artist["views"] == views + 2 * 15
    assert artist["by_device"]["player"] == 15 and artist["unique_visitors_approximate"] is True
    site = stats(api, aws_env, "/v1/site/stats?from=2026-10-01&to=2026-11-21")
    all_views = sum(1 + n % 3 for n in range(40)) + 2 * 20 + 4 * 8 + 3 + 2
    assert site["views"] == all_views

    counter = api.http.get("/v1/posts/1/counter").json_body
    assert counter["views"] == sum(1 + n % 3 for n in range(40)) + 3
    listing = api.http.get("/v1/artists/ana/posts", headers=auth(aws_env, "ana", "artist"))
    assert {p["post_id"] for p in listing.json_body["posts"]} == {1, 2}
    check_invariants(scan(aws_env))

    # Again: nothing changes, and it says so.
    items = scan(aws_env)
    assert main(["import-history", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "imported: 0 post Days, 0 artist Days, 0 site Days on Days none; 0 items written" in out
    assert "unchanged: 68 rows already imported" in out
    assert scan(aws_env) == items

    # VTS goes on closing its own Days over the imported ones.
    vts_records(world, looks_on("2026-11-22", 2, 2))
    vts_closes(world, "2026-11-22")
    assert world.aggregates.lifetime_views(2) == 2 * 20 + 2
    check_invariants(scan(aws_env))


def test_nothing_is_written_for_a_bad_line_a_missing_file_or_an_unreachable_database(
    world: Services, aws_env: Settings, tmp_path: Path, capsys: Any
) -> None:
    items = scan(aws_env)
    rows = history_rows()[:5]
    rows[3] = {**rows[3], "total_views": -2}
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    assert main(["import-history", "--file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"vts: error: {path}, line 4: total_views must be a whole number >= 0, not -2"

    path.write_text(json.dumps(history_rows()[0]) + "\n{not json\n")
    assert main(["import-history", "--file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vts: error: {path}, line 2: not JSON") and "\n" not in err

    path.write_text(json.dumps(history_rows()[0]) + "\n" + json.dumps(history_rows()[0]) + "\n")
    assert main(["import-history", "--file", str(path)]) == 2
    assert (
        "line 2: a second row for post 1 on 2026-10-01 (the first is line 1)"
        in capsys.readouterr().err
    )

    assert main(["import-history", "--file", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vts: error: cannot read") and "No such file" in err

    dsn = f"postgresql://vts_reader:secret@127.0.0.1:{free_port()}/makapix?connect_timeout=2"
    assert main(["import-history", "--dsn", dsn]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vts: error: cannot reach Makapix's database:") and "\n" not in err
    assert "secret" not in err

    assert main(["import-history", "--dsn", "host=127.0.0.1 port=notaport"]) == 2
    assert capsys.readouterr().err.startswith("vts: error: ")

    good = write_jsonl(tmp_path / "good.jsonl", history_rows()[:5])
    assert main(["import-history", "--file", str(good), "--check"]) == 0
    assert "nothing written (--check)" in capsys.readouterr().out
    assert scan(aws_env) == items


def test_the_import_waits_for_the_first_close(
    aws_env: Settings, tmp_path: Path, capsys: Any
) -> None:
    services = dynamodb_services(aws_env, clock=FixedClock(NOW))
    services.posts.register(1, "ana")
    path = write_jsonl(tmp_path / "history.jsonl", [row(1, "2026-10-01", 3)])
    items = scan(aws_env)
    assert main(["import-history", "--file", str(path)]) == 1
    assert "run the daily close first" in capsys.readouterr().err
    assert scan(aws_env) == items


# ---- the storage rules, against random activity (in-memory fakes) ------------------------------


def figures(views: int, impressions: int = 0) -> ImportedDay:
    return ImportedDay(
        totals={"v": views, "i": impressions},
        unique={"v": views},
        parts={"v": {"c": {"BR": views}, "d": {"tablet": views}}} if views else {},
    )


@pytest.mark.parametrize("seed", range(6))
def test_imported_days_keep_every_invariant_whatever_their_order(seed: int) -> None:
    """VTS closes random Days; imports (in parts, some interrupted, some repeated) fill
    random other Days, older and in between; VTS closes more. After each step every block
    ``closed.exists`` names holds exactly its Days, TOTAL their sums, the site the posts'."""
    rng = random.Random(seed)
    services = memory_services(Settings(drop_flush_s=0), clock=FixedClock(NOW))
    base = day_number("2026-06-01")
    vts_days = sorted(rng.sample(range(60, 120), 12))
    for n in vts_days:
        posts = rng.sample(sorted(POSTS), rng.randint(1, 3))
        vts_records(
            services, [e for p in posts for e in looks_on(day_name(base + n), p, rng.randint(1, 3))]
        )
    vts_closes(services, day_name(base + 119))
    check_invariants(memory_items(services))

    history = {
        (post, day_name(base + n)): figures(rng.randint(0, 4), rng.randint(0, 2))
        for post in POSTS
        for n in rng.sample(range(0, 120), 50)
    }
    vts_set = {day_name(base + n) for n in vts_days}
    # A first import of part of the rows, interrupted after a few Targets.
    part = dict(rng.sample(sorted(history.items()), len(history) // 2))
    boom = rng.randint(1, 3)
    calls = {"n": 0}
    store = services.aggregate_items
    real_put_if = store.put_if

    def failing_put_if(item: dict[str, Any], attribute: str, expected: Any) -> bool:
        if item["sk"] == layout.TOTAL_SK:
            calls["n"] += 1
            if calls["n"] > boom:
                raise RuntimeError("the operator's laptop went to sleep")
        return real_put_if(item, attribute, expected)

    store.put_if = failing_put_if  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        services.aggregates.import_closed_days(part, POSTS)
    store.put_if = real_put_if  # type: ignore[method-assign]
    # The same rows again complete it; then everything.
    services.aggregates.import_closed_days(part, POSTS)
    check_invariants(memory_items(services))
    report = services.aggregates.import_closed_days(history, POSTS)
    items = memory_items(services)
    check_invariants(items)
    assert report.vts_closed == sum(1 for (_, d), f in history.items() if d in vts_set and f.looked)
    # Rows of the second half on Days the first half completed are left out.
    first_days = {d for (_, d), f in part.items() if f.looked and d not in vts_set}
    assert report.left_out == sum(
        1 for key, f in history.items() if key not in part and f.looked and key[1] in first_days
    )
    again = services.aggregates.import_closed_days(history, POSTS)
    assert (again.post_days, again.writes) == (0, 0)
    assert memory_items(services) == items

    # VTS's Days never changed: their rows are not marked imported.
    for (pk, sk), item in items.items():
        if sk.startswith("S#"):
            for day, r in closed.series_rows(item).items():
                assert is_imported(r) == (day not in vts_set), (pk, day)

    # VTS closes more Days after the imported ones.
    for n in range(120, 130):
        vts_records(services, looks_on(day_name(base + n), rng.choice(sorted(POSTS)), 1))
    vts_closes(services, day_name(base + 129))
    check_invariants(memory_items(services))


def test_a_close_that_replaced_total_meanwhile_is_repaired() -> None:
    """The close's compare-and-set is on ``thru``, which an import leaves alone: a close that
    read TOTAL before the import wrote it puts back a TOTAL without the imported Days. The
    import's final check finds that and writes them again."""
    services = memory_services(Settings(drop_flush_s=0), clock=FixedClock(NOW))
    vts_records(services, looks_on("2026-11-20", 1, 2))
    vts_closes(services, "2026-11-20")
    store = services.aggregate_items
    stale = store.get_items([("SITE", layout.TOTAL_SK)])[("SITE", layout.TOTAL_SK)]
    real_get = store.get_items
    state = {"replaced": False}

    def get_items(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        keys = list(keys)
        found = real_get(keys)
        site = ("SITE", layout.TOTAL_SK)
        written = found.get(site)
        if (
            site in keys
            and not state["replaced"]
            and written
            and written.get("act") != stale["act"]
        ):
            # The close writes its stale copy back right after the import's TOTAL.
            store.put_items([stale])
            state["replaced"] = True
            found = real_get(keys)
        return found

    store.get_items = get_items  # type: ignore[method-assign]
    report = services.aggregates.import_closed_days({(1, "2026-10-01"): figures(3)}, POSTS)
    store.get_items = real_get  # type: ignore[method-assign]
    assert state["replaced"] and report.redone == 1
    check_invariants(memory_items(services))
    assert int(store.get_items([("SITE", "TOTAL")])[("SITE", "TOTAL")]["v"]) == 5


def test_uniques_over_imported_days_are_approximate_and_vts_days_unchanged() -> None:
    from chalicelib.stats.query import parse_range
    from chalicelib.stats.runner import StatsRunner

    services = memory_services(Settings(drop_flush_s=0), clock=FixedClock(NOW))
    vts_records(services, looks_on("2026-11-20", 1, 3) + looks_on("2026-11-21", 1, 2))
    vts_closes(services, "2026-11-21")
    runner = StatsRunner(services.aggregates, services.clock)

    def read(first: str, last: str, target: Target = POST_1) -> dict[str, Any]:
        query = parse_range({"from": first, "to": last}, NOW)
        answer = runner.stats(target, query)
        answer.pop("computed_at")
        return answer

    own = read("2026-11-20", "2026-11-21")
    one = read("2026-11-20", "2026-11-20")
    assert (one["unique_visitors"], one["unique_visitors_approximate"]) == (3, False)
    services.aggregates.import_closed_days(
        {
            (1, "2026-11-10"): figures(4),
            (1, "2026-11-11"): figures(2),
            (3, "2026-11-10"): figures(1),
        },
        POSTS,
    )
    assert read("2026-11-20", "2026-11-21") == own
    assert read("2026-11-20", "2026-11-20") == one
    imported = read("2026-11-10", "2026-11-10")
    assert (imported["unique_visitors"], imported["unique_visitors_approximate"]) == (4, True)
    assert imported["daily_unique_visitors_approximate"] is True
    mixed = read("2026-11-10", "2026-11-21")
    assert mixed["views"] == 11 and mixed["unique_visitors_approximate"] is True
    assert 5 <= mixed["unique_visitors"] <= 11
    site = read("2026-11-10", "2026-11-10", SITE)
    assert (site["views"], site["unique_visitors"], site["unique_visitors_approximate"]) == (
        5,
        5,
        True,
    )


# ---- --dsn: Makapix's real PostgreSQL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as running:
        yield running


def test_import_history_reads_makapix_database(
    cluster: Cluster, world: Services, api: Any, aws_env: Settings, capsys: Any
) -> None:
    db = cluster.database()
    makapix = Makapix(db.admin_dsn)
    ana = makapix.add_user("ana")
    post = makapix.add_post(ana, "Sunset")
    world.posts.register(post, "ana")
    makapix.add_daily(
        post,
        "2026-10-02",
        total_views=5,
        unique_viewers=5,
        total_impressions=7,
        views_by_country={"BR": 3},
        views_by_device={"mobile": 4, "desktop": 1},
        views_by_type={"view": 5, "impression": 7},
        total_views_authenticated=2,
        unique_viewers_authenticated=2,
        views_by_country_authenticated={"BR": 2},
        views_by_device_authenticated={"mobile": 2},
        views_by_type_authenticated={"view": 2, "impression": 0},
    )
    # A row from before the redesign: every event in total_views and the breakdowns.
    makapix.add_daily(
        post,
        "2026-10-03",
        total_views=10,
        unique_viewers=6,
        views_by_country={"BR": 6, "PT": 2},
        views_by_device={"desktop": 6, "bot": 4},
        views_by_type={"intentional": 5, "listing": 4, "widget": 1},
    )
    assert main(["import-history", "--dsn", db.reader_dsn]) == 0
    out = capsys.readouterr().out
    assert "read 2 rows of 1 posts on Days 2026-10-02..2026-10-03" in out
    assert "imported: 2 post Days, 2 artist Days, 2 site Days" in out
    assert "scaled: 1 rows from before Makapix's redesign" in out
    assert "'bot' (2 Views)" in out
    new = world.aggregates.closed_day(Target.post(post), "2026-10-02") or {}
    assert (new["v"], new["i"], new["uv"], new["av"], new["auv"]) == (5, 7, 5, 2, 2)
    assert (new["vc:BR"], new["vc:??"], new["vd:mobile"], new["avc:BR"]) == (3, 2, 4, 2)
    old = world.aggregates.closed_day(Target.post(post), "2026-10-03") or {}
    assert (old["v"], old["i"], old["uv"]) == (5, 5, 5)
    assert old["vc:BR"] + old["vc:PT"] + old["vc:??"] == 5
    assert old["vd:desktop"] == 5  # 3 scaled desktop + 2 scaled "bot", Makapix's fallback
    assert main(["import-history", "--dsn", db.reader_dsn]) == 0
    assert "unchanged: 2 rows already imported" in capsys.readouterr().out
