"""Stand-ins for AWS triggers in the local stack, discovered by module.

Each ``vtsops.trigger_*`` module exposes ``components(services) -> list[Component]``
(e.g. the MQTT broker and IoT bridge, the stream pump, the scheduler); the stack starts
them in module-name order and stops them in reverse.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

import vtsops


def local_triggers(services: Any) -> Iterator[Any]:
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(vtsops.__path__)
        if info.name.startswith("trigger_")
    )
    for name in names:
        module = importlib.import_module(f"vtsops.{name}")
        yield from module.components(services)
