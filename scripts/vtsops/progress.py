"""Progress bars for long operator work (rich)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(done)``; draws a bar on a terminal, a final line otherwise."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("   {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not sys.stderr.isatty(),
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(done: int) -> None:
            progress.update(task, completed=done)

        yield advance
