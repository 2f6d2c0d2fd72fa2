"""The progress display of `inlet backfill`, `inlet sync` and `inlet demo` (a terminal only).

One line per source: a bar with the connector's own count and total when it reports them (files
counted first, ...) and the time left, plus items, documents indexed and chunks embedded, which move
while a large file is being embedded (the engine reports at most every half second).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Update = Callable[[Any, Any], None]   # (RunRecord so far, RunProgress)


def describe(run: Any, progress: Any) -> str:
    """'120/600 files · 340 items · 118 indexed · 2 skipped · 1,204 chunks embedded'."""
    parts = []
    if progress.total is not None:
        parts.append(f"{progress.done or 0:,}/{progress.total:,} {progress.unit or 'items'}")
    parts.append(f"{progress.seen:,} items · {run.upserted:,} indexed")
    if run.deleted:
        parts.append(f"{run.deleted:,} deleted")
    if run.skipped + run.errors:
        parts.append(f"{run.skipped + run.errors:,} skipped")
    parts.append(f"{run.embedded:,} chunks embedded")
    return " · ".join(parts)


@contextmanager
def progress_display(enabled: bool) -> Iterator[Update | None]:
    """An `on_progress` callback drawing on stderr when it is a terminal; None otherwise."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    tasks: dict[str, Any] = {}
    lock = threading.Lock()
    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[source]}"), BarColumn(bar_width=20),
               TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        def update(run: Any, progress: Any) -> None:
            with lock:
                if run.source not in tasks:
                    tasks[run.source] = bar.add_task("", total=None, source=run.source)
                bar.update(tasks[run.source], description=describe(run, progress), total=progress.total,
                           completed=progress.done or 0)
        yield update
