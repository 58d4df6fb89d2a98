"""GeoLookup against real .mmdb files: small ones built here, and the local default if set up.

The small databases are written with mmdb-writer and read back by the real maxminddb
reader, so these tests exercise the same code path as production, only with known data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from chalicelib.enrich.geo import GeoDatabaseError, GeoLookup, get_geo_lookup
from chalicelib.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

_NAMES = {"en": "Brazil", "de": "Brasilien"}

# MaxMind GeoIP2/GeoLite2 Country record shape.
COUNTRY_RECORDS: dict[str, Any] = {
    "1.2.3.0/24": {
        "country": {"iso_code": "BR", "names": _NAMES},
        "registered_country": {"iso_code": "BR", "names": _NAMES},
    },
    # Only the registration country is known (anycast, satellite providers).
    "5.6.7.0/24": {"registered_country": {"iso_code": "FR"}},
    # A country section without a code must fall back to the registration country.
    "5.6.8.0/24": {"country": {"names": {"en": "?"}}, "registered_country": {"iso_code": "IT"}},
    "2a00:1450::/32": {"country": {"iso_code": "DE"}, "registered_country": {"iso_code": "IE"}},
    # Junk a database may hold: none of these is a country.
    "9.9.0.0/24": {"country": {"iso_code": "ZZ"}},
    "9.9.1.0/24": {"country": {"iso_code": "None"}},
    "9.9.2.0/24": {"country": {"iso_code": 76}},
    "9.9.3.0/24": {"country": {"iso_code": "BRA"}},
    "9.9.4.0/24": {"country": "BR"},
    "9.9.5.0/24": "BR",
    "9.9.6.0/24": {"country": {"iso_code": "b1"}},
    # Lower case is still a code.
    "9.9.7.0/24": {"country": {"iso_code": "nl"}},
}

# MaxMind/DB-IP City record shape: the same country section among much else.
CITY_RECORDS: dict[str, Any] = {
    "1.2.3.0/24": {
        "city": {"names": {"en": "São Paulo"}},
        "continent": {"code": "SA"},
        "country": {"iso_code": "BR", "is_in_european_union": False, "names": _NAMES},
        "location": {"latitude": -23.55, "longitude": -46.63},
        "subdivisions": [{"names": {"en": "São Paulo"}}],
    },
    "2a00:1450::/32": {"city": {"names": {"en": "Berlin"}}, "country": {"iso_code": "DE"}},
}

# ip-location-db's flat shape (the local default database).
FLAT_RECORDS: dict[str, Any] = {
    "1.2.3.0/24": {"country_code": "BR"},
    "2a00:1450::/32": {"country_code": "DE"},
    "9.9.0.0/24": {"country_code": "ZZ"},
}


def build_mmdb(
    path: Path, records: dict[str, Any], *, database_type: str, ip_version: int = 6
) -> Path:
    """Write a small MaxMind DB file mapping each CIDR in ``records`` to its value."""
    writer = MMDBWriter(
        ip_version=ip_version,
        database_type=database_type,
        languages=["en"],
        description={"en": "VTS unit-test database"},
        ipv4_compatible=ip_version == 6,
    )
    for cidr, value in records.items():
        writer.insert_network(IPSet([cidr]), value)
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("geo") / "test-country.mmdb"
    return build_mmdb(path, COUNTRY_RECORDS, database_type="VTS-Test-Country")


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("geo") / "test-city.mmdb"
    return build_mmdb(path, CITY_RECORDS, database_type="VTS-Test-City")


@pytest.fixture
def lookup(country_db: Path) -> Iterator[GeoLookup]:
    geo = GeoLookup(country_db)
    yield geo
    geo.close()


# --- known, unknown and odd answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("1.2.3.4", "BR"),
        ("1.2.3.0", "BR"),
        ("1.2.3.255", "BR"),
        ("1.2.4.0", None),  # just outside the range
        ("5.6.7.8", "FR"),  # registered_country fallback
        ("5.6.8.1", "IT"),  # country without iso_code -> registered_country
        ("2a00:1450:4001:80b::200e", "DE"),  # country wins over registered_country
        ("2A00:1450::1", "DE"),  # IPv6 is case-insensitive
        ("2a01::1", None),
        ("9.9.7.1", "NL"),  # lower case in the file
        ("::ffff:1.2.3.4", "BR"),  # IPv4-mapped form from a dual-stack front end
        (" 1.2.3.4 ", "BR"),  # stray whitespace, as in a split X-Forwarded-For
    ],
)
def test_country_answers_known_ranges(lookup: GeoLookup, ip: str, expected: str | None) -> None:
    assert lookup.country(ip) == expected


@pytest.mark.parametrize(
    "ip", ["9.9.0.1", "9.9.1.1", "9.9.2.1", "9.9.3.1", "9.9.4.1", "9.9.5.1", "9.9.6.1"]
)
def test_records_without_a_usable_code_answer_none(lookup: GeoLookup, ip: str) -> None:
    assert lookup.country(ip) is None


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fc00::1",
    ],
)
def test_private_and_reserved_addresses_answer_none(lookup: GeoLookup, ip: str) -> None:
    assert lookup.country(ip) is None


@pytest.mark.parametrize(
    "ip",
    [
        "",
        "   ",
        "not-an-ip",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.4:8080",
        "[2a00:1450::1]",
        "1.2.3.4, 5.6.7.8",
        "::ffff:999.1.1.1",
        "2a00:1450::1::1",
        "1.2.3.4\x00",
        "\u0661.2.3.4",  # Arabic-Indic digit one
        "x" * 10_000,
    ],
)
def test_invalid_strings_answer_none_without_raising(lookup: GeoLookup, ip: str) -> None:
    assert lookup.country(ip) is None


@pytest.mark.parametrize("value", [None, 16909060, b"1.2.3.4", ["1.2.3.4"], object()])
def test_non_strings_answer_none_without_raising(lookup: GeoLookup, value: Any) -> None:
    assert lookup.country(value) is None


def test_city_database_shape(city_db: Path) -> None:
    geo = GeoLookup(city_db)
    try:
        assert geo.database_type == "VTS-Test-City"
        assert geo.country("1.2.3.4") == "BR"
        assert geo.country("2a00:1450::1") == "DE"
        assert geo.country("8.8.8.8") is None
    finally:
        geo.close()


def test_flat_country_code_shape(tmp_path: Path) -> None:
    path = build_mmdb(tmp_path / "flat.mmdb", FLAT_RECORDS, database_type="country ipvAll")
    geo = GeoLookup(path)
    try:
        assert geo.country("1.2.3.4") == "BR"
        assert geo.country("2a00:1450::1") == "DE"
        assert geo.country("9.9.0.1") is None  # "ZZ" means unknown
    finally:
        geo.close()


def test_ipv6_question_to_an_ipv4_only_database_answers_none(tmp_path: Path) -> None:
    records = {"1.2.3.0/24": {"country": {"iso_code": "BR"}}}
    path = build_mmdb(tmp_path / "v4.mmdb", records, database_type="VTS-Test-Country", ip_version=4)
    geo = GeoLookup(path)
    try:
        assert geo.country("1.2.3.4") == "BR"
        assert geo.country("2a00:1450::1") is None  # the reader raises ValueError here
    finally:
        geo.close()


# --- configuration -----------------------------------------------------------------------


def test_none_path_disables_lookup() -> None:
    geo = GeoLookup(None)
    assert not geo.enabled
    assert geo.path is None
    assert geo.database_type is None
    assert geo.country("1.2.3.4") is None
    assert geo.country("8.8.8.8") is None
    geo.close()  # harmless


def test_missing_file_raises_a_config_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "GeoLite2-Country.mmdb"
    with pytest.raises(GeoDatabaseError) as caught:
        GeoLookup(missing)
    assert str(missing) in str(caught.value)
    assert "VTS_GEOIP_DB" in str(caught.value)
    # Catchable both ways: as the app's ConfigError and as a plain ValueError.
    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, ValueError)


def test_directory_instead_of_file_raises(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="not found"):
        GeoLookup(tmp_path)


def test_file_that_is_not_a_database_raises_naming_the_path(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"this is not a MaxMind DB file\n" * 10)
    with pytest.raises(GeoDatabaseError) as caught:
        GeoLookup(bogus)
    assert str(bogus) in str(caught.value)


def test_empty_file_raises(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mmdb"
    empty.touch()
    with pytest.raises(GeoDatabaseError):
        GeoLookup(empty)


def test_accepts_path_objects_and_strings(country_db: Path) -> None:
    for path in (country_db, str(country_db)):
        geo = GeoLookup(path)
        assert geo.enabled
        assert geo.path == str(country_db)
        assert geo.country("1.2.3.4") == "BR"
        geo.close()


def test_closed_lookup_answers_none(country_db: Path) -> None:
    geo = GeoLookup(country_db)
    geo.close()
    assert geo.country("1.2.3.4") is None


def test_get_geo_lookup_opens_once_per_path(country_db: Path, city_db: Path) -> None:
    get_geo_lookup.cache_clear()
    try:
        first = get_geo_lookup(str(country_db))
        assert get_geo_lookup(str(country_db)) is first
        assert get_geo_lookup(str(city_db)) is not first
        assert get_geo_lookup(None) is get_geo_lookup(None)
        assert get_geo_lookup(None).country("1.2.3.4") is None
        assert first.country("1.2.3.4") == "BR"
    finally:
        get_geo_lookup.cache_clear()


def test_get_geo_lookup_does_not_cache_a_failure(tmp_path: Path, country_db: Path) -> None:
    get_geo_lookup.cache_clear()
    target = tmp_path / "later.mmdb"
    try:
        with pytest.raises(GeoDatabaseError):
            get_geo_lookup(str(target))
        target.write_bytes(country_db.read_bytes())  # the file appears (a fixed deployment)
        assert get_geo_lookup(str(target)).country("1.2.3.4") == "BR"
    finally:
        get_geo_lookup.cache_clear()


# --- the real local database -------------------------------------------------------------


def _local_db() -> Path:
    configured = os.environ.get("VTS_GEOIP_DB")
    return Path(configured) if configured else REPO_ROOT / ".data" / "geoip" / "country.mmdb"


def test_real_local_database() -> None:
    path = _local_db()
    if not path.is_file():
        pytest.skip(f"no GeoIP database at {path}: run `python scripts/setup_geoip.py`")
    geo = GeoLookup(path)
    try:
        # Google's resolver is placed in the US by every DB-IP and GeoLite2 edition.
        assert geo.country("8.8.8.8") == "US"
        # Cloudflare's anycast resolver: APNIC-registered (AU) or located at the owner (US).
        assert geo.country("1.1.1.1") in {"AU", "US"}
        # Google's IPv6 resolver: editions disagree on the country, but it must be one.
        v6 = geo.country("2001:4860:4860::8888")
        assert v6 is not None
        assert len(v6) == 2
        assert v6.isupper()
        for private in ("10.0.0.1", "192.168.0.1", "127.0.0.1", "::1"):
            assert geo.country(private) is None
        assert geo.country("definitely not an ip") is None
    finally:
        geo.close()


# --- scripts/setup_geoip.py: the parts that need no network -------------------------------


def _load_setup_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "setup_geoip", REPO_ROOT / "scripts" / "setup_geoip.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_setup_refuses_a_file_with_the_wrong_checksum(tmp_path: Path, country_db: Path) -> None:
    setup = _load_setup_script()
    dest = tmp_path / "out" / "country.mmdb"
    with pytest.raises(setup.SetupError, match="checksum mismatch"):
        setup.install_file(country_db, dest, setup.NPM_SOURCE)
    assert not dest.exists()


def test_setup_fast_path_trusts_only_a_matching_stamp(tmp_path: Path, country_db: Path) -> None:
    setup = _load_setup_script()
    source = setup.Source("npm", "test@1", setup.sha256_of(country_db))
    dest = tmp_path / "country.mmdb"
    assert setup.already_done(dest, [source]) is None  # nothing there yet

    setup.install_file(country_db, dest, source)
    assert setup.already_done(dest, [source]) is None  # no stamp until the smoke test passed
    setup.write_stamp(dest, source)
    assert setup.already_done(dest, [source]) == source
    assert setup.already_done(dest, [setup.NPM_SOURCE]) is None  # pins changed -> refetch

    stamp = json.loads(setup.stamp_path(dest).read_text())
    stamp["size"] += 1  # a truncated or replaced file
    setup.stamp_path(dest).write_text(json.dumps(stamp))
    assert setup.already_done(dest, [source]) is None
