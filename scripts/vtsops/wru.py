"""Write units per counted View, measured from outside: moto's request recorder.

The harness runs a burst of web looks through the real app (Chalice's test client over
DynamoDB adapters pointed at moto in server mode, in its own process, recording every
request), the real ``aggregate`` handler fed by the stream pump in the deployed batch size,
and the real ``close_days`` once the Day is over. It then prices every recorded request by
DynamoDB's rules, never by what the code says it does:

* moto records requests, not item states, so the recording is replayed one request at a
  time against a fresh moto server (the setup before the first priced request included),
  with a consistent ``GetItem`` of every touched item before and after each write;
* a write costs ``ceil(max(size before, size after) / 1 KB)`` units per item (min 1): a
  PutItem, UpdateItem, DeleteItem and each item of a BatchWriteItem; a transactional
  item twice that; a refused conditional write the size of the item it left in place (min
  1), as DynamoDB charges it;
* a global secondary index costs one write of its entry (table key + index key + projected
  attributes + 100 bytes) when an item enters it or changes a projected attribute, two when
  its index key changes, one when it leaves;
* reads (secondary): GetItem and each key of a BatchGetItem ``ceil(size / 4 KB)`` units, a
  Query or Scan page the sum of its items' sizes, halved when eventually consistent; the
  stream's own reads (GetRecords and the like) are free to a Lambda trigger.

Item sizes follow AWS's rules as ``chalicelib.storage.codec.item_size`` computes them
(bench/bench_rollup.py's ``size_of``). The replay is checked: the fresh server's tables
must end up equal to the recorded run's.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.storage.codec import item_size
from vtsops.units import read_blocks, write_units

ROOT = Path(__file__).resolve().parents[2]
INDEX_ENTRY_OVERHEAD = 100  # bytes DynamoDB adds to each index entry
DYNAMODB = "DynamoDB_20120810."
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
PHASES = ("record", "aggregate", "close")
UNKNOWN = "unknown"
JsonObject = dict[str, Any]


# ---- moto in its own process, recording ---------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request moto recorded (``download-recording`` gives one JSON line each)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_line(cls, line: str) -> Recorded:
        raw = json.loads(line)
        body = raw.get("body") or ""
        data = base64.b64decode(body) if raw.get("body_encoded") else str(body).encode()
        return cls(str(raw["method"]), str(raw["url"]), dict(raw.get("headers") or {}), data)

    @property
    def target(self) -> str:
        return str(self.headers.get("X-Amz-Target") or self.headers.get("x-amz-target") or "")

    @property
    def operation(self) -> str:
        """``PutItem`` for a DynamoDB request; the whole target for another service's."""
        target = self.target
        return target.removeprefix(DYNAMODB) if target.startswith(DYNAMODB) else target

    @property
    def is_dynamodb(self) -> bool:
        return self.target.startswith(DYNAMODB)

    def payload(self) -> JsonObject:
        return json.loads(self.body) if self.body else {}


class MotoProcess:
    """moto in server mode in a child process on a free loopback port; with ``record_to``
    every request it serves is appended to that file (moto's recorder)."""

    def __init__(self, record_to: Path | None = None) -> None:
        from vtsops.stack import free_port

        self.port = free_port()
        self.record_to = record_to
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoProcess:
        from vtsops.stack import die_with_parent, http_ok, wait_for

        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTO_")}
        if self.record_to is not None:
            env["MOTO_ENABLE_RECORDING"] = "True"
            env["MOTO_RECORDER_FILEPATH"] = str(self.record_to)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        wait_for(lambda: http_ok(f"{self.endpoint}/moto-api/data.json"), 60, "moto")
        return self

    def stop(self) -> None:
        from vtsops.stack import interrupt

        if self._process is not None:
            interrupt(self._process, 10)
            self._process = None

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _recorder(self, action: str) -> bytes:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/recorder/{action}", method="POST", data=b""
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return bytes(answer.read())

    def start_recording(self) -> None:
        self._recorder("start-recording")

    def stop_recording(self) -> None:
        self._recorder("stop-recording")

    def reset_recording(self) -> None:
        self._recorder("reset-recording")

    def download_recording(self) -> list[Recorded]:
        text = self._recorder("download-recording").decode()
        return [Recorded.from_line(line) for line in text.splitlines() if line.strip()]

    def recorded(self) -> int:
        """How many requests the recording holds so far (a phase's first index)."""
        return len(self.download_recording())


# ---- item kinds and sizes -----------------------------------------------------------------


def kind_of(table: str, pk: str, sk: str) -> str:
    """What an item is, by its table (logical name) and key (chalicelib/storage/keys.py,
    chalicelib/storage/aggregates/layout.py); ``unknown`` for a key VTS does not make."""
    if table == "events":
        if sk.startswith("V#"):
            return "event View V#"
        if sk.startswith("I#"):
            return "event Impression I#"
        return UNKNOWN
    if table == "registry":
        for prefix, sk_wanted, kind in (
            ("POST#", "META", "registry post POST#"),
            ("POST#", "HOT", "registry post hot mark HOT"),
            ("PLAYER#", "META", "registry player PLAYER#"),
            ("RATE#", "RATE", "registry rate slot RATE#"),
            ("ONCE#", "ONCE", "registry once marker ONCE#"),
        ):
            if pk.startswith(prefix) and sk == sk_wanted:
                return kind
        return UNKNOWN
    if table != "aggregates":
        return UNKNOWN
    if pk == "DROPS":
        return "drops DROPS D#" if sk.startswith("D#") else "drops DROPS " + sk.split("#")[0]
    if pk.startswith("DAY#"):
        return "day marker DAY#"
    if (pk, sk) == ("PUMP", "STATE"):
        return "stream position PUMP"
    if (pk, sk) == ("CLOSE", "WATERMARK"):
        return "watermark CLOSE"
    target = {"P": "post", "A": "artist", "S": "site"}.get(pk[:1]) if pk else None
    if target is None or not (pk == "SITE" or pk[1:2] == "#"):
        return UNKNOWN
    if sk.startswith("D#"):
        return f"live {target} D#"
    if sk == "RANK" and target == "post":
        return "post RANK"
    if sk == "POSTS" and target == "artist":
        return "artist POSTS"
    if sk == "TOTAL":
        return f"{target} TOTAL"
    if sk.startswith("S#"):
        return f"{target} series S#"
    if re.fullmatch(r"B0#.+", sk):
        return f"{target} piece B0#"
    if re.fullmatch(r"B[1-9]\d*#.+", sk):
        return f"{target} block Bn#"
    return UNKNOWN


def plain(value: Mapping[str, Any]) -> Any:
    """One attribute value of DynamoDB's wire format as a plain value ``item_size`` sizes."""
    (tag, inner), *_ = value.items()
    if tag == "S":
        return str(inner)
    if tag == "N":
        return Decimal(str(inner))
    if tag == "B":
        return base64.b64decode(inner)
    if tag == "BOOL":
        return bool(inner)
    if tag == "NULL":
        return None
    if tag == "SS":
        return [str(v) for v in inner]
    if tag == "NS":
        return [Decimal(str(v)) for v in inner]
    if tag == "BS":
        return [base64.b64decode(v) for v in inner]
    if tag == "L":
        return [plain(v) for v in inner]
    if tag == "M":
        return {k: plain(v) for k, v in inner.items()}
    raise ValueError(f"unknown attribute type {tag!r}")


def wire_size(item: Mapping[str, Any] | None) -> int:
    """An item's size by AWS's rules (attribute names + values), from the wire format."""
    if not item:
        return 0
    return item_size({name: plain(value) for name, value in item.items()})


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    included: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableShape:
    logical: str
    keys: tuple[str, ...]  # hash, then range
    indexes: tuple[Index, ...] = ()

    def key_of(self, item: Mapping[str, Any]) -> JsonObject:
        return {name: item[name] for name in self.keys}

    def entry(self, index: Index, item: Mapping[str, Any] | None) -> JsonObject | None:
        """The item's entry in ``index`` (None when it is not in the index)."""
        if not item or any(name not in item for name in index.keys):
            return None
        names = set(self.keys) | set(index.keys)
        if index.projection == "ALL":
            names = set(item)
        elif index.projection == "INCLUDE":
            names |= set(index.included)
        return {name: item[name] for name in sorted(names) if name in item}

    def index_writes(
        self, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
    ) -> list[tuple[str, int]]:
        """(index name, entry size) of each index write one item's change costs."""
        out = []
        for index in self.indexes:
            old, new = self.entry(index, before), self.entry(index, after)
            if old == new:
                continue
            if old is None or new is None:
                changed = [new if old is None else old]
            elif {k: old[k] for k in index.keys} != {k: new[k] for k in index.keys}:
                changed = [old, new]  # the key moved: a delete and a put
            else:
                changed = [new]  # a projected attribute changed: one put
            for entry in changed:
                out.append((index.name, wire_size(entry) + INDEX_ENTRY_OVERHEAD))
        return out


def table_shape(logical: str, description: Mapping[str, Any]) -> TableShape:
    def keys(schema: Iterable[Mapping[str, str]]) -> tuple[str, ...]:
        ordered = sorted(schema, key=lambda k: k["KeyType"] != "HASH")
        return tuple(k["AttributeName"] for k in ordered)

    indexes = tuple(
        Index(
            name=str(index["IndexName"]),
            keys=keys(index["KeySchema"]),
            projection=str(index["Projection"]["ProjectionType"]),
            included=tuple(index["Projection"].get("NonKeyAttributes", ())),
        )
        for index in description.get("GlobalSecondaryIndexes", [])
    )
    return TableShape(logical, keys(description["KeySchema"]), indexes)


# ---- pricing by replay --------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """The units one item of one recorded request cost."""

    request: int  # index of the request in the recording
    phase: str
    operation: str
    kind: str
    wru: int = 0
    rru: float = 0.0
    refused: bool = False  # a conditional write whose condition failed (charged all the same)
    size: int = 0  # bytes priced: the larger item state of a write, an index entry's size


@dataclass
class Sheet:
    """Every charge of the priced requests, and what the replay could not price."""

    charges: list[Charge] = field(default_factory=list)
    free: Counter[str] = field(default_factory=Counter)  # operation -> requests not charged
    errors: list[str] = field(default_factory=list)  # requests the replay saw fail otherwise

    def wru(self, phases: Iterable[str] = PHASES) -> int:
        wanted = set(phases)
        return sum(c.wru for c in self.charges if c.phase in wanted)

    def rru(self, phases: Iterable[str] = PHASES) -> float:
        wanted = set(phases)
        return sum(c.rru for c in self.charges if c.phase in wanted)

    def kinds(self) -> set[str]:
        return {c.kind for c in self.charges}

    def rows(self) -> list[JsonObject]:
        """One row per (phase, kind): requests, items written, refused, WRU, reads, RRU."""
        table: dict[tuple[str, str], JsonObject] = {}
        for charge in self.charges:
            row = table.setdefault(
                (charge.phase, charge.kind),
                {
                    "phase": charge.phase,
                    "kind": charge.kind,
                    "write_requests": set(),
                    "writes": 0,
                    "refused": 0,
                    "wru": 0,
                    "bytes": 0,
                    "read_requests": set(),
                    "rru": 0.0,
                },
            )
            if charge.operation in WRITES or charge.operation.startswith("index "):
                row["write_requests"].add(charge.request)
                row["writes"] += 1
                row["refused"] += int(charge.refused)
                row["wru"] += charge.wru
                row["bytes"] += charge.size
            else:
                row["read_requests"].add(charge.request)
                row["rru"] += charge.rru
        rows = []
        for (phase, _kind), row in sorted(
            table.items(), key=lambda kv: (PHASES.index(kv[0][0]), -kv[1]["wru"], kv[0][1])
        ):
            row["write_requests"] = len(row["write_requests"])
            row["read_requests"] = len(row["read_requests"])
            row["mean_bytes"] = round(row.pop("bytes") / row["writes"]) if row["writes"] else 0
            row["phase"] = phase
            rows.append(row)
        return rows

    def by_kind(self, phases: Iterable[str] = PHASES) -> dict[str, int]:
        wanted = set(phases)
        out: Counter[str] = Counter()
        for charge in self.charges:
            if charge.phase in wanted and charge.wru:
                out[charge.kind] += charge.wru
        return dict(out.most_common())


class Pricer:
    """Replays a recording against a fresh moto server and prices each request of the
    priced phases by the items it touched (module docstring)."""

    def __init__(self, endpoint: str, tables: Mapping[str, str]) -> None:
        self._endpoint = endpoint
        self._tables = dict(tables)  # physical name -> logical name
        self._shapes: dict[str, TableShape] = {}
        self._session = requests.Session()
        self._auth: dict[str, str] = {}

    # ---- the wire -------------------------------------------------------------------------

    def _send(self, entry: Recorded) -> tuple[int, JsonObject]:
        headers = {
            k: v
            for k, v in entry.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        if "Authorization" in headers:
            self._auth = {k: headers[k] for k in ("Authorization", "X-Amz-Date") if k in headers}
        answer = self._session.request(
            entry.method, self._endpoint + "/", data=entry.body, headers=headers, timeout=60
        )
        try:
            body = answer.json() if answer.content else {}
        except ValueError:
            body = {"raw": answer.text[:200]}
        return answer.status_code, body

    def _call(self, operation: str, payload: Mapping[str, Any]) -> JsonObject:
        headers = {
            **self._auth,
            "X-Amz-Target": DYNAMODB + operation,
            "Content-Type": "application/x-amz-json-1.0",
        }
        answer = self._session.post(
            self._endpoint + "/", data=json.dumps(payload), headers=headers, timeout=60
        )
        answer.raise_for_status()
        return dict(answer.json())

    def _get(self, table: str, key: Mapping[str, Any]) -> JsonObject | None:
        found = self._call("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True})
        item = found.get("Item")
        return dict(item) if item else None

    def _shape(self, table: str) -> TableShape:
        if table not in self._shapes:
            description = self._call("DescribeTable", {"TableName": table})["Table"]
            self._shapes[table] = table_shape(self._tables.get(table, table), description)
        return self._shapes[table]

    def _kind(self, table: str, key: Mapping[str, Any]) -> str:
        shape = self._shape(table)
        values = [str(plain(key[name])) if name in key else "" for name in shape.keys]
        pk, sk = [*values, "", ""][:2]
        return kind_of(shape.logical, pk, sk)

    # ---- the replay -----------------------------------------------------------------------

    def replay(self, entries: Sequence[Recorded], phase_of: Callable[[int], str | None]) -> Sheet:
        """Send every DynamoDB request in order; price those whose phase is not None."""
        sheet = Sheet()
        for n, entry in enumerate(entries):
            if not entry.is_dynamodb:
                # The stream's reads (the trigger's) change nothing and are free to Lambda.
                if phase_of(n) is not None:
                    sheet.free[entry.operation or entry.url] += 1
                continue
            phase = phase_of(n)
            if phase is None:
                self._send(entry)
            elif entry.operation in WRITES:
                self._write(n, phase, entry, sheet)
            elif entry.operation in READS:
                self._read(n, phase, entry, sheet)
            else:
                self._send(entry)  # DescribeTable and the like: control plane, not billed
                sheet.free[entry.operation] += 1
        return sheet

    def _touched(self, operation: str, payload: Mapping[str, Any]) -> list[tuple[str, JsonObject]]:
        """(table, key) of each item a write request touches, in request order."""
        if operation in ("UpdateItem", "DeleteItem"):
            return [(payload["TableName"], dict(payload["Key"]))]
        if operation == "PutItem":
            table = payload["TableName"]
            return [(table, self._shape(table).key_of(payload["Item"]))]
        out: list[tuple[str, JsonObject]] = []
        if operation == "BatchWriteItem":
            for table, writes in payload["RequestItems"].items():
                for write in writes:
                    if "PutRequest" in write:
                        out.append((table, self._shape(table).key_of(write["PutRequest"]["Item"])))
                    else:
                        out.append((table, dict(write["DeleteRequest"]["Key"])))
            return out
        for part in payload["TransactItems"]:  # TransactWriteItems
            (_action, spec), *_ = part.items()
            table = spec["TableName"]
            key = spec["Key"] if "Key" in spec else self._shape(table).key_of(spec["Item"])
            out.append((table, dict(key)))
        return out

    def _write(self, n: int, phase: str, entry: Recorded, sheet: Sheet) -> None:
        payload = entry.payload()
        operation = entry.operation
        touched = self._touched(operation, payload)
        before = [self._get(table, key) for table, key in touched]
        status, answer = self._send(entry)
        error = str(answer.get("__type", "")).rsplit("#", 1)[-1] if status >= 400 else ""
        refused = error in ("ConditionalCheckFailedException", "TransactionCanceledException")
        if error and not refused:
            sheet.errors.append(f"#{n} {operation}: {error} {answer.get('message', '')}")
            return  # refused before any write: DynamoDB charges no write units
        after = before if refused else [self._get(table, key) for table, key in touched]
        factor = 2 if operation == "TransactWriteItems" else 1
        for (table, key), old, new in zip(touched, before, after, strict=True):
            kind = self._kind(table, key)
            size = max(wire_size(old), wire_size(new))
            units = factor * write_units(size)
            sheet.charges.append(
                Charge(n, phase, operation, kind, wru=units, refused=refused, size=size)
            )
            if refused:
                continue
            for index, entry_size in self._shape(table).index_writes(old, new):
                units = factor * write_units(entry_size)
                name = f"index {index}"
                sheet.charges.append(Charge(n, phase, name, name, wru=units, size=entry_size))

    def _read(self, n: int, phase: str, entry: Recorded, sheet: Sheet) -> None:
        payload = entry.payload()
        operation = entry.operation
        status, answer = self._send(entry)
        if status >= 400:
            sheet.errors.append(f"#{n} {operation}: {answer.get('__type', status)}")
            return
        if operation == "GetItem":
            factor = 1.0 if payload.get("ConsistentRead") else 0.5
            units = factor * read_blocks(wire_size(answer.get("Item")))
            kind = self._kind(payload["TableName"], payload["Key"])
            sheet.charges.append(Charge(n, phase, operation, kind, rru=units))
        elif operation in ("BatchGetItem", "TransactGetItems"):
            self._read_many(n, phase, operation, payload, answer, sheet)
        else:  # Query, Scan: one page, its items' sizes summed
            table = payload["TableName"]
            items = answer.get("Items") or []
            factor = 1.0 if payload.get("ConsistentRead") else 0.5
            units = factor * read_blocks(sum(wire_size(i) for i in items))
            kind = self._query_kind(table, payload, items)
            sheet.charges.append(Charge(n, phase, operation, kind, rru=units))

    def _read_many(
        self,
        n: int,
        phase: str,
        operation: str,
        payload: Mapping[str, Any],
        answer: Mapping[str, Any],
        sheet: Sheet,
    ) -> None:
        if operation == "TransactGetItems":
            specs = [p["Get"] for p in payload["TransactItems"]]
            found = [r.get("Item") for r in answer.get("Responses", [])]
            for spec, item in zip(specs, found, strict=False):
                kind = self._kind(spec["TableName"], spec["Key"])
                units = 2.0 * read_blocks(wire_size(item))
                sheet.charges.append(Charge(n, phase, operation, kind, rru=units))
            return
        for table, spec in payload["RequestItems"].items():
            shape = self._shape(table)
            returned = {
                json.dumps(shape.key_of(item), sort_keys=True): item
                for item in (answer.get("Responses") or {}).get(table, [])
            }
            factor = 1.0 if spec.get("ConsistentRead") else 0.5
            for key in spec["Keys"]:
                item = returned.get(json.dumps(dict(key), sort_keys=True))
                units = factor * read_blocks(wire_size(item))
                sheet.charges.append(Charge(n, phase, operation, self._kind(table, key), rru=units))

    def _query_kind(self, table: str, payload: Mapping[str, Any], items: Sequence[Any]) -> str:
        if payload.get("IndexName"):
            return f"index {payload['IndexName']} (query)"
        shape = self._shape(table)
        if items:
            return self._kind(table, shape.key_of(items[0]))
        names = payload.get("ExpressionAttributeNames") or {}
        values = payload.get("ExpressionAttributeValues") or {}
        condition = str(payload.get("KeyConditionExpression") or "")
        pk = ""
        for token, placeholder in re.findall(r"([#\w]+)\s*=\s*(:\w+)", condition):
            if names.get(token, token) == shape.keys[0] and placeholder in values:
                pk = str(plain(values[placeholder]))
        others = [
            str(plain(v))
            for p, v in values.items()
            if p in condition and str(plain(v)) != pk and "S" in v
        ]
        return kind_of(shape.logical, pk, others[0] if others else "")


def _b64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__}")


def dump_tables(endpoint: str, tables: Iterable[str]) -> dict[str, list[str]]:
    """Every item of the tables (canonical JSON, sorted): to compare two servers."""
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    out: dict[str, list[str]] = {}
    for table in tables:
        items: list[str] = []
        for page in client.get_paginator("scan").paginate(TableName=table):
            items.extend(json.dumps(item, sort_keys=True, default=_b64) for item in page["Items"])
        out[table] = sorted(items)
    return out


# ---- the scenario -------------------------------------------------------------------------

SITE_URL = "https://makapix.club"
WIDGET_PAGES = (
    "https://www.reddit.com/r/PixelArt/",
    "https://mastodon.social/@pixels",
    "https://pixeljoint.com/forum/",
    "https://www.tumblr.com/tagged/pixel",
    "https://blog.example.net/2026/11/favourite-pixel-art",
)
# Blocks of addresses on the public internet (a spread of RIRs and countries for GeoIP).
PUBLIC_BLOCKS = (
    23, 24, 31, 37, 41, 45, 46, 49, 58, 62, 64, 66, 67, 68, 71, 73, 76, 77, 78, 79, 80, 81,
    82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 101, 103, 106, 109, 110, 112,
    114, 118, 121, 122, 124, 125, 133, 138, 141, 145, 151, 153, 175, 176, 177, 178, 179, 180,
    181, 182, 185, 186, 187, 188, 189, 190, 191, 193, 194, 195, 200, 201, 202, 211, 212, 213,
    217, 219, 220, 222,
)  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    looks: int = 660
    posts: int = 40
    artists: int = 10
    repeats: int = 60  # looks that repeat an earlier visitor's look at the same post
    seed: int = 7
    # The stream mapping as deployed (infra/functions/aggregate.yaml): BatchSize 1000.
    batch_size: int = 1000
    day: date = date(2026, 11, 24)
    start: time = time(18, 0, 0)
    # The burst's length: within one 10 s batching window, it reaches the handler as one
    # batch (of at most batch_size records), as the deployed mapping would send it.
    burst_s: float = 10.0
    # API containers the looks are spread over (round robin): each has its own caches
    # (posts, Views it saw stored) and drop counters, as separate Lambda containers do.
    containers: int = 1
    # True: every post had a look the Day before, pumped and closed before the priced part
    # (a catalog in its steady state: each post's RANK, its listing row, exists). False: the
    # burst is every post's first look ever, which also pays each post's RANK once.
    seen_before: bool = False


@dataclass(frozen=True)
class Look:
    post_id: int
    ip: str
    user_agent: str
    body: str
    referer: str | None
    repeat: bool = False

    @property
    def visitor(self) -> tuple[str, str]:
        return self.ip, self.user_agent


def owners(scenario: Scenario) -> dict[int, str]:
    rng = random.Random(scenario.seed)
    artists = [f"artist-{n}" for n in range(1, scenario.artists + 1)]
    # Every artist has a post; the rest go to artists by a skewed draw (some post a lot).
    out = {post: artists[post - 1] for post in range(1, min(scenario.posts, len(artists)) + 1)}
    weights = [1 / (k + 1) for k in range(len(artists))]
    for post in range(len(out) + 1, scenario.posts + 1):
        out[post] = rng.choices(artists, weights)[0]
    return out


def burst(scenario: Scenario) -> list[Look]:
    """The looks: ``looks - repeats`` distinct visitors (each a distinct client address),
    over Zipf-popular posts, then ``repeats`` repeats of earlier (visitor, post) looks, each
    later than the look it repeats."""
    from vtsops.replay import DEVICE_MIX, UAS

    rng = random.Random(scenario.seed * 7919 + scenario.looks)
    posts = list(range(1, scenario.posts + 1))
    rng.shuffle(posts)
    post_weights = [1 / (rank + 1) ** 0.9 for rank in range(len(posts))]
    devices, device_weights = list(DEVICE_MIX), list(DEVICE_MIX.values())
    sqids = {p: uuid.UUID(int=rng.getrandbits(128)).hex[:6] for p in posts}
    distinct = scenario.looks - scenario.repeats
    if distinct <= 0 or scenario.repeats < 0:
        raise ValueError("looks must exceed repeats")
    seen_ips: set[str] = set()
    looks: list[Look] = []
    while len(looks) < distinct:
        ip = (
            f"{rng.choice(PUBLIC_BLOCKS)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )
        if ip in seen_ips:
            continue
        seen_ips.add(ip)
        post = rng.choices(posts, post_weights)[0]
        ua = rng.choice(UAS[rng.choices(devices, device_weights)[0]])
        where = rng.random()
        if where < 0.75:  # on the site, vts.js on the post's page
            source, referer = "web", f"{SITE_URL}/p/{sqids[post]}"
        elif where < 0.92:  # an embedded widget elsewhere
            source, referer = "widget", rng.choice(WIDGET_PAGES)
        else:  # no referrer sent (privacy settings, an app's web view)
            source, referer = "web", None
        body = json.dumps({"intent": "view", "source": source}, separators=(",", ":"))
        looks.append(Look(post, ip, ua, body, referer))
    order: list[Look] = list(looks)
    for _ in range(scenario.repeats):
        original = rng.choice(looks)
        at = rng.randint(order.index(original) + 1, len(order))
        order.insert(
            at,
            Look(original.post_id, original.ip, original.user_agent, original.body,
                 original.referer, repeat=True),
        )  # fmt: skip
    return order


@dataclass
class Run:
    """What one run of the harness did and what it cost."""

    scenario: Scenario
    looks: list[Look]
    statuses: Counter[int]
    counted: int
    records_pumped: int
    batches: int
    close: JsonObject
    requests: dict[str, int]  # phase -> recorded requests
    priced_writes: int  # recorded write requests of the priced phases
    sheet: Sheet
    replay_matches: bool
    seconds: dict[str, float]

    @property
    def distinct_pairs(self) -> int:
        return len({(look.visitor, look.post_id) for look in self.looks})

    def wru(self, phases: Iterable[str] = PHASES) -> int:
        return self.sheet.wru(phases)

    def per_view(self, phases: Iterable[str] = PHASES) -> float:
        return self.wru(phases) / max(1, self.counted)


def run_settings(endpoint: str, *, geoip: bool = True) -> Settings:
    prefix = f"wru-{uuid.uuid4().hex[:8]}"
    geo = ROOT / ".data" / "geoip" / "country.mmdb"
    return Settings(
        dynamodb_endpoint=endpoint,
        events_table=f"{prefix}-events",
        aggregates_table=f"{prefix}-aggregates",
        registry_table=f"{prefix}-registry",
        jwt_secret="wru-bench-jwt-secret-0123456789abcdef",
        visitor_key="wru-bench-visitor-key",
        geoip_db=str(geo) if geoip and geo.exists() else None,
        trust_forwarded_for=True,  # the client address from X-Forwarded-For (test client)
    )


@contextmanager
def _dummy_credentials() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    for name in saved:
        os.environ.setdefault(name, "testing")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _a_day_before(
    scenario: Scenario,
    settings: Settings,
    client: Any,
    owner_of: Mapping[int, str],
    day_start: datetime,
) -> None:
    """Setup of ``seen_before`` (not priced): one look at each post the Day before the burst
    (a client address of its own, apart from the burst's), pumped and closed."""
    from chalicelib.wiring import dynamodb_services, use
    from vtsops.replay import UAS
    from vtsops.trigger_rollup import CloseScheduler, StreamPump

    before = FixedClock(day_start - timedelta(days=1))
    with use(dynamodb_services(settings, clock=before)) as services:
        for post_id in sorted(owner_of):
            answer = client.http.post(
                f"/v1/posts/{post_id}/views",
                headers={
                    "User-Agent": UAS["desktop"][0],
                    "Content-Type": "text/plain;charset=UTF-8",
                    "X-Forwarded-For": f"9.{post_id // 250}.{post_id % 250}.9",
                },
                body='{"intent":"view","source":"web"}',
            )
            if answer.status_code != 201:
                raise RuntimeError(f"the look the Day before at {post_id}: {answer.body!r}")
            before.advance(1)
        services.drops.flush()
    with use(dynamodb_services(settings, clock=FixedClock(before.at + timedelta(seconds=10)))):
        StreamPump(settings, batch_size=scenario.batch_size).pump_once()
    midnight = datetime.combine(scenario.day, time(), tzinfo=UTC)
    closed_at = midnight + timedelta(seconds=settings.close_grace_s + 60)
    with use(dynamodb_services(settings, clock=FixedClock(closed_at))):
        close = CloseScheduler().run_once()
    if close.get("closed_days") != [(scenario.day - timedelta(days=1)).isoformat()]:
        raise RuntimeError(f"the Day before did not close: {close}")


def run(scenario: Scenario, workdir: Path | None = None, *, geoip: bool = True) -> Run:
    """The whole measurement (module docstring): record, replay, price."""
    import logging
    import time as timer

    from chalice.test import Client

    from app import app
    from chalicelib.auth import issue_token
    from chalicelib.storage.provision import ensure_tables
    from chalicelib.wiring import dynamodb_client, dynamodb_services, use
    from vtsops.trigger_rollup import CloseScheduler, StreamPump

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    seconds: dict[str, float] = {}
    started = timer.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, _dummy_credentials():
        recording = Path(tmp) / "moto-recording.jsonl"
        marks: dict[str, int] = {}
        with MotoProcess(recording) as moto:
            settings = run_settings(moto.endpoint, geoip=geoip)
            tables = {v: k for k, v in settings.table_names().items()}
            ensure_tables(dynamodb_client(settings), settings.table_names())
            day_start = datetime.combine(scenario.day, scenario.start, tzinfo=UTC)
            clock = FixedClock(day_start - timedelta(minutes=5))

            # Setup (not priced): the posts, registered through the API by the platform.
            owner_of = owners(scenario)
            service = issue_token(
                settings.jwt_secret, sub="platform", role="service", now=datetime.now(UTC)
            )
            with Client(app, stage_name="dev") as client:
                with use(dynamodb_services(settings, clock=clock)):
                    for post_id, owner in sorted(owner_of.items()):
                        answer = client.http.put(
                            f"/v1/posts/{post_id}",
                            headers={
                                "Authorization": f"Bearer {service}",
                                "Content-Type": "application/json",
                            },
                            body=json.dumps({"owner_id": owner}),
                        )
                        if answer.status_code not in (200, 201):
                            raise RuntimeError(f"registering post {post_id}: {answer.body!r}")

                if scenario.seen_before:
                    _a_day_before(scenario, settings, client, owner_of, day_start)

                # Recording: the burst through the API, in `containers` fresh containers.
                looks = burst(scenario)
                clock.at = day_start
                containers = [
                    dynamodb_services(settings, clock=clock) for _ in range(scenario.containers)
                ]
                marks["record"] = moto.recorded()
                moto.start_recording()  # on since the start; the priced part begins here
                statuses: Counter[int] = Counter()
                counted = 0
                step = scenario.burst_s / max(1, len(looks))
                t0 = timer.perf_counter()
                for n, look in enumerate(looks):
                    headers = {
                        "User-Agent": look.user_agent,
                        "Content-Type": "text/plain;charset=UTF-8",
                        "X-Forwarded-For": look.ip,
                        "Origin": SITE_URL,
                    }
                    if look.referer:
                        headers["Referer"] = look.referer
                    with use(containers[n % len(containers)]):
                        answer = client.http.post(
                            f"/v1/posts/{look.post_id}/views", headers=headers, body=look.body
                        )
                    statuses[answer.status_code] += 1
                    if answer.status_code == 201 and json.loads(answer.body) == {"counted": True}:
                        counted += 1
                    clock.advance(step)
                # Each container's next flush writes the drop counters it holds (duplicates).
                for container in containers:
                    container.drops.flush()
                seconds["record"] = timer.perf_counter() - t0

            # The stream -> aggregate, as the deployed mapping batches it.
            marks["aggregate"] = moto.recorded()
            t0 = timer.perf_counter()
            rollup = dynamodb_services(settings, clock=FixedClock(clock.at + timedelta(seconds=10)))
            pump = StreamPump(settings, batch_size=scenario.batch_size)
            with use(rollup):
                pumped = pump.pump_once()
            seconds["aggregate"] = timer.perf_counter() - t0

            # The close of the Day, once its end is past the grace the close requires.
            marks["close"] = moto.recorded()
            t0 = timer.perf_counter()
            day_end = datetime.combine(scenario.day + timedelta(days=1), time(), tzinfo=UTC)
            later = day_end + timedelta(seconds=settings.close_grace_s + 300)
            closer = dynamodb_services(settings, clock=FixedClock(later))
            with use(closer):
                close = dict(CloseScheduler().run_once())
            seconds["close"] = timer.perf_counter() - t0
            moto.stop_recording()
            entries = moto.download_recording()
            t0 = timer.perf_counter()
            recorded_state = dump_tables(moto.endpoint, tables)
            seconds["dump"] = timer.perf_counter() - t0

        bounds = [(marks[p], p) for p in PHASES] + [(len(entries), "")]

        def phase_of(n: int) -> str | None:
            phase = None
            for first, name in bounds:
                if n >= first:
                    phase = name or None
            return phase

        t0 = timer.perf_counter()
        with MotoProcess() as fresh:
            sheet = Pricer(fresh.endpoint, tables).replay(entries, phase_of)
            replay_matches = dump_tables(fresh.endpoint, tables) == recorded_state
        seconds["replay"] = timer.perf_counter() - t0
    seconds["total"] = timer.perf_counter() - started
    requests_by_phase = {
        name: bounds[i + 1][0] - first for i, (first, name) in enumerate(bounds[:-1])
    }
    return Run(
        scenario=scenario,
        looks=looks,
        statuses=statuses,
        counted=counted,
        records_pumped=pumped.records,
        batches=pumped.batches,
        close=close,
        requests=requests_by_phase,
        priced_writes=sum(
            1 for n, e in enumerate(entries) if phase_of(n) and e.operation in WRITES
        ),
        sheet=sheet,
        replay_matches=replay_matches,
        seconds=seconds,
    )


# ---- the report ---------------------------------------------------------------------------


def report_lines(result: Run) -> list[str]:
    s = result.scenario
    lines = [
        f"burst: {len(result.looks)} web looks over {s.posts} posts of {s.artists} artists "
        f"({s.looks - s.repeats} distinct visitors + {s.repeats} repeats), {s.burst_s:g} s, "
        f"{s.containers} API container(s); answers "
        + ", ".join(f"{code}: {n}" for code, n in sorted(result.statuses.items())),
        f"stream: {result.records_pumped} records in {result.batches} batch(es) "
        f"(BatchSize {s.batch_size}); close: days {result.close.get('closed_days')}, "
        f"{result.close.get('writes')} item writes reported",
        "recorded requests by phase: "
        + ", ".join(f"{p} {n}" for p, n in result.requests.items())
        + f"; replay reproduced the recorded tables: {'yes' if result.replay_matches else 'NO'}",
        "",
        f"{'phase':<10} {'item kind':<28} {'wr req':>6} {'writes':>6} {'refused':>7} "
        f"{'WRU':>6} {'WRU/View':>8} {'mean B':>6} {'rd req':>6} {'RRU':>7}",
    ]
    views = max(1, result.counted)
    for row in result.sheet.rows():
        per_view = f"{row['wru'] / views:.3f}" if row["wru"] else ""
        rru = f"{row['rru']:g}" if row["rru"] else ""
        lines.append(
            f"{row['phase']:<10} {row['kind']:<28} {row['write_requests'] or '':>6} "
            f"{row['writes'] or '':>6} {row['refused'] or '':>7} {row['wru'] or '':>6} "
            f"{per_view:>8} {row['mean_bytes'] or '':>6} {row['read_requests'] or '':>6} {rru:>7}"
        )
    lines.append("")
    for phase in PHASES:
        lines.append(
            f"{phase:<10} total: {result.wru([phase]):>5} WRU "
            f"({result.wru([phase]) / views:.3f} per counted View), "
            f"{result.sheet.rru([phase]):g} RRU"
        )
    free = ", ".join(f"{op} {n}" for op, n in sorted(result.sheet.free.items()))
    lines.append(f"not priced (stream reads free to the trigger, control plane): {free or '-'}")
    if result.sheet.errors:
        lines.append(f"requests refused for other reasons (not charged): {result.sheet.errors}")
    total, without = result.wru(), result.wru(("record", "aggregate"))
    lines += [
        "",
        f"WRU per counted View all-in: {result.per_view():.3f} "
        f"({result.counted} counted Views, {total} WRU)",
        f"WRU per counted View without the close: {result.per_view(('record', 'aggregate')):.3f} "
        f"({result.counted} counted Views, {without} WRU)",
    ]
    return lines


def figures(result: Run) -> JsonObject:
    s = result.scenario
    return {
        "looks": len(result.looks),
        "posts": s.posts,
        "artists": s.artists,
        "repeats": s.repeats,
        "containers": s.containers,
        "batch_size": s.batch_size,
        "batches": result.batches,
        "counted_views": result.counted,
        "wru": result.wru(),
        "wru_per_view": round(result.per_view(), 3),
        "wru_per_view_without_close": round(result.per_view(("record", "aggregate")), 3),
        "wru_by_phase": {p: result.wru([p]) for p in PHASES},
        "wru_by_kind": result.sheet.by_kind(),
        "rru": round(result.sheet.rru(), 1),
        "replay_matches": result.replay_matches,
    }
