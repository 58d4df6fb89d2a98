"""DynamoDB's on-demand billing units, by AWS's rules: one place for the benches and the
harnesses that count them (bench_rollup, bench_price, vtsops.viral, vtsops.wru).

A write costs one unit per started KB of the item (the larger of before and after); a read
one unit per started 4 KB, half of that when eventually consistent. Item sizes follow
``chalicelib.storage.codec.item_size`` (attribute names plus values).
"""

from __future__ import annotations

import math
from typing import Any

from chalicelib.storage import codec

KB = 1024
READ_BLOCK = 4096


def write_units(size: int) -> int:
    """Write units of one item write of ``size`` bytes (at least one)."""
    return max(1, math.ceil(size / KB))


def read_blocks(size: int) -> int:
    """4 KB blocks a read of ``size`` bytes is charged (at least one): RRU strongly
    consistent, twice the eventually consistent RRU."""
    return max(1, math.ceil(size / READ_BLOCK))


def eventual_read_units(size: int) -> float:
    """Read units of an eventually consistent read of ``size`` bytes in all."""
    return 0.5 * read_blocks(size)


def size_of(item: dict[str, Any] | None) -> int:
    """An item's size (0 for none)."""
    return codec.item_size(item) if item else 0
