"""``scripts/makapix-sync`` end to end: Makapix's real PostgreSQL (tests/makapix_db.py, rows
changed as Makapix's code changes them), the script run as cron runs it (a process with a
state file), VTS's ``POST /v1/registry/batch`` served over HTTP by the real app over moto,
and the registry read back after each run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.model import PlayerRecord, PostRecord
from chalicelib.wiring import Services, dynamodb_services, use
from tests.conftest import free_port, token
from tests.makapix_db import Cluster, Database, Makapix, running_cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SYNC = ROOT / "scripts" / "makapix-sync"
ART = "https://vault.makapix.club/8c/4f/2a/0b7c.png"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as running:
        yield running


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def vts(aws_env: Settings) -> Iterator[tuple[Services, str]]:
    """VTS's API over HTTP: each request handed to the real Chalice app (over moto)."""
    from chalice.test import Client

    from app import app

    services = dynamodb_services(aws_env)
    lock = threading.Lock()
    with use(services), Client(app, stage_name="dev") as client:

        class Forward(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    answer = client.http.post(self.path, body=body, headers=dict(self.headers))
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        yield from ((services, url) for url in _serve(Forward))


class Sync:
    """The script as cron runs it: a process, a state file, the token in the environment."""

    def __init__(self, db: Database, api: str, settings: Settings, state: Path) -> None:
        self.db, self.api, self.state = db, api, state
        self.token = token(settings, "makapix-sync", "service")

    def __call__(self, *extra: str, api: str | None = None, dsn: str | None = None) -> Any:
        command = [
            sys.executable,
            str(SYNC),
            "--dsn",
            dsn or self.db.reader_dsn,
            "--api",
            api or self.api,
            "--state",
            str(self.state),
            *extra,
        ]
        env = {"PATH": "/usr/bin:/bin", "VTS_SERVICE_TOKEN": self.token}
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def post(services: Services, post_id: int) -> PostRecord | None:
    return services.registry.get_post(post_id)


def player(services: Services, key: str) -> PlayerRecord | None:
    return services.registry.get_player(key)


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return str(result.stdout)


def test_the_registry_follows_makapix_within_one_run(
    cluster: Cluster, vts: tuple[Services, str], aws_env: Settings, tmp_path: Path
) -> None:
    services, api = vts
    db = cluster.database()
    makapix = Makapix(db.admin_dsn)
    sync = Sync(db, api, aws_env, tmp_path / "state" / "makapix-sync.json")
    ana, bo = makapix.add_user("ana"), makapix.add_user("bo")
    late = makapix.add_user(None)  # Makapix sets public_sqid after the insert
    sunset = makapix.add_post(ana, "Sunset", sqid="k3Jx9", art_url=ART)
    tree = makapix.add_post(bo, "Tree", sqid="Zz_9-", art_url="/api/vault/tree.png")
    waiting = makapix.add_post(late, "Waiting")
    frame = makapix.register_player(ana, "Living room")
    pending = makapix.add_pending_player()

    out = ok(sync())
    assert "sent 2 posts (2 new, 0 changed, 0 hard-deleted) and 1 players" in out
    assert "1 posts wait for their owner's public id" in out
    first = post(services, sunset)
    assert first is not None
    assert (first.owner_id, first.sqid, first.title, first.art_url) == (
        "ana",
        "k3Jx9",
        "Sunset",
        ART,
    )
    assert (first.visible, first.deleted) == (True, False)
    second = post(services, tree)
    assert second is not None and second.owner_id == "bo" and second.art_url is None
    assert post(services, waiting) is None
    registered = player(services, frame)
    assert registered is not None and registered.owner_id == "ana"
    assert (registered.name, registered.revoked) == ("Living room", False)
    assert player(services, pending) is None
    assert (tmp_path / "state" / "makapix-sync.json").stat().st_mode & 0o777 == 0o600

    # Nothing changed: nothing sent. A frame's status messages move updated_at only.
    makapix.report_status(frame)
    assert "sent 0 posts" in ok(sync()) and "and 0 players" in ok(sync())

    # An edit (metadata_modified_at), and an owner whose public id arrives (no post timestamp).
    makapix.edit_post(sunset, title="Sunset, again")
    makapix.set_user_sqid(late, "late")
    out = ok(sync())
    assert "sent 2 posts (1 new, 1 changed" in out
    assert (post(services, sunset) or first).title == "Sunset, again"
    assert (post(services, waiting) or first).owner_id == "late"

    # Hidden by its artist, unhidden, hidden by a moderator: a flag, updated_at only.
    makapix.hide(tree)
    ok(sync())
    assert (post(services, tree) or first).visible is False
    makapix.unhide(tree)
    ok(sync())
    assert (post(services, tree) or first).visible is True
    makapix.hide(tree, by="mod")
    ok(sync())
    assert (post(services, tree) or first).visible is False

    # Soft delete, then the hard delete 7 days later: deleted, and it stays known as such.
    makapix.soft_delete(sunset)
    ok(sync())
    gone = post(services, sunset)
    assert gone is not None and (gone.deleted, gone.visible) == (True, False)
    makapix.hard_delete(sunset)
    assert "sent 0 posts" in ok(sync())
    assert (post(services, sunset) or first).deleted is True
    assert str(sunset) not in json.loads(sync.state.read_text())["posts"]
    # A hard delete without a soft delete first (an admin's permanent delete).
    makapix.hard_delete(waiting)
    assert "1 hard-deleted" in ok(sync())
    assert (post(services, waiting) or first).deleted is True

    # A frame renamed, a second one registered, the first torn down.
    makapix.rename_player(frame, "Kitchen")
    ok(sync())
    assert (player(services, frame) or registered).name == "Kitchen"
    other = makapix.register_player(bo)
    makapix.teardown_player(frame)
    out = ok(sync())
    assert "and 2 players (1 registered or changed, 1 revoked)" in out
    assert (player(services, frame) or registered).revoked is True
    assert (player(services, other) or registered).owner_id == "bo"
    assert "and 0 players" in ok(sync())

    # --quiet prints nothing when all went well; --full sends everything again, harmlessly.
    quiet = sync("--quiet")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    # A token signed each run with the secret VTS shares with Makapix (no 30-day renewal).
    secret = tmp_path / "jwt-secret"
    secret.write_text(aws_env.jwt_secret + "\n")
    signed_by_operator, sync.token = sync.token, ""
    makapix.edit_post(tree, title="Tree, signed")
    assert "1 changed" in ok(sync("--jwt-secret-file", str(secret)))
    assert (post(services, tree) or first).title == "Tree, signed"
    secret.write_text("x" * 40)
    makapix.edit_post(tree, title="Tree, wrongly signed")
    assert "VTS answered HTTP 401" in sync("--jwt-secret-file", str(secret)).stderr
    assert (post(services, tree) or first).title == "Tree, signed"
    sync.token = signed_by_operator
    assert "sent 1 posts (1 new" in ok(sync("--full"))
    assert (post(services, tree) or first).visible is False


def test_a_failed_run_says_why_in_one_line_and_keeps_the_state(
    cluster: Cluster, vts: tuple[Services, str], aws_env: Settings, tmp_path: Path
) -> None:
    services, api = vts
    db = cluster.database()
    makapix = Makapix(db.admin_dsn)
    sync = Sync(db, api, aws_env, tmp_path / "state.json")
    ana = makapix.add_user("ana")
    makapix.add_post(ana, "Sunset")
    ok(sync())
    kept = sync.state.read_bytes()
    added = makapix.add_post(ana, "Moon")

    def failed(result: Any, starts: str) -> None:
        assert result.returncode == 1, result
        assert result.stdout == ""
        line = result.stderr.strip()
        assert line.startswith(f"makapix-sync: error: {starts}") and "\n" not in line, line
        assert sync.state.read_bytes() == kept

    closed = f"postgresql://vts_reader:secret@127.0.0.1:{free_port()}/makapix?connect_timeout=2"
    failed(sync(dsn=closed), "cannot reach Makapix's database:")
    assert "secret" not in sync(dsn=closed).stderr
    failed(sync(dsn="host=127.0.0.1 port=notaport"), "")
    wrong = db.reader_dsn.replace(db.reader_password, "wrong")
    failed(sync(dsn=wrong), "cannot reach Makapix's database:")
    failed(sync(api=f"http://127.0.0.1:{free_port()}"), "cannot reach VTS at")
    sync.token = "not-a-token"
    failed(sync(), "VTS answered HTTP 401")
    assert post(services, added) is None

    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    result = Sync(db, api, aws_env, broken)()
    assert result.returncode == 1 and "is not a makapix-sync state file" in result.stderr

    usage = subprocess.run(
        [sys.executable, str(SYNC), "--api", api], capture_output=True, text=True, timeout=30
    )
    assert usage.returncode == 2 and "missing --dsn, --state" in usage.stderr


def test_a_refused_record_is_said_and_not_sent_again_until_it_changes(
    cluster: Cluster, aws_env: Settings, tmp_path: Path
) -> None:
    """VTS refuses a record on its own (e.g. a rule it has that Makapix has not): the run
    says which, keeps the others, and does not send it again every 5 minutes."""
    db = cluster.database()
    makapix = Makapix(db.admin_dsn)
    ana = makapix.add_user("ana")
    first, second = makapix.add_post(ana, "One"), makapix.add_post(ana, "Two")
    bodies: list[dict[str, Any]] = []

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            refused = [
                {"kind": "post", "index": n, "code": "invalid_title", "message": "no"}
                for n, record in enumerate(body.get("posts", []))
                if record["id"] == second
            ]
            answer = json.dumps({"applied": len(body["posts"]) - len(refused), "refused": refused})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args: Any) -> None:
            pass

    for url in _serve(Refusing):
        sync = Sync(db, url, aws_env, tmp_path / "state.json")
        result = sync("--quiet")
        assert result.returncode == 3
        assert f"VTS refused post {second}: invalid_title: no" in result.stderr
        assert [r["id"] for r in bodies[0]["posts"]] == [first, second]
        assert sync("--quiet").stderr == "" and len(bodies) == 1
        makapix.edit_post(second, title="Two, fixed")
        sync("--quiet")
        assert [r["id"] for r in bodies[1]["posts"]] == [second]
        makapix.edit_post(first, title="One, again")
        dry = sync("--dry-run")
        assert dry.returncode == 0 and "dry run, 1 posts and 0 players to send" in dry.stdout
        assert '"title": "One, again"' in dry.stdout and len(bodies) == 2
