#!/usr/bin/env python3
"""PynamoDB for the registry's posts and players (ADR 0011): what it would cost the API Lambda.

Usage: python bench/trials/bench_pynamodb.py [--site DIR] [--calls N] [--rounds R]

Not part of `make bench` (PynamoDB is no project dependency). To run it, put PynamoDB where
this interpreter finds it without touching the venv, e.g.
    .venv/bin/pip install --no-deps --target /tmp/pynamodb-trial/site pynamodb==6.1.0
    .venv/bin/python bench/trials/bench_pynamodb.py --site /tmp/pynamodb-trial/site
Without it, it says so and exits 0.

Measures, against the current low-level-client adapter (storage/dynamodb.py DynamoRegistry):
(a) import time of pynamodb on top of what the Lambda already imports (app, boto3, the
storage layer), fresh processes; (b) get_post per call, wall and client CPU, both adapters
on the same moto server (its own process, loopback), interleaved rounds, medians, plus what
the first call of a fresh process pays; (c) the files the package adds to the Lambda zip
(its own files; its requirements are checked against the runtime and requirements.txt);
(d) lines of code of the prototype adapter (`load_adapter` below) vs the code it would
replace. It also checks that both adapters store and read the same items, and whether the
conditional writes with ReturnValuesOnConditionCheckFailure can be made through PynamoDB.
moto's latencies are harness overhead, not DynamoDB figures; only the differences between
adapters mean anything.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IMPORT_RUNS = 7
FIRST_CALL_RUNS = 5
# What the API Lambda has imported by the time the registry is used.
BASELINE = "import app, boto3, botocore.config, botocore.exceptions, chalicelib.storage.dynamodb, chalicelib.wiring"
PYNAMODB_IMPORTS = "import pynamodb.models, pynamodb.attributes, pynamodb.exceptions"
# Installed with every Lambda Python runtime (requirements.txt leaves them out of the zip).
LAMBDA_RUNTIME = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
}
AT = datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)


def load_adapter() -> Any:
    """The prototype (posts and players of the Registry port on PynamoDB); returns its class."""
    from collections.abc import Callable
    from typing import TypeVar

    from botocore.exceptions import ClientError
    from pynamodb.attributes import UnicodeAttribute
    from pynamodb.exceptions import DoesNotExist, PynamoDBException
    from pynamodb.models import Model

    from chalicelib.model import PlayerRecord, PostRecord
    from chalicelib.storage import keys
    from chalicelib.storage.codec import iso, parse_iso
    from chalicelib.storage.dynamodb import guarded, is_conditional_failure

    T = TypeVar("T")

    class _Meta(Model):
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        owner_id = UnicodeAttribute()
        registered_at = UnicodeAttribute()

    class _Player(_Meta):
        country = UnicodeAttribute(null=True)
        timezone = UnicodeAttribute(null=True)

    @functools.cache
    def _models(table: str, host: str | None, region: str) -> tuple[type[_Meta], type[_Player]]:
        """Meta.table_name is class state: one subclass pair per physical table (stage, test)."""
        meta = type(
            "Meta",
            (),
            {
                "table_name": table,
                "host": host,
                "region": region,
                "connect_timeout_seconds": 2,
                "read_timeout_seconds": 30 if host else 5,
                "max_retry_attempts": 3,
                "max_pool_connections": 20,
            },
        )
        return (
            type("PostItem", (_Meta,), {"Meta": meta}),
            type("PlayerItem", (_Player,), {"Meta": meta}),
        )

    def _call(call: Callable[[], T]) -> T:
        """PynamoDB wraps botocore errors; unwrap them for the house ``guarded``."""

        def unwrapped() -> T:
            try:
                return call()
            except PynamoDBException as error:
                if error.cause is not None:
                    raise error.cause from error
                raise

        return guarded(unwrapped)

    class PynamoRegistry:
        def __init__(self, table: str, host: str | None, region: str) -> None:
            self._post, self._player = _models(table, host, region)

        def _get(self, model: Any, pk: str, sk: str) -> Any:
            try:
                return _call(lambda: model.get(pk, sk))
            except DoesNotExist:
                return None

        def _delete(self, item: Any) -> bool:
            try:
                _call(lambda: item.delete(condition=type(item).pk.exists()))
            except ClientError as error:
                if is_conditional_failure(error):
                    return False
                raise
            return True

        def get_post(self, post_id: int) -> PostRecord | None:
            item = self._get(self._post, *keys.post_key(post_id))
            return (
                PostRecord(post_id, item.owner_id, parse_iso(item.registered_at)) if item else None
            )

        def put_post(self, post: PostRecord) -> None:
            pk, sk = keys.post_key(post.post_id)
            item = self._post(pk, sk, owner_id=post.owner_id, registered_at=iso(post.registered_at))
            _call(item.save)

        def delete_post(self, post_id: int) -> bool:
            return self._delete(self._post(*keys.post_key(post_id)))

        def get_player(self, player_key: str) -> PlayerRecord | None:
            item = self._get(self._player, *keys.player_key(player_key))
            if item is None:
                return None
            return PlayerRecord(
                player_key,
                item.owner_id,
                parse_iso(item.registered_at),
                country=item.country,
                timezone=item.timezone,
            )

        def put_player(self, player: PlayerRecord) -> None:
            pk, sk = keys.player_key(player.player_key)
            item = self._player(
                pk,
                sk,
                owner_id=player.owner_id,
                registered_at=iso(player.registered_at),
                country=player.country,
                timezone=player.timezone,
            )
            _call(item.save)

        def delete_player(self, player_key: str) -> bool:
            return self._delete(self._player(*keys.player_key(player_key)))

    return PynamoRegistry


# ---- (d) lines of code --------------------------------------------------------------------


def code_lines(source: str, node: ast.AST, skip_first: bool = False) -> int:
    """Lines of a function or class that hold code: no blanks, comments or docstrings."""
    lines = source.splitlines()
    docstrings: set[int] = set()
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.ClassDef, ast.Module)) and sub.body:
            first = sub.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    start = node.lineno + (1 if skip_first else 0)  # type: ignore[attr-defined]
    count = 0
    for number in range(start, node.end_lineno + 1):  # type: ignore[attr-defined]
        text = lines[number - 1].strip()
        if text and not text.startswith("#") and number not in docstrings:
            count += 1
    return count


def loc_figures() -> dict[str, int]:
    def functions(path: Path, owner: str | None, names: set[str]) -> int:
        source = path.read_text()
        tree = ast.parse(source)
        scope: list[ast.stmt] = tree.body
        if owner:
            scope = next(
                n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner
            ).body
        found = [n for n in scope if isinstance(n, ast.FunctionDef) and n.name in names]
        assert len(found) == len(names), f"{path.name}: {names - {f.name for f in found}} missing"
        return sum(code_lines(source, n) for n in found)

    storage = ROOT / "chalicelib" / "storage"
    registry = functions(
        storage / "dynamodb.py",
        "DynamoRegistry",
        {
            "_get",
            "_delete",
            "get_post",
            "put_post",
            "delete_post",
            "get_player",
            "put_player",
            "delete_player",
        },
    )
    codecs = functions(
        storage / "codec.py",
        None,
        {"post_item", "post_from_item", "player_item", "player_from_item"},
    )
    source = Path(__file__).read_text()
    adapter = next(
        n
        for n in ast.parse(source).body
        if isinstance(n, ast.FunctionDef) and n.name == "load_adapter"
    )
    # The adapter's whole body but its def line and its final `return`.
    adapter_loc = code_lines(source, adapter, skip_first=True) - 1
    imports = sum(
        (n.end_lineno or n.lineno) - n.lineno + 1
        for n in adapter.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
    )
    return {
        "current_registry_methods": registry,
        "current_codec": codecs,
        "current_total": registry + codecs,
        "adapter": adapter_loc,
        "adapter_imports": imports,
    }


# ---- (a) import time ----------------------------------------------------------------------


def import_figures() -> dict[str, float]:
    probe = (
        f"{BASELINE}\n"
        "import sys, time, json\n"
        "before = set(sys.modules)\n"
        f"t = time.perf_counter(); {PYNAMODB_IMPORTS}; wall = time.perf_counter() - t\n"
        "print(json.dumps([wall * 1000, sorted(set(sys.modules) - before)]))\n"
    )
    walls, cumulative, counts = [], [], []
    for _ in range(IMPORT_RUNS):
        # Wall time in a plain process (-X importtime slows imports down), then the same
        # imports under -X importtime for the per-module figures.
        plain = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
        )
        wall = json.loads(plain.stdout.strip().splitlines()[-1])[0]
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", probe],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        new = json.loads(run.stdout.strip().splitlines()[-1])[1]
        new_set = set(new)
        total_us = 0
        for line in run.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cum, name = line.split("|", 2)
            # Top level only (one space after the bar; nested imports are indented further):
            # their cumulative times add up to the whole increment.
            if not name.startswith("  ") and name.strip() in new_set:
                total_us += int(cum)
        walls.append(wall)
        cumulative.append(total_us / 1000)
        counts.append(len(new_set))
    return {
        "import_wall_ms": statistics.median(walls),
        "import_cumulative_ms": statistics.median(cumulative),
        "modules_added": statistics.median(counts),
    }


def baseline_import_ms() -> float:
    """For scale: the same baseline imports, wall, median of a few fresh processes."""
    code = (
        f"import time; t = time.perf_counter(); {BASELINE}; print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(3)
    ]
    return statistics.median(runs)


# ---- (c) zip size -------------------------------------------------------------------------


def zip_figures() -> dict[str, Any]:
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    dist = distribution("pynamodb")
    files = [f for f in dist.files or [] if "__pycache__" not in f.parts and f.suffix != ".pyc"]
    raw = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            path = Path(f.locate())
            if path.is_file():
                raw += path.stat().st_size
                archive.write(path, str(f))
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    needed, extra = [], []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        needed.append(str(req))
        if req.name.lower() not in pinned and req.name.lower() not in LAMBDA_RUNTIME:
            extra.append(req.name)
    return {
        "version": dist.version,
        "files": len(files),
        "raw_kb": raw / 1024,
        "zip_kb": len(buffer.getvalue()) / 1024,
        "requires": needed,
        "extra_requirements": extra,
    }


# ---- (b) hot path against moto --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1)
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("moto did not start")


def shared_machinery(boto3_client: Any, pynamodb_model: Any) -> dict[str, bool]:
    """Whether PynamoDB reuses the storage layer's botocore session, loader and HTTP pool.
    (moto answers `Connection: close`, so pooled sockets cannot be counted against it.)"""
    import boto3

    theirs = pynamodb_model._get_connection().connection
    ours_session = boto3.DEFAULT_SESSION._session if boto3.DEFAULT_SESSION else None
    return {
        "same_client": theirs.client is boto3_client,
        "same_botocore_session": theirs.session is ours_session,
        "same_service_loader": ours_session is not None
        and theirs.session.get_component("data_loader")
        is ours_session.get_component("data_loader"),
        "same_http_pool": theirs.client._endpoint.http_session
        is boto3_client._endpoint.http_session,
    }


def check_round_trip(settings: Any) -> int:
    """Both adapters as writer and reader of each other: the same raw items, the same records,
    deletes True then False. Returns the number of checked (writer, reader, record) cases."""
    from chalicelib.model import PlayerRecord, PostRecord
    from chalicelib.storage import codec
    from chalicelib.storage.dynamodb import DynamoRegistry
    from chalicelib.wiring import dynamodb_client

    client = dynamodb_client(settings)
    plain = DynamoRegistry(client, settings.registry_table)
    pyn = load_adapter()(settings.registry_table, settings.dynamodb_endpoint, settings.region)

    def stored(item: dict[str, Any]) -> Any:
        key = {"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}}
        return client.get_item(TableName=settings.registry_table, Key=key).get("Item")

    posts = [PostRecord(9_000_001, "artist-1", AT), PostRecord(2**40, "artist-ü", AT)]
    players = [
        PlayerRecord("rt-key-1", "owner-1", AT, country="BR", timezone="America/Sao_Paulo"),
        PlayerRecord("rt-key-2", "owner-2", AT),
    ]
    cases = 0
    for writer, reader in ((plain, pyn), (pyn, plain), (pyn, pyn)):
        for post in posts:
            writer.put_post(post)
            assert stored(codec.post_item(post)) == codec.to_typed(codec.post_item(post))
            assert reader.get_post(post.post_id) == post
            assert reader.delete_post(post.post_id) is True
            assert reader.delete_post(post.post_id) is False
            assert writer.get_post(post.post_id) is None
            cases += 1
        for player in players:
            writer.put_player(player)
            assert stored(codec.player_item(player)) == codec.to_typed(codec.player_item(player))
            assert reader.get_player(player.player_key) == player
            assert reader.delete_player(player.player_key) is True
            assert reader.delete_player(player.player_key) is False
            assert writer.get_player(player.player_key) is None
            cases += 1
    # A missing table is "storage unavailable" for both (throttling takes the same path).
    from chalicelib.errors import StorageUnavailable

    for broken in (
        DynamoRegistry(client, "no-such-table"),
        load_adapter()("no-such-table", settings.dynamodb_endpoint, settings.region),
    ):
        try:
            broken.get_post(1)
        except StorageUnavailable:
            cases += 1
        else:
            raise AssertionError(f"{type(broken).__name__}: no StorageUnavailable")
    return cases


def check_conditional_write(settings: Any) -> dict[str, Any]:
    """take_slot's write in PynamoDB: a conditional UpdateItem that fails, and whether the
    stored item (ReturnValuesOnConditionCheckFailure=ALL_OLD) reaches the caller."""
    import inspect

    from pynamodb.attributes import NumberAttribute, UnicodeAttribute
    from pynamodb.connection import TableConnection
    from pynamodb.exceptions import TransactWriteError, UpdateError
    from pynamodb.models import Model
    from pynamodb.transactions import TransactWrite

    meta = type(
        "Meta",
        (),
        {
            "table_name": settings.registry_table,
            "host": settings.dynamodb_endpoint,
            "region": settings.region,
        },
    )
    slot_model: Any = type(
        "Slot",
        (Model,),
        {
            "Meta": meta,
            "pk": UnicodeAttribute(hash_key=True),
            "sk": UnicodeAttribute(range_key=True),
            "until_ms": NumberAttribute(null=True),
        },
    )
    free = slot_model.pk.does_not_exist() | (slot_model.until_ms <= 1_000)
    claim = [slot_model.until_ms.set(61_000)]
    key = ("RATE#bench#x", "RATE")
    slot_model(*key).update(actions=claim, condition=free)
    found: dict[str, Any] = {
        "model_update_params": [
            p for p in inspect.signature(Model.update).parameters if p != "self"
        ],
        "table_connection_update_params": [
            p for p in inspect.signature(TableConnection.update_item).parameters if p != "self"
        ],
    }
    try:
        slot_model(*key).update(actions=claim, condition=free)
    except UpdateError as error:
        found["model_update_error_keys"] = sorted(error.cause.response)
    connection = slot_model._get_connection().connection
    kwargs = slot_model(*key).get_update_kwargs_from_instance(
        actions=claim, condition=free, return_values_on_condition_failure="ALL_OLD"
    )
    kwargs["TableName"] = settings.registry_table
    try:
        connection.dispatch("UpdateItem", kwargs)
    except Exception as error:  # VerboseClientError
        found["dispatch_all_old_error_keys"] = sorted(getattr(error, "response", {}))
    try:
        connection.client.update_item(**kwargs)
    except Exception as error:  # the raw botocore ClientError
        found["raw_client_has_item"] = "Item" in getattr(error, "response", {})
    try:
        with TransactWrite(connection=connection) as transaction:
            transaction.update(
                slot_model(*key), actions=claim, condition=free, return_values="ALL_OLD"
            )
    except TransactWriteError as error:
        found["transaction_has_item"] = any(
            r is not None and r.raw_item for r in error.cancellation_reasons or []
        )
    return found


def hot_path_figures(settings: Any, calls: int, rounds: int) -> dict[str, Any]:
    from botocore.config import Config

    from chalicelib.model import PlayerRecord, PostRecord
    from chalicelib.storage.dynamodb import DynamoRegistry
    from chalicelib.wiring import dynamodb_client

    client = dynamodb_client(settings)
    plain = DynamoRegistry(client, settings.registry_table)
    posts = list(range(1, 65))
    for post_id in posts:
        plain.put_post(PostRecord(post_id, f"artist-{post_id % 7}", AT))
    plain.put_player(PlayerRecord("key-1", "owner-1", AT, country="BR", timezone="UTC"))
    pyn = load_adapter()(settings.registry_table, settings.dynamodb_endpoint, settings.region)
    assert pyn.get_post(1) == plain.get_post(1)
    shared = shared_machinery(client, pyn._post)
    # The same adapter on a client without botocore's request validation (PynamoDB turns it off).
    novalid = DynamoRegistry(_client_without_validation(settings, Config), settings.registry_table)
    adapters = {
        "DynamoRegistry (boto3 client)": plain.get_post,
        "PynamoRegistry (PynamoDB 6)": pyn.get_post,
        "DynamoRegistry, parameter_validation=False": novalid.get_post,
    }
    for get in adapters.values():  # warm: connections, caches, lazy imports
        for post_id in posts * 4:
            get(post_id)
    wall: dict[str, list[float]] = {name: [] for name in adapters}
    cpu: dict[str, list[float]] = {name: [] for name in adapters}
    for r in range(rounds):
        order = list(adapters.items())
        if r % 2:
            order.reverse()
        for name, get in order:
            w, c = [], []
            for n in range(calls):
                w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                get(posts[n % len(posts)])
                c.append((time.thread_time_ns() - c0) / 1000)
                w.append((time.perf_counter_ns() - w0) / 1000)
            wall[name] += w
            cpu[name] += c
    # put_post, fewer calls (each one writes)
    put_wall: dict[str, float] = {}
    for name, put in (
        ("DynamoRegistry (boto3 client)", plain.put_post),
        ("PynamoRegistry (PynamoDB 6)", pyn.put_post),
    ):
        samples = []
        for n in range(calls // 2):
            post = PostRecord(1000 + n, "artist-x", AT)
            w0 = time.perf_counter_ns()
            put(post)
            samples.append((time.perf_counter_ns() - w0) / 1000)
        put_wall[name] = statistics.median(samples)
    return {
        "per_adapter": {
            name: {
                "wall_us": statistics.median(wall[name]),
                "cpu_us": statistics.median(cpu[name]),
                "wall_p90_us": statistics.quantiles(wall[name], n=10)[-1],
                "n": len(wall[name]),
            }
            for name in adapters
        },
        "put_wall_us": put_wall,
        "shared": shared,
    }


def _client_without_validation(settings: Any, config_cls: Any) -> Any:
    import boto3

    config = config_cls(
        connect_timeout=2,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=20,
        parameter_validation=False,
    )
    return boto3.client(
        "dynamodb",
        region_name=settings.region,
        endpoint_url=settings.dynamodb_endpoint,
        config=config,
    )


FIRST_CALL_PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
{baseline}
from dataclasses import replace
from chalicelib.config import Settings
from chalicelib.storage.dynamodb import DynamoRegistry
from chalicelib.wiring import dynamodb_client
settings = replace(Settings(), dynamodb_endpoint={endpoint!r}, region="us-east-1", registry_table={table!r})
t = time.perf_counter()
plain = DynamoRegistry(dynamodb_client(settings), settings.registry_table)
plain.get_post(1)
first_plain = time.perf_counter() - t
t = time.perf_counter(); plain.get_post(2); second_plain = time.perf_counter() - t
sys.path.insert(0, {bench!r})
from bench_pynamodb import load_adapter
{pynamodb}
t = time.perf_counter()
pyn = load_adapter()(settings.registry_table, settings.dynamodb_endpoint, settings.region)
pyn._post._get_connection().connection.client  # its botocore session and client
client_pyn = time.perf_counter() - t
pyn.get_post(1)
first_pyn = time.perf_counter() - t
print(json.dumps([first_plain * 1000, second_plain * 1000, first_pyn * 1000, client_pyn * 1000]))
"""


def first_call_figures(settings: Any) -> dict[str, float]:
    """Fresh process, imports done: the first get_post of each adapter, client creation
    included; PynamoDB's comes after the boto3 client exists (what adopting it adds)."""
    code = FIRST_CALL_PROBE.format(
        root=str(ROOT),
        baseline=BASELINE,
        endpoint=settings.dynamodb_endpoint,
        table=settings.registry_table,
        bench=str(Path(__file__).resolve().parent),
        pynamodb=PYNAMODB_IMPORTS,
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(FIRST_CALL_RUNS)
    ]
    return {
        "first_plain_ms": statistics.median(r[0] for r in runs),
        "warm_plain_ms": statistics.median(r[1] for r in runs),
        "first_pynamodb_ms": statistics.median(r[2] for r in runs),
        "pynamodb_client_ms": statistics.median(r[3] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--site", type=Path, help="a folder holding pynamodb (pip install --target)"
    )
    parser.add_argument(
        "--calls", type=int, default=500, help="get_post calls per adapter per round"
    )
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    args = parser.parse_args()
    if args.site:
        sys.path.insert(0, str(args.site.resolve()))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(args.site.resolve()), os.environ.get("PYTHONPATH")) if p
        )
    if importlib.util.find_spec("pynamodb") is None:
        print(
            "pynamodb not installed; install it to run this bench "
            "(e.g. pip install --no-deps --target /tmp/pynamodb-trial/site pynamodb==6.1.0, "
            "then --site /tmp/pynamodb-trial/site)"
        )
        return 0
    # moto accepts any credentials; both clients read them from the environment.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

    loc = loc_figures()
    zipped = zip_figures()
    imports = import_figures()
    base_ms = baseline_import_ms()

    from chalicelib.config import Settings
    from chalicelib.storage.tables import create_table_request
    from chalicelib.wiring import dynamodb_client

    server, endpoint = start_moto()
    try:
        suffix = uuid.uuid4().hex[:8]
        settings = replace(
            Settings(),
            dynamodb_endpoint=endpoint,
            region="us-east-1",
            events_table=f"b-{suffix}-events",
            aggregates_table=f"b-{suffix}-aggregates",
            registry_table=f"b-{suffix}-registry",
        )
        # Only the registry table is used: the project's layout (tables.TABLES["registry"]).
        creator = dynamodb_client(settings)
        creator.create_table(**create_table_request("registry", settings.registry_table))
        creator.get_waiter("table_exists").wait(TableName=settings.registry_table)
        round_trips = check_round_trip(settings)
        conditional = check_conditional_write(settings)
        hot = hot_path_figures(settings, args.calls, args.rounds)
        first = first_call_figures(settings)
    finally:
        server.terminate()
        server.wait(10)

    print(
        f"pynamodb {zipped['version']}, Python {sys.version.split()[0]}, moto in its own process "
        "on loopback (its latencies are harness overhead; compare the adapters only)"
    )
    print(
        f"(a) import {PYNAMODB_IMPORTS.removeprefix('import ')} after the Lambda's own imports "
        f"(app, boto3, storage; {base_ms:.0f} ms wall here), median of {IMPORT_RUNS} fresh processes:"
    )
    print(
        f"    +{imports['import_wall_ms']:.1f} ms wall, +{imports['import_cumulative_ms']:.1f} ms "
        f"(-X importtime, cumulative), {imports['modules_added']:.0f} modules added"
    )
    print(
        f"(b) get_post of an existing post, {hot['per_adapter'][next(iter(hot['per_adapter']))]['n']} "
        f"calls each ({args.rounds} interleaved rounds of {args.calls}), median per call:"
    )
    for name, f in hot["per_adapter"].items():
        print(
            f"    {name:<44} wall {f['wall_us']:7.0f} µs (p90 {f['wall_p90_us']:5.0f}), "
            f"client CPU {f['cpu_us']:6.0f} µs"
        )
    for name, us in hot["put_wall_us"].items():
        print(f"    put_post, {name:<34} wall {us:7.0f} µs")
    shared = hot["shared"]
    print(
        "    PynamoDB shares with the storage layer's boto3 client: "
        + ", ".join(
            f"{k.removeprefix('same_').replace('_', ' ')} {'yes' if v else 'NO'}"
            for k, v in shared.items()
        )
    )
    print(
        f"    first get_post in a fresh process, imports done, client creation included: "
        f"boto3 adapter {first['first_plain_ms']:.0f} ms (then {first['warm_plain_ms']:.1f} ms); "
        f"PynamoDB's first call with the boto3 client already there: {first['first_pynamodb_ms']:.0f} ms, "
        f"{first['pynamodb_client_ms']:.0f} ms of it making its own botocore session and client "
        f"(median of {FIRST_CALL_RUNS})"
    )
    print(
        f"(c) Lambda zip: +{zipped['zip_kb']:.0f} KB deflated ({zipped['raw_kb']:.0f} KB on disk, "
        f"{zipped['files']} files, no .pyc); requires {', '.join(zipped['requires'])} -> "
        f"nothing else to package"
        if not zipped["extra_requirements"]
        else f"(c) Lambda zip: +{zipped['zip_kb']:.0f} KB deflated; also needs {zipped['extra_requirements']}"
    )
    print(
        f"(d) lines of code (no blanks, comments, docstrings): prototype adapter {loc['adapter']} "
        f"({loc['adapter_imports']} of them imports) vs {loc['current_total']} replaced ({loc['current_registry_methods']} in DynamoRegistry's "
        f"post/player methods and helpers, {loc['current_codec']} in codec's post/player functions); "
        "DynamoRegistry stays for rate slots, seen-once markers and the gate"
    )
    print(
        f"    conditional writes (take_slot, admit, note_marked): Model.update("
        f"{', '.join(conditional['model_update_params'])}), TableConnection.update_item("
        f"{', '.join(conditional['table_connection_update_params'])}): no "
        "ReturnValuesOnConditionCheckFailure"
    )
    print(
        "    a failed conditional update, what reaches the caller: Model.update -> response keys "
        f"{conditional.get('model_update_error_keys')}; PynamoDB's dispatch with "
        f"ReturnValuesOnConditionCheckFailure=ALL_OLD -> {conditional.get('dispatch_all_old_error_keys')}; "
        f"the old item only through the raw botocore client ({conditional.get('raw_client_has_item')}) "
        f"or TransactWrite ({conditional.get('transaction_has_item')}, at 2x the write units)"
    )
    print(
        f"round trip: {round_trips} cases (each adapter writing for the other and for itself, and a "
        "missing table): same raw items as codec.post_item/player_item, same records, deletes True "
        "then False, StorageUnavailable for a missing table"
    )
    plain_f = hot["per_adapter"]["DynamoRegistry (boto3 client)"]
    pyn_f = hot["per_adapter"]["PynamoRegistry (PynamoDB 6)"]
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "pynamodb",
                "pynamodb": zipped["version"],
                "import_increment_ms": round(imports["import_wall_ms"], 1),
                "import_increment_cumulative_ms": round(imports["import_cumulative_ms"], 1),
                "get_post_boto3_us": round(plain_f["wall_us"]),
                "get_post_pynamodb_us": round(pyn_f["wall_us"]),
                "get_post_boto3_cpu_us": round(plain_f["cpu_us"]),
                "get_post_pynamodb_cpu_us": round(pyn_f["cpu_us"]),
                "get_post_boto3_novalidation_us": round(
                    hot["per_adapter"]["DynamoRegistry, parameter_validation=False"]["wall_us"]
                ),
                "first_call_pynamodb_ms": round(first["first_pynamodb_ms"], 1),
                "first_call_boto3_ms": round(first["first_plain_ms"], 1),
                "first_call_pynamodb_client_ms": round(first["pynamodb_client_ms"], 1),
                "separate_http_pool": not shared["same_http_pool"],
                "zip_kb": round(zipped["zip_kb"]),
                "loc_adapter": loc["adapter"],
                "loc_adapter_imports": loc["adapter_imports"],
                "loc_replaced": loc["current_total"],
                "round_trip_cases": round_trips,
                "all_old_reaches_pynamodb_caller": bool(
                    "Item" in conditional.get("dispatch_all_old_error_keys", [])
                    or "Item" in conditional.get("model_update_error_keys", [])
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
