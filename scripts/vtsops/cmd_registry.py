"""``vts import-registry FILE.jsonl``: register posts and players in bulk through the API's
``POST /v1/registry/batch`` (docs/makapix.md).

One JSON object a line: ``{"type": "post", "id": 1, "owner_id": "k3Jx9", ...}`` or
``{"type": "player", "key": "<uuid>", "owner_id": "k3Jx9", ...}``. The whole file is read
first (a missing or unreadable file sends nothing); a line that is not such an object is
reported with its number and skipped. The rest goes in batches of up to 500 records, with a
progress bar, then a summary: applied (and how many of those changed anything), refused
with their line numbers and codes. Re-running a file changes nothing.

The API is ``--url`` (else ``VTS_API_URL``, else the local stack on ``VTS_HTTP_PORT``); the
token is ``--token`` (else ``VTS_SERVICE_TOKEN``, else a short-lived service token signed
with ``VTS_JWT_SECRET``, as the local stack has it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_BATCH = 500  # the API's limit of records a request
MAX_BATCH_BYTES = 1_000_000  # under the API's 1 MiB body limit
RETRIES = 3  # a 429/503 or a dropped connection is retried this often, then the run stops
EXIT_REFUSED = 3  # the run finished, but some lines were refused or not records
KINDS = {"post": "posts", "player": "players"}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    parser = sub.add_parser(
        "import-registry",
        help="register posts and players from a JSON Lines file through the API",
        description=(
            "Send the posts and players of FILE (one JSON object a line, with \"type\": "
            "\"post\" or \"player\" and the record's fields) to POST /v1/registry/batch, in "
            "batches, then say what was applied and what was refused (by line). Re-running "
            "changes nothing. Exit status: 0 all applied, 1 the API failed or refused the "
            f"token, 2 bad usage or an unreadable file, {EXIT_REFUSED} some lines refused."
        ),
    )
    parser.add_argument("file", type=Path, help="the JSON Lines file (FILE.jsonl)")
    parser.add_argument(
        "--url", default=None,
        help="the API's base URL (default: VTS_API_URL, else the local stack's)",
    )
    parser.add_argument(
        "--token", default=None,
        help="a service or admin token (default: VTS_SERVICE_TOKEN, else one signed with "
             "VTS_JWT_SECRET)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=MAX_BATCH,
        help=f"records a request, 1 to {MAX_BATCH} (default {MAX_BATCH})",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a request (30)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    commands["import-registry"] = cmd_import_registry


def _fail(message: str, code: int = 2) -> int:
    print(f"vts: error: {message}", file=sys.stderr)
    return code


# ---- the file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as editors count
    kind: str  # "post" or "player"
    record: dict[str, Any]
    size: int  # bytes of its JSON


@dataclass(frozen=True)
class Problem:
    line: int
    code: str
    message: str
    kind: str | None = None
    ident: Any = None  # the record's id or key, when it has one

    def as_dict(self) -> dict[str, Any]:
        found = {"line": self.line, "code": self.code, "message": self.message}
        if self.kind is not None:
            found.update(type=self.kind, id=self.ident)
        return found


def read_lines(path: Path) -> tuple[list[Line], list[Problem]]:
    """Every record of the file, and every line that is not one. ``OSError`` when the file
    cannot be read."""
    records: list[Line] = []
    bad: list[Problem] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            parsed = _parse_line(number, raw)
            if isinstance(parsed, Line):
                records.append(parsed)
            else:
                bad.append(parsed)
    return records, bad


def _parse_line(number: int, raw: bytes) -> Line | Problem:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return Problem(number, "invalid_json", "not valid JSON")
    if not isinstance(data, dict):
        return Problem(number, "invalid_json", "not a JSON object")
    kind = data.pop("type", None)
    if kind not in KINDS:
        shown = json.dumps(kind)[:40]
        return Problem(number, "unknown_type", f'"type" is {shown}; expected "post" or "player"')
    body = json.dumps(data, separators=(",", ":"))
    if len(body.encode()) > MAX_BATCH_BYTES:
        return Problem(number, "record_too_large", f"the record is over {MAX_BATCH_BYTES} bytes")
    return Line(number, kind, data, len(body.encode()) + 1)


def batches(lines: list[Line], size: int) -> Iterator[list[Line]]:
    """Consecutive lines, at most ``size`` records and ``MAX_BATCH_BYTES`` a batch."""
    batch: list[Line] = []
    weight = 0
    for line in lines:
        if batch and (len(batch) >= size or weight + line.size > MAX_BATCH_BYTES):
            yield batch
            batch, weight = [], 0
        batch.append(line)
        weight += line.size
    if batch:
        yield batch


# ---- the API -------------------------------------------------------------------------------


class ApiError(Exception):
    """The API could not be reached, or refused the request as a whole."""


@dataclass
class Summary:
    records: int = 0
    applied: int = 0
    changed: int = 0
    batches: int = 0
    refused: list[Problem] = field(default_factory=list)
    bad_lines: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records, "batches": self.batches, "applied": self.applied,
            "changed": self.changed, "refused": [p.as_dict() for p in self.refused],
            "bad_lines": [p.as_dict() for p in self.bad_lines],
        }


def post_batch(url: str, token: str, body: bytes, timeout: float) -> tuple[dict[str, Any], int]:
    """One ``POST /v1/registry/batch``: its answer and how many records it changed.
    Retries a 429, a 503 and a dropped connection; ``ApiError`` for anything else."""
    request = urllib.request.Request(
        f"{url}/v1/registry/batch",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                 "User-Agent": "vts-import-registry"},
    )
    for attempt in range(RETRIES + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                changed = answer.headers.get("X-VTS-Changed") or "0"
                return json.loads(answer.read()), int(changed) if changed.isdigit() else 0
        except urllib.error.HTTPError as error:
            if error.code in (429, 503) and attempt < RETRIES:
                time.sleep(_retry_after(error.headers.get("Retry-After"), attempt))
                continue
            raise ApiError(f"the API answered {error.code}: {_error_text(error)}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            # A dropped or timed-out request is sent again: applying a batch is idempotent.
            if attempt < RETRIES and isinstance(reason, (ConnectionResetError, TimeoutError)):
                time.sleep(_retry_after(None, attempt))
                continue
            raise ApiError(f"cannot reach the API at {url}: {reason}") from None
        except ValueError:
            raise ApiError(f"the API at {url} did not answer JSON") from None
    raise ApiError("unreachable")  # the loop always returns or raises


def _retry_after(header: str | None, attempt: int) -> float:
    if header and header.isdigit():
        return min(30.0, float(header))
    return min(10.0, 0.5 * 2.0**attempt)


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return f"{body['error']['message']} ({body['error']['code']})"
    except Exception:  # not our error JSON (a proxy, a gateway): its status says enough
        return str(error.reason)


def send(
    lines: list[Line], url: str, token: str, size: int, timeout: float,
    progress: Callable[[int], None],
) -> Summary:
    summary = Summary(records=len(lines))
    done = 0
    for batch in batches(lines, size):
        places: dict[str, list[Line]] = {"posts": [], "players": []}
        for line in batch:
            places[KINDS[line.kind]].append(line)
        body = json.dumps(
            {name: [line.record for line in group] for name, group in places.items()},
            separators=(",", ":"),
        ).encode()
        answer, changed = post_batch(url, token, body, timeout)
        summary.batches += 1
        summary.applied += int(answer.get("applied", 0))
        summary.changed += changed
        for refusal in answer.get("refused", []):
            try:
                line = places[KINDS[refusal["kind"]]][refusal["index"]]
                code, message = str(refusal["code"]), str(refusal["message"])
            except (KeyError, IndexError, TypeError):
                raise ApiError(f"the API answered a refusal this command cannot place: "
                               f"{json.dumps(refusal)[:200]}") from None
            ident = line.record.get("id" if line.kind == "post" else "key")
            summary.refused.append(Problem(line.number, code, message, line.kind, ident))
        done += len(batch)
        progress(done)
    return summary


# ---- the command ---------------------------------------------------------------------------


def _api_url(given: str | None) -> str:
    url = given or os.environ.get("VTS_API_URL")
    if not url:
        url = f"http://127.0.0.1:{os.environ.get('VTS_HTTP_PORT') or 8000}"
    return url.rstrip("/")


def _token(given: str | None) -> str:
    token = given or os.environ.get("VTS_SERVICE_TOKEN")
    if token:
        return token
    secret = os.environ.get("VTS_JWT_SECRET")
    if not secret:
        raise ValueError(
            "no token: pass --token or set VTS_SERVICE_TOKEN (or VTS_JWT_SECRET, as the "
            "local stack does)"
        )
    from chalicelib.auth import issue_token
    from chalicelib.config import get_settings

    settings = get_settings()
    return issue_token(
        secret, sub="vts-import-registry", role="service", now=datetime.now(UTC), ttl_s=3600,
        issuer=settings.jwt_issuer, audience=settings.jwt_audience,
    )


def cmd_import_registry(args: argparse.Namespace) -> int:
    from chalicelib.errors import ConfigError
    from vtsops.progress import bar

    if not 1 <= args.batch_size <= MAX_BATCH:
        return _fail(f"--batch-size must be between 1 and {MAX_BATCH}")
    if args.timeout <= 0:
        return _fail("--timeout must be positive")
    try:
        lines, bad = read_lines(args.file)
    except OSError as error:
        return _fail(f"cannot read {args.file}: {error.strerror or error}")
    url = _api_url(args.url)
    try:
        token = _token(args.token)
    except (ValueError, ConfigError) as error:
        return _fail(getattr(error, "message", None) or str(error))
    try:
        with bar(len(lines), f"importing {args.file.name}") as advance:
            summary = send(lines, url, token, args.batch_size, args.timeout, advance)
    except ApiError as error:
        return _fail(str(error), 1)
    summary.bad_lines = bad
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        _print(summary, args.file)
    return EXIT_REFUSED if summary.refused or summary.bad_lines else 0


def _print(summary: Summary, path: Path) -> None:
    unchanged = summary.applied - summary.changed
    note = " (nothing new: already up to date)" if summary.applied and not summary.changed else ""
    print(
        f"{path}: {summary.records} records in {summary.batches} "
        f"batch{'' if summary.batches == 1 else 'es'}: "
        f"applied {summary.applied} ({summary.changed} new or changed, {unchanged} unchanged)"
        f"{note}, refused {len(summary.refused)}, bad lines {len(summary.bad_lines)}"
    )
    problems = sorted(summary.refused + summary.bad_lines, key=lambda p: p.line)
    for problem in problems:
        what = f" {problem.kind} {problem.ident}" if problem.kind is not None else ""
        print(f"  line {problem.line}:{what} {problem.code}: {problem.message}")
