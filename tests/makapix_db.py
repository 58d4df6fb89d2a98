"""Makapix Club's PostgreSQL for the tests: a throwaway cluster of Debian's real ``postgresql``
(installed by scripts/setup_system.sh, its service disabled) on a free port in a temporary
directory, holding the subset of Makapix's schema that VTS reads, with the column names and
types of fabkury/makapix ``api/app/models.py`` (``users``, ``posts``, ``players``,
``post_stats_daily``), and the read-only role VTS is given (``READER_GRANTS``, the same
statements docs/makapix.md asks Makapix to run).

    with running_cluster() as cluster:          # skips the test where PostgreSQL cannot run
        db = cluster.database()                 # a fresh database with the schema and role
        makapix = Makapix(db.admin_dsn)         # acts on rows as Makapix's code does
        ana = makapix.add_user("ana"); post = makapix.add_post(ana, "Sunset")
        ... db.reader_dsn                       # what makapix-sync and import-history get

PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` user
(``runuser``), otherwise to the current user. It runs without fsync (a test's data need not
survive a crash) and is stopped and removed at the end.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

ADMIN = "makapix_admin"
READER = "vts_reader"
DATABASE_PREFIX = "makapix"

# The subset of Makapix's schema VTS reads (types as api/app/models.py declares them:
# Integer -> integer, String(n) -> varchar(n), DateTime(timezone=True) -> timestamptz,
# JSON -> json, UUID -> uuid). Columns VTS never reads are left out, but for the players'
# certificate and key, kept to show that the read-only role cannot see them.
SCHEMA = """
CREATE TABLE users (
    id serial PRIMARY KEY,
    user_key uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    public_sqid varchar(16) UNIQUE,
    handle varchar(50) NOT NULL UNIQUE,
    email varchar(255) NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE posts (
    id serial PRIMARY KEY,
    storage_key uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    public_sqid varchar(16) UNIQUE,
    kind varchar(20) NOT NULL DEFAULT 'artwork',
    owner_id integer NOT NULL REFERENCES users(id),
    title varchar(128) NOT NULL,
    description text,
    art_url varchar(1000),
    visible boolean NOT NULL DEFAULT true,
    hidden_by_user boolean NOT NULL DEFAULT false,
    hidden_by_mod boolean NOT NULL DEFAULT false,
    non_conformant boolean NOT NULL DEFAULT false,
    public_visibility boolean NOT NULL DEFAULT false,
    deleted_by_user boolean NOT NULL DEFAULT false,
    deleted_by_user_date timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz,
    metadata_modified_at timestamptz NOT NULL DEFAULT now(),
    artwork_modified_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_posts_metadata_modified_at ON posts (metadata_modified_at);
CREATE TABLE players (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    player_key uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    owner_id integer REFERENCES users(id),
    name varchar(100),
    device_model varchar(100),
    firmware_version varchar(50),
    registration_status varchar(20) NOT NULL DEFAULT 'pending',
    registration_code varchar(6) UNIQUE,
    registration_code_expires_at timestamptz,
    registered_at timestamptz,
    connection_status varchar(20) NOT NULL DEFAULT 'offline',
    last_seen_at timestamptz,
    cert_serial_number varchar(100) UNIQUE,
    cert_pem text,
    key_pem text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz
);
CREATE TABLE post_stats_daily (
    id serial PRIMARY KEY,
    post_id integer NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    date date NOT NULL,
    total_views integer NOT NULL DEFAULT 0,
    unique_viewers integer NOT NULL DEFAULT 0,
    total_impressions integer NOT NULL DEFAULT 0,
    views_by_country json NOT NULL DEFAULT '{}',
    views_by_device json NOT NULL DEFAULT '{}',
    views_by_type json NOT NULL DEFAULT '{}',
    total_views_authenticated integer NOT NULL DEFAULT 0,
    unique_viewers_authenticated integer NOT NULL DEFAULT 0,
    total_impressions_authenticated integer NOT NULL DEFAULT 0,
    views_by_country_authenticated json NOT NULL DEFAULT '{}',
    views_by_device_authenticated json NOT NULL DEFAULT '{}',
    views_by_type_authenticated json NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_post_stats_daily_post_date UNIQUE (post_id, date)
);
"""

# What VTS's role may read: only the columns makapix-sync and import-history use (no
# e-mail, no player certificate or key), and nothing to write. {database}, {reader} and
# {password} are filled in; docs/makapix.md gives the same statements.
READER_GRANTS = """
CREATE ROLE {reader} LOGIN PASSWORD '{password}';
ALTER ROLE {reader} SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE {database} TO {reader};
GRANT USAGE ON SCHEMA public TO {reader};
GRANT SELECT (id, public_sqid) ON users TO {reader};
GRANT SELECT (id, public_sqid, owner_id, kind, title, art_url, visible, hidden_by_user,
              hidden_by_mod, non_conformant, deleted_by_user, deleted_by_user_date,
              created_at, updated_at, metadata_modified_at) ON posts TO {reader};
GRANT SELECT (player_key, owner_id, name, registration_status, registered_at, created_at,
              updated_at) ON players TO {reader};
GRANT SELECT ON post_stats_daily TO {reader};
"""


def postgres_bin() -> Path | None:
    """Debian's newest PostgreSQL server binaries (``VTS_TEST_PG_BIN`` overrides)."""
    given = os.environ.get("VTS_TEST_PG_BIN")
    if given:
        return Path(given) if (Path(given) / "initdb").exists() else None
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -r requirements-dev.txt)")
    return psycopg


@dataclass(frozen=True)
class Database:
    """One database of the cluster: the admin's DSN and the read-only role's."""

    name: str
    admin_dsn: str
    reader_dsn: str
    reader_password: str


class Cluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.bin = postgres_bin()
        self.root: Path | None = None
        self.password = secrets.token_hex(12)
        self._as: list[str] = []
        self._databases = 0

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *command], capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self) -> None:
        """Make and start the cluster, or skip the test with the reason."""
        _psycopg()
        if self.bin is None:
            pytest.skip(
                "PostgreSQL is not installed (scripts/setup_system.sh installs Debian's "
                "postgresql): the Makapix database tests are skipped"
            )
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: PostgreSQL cannot be started")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="vts-makapix-pg-"))
        os.chmod(self.root, 0o755)
        password_file = self.root / "pw"
        password_file.write_text(self.password + "\n")
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        initdb = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            ADMIN,
            f"--pwfile={password_file}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        )
        if initdb.returncode != 0:
            self._skip("initdb failed", initdb.stderr)
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        if started.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            self._skip("pg_ctl start failed", started.stderr + log)

    def _skip(self, what: str, detail: str) -> None:
        last = [line for line in detail.strip().splitlines() if line.strip()][-1:]
        self.stop()
        pytest.skip(f"PostgreSQL cannot run here ({what}: {' '.join(last) or 'no output'})")

    def stop(self) -> None:
        if self.root is None:
            return
        if self.bin is not None and (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def dsn(self, database: str, user: str = ADMIN, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return (
            f"host=127.0.0.1 port={self.port} dbname={database} user={user} "
            f"password={secret} connect_timeout=5"
        )

    def database(self) -> Database:
        """A fresh database with Makapix's schema and a read-only role of its own."""
        psycopg = _psycopg()
        self._databases += 1
        name = f"{DATABASE_PREFIX}_{self._databases}_{uuid.uuid4().hex[:6]}"
        reader = f"{READER}_{self._databases}"
        reader_password = secrets.token_hex(10)
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn(name), autocommit=True) as admin:
            admin.execute(SCHEMA)
            admin.execute(
                READER_GRANTS.format(database=name, reader=reader, password=reader_password)
            )
        return Database(
            name,
            self.dsn(name),
            self.dsn(name, reader, reader_password),
            reader_password,
        )


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# ---- Makapix's writes, as its code makes them -------------------------------------------------


class Makapix:
    """Rows changed as Makapix's routers and tasks change them (fabkury/makapix
    ``routers/posts.py``, ``services/player_teardown.py``, the 7-day cleanup task).
    ``updated_at`` moves on every ORM update (SQLAlchemy's ``onupdate``); only metadata
    edits move ``metadata_modified_at``."""

    def __init__(self, dsn: str) -> None:
        self.psycopg = _psycopg()
        self.dsn = dsn

    def execute(self, sql: str, params: Mapping[str, Any] | tuple[Any, ...] = ()) -> list[Any]:
        with self.psycopg.connect(self.dsn, autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def add_user(self, sqid: str | None, handle: str | None = None) -> int:
        handle = handle or f"user-{uuid.uuid4().hex[:8]}"
        [(user_id,)] = self.execute(
            "INSERT INTO users (public_sqid, handle, email) VALUES (%s, %s, %s) RETURNING id",
            (sqid, handle, f"{handle}@example.com"),
        )
        return int(user_id)

    def set_user_sqid(self, user_id: int, sqid: str) -> None:
        self.execute("UPDATE users SET public_sqid = %s WHERE id = %s", (sqid, user_id))

    def add_post(
        self,
        owner_id: int,
        title: str,
        *,
        sqid: str | None = None,
        art_url: str | None = None,
        kind: str = "artwork",
        created_at: datetime | None = None,
    ) -> int:
        [(post_id,)] = self.execute(
            "INSERT INTO posts (owner_id, title, public_sqid, art_url, kind, created_at, "
            "metadata_modified_at) VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()), "
            "coalesce(%s, now())) RETURNING id",
            (owner_id, title, sqid, art_url, kind, created_at, created_at),
        )
        return int(post_id)

    def edit_post(self, post_id: int, **fields: Any) -> None:
        """PATCH /posts/{id}: metadata changes move ``metadata_modified_at``."""
        sets = ", ".join(f"{name} = %s" for name in fields)
        self.execute(
            f"UPDATE posts SET {sets}, metadata_modified_at = now(), updated_at = now() "
            "WHERE id = %s",
            (*fields.values(), post_id),
        )

    def hide(self, post_id: int, by: str = "user") -> None:
        """POST /posts/{id}/hide: a flag, ``updated_at`` only."""
        column = "hidden_by_mod" if by == "mod" else "hidden_by_user"
        self.execute(
            f"UPDATE posts SET {column} = true, updated_at = now() WHERE id = %s", (post_id,)
        )

    def unhide(self, post_id: int) -> None:
        self.execute(
            "UPDATE posts SET hidden_by_user = false, hidden_by_mod = false, updated_at = now() "
            "WHERE id = %s",
            (post_id,),
        )

    def soft_delete(self, post_id: int) -> None:
        """DELETE /posts/{id}: deleted_by_user (hard delete 7 days later), hidden, invisible."""
        self.execute(
            "UPDATE posts SET deleted_by_user = true, deleted_by_user_date = now(), "
            "visible = false, hidden_by_user = true, updated_at = now() WHERE id = %s",
            (post_id,),
        )

    def hard_delete(self, post_id: int) -> None:
        """The cleanup task, 7 days after a soft delete: the row goes (its stats cascade)."""
        self.execute("DELETE FROM posts WHERE id = %s", (post_id,))

    def register_player(self, owner_id: int, name: str | None = None) -> str:
        """A frame through pending -> registered (the registration code flow)."""
        [(key,)] = self.execute(
            "INSERT INTO players (owner_id, name, registration_status, registered_at, cert_pem, "
            "key_pem) VALUES (%s, %s, 'registered', now(), 'CERT', 'KEY') RETURNING player_key",
            (owner_id, name),
        )
        return str(key)

    def add_pending_player(self) -> str:
        [(key,)] = self.execute(
            "INSERT INTO players (registration_status, registration_code) VALUES "
            "('pending', %s) RETURNING player_key",
            (secrets.token_hex(3).upper(),),
        )
        return str(key)

    def rename_player(self, key: str, name: str) -> None:
        self.execute(
            "UPDATE players SET name = %s, updated_at = now() WHERE player_key = %s", (name, key)
        )

    def report_status(self, key: str) -> None:
        """A status message: ``last_seen_at`` and ``updated_at`` move, nothing VTS keeps."""
        self.execute(
            "UPDATE players SET connection_status = 'online', last_seen_at = now(), "
            "updated_at = now() WHERE player_key = %s",
            (key,),
        )

    def teardown_player(self, key: str) -> None:
        """services/player_teardown.py: the row is deleted."""
        self.execute("DELETE FROM players WHERE player_key = %s", (key,))

    def add_daily(self, post_id: int, day: date | str, **columns: Any) -> None:
        """A ``post_stats_daily`` row (JSON columns given as dicts)."""
        values = {
            name: json.dumps(value) if isinstance(value, dict) else value
            for name, value in columns.items()
        }
        names = ["post_id", "date", *values]
        self.execute(
            f"INSERT INTO post_stats_daily ({', '.join(names)}) VALUES "
            f"({', '.join(['%s'] * len(names))})",
            (post_id, str(day), *values.values()),
        )
