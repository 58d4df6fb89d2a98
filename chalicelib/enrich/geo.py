"""Country lookup from an IP address, read from a local MaxMind DB (.mmdb) file.

The answer is an ISO 3166-1 alpha-2 code in upper case, or ``None`` when the address is
invalid, private, reserved or simply not in the database: a lookup never raises, because
a view must still be counted when its geography is unknown.

``maxminddb`` is used directly rather than ``geoip2``: ``geoip2``'s ``country()`` and
``city()`` refuse a database whose ``database_type`` they do not expect and build model
objects for every answer, while a plain ``get()`` returns a dict and lets one code path
read the three record shapes met in practice:

* MaxMind GeoIP2/GeoLite2 Country and City, DB-IP Lite City:
  ``{"country": {"iso_code": "US"}, "registered_country": {...}, ...}``
* the same with only ``registered_country`` (e.g. some anycast or satellite ranges);
* ip-location-db's flat DB-IP Lite Country file (the local default, see
  ``scripts/setup_geoip.py`` and docs/adr/0001-geoip-database.md): ``{"country_code": "US"}``.

Opening costs about 60 ms of imports (``maxminddb`` pulls ``importlib.metadata``), so the
import happens when a database is opened, not when this module is imported.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from chalicelib.errors import ConfigError

if TYPE_CHECKING:
    from maxminddb import Reader

__all__ = ["GeoDatabaseError", "GeoLookup", "get_geo_lookup"]

# Codes a database may hold that name no country. "ZZ" is ISO's "unknown" code and DB-IP
# uses it for reserved ranges; Geoacumen files store the literal text "None".
_NOT_A_COUNTRY = frozenset({"ZZ"})


class GeoDatabaseError(ConfigError, ValueError):
    """The configured GeoIP database is missing or unreadable.

    A ``ConfigError`` so the app maps it like any other misconfiguration, and a
    ``ValueError`` so callers that only know the standard library can still catch it.
    """


class GeoLookup:
    """Answers ``country(ip)`` from one .mmdb file, opened once and memory-mapped.

    ``path=None`` means geo enrichment is disabled: every lookup answers ``None``. A path
    that is set but does not name a readable database raises ``GeoDatabaseError`` at
    construction, so a deployment with a wrong ``VTS_GEOIP_DB`` fails loudly at cold start
    instead of silently recording every view as "unknown country".
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path: str | None = None if path is None else os.fspath(path)
        self._reader: Reader | None = None
        if self.path is None:
            return
        if not os.path.isfile(self.path):
            raise GeoDatabaseError(
                f"GeoIP database not found at {self.path!r} (VTS_GEOIP_DB); "
                "run `python scripts/setup_geoip.py` for the local default, "
                "or unset VTS_GEOIP_DB to disable country lookup"
            )
        import maxminddb  # deferred: see the module docstring

        try:
            # MODE_AUTO picks the C extension with mmap when it is available: the file is
            # paged in on demand and shared between warm invocations of the same process.
            self._reader = maxminddb.open_database(self.path, maxminddb.MODE_AUTO)
        except (OSError, ValueError, RuntimeError) as exc:
            # InvalidDatabaseError is a RuntimeError; a truncated or foreign file lands here.
            raise GeoDatabaseError(
                f"GeoIP database at {self.path!r} could not be opened: {exc}"
            ) from exc

    @property
    def enabled(self) -> bool:
        """Whether a database is open (``False`` when constructed with ``None``)."""
        return self._reader is not None

    @property
    def database_type(self) -> str | None:
        """The file's own ``database_type`` metadata, for logs and health checks."""
        if self._reader is None:
            return None
        return str(self._reader.metadata().database_type)

    def country(self, ip: str | None) -> str | None:
        """The ISO 3166-1 alpha-2 country of ``ip`` in upper case, or ``None``.

        ``None`` covers: geo disabled, ``ip`` empty or not a string, not an IP address,
        private/reserved, absent from the database, or a record without a usable code.
        """
        if self._reader is None or not isinstance(ip, str):
            return None
        ip = ip.strip()
        if not ip:
            return None
        if ":" in ip and "." in ip:
            ip = _unmap_ipv4(ip)
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            # Not an address, or an IPv6 address asked of an IPv4-only database.
            return None
        return _country_code(record)

    def close(self) -> None:
        """Release the file mapping (tests; a Lambda just lets the process end)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __repr__(self) -> str:
        return f"GeoLookup(path={self.path!r})"


@functools.lru_cache(maxsize=4)
def get_geo_lookup(path: str | None) -> GeoLookup:
    """The process-wide ``GeoLookup`` for ``path``: the database is opened once per process.

    A failed open is not cached (``lru_cache`` does not cache exceptions), so a fixed
    configuration is picked up by the next call.
    """
    return GeoLookup(path)


def _unmap_ipv4(ip: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4``.

    Dual-stack front ends may report IPv4 clients in IPv4-mapped form, and a database
    without MaxMind's ``::ffff:0:0/96`` alias (ip-location-db's files, for one) answers
    nothing for it. Only strings holding both ':' and '.' get here, so the common path
    pays nothing for the parse.
    """
    import ipaddress

    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # let the reader reject it the usual way
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else ip


def _country_code(record: object) -> str | None:
    """The country code held by one database record, whatever its shape (see module doc)."""
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        section = record.get(key)
        if isinstance(section, dict):
            code = _clean_code(section.get("iso_code"))
            if code is not None:
                return code
    return _clean_code(record.get("country_code"))


def _clean_code(value: object) -> str | None:
    """A two-letter code in upper case, or ``None`` for anything else."""
    if not isinstance(value, str) or len(value) != 2 or not value.isascii():
        return None
    if not value.isalpha():
        return None
    code = value.upper()
    return None if code in _NOT_A_COUNTRY else code
