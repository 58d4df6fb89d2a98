"""``POST /v1/registry/batch``, the registry PUTs' new fields, what a post that is not
counting does, and ``vts import-registry`` end to end: through the Chalice app (and, for
the command, ``chalice local``) over moto."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vtsops.cli import build_parser
from vtsops.stack import ChaliceLocalComponent

from chalicelib.config import Settings
from chalicelib.registry.batch import MAX_BODY_BYTES
from chalicelib.wiring import Services, dynamodb_services
from tests.conftest import BROWSER_UA, auth, free_port
from tests.players_support import firmware_payload, rule_event

pytestmark = pytest.mark.integration

GOOD = {"id": 11, "owner_id": "k3Jx9", "sqid": "p9Ab", "title": "Dawn",
        "art_url": "https://vault.makapix.club/a/11.png"}
HIDDEN = {"id": 12, "owner_id": "k3Jx9", "title": "Draft", "visible": False}
EVIL = {"id": 13, "owner_id": "k3Jx9", "art_url": "javascript:alert(1)"}
FRAME = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"
GONE_FRAME = "0b8f6a2c-3d4e-4f50-8a61-7b2c9d0e1f23"
THIRD_FRAME = "11111111-2222-4333-8444-555555555555"


def batch(api: Any, settings: Settings, body: Any, role: str = "service") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **auth(settings, "makapix-sync", role)}
    return api.http.post("/v1/registry/batch", headers=headers, body=raw)


def view(api: Any, post_id: int, ip: str = "203.0.113.9") -> Any:
    headers = {"User-Agent": BROWSER_UA, "Content-Type": "text/plain", "X-Forwarded-For": ip}
    return api.http.post(f"/v1/posts/{post_id}/views", headers=headers, body="")


def services_of(settings: Settings) -> Services:
    return dynamodb_services(settings)


def test_a_batch_applies_each_record_on_its_own(api: Any, aws_env: Settings) -> None:
    answer = batch(api, aws_env, {"posts": [GOOD, HIDDEN, EVIL]})
    assert answer.status_code == 200
    assert answer.json_body["applied"] == 2
    [refused] = answer.json_body["refused"]
    assert (refused["kind"], refused["index"], refused["code"]) == ("post", 2, "invalid_art_url")
    assert "https" in refused["message"]
    assert answer.headers["X-VTS-Changed"] == "2"
    posts = services_of(aws_env).registry.get_posts([11, 12, 13])
    assert sorted(posts) == [11, 12]
    assert (posts[11].sqid, posts[11].title, posts[11].art_url) == ("p9Ab", "Dawn", GOOD["art_url"])
    assert posts[11].counting and not posts[12].counting

    assert view(api, 11).status_code == 201  # the good one counts
    hidden = view(api, 12)
    assert hidden.status_code == 204 and hidden.body in (b"", "", None)  # accepted, not stored
    unknown = view(api, 13)
    assert unknown.status_code == 404 and unknown.json_body["error"]["code"] == "unknown_post"
    pixel = api.http.get("/v1/posts/12/pixel.gif",
                         headers={"User-Agent": BROWSER_UA, "Accept": "image/gif,*/*"})
    assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
    assert pixel.headers["X-VTS-Outcome"] == "post_not_counting"


def test_the_same_batch_again_changes_nothing_and_answers_the_same(
    api: Any, aws_env: Settings
) -> None:
    services = services_of(aws_env)
    first = batch(api, aws_env, {"posts": [GOOD, HIDDEN, EVIL]})
    assert services.aggregates.artist_post_count("k3Jx9") == 2
    stored = services.registry.get_posts([11, 12])
    again = batch(api, aws_env, {"posts": [GOOD, HIDDEN, EVIL]})
    assert (again.status_code, again.json_body) == (first.status_code, first.json_body)
    assert again.headers["X-VTS-Changed"] == "0"
    assert services.aggregates.artist_post_count("k3Jx9") == 2  # not bumped twice
    assert services.registry.get_posts([11, 12]) == stored  # registered_at kept too
    # A post that moves to another artist moves the counts; its title can go away.
    moved = batch(api, aws_env, {"posts": [{"id": 12, "owner_id": "other"}]})
    assert moved.json_body == {"applied": 1, "refused": []}
    counts = (services.aggregates.artist_post_count("k3Jx9"),
              services.aggregates.artist_post_count("other"))
    assert counts == (1, 1)
    post = services.registry.get_post(12)
    assert post is not None and post.title is None and post.counting


def test_only_services_and_admins_write_the_registry(api: Any, aws_env: Settings) -> None:
    denied = batch(api, aws_env, {"posts": [GOOD]}, role="artist")
    assert denied.status_code == 403
    anonymous = api.http.post("/v1/registry/batch", headers={"Content-Type": "application/json"},
                              body=json.dumps({"posts": [GOOD]}))
    assert anonymous.status_code == 401
    assert services_of(aws_env).registry.get_post(11) is None
    assert batch(api, aws_env, {"posts": [GOOD]}, role="admin").status_code == 200


def test_too_many_records_or_bytes_apply_nothing(api: Any, aws_env: Settings) -> None:
    posts = [{"id": n, "owner_id": "a"} for n in range(1, 301)]
    players = [{"key": f"00000000-0000-4000-8000-{n:012d}", "owner_id": "a"} for n in range(201)]
    answer = batch(api, aws_env, {"posts": posts, "players": players})  # 501 records
    assert answer.status_code == 413
    assert answer.json_body["error"]["code"] == "too_many_records"
    assert "500" in answer.json_body["error"]["message"]
    huge = b'{"posts": [], "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    too_big = batch(api, aws_env, huge)
    assert (too_big.status_code, too_big.json_body["error"]["code"]) == (413, "payload_too_large")
    registry = services_of(aws_env).registry
    assert registry.get_posts(range(1, 301)) == {}
    assert registry.get_players(p["key"] for p in players) == {}
    assert batch(api, aws_env, {"posts": posts[:300], "players": players[:200]}).json_body == {
        "applied": 500, "refused": []
    }


@pytest.mark.parametrize(("body", "code"), [
    (b"", "invalid_json"),
    (b"not json", "invalid_json"),
    (b"[]", "invalid_json"),
    (b"[" * 5000, "invalid_json"),
    (b'{"posts": {"id": 1}}', "invalid_field"),
    (b'{"players": "all"}', "invalid_field"),
    (b"\xff\xfe", "invalid_json"),
])
def test_a_body_that_is_not_a_batch_is_400(
    api: Any, aws_env: Settings, body: bytes, code: str
) -> None:
    answer = batch(api, aws_env, body)
    assert (answer.status_code, answer.json_body["error"]["code"]) == (400, code)


def test_bad_records_are_refused_one_by_one_never_a_5xx(api: Any, aws_env: Settings) -> None:
    nested = "[" * 500 + '"x"' + "]" * 500  # deep, yet within what json.loads reads
    posts = [
        "not an object",
        {"owner_id": "a"},
        {"id": True, "owner_id": "a"},
        {"id": "12x", "owner_id": "a"},
        {"id": 2**63, "owner_id": "a"},
        {"id": 1},
        {"id": 1, "owner_id": "\ud800"},
        {"id": 1, "owner_id": "a", "title": "t" * 129},
        {"id": 1, "owner_id": "a", "title": "NESTED"},
        {"id": 1, "owner_id": "a", "visible": "false"},
        {"id": 1, "owner_id": "a", "deleted": 1},
        {"id": 1, "owner_id": "a", "sqid": "../x"},
        {"id": 1, "owner_id": "a", "art_url": "http://vault.makapix.club/a.png"},
        {"id": 1, "owner_id": "a", "art_url": "/a.png"},
        {"id": 1, "owner_id": "a", "art_url": "data:image/png;base64,AAAA"},
        {"id": 1, "owner_id": "a", "art_url": "https://user:pw@example.com/a.png"},
        {"id": 1, "owner_id": "a", "art_url": 'https://example.com/"onload="x'},
        {"id": 1, "owner_id": "a", "art_url": "https://example.com:99999/a.png"},
        {"id": 1, "owner_id": "a", "art_url": "https://[::1/a.png"},
        {"id": "7", "owner_id": " ok ", "title": "  A\ttitle\n", "unknown": {"deep": "NESTED"}},
    ]
    players = [
        {"key": "not-a-uuid", "owner_id": "a"},
        {"key": FRAME, "owner_id": "a", "country": "Brazil"},
        {"key": FRAME, "owner_id": "a", "timezone": "Europe"},
        {"key": FRAME, "owner_id": "a", "revoked": "yes"},
        {"key": FRAME, "owner_id": "a", "name": "n" * 129},
        {"key": FRAME.upper(), "owner_id": "a", "name": "hall", "country": "br"},
    ]
    raw = json.dumps({"posts": posts, "players": players}).replace('"NESTED"', nested).encode()
    answer = batch(api, aws_env, raw)
    assert answer.status_code == 200, answer.body
    codes = {(r["kind"], r["index"]): r["code"] for r in answer.json_body["refused"]}
    assert codes == {
        ("post", 0): "invalid_record", ("post", 1): "invalid_post_id",
        ("post", 2): "invalid_post_id", ("post", 3): "invalid_post_id",
        ("post", 4): "invalid_post_id", ("post", 5): "invalid_owner_id",
        ("post", 6): "invalid_owner_id", ("post", 7): "invalid_title",
        ("post", 8): "invalid_title", ("post", 9): "invalid_visible",
        ("post", 10): "invalid_deleted", ("post", 11): "invalid_sqid",
        **{("post", n): "invalid_art_url" for n in range(12, 19)},
        ("player", 0): "invalid_player_key", ("player", 1): "invalid_country",
        ("player", 2): "invalid_timezone", ("player", 3): "invalid_revoked",
        ("player", 4): "invalid_name",
    }
    assert answer.json_body["applied"] == 2
    services = services_of(aws_env)
    post = services.registry.get_post(7)
    assert post is not None and (post.owner_id, post.title) == ("ok", "A title")
    player = services.registry.get_player(FRAME)
    assert player is not None and (player.name, player.country) == ("hall", "BR")


def test_players_in_a_batch_and_a_revoked_one_is_refused(api: Any, aws_env: Settings) -> None:
    answer = batch(api, aws_env, {
        "posts": [{"id": 123, "owner_id": "k3Jx9"}],
        "players": [
            {"key": FRAME, "owner_id": "fan-1", "name": "kitchen", "country": "PT",
             "timezone": "Europe/Lisbon"},
            {"key": GONE_FRAME, "owner_id": "fan-2", "revoked": True},
            {"key": THIRD_FRAME, "owner_id": "fan-3"},
        ],
    })
    assert answer.json_body == {"applied": 4, "refused": []}

    def report(key: str) -> dict[str, Any]:
        event = rule_event(firmware_payload(player_key=key, post_id=123, intent="artwork"))
        return dict(api.lambda_.invoke("player_views", event).payload)

    assert report(FRAME)["outcome"] == "counted"
    assert report(GONE_FRAME)["outcome"] == "player_unregistered"
    [event] = list(services_of(aws_env).events.day_events(123, _today()))
    assert (event.player_key, event.country, event.timezone) == (FRAME, "PT", "Europe/Lisbon")
    # Deleted later: a frame's report is accepted and not counted. (This container forgot
    # the post when it wrote it; another one would wait out VTS_POST_CACHE_S.)
    batch(api, aws_env, {"posts": [{"id": 123, "owner_id": "k3Jx9", "deleted": True}]})
    assert report(THIRD_FRAME)["outcome"] == "player_post_not_counting"
    assert len(list(services_of(aws_env).events.day_events(123, _today()))) == 1


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d")


def test_a_post_that_stops_counting_keeps_its_stats_for_its_owner(
    api: Any, aws_env: Settings
) -> None:
    batch(api, aws_env, {"posts": [GOOD]})
    assert view(api, 11).status_code == 201
    batch(api, aws_env, {"posts": [{**GOOD, "visible": False}]})
    assert view(api, 11, ip="198.51.100.7").status_code == 204
    owner = auth(aws_env, "k3Jx9", "artist")
    stats = api.http.get("/v1/posts/11/stats", headers=owner)
    assert stats.status_code == 200 and stats.json_body["post_id"] == 11
    assert api.http.get("/v1/posts/11/counter").status_code == 200
    stranger = api.http.get("/v1/posts/11/stats", headers=auth(aws_env, "someone", "artist"))
    assert stranger.status_code == 403


def test_the_puts_take_the_new_fields(api: Any, aws_env: Settings) -> None:
    headers = {"Content-Type": "application/json", **auth(aws_env, "svc", "service")}

    def put(path: str, body: Any) -> Any:
        return api.http.put(path, headers=headers, body=json.dumps(body))

    created = put("/v1/posts/5", {"owner_id": "k3Jx9", "sqid": "p9Ab", "title": "Dawn",
                                  "art_url": "https://vault.makapix.club/5.png",
                                  "visible": True, "deleted": False})
    assert created.status_code == 201
    assert created.json_body == {"post_id": 5, "owner_id": "k3Jx9", "sqid": "p9Ab",
                                 "title": "Dawn", "art_url": "https://vault.makapix.club/5.png",
                                 "visible": True, "deleted": False}
    bare = put("/v1/posts/5", {"owner_id": "k3Jx9"})  # today's body: the fields are cleared
    assert bare.status_code == 200 and bare.json_body["title"] is None
    assert services_of(aws_env).aggregates.artist_post_count("k3Jx9") == 1
    refused = put("/v1/posts/5", {"owner_id": "k3Jx9", "art_url": "javascript:alert(1)"})
    assert (refused.status_code, refused.json_body["error"]["code"]) == (400, "invalid_art_url")
    hidden = put("/v1/posts/5", {"owner_id": "k3Jx9", "deleted": True})
    assert hidden.status_code == 200 and view(api, 5).status_code == 204

    frame = put(f"/v1/players/{FRAME}", {"owner_id": "fan-1", "name": "hall", "revoked": True})
    assert frame.status_code == 201
    assert frame.json_body == {"player_key": FRAME, "owner_id": "fan-1", "country": None,
                               "timezone": None, "name": "hall", "revoked": True}
    bad = put(f"/v1/players/{FRAME}", {"owner_id": "fan-1", "revoked": "no"})
    assert (bad.status_code, bad.json_body["error"]["code"]) == (400, "invalid_revoked")


def test_post_directory_reads_many_through_its_cache(aws_env: Settings) -> None:
    services = services_of(aws_env)
    for post_id in (1, 2, 3):
        services.posts.register(post_id, "k3Jx9", title=f"t{post_id}")
    found = services.posts.get_many([1, 2, 3, 4, 2])
    assert {k: v.title for k, v in found.items()} == {1: "t1", 2: "t2", 3: "t3"}
    services.registry.delete_post(1)  # behind the cache's back: still cached
    assert sorted(services.posts.get_many([1, 4])) == [1]
    assert services.posts.get_many([]) == {}


# ---- vts import-registry against the API (chalice local over moto) --------------------------


def vts(*argv: str) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(list(argv))
    return commands[args.command](args)


@pytest.fixture
def local_api(aws_env: Settings, tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(("VTS_", "AWS_"))}
    component = ChaliceLocalComponent(free_port(), {**env, "VTS_GEOIP_DB": ""},
                                      tmp_path / "api.log")
    component.start()
    try:
        yield component.url
    finally:
        component.stop()


def test_import_registry_end_to_end(
    local_api: str, aws_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VTS_SERVICE_TOKEN", raising=False)
    monkeypatch.delenv("VTS_API_URL", raising=False)
    lines = [
        json.dumps({"type": "post", **GOOD}),
        json.dumps({"type": "post", **HIDDEN}),
        "{not json",
        "",
        json.dumps({"type": "comment", "id": 1}),
        json.dumps({"type": "post", **EVIL}),
        json.dumps({"type": "player", "key": FRAME, "owner_id": "fan-1", "name": "hall"}),
        *(json.dumps({"type": "post", "id": 100 + n, "owner_id": "bulk"}) for n in range(5)),
    ]
    source = tmp_path / "registry.jsonl"
    source.write_text("\n".join(lines) + "\n")
    token = auth(aws_env, "makapix-sync", "service")["Authorization"].split()[1]
    argv = ["import-registry", str(source), "--url", local_api, "--token", token,
            "--batch-size", "3"]

    assert vts(*argv) == 3  # done, with refused and bad lines
    out = capsys.readouterr().out
    assert "applied 8 (8 new or changed, 0 unchanged)" in out
    assert "refused 1, bad lines 2" in out
    assert "line 3: invalid_json" in out
    assert "line 5: unknown_type" in out
    assert "line 6: post 13 invalid_art_url" in out
    registry = services_of(aws_env).registry
    assert sorted(registry.get_posts([11, 12, 13, *range(100, 105)])) == [
        11, 12, 100, 101, 102, 103, 104
    ]
    assert registry.get_player(FRAME) is not None
    assert services_of(aws_env).aggregates.artist_post_count("bulk") == 5

    assert vts(*argv, "--json") == 3  # again: nothing changes
    summary = json.loads(capsys.readouterr().out)
    assert (summary["records"], summary["batches"]) == (9, 3)  # 3 a batch, as asked
    assert (summary["applied"], summary["changed"]) == (8, 0)
    assert [(p["line"], p["code"]) for p in summary["refused"]] == [(6, "invalid_art_url")]
    assert [p["line"] for p in summary["bad_lines"]] == [3, 5]
    assert services_of(aws_env).aggregates.artist_post_count("bulk") == 5

    # The local stack's own settings are enough: a token signed with VTS_JWT_SECRET.
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"type": "post", **GOOD}) + "\n")
    assert vts("import-registry", str(clean), "--url", local_api) == 0
    assert "nothing new" in capsys.readouterr().out


def test_import_registry_fails_in_one_line_and_sends_nothing(
    aws_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    assert vts("import-registry", str(missing), "--token", "t") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and "missing.jsonl" in err

    source = tmp_path / "registry.jsonl"
    source.write_text(json.dumps({"type": "post", **GOOD}) + "\n")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert vts("import-registry", str(source), "--url", closed, "--token", "t") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the API" in err
    assert services_of(aws_env).registry.get_post(11) is None
    assert vts("import-registry", str(source), "--batch-size", "501", "--token", "t") == 2
