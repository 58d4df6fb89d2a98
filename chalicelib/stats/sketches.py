"""HLL sketches of Visitors: decoding what the close stored and estimating a union.

Sketches are the Apache DataSketches HLL format (``datasketches``); a union of the pieces'
sketches estimates distinct Visitors over a range (never a sum of daily uniques).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import datasketches

MAX_LG_K = 21


def decode(raw: bytes) -> Any | None:
    """A sketch from its bytes; None when they are not a sketch (a damaged item)."""
    try:
        return datasketches.hll_sketch.deserialize(raw)
    except (RuntimeError, ValueError, TypeError):
        return None


def union_estimate(sketches: Iterable[Any]) -> float | None:
    """The estimated distinct count of the union; None when there is nothing to unite."""
    items = list(sketches)
    if not items:
        return None
    lg_k = min(MAX_LG_K, max(int(s.lg_config_k) for s in items))
    union = datasketches.hll_union(lg_k)
    for sketch in items:
        union.update(sketch)
    return float(union.get_estimate())
