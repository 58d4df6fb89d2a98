"""CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout: the only module that
writes EMF.

In Lambda, CloudWatch Logs turns each line into metrics (namespace ``VTS``, dimension
``Stage``) with no API call on the request path. One line carries all the counts of one
event, which Powertools' ``single_metric`` (one metric a line) and ``Metrics`` (one flush
per invocation) do not do; the README's dependency list says why Powertools is not used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TextIO

NAMESPACE = "VTS"

Sink = Callable[[Mapping[str, int], datetime], None]


def emf_line(
    stage: str,
    metrics: Mapping[str, int],
    now: datetime,
    *,
    unit: str = "Count",
    properties: Mapping[str, Any] | None = None,
) -> str:
    """One EMF document of ``metrics`` (metric name -> value, all in ``unit``) by Stage;
    ``properties`` ride along as log fields, not metrics."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(now.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Stage"]],
                        "Metrics": [{"Name": name, "Unit": unit} for name in metrics],
                    }
                ],
            },
            "Stage": stage,
            **metrics,
            **(properties or {}),
        },
        separators=(",", ":"),
    )


def to_stdout(line: str, stream: TextIO | None = None) -> None:
    """Write one EMF line to stdout, where Lambda's log capture reads it."""
    print(line, file=stream or sys.stdout, flush=True)


def stdout_sink(stage: str, stream: TextIO | None = None) -> Sink:
    """A sink writing counts as EMF lines (``to_stdout``)."""

    def emit(counts: Mapping[str, int], now: datetime) -> None:
        if counts:
            to_stdout(emf_line(stage, counts, now), stream)

    return emit
