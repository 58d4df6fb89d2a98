"""device-detector's device type of an Android model, from the precomputed device table.

device-detector's ``Device`` parser tries matomo's ~2,000 brand patterns in order, then the
matching brand's model patterns, and reads the type (smartphone, tablet, TV...) from the
first that matches, before its own rules (Chrome's "Mobile" convention, TV and desktop
fragments...) settle it. Its first use in a process costs about a second: ``mobiles.yml`` is
parsed and every brand pattern before the matching one is compiled. Here the brand and model
are found from ``data/ua_devices.json.gz`` (only patterns holding a literal of the user agent
are compiled), and the parser itself runs on that one brand and model, so its rules, and
its answer, are unchanged.
"""

from __future__ import annotations

from typing import Any

import regex
from device_detector import Device as _Device  # type: ignore[import-untyped, unused-ignore]

from chalicelib.enrich import ua_tables
from chalicelib.enrich.ua_tables import Folder, PatternList


class DeviceTypes:
    """``device_type(ua, os_family)``: device-detector's type name ("smartphone", "tablet"...)
    or None when it has none."""

    def __init__(self, table: dict[str, Any]) -> None:
        self._fold = Folder(table["fold"])
        self._bounded: str = table["bounded"]
        brands = table["brands"]
        self._names: list[str] = [b[0] for b in brands]
        self._types: list[str | None] = [b[2] for b in brands]
        self._brands = PatternList([b[1] for b in brands], [b[3] for b in brands], self._compile)
        self._model_rows: list[list[list[Any]]] = [b[4] for b in brands]
        # A brand's model list is indexed when a user agent first matches the brand.
        self._models: dict[int, PatternList[Any]] = {}

    @classmethod
    def load(cls) -> DeviceTypes:
        return cls(ua_tables.load(ua_tables.DEVICES))

    def device_type(self, ua: str, os_family: str | None) -> str | None:
        key = self._fold(ua)
        os_details = {"name": os_family} if os_family else {}
        parser = Device(ua, self._brand_entry(ua, key), os_details)
        kind = parser.parse().ua_data.get("type")
        # DeviceType is a str enum; its value is the type's name.
        return str(getattr(kind, "value", kind) or "").lower() or None

    def _brand_entry(self, ua: str, key: str) -> list[dict[str, Any]]:
        """The first brand whose pattern matches, with its first matching model, as the entry
        device-detector's loader would have given; none when no brand matches."""
        for index in self._brands.candidates(key):
            pattern = self._brands.compiled(index)
            if pattern.search(ua):
                entry: dict[str, Any] = {"regex": pattern, "brand": self._names[index]}
                if self._types[index] is not None:
                    entry["device"] = self._types[index]
                model = self._model_entry(index, ua, key)
                if model is not None:
                    entry["models"] = [model]
                return [entry]
        return []

    def _model_entry(self, brand: int, ua: str, key: str) -> dict[str, Any] | None:
        """The brand's first matching model (its name left out: only its type is read)."""
        models = self._models.get(brand)
        if models is None:
            rows = self._model_rows[brand]
            models = PatternList([m[0] for m in rows], [m[2] for m in rows], self._compile)
            self._models[brand] = models
        for index in models.candidates(key):
            pattern = models.compiled(index)
            if pattern.search(ua):
                entry: dict[str, Any] = {"regex": pattern, "model": ""}
                if self._model_rows[brand][index][1] is not None:
                    entry["device"] = self._model_rows[brand][index][1]
                return entry
        return None

    def _compile(self, pattern: str) -> Any:
        return regex.compile(self._bounded.format(pattern), regex.IGNORECASE)


class Device(_Device):  # type: ignore[misc]
    """device-detector's ``Device`` parser over one brand entry instead of its whole list.

    The class name is device-detector's: its word prefilter is looked up by class name.
    """

    def __init__(self, ua: str, entries: list[dict[str, Any]], os_details: dict[str, str]):
        super().__init__(ua, None, os_details=os_details)
        self._entries = entries

    @property
    def regex_list(self) -> list[dict[str, Any]]:
        return self._entries
