"""``stats.csv``: the daily series as CSV, one row per local date (RFC 4180, header first)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = (
    "date",
    "views",
    "impressions",
    "unique_visitors",
    "authenticated_views",
    "authenticated_impressions",
    "authenticated_unique_visitors",
)


def daily_csv(everyone: Sequence[Mapping[str, Any]], signed_in: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row, auth in zip(everyone, signed_in, strict=True):
        writer.writerow(
            [
                row["date"],
                row["views"],
                row["impressions"],
                row["unique_visitors"],
                auth["views"],
                auth["impressions"],
                auth["unique_visitors"],
            ]
        )
    return out.getvalue()
