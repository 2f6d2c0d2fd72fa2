"""The progress bars of `inlet backfill`, `sync`, `demo`, `migrate` and `reindex` (a terminal only).

One drawing, `bars`: a row per source (or per task) with a bar of done out of total (a spinner
while the total is unknown), a line saying what moves, the time spent and the time left. The
commands adapt their own callbacks to it:

- runs (`progress_display`): the connector's own count and total when it reports them (files
  counted first, ...), plus items, documents indexed and chunks embedded, which move while a large
  file is being embedded (the engine reports at most every half second);
- copies and re-embeddings (`count_display`): documents or chunks done out of the total.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from inlet.terminal import raw

Update = Callable[[Any, Any], None]  # (RunRecord so far, RunProgress)
Bar = Callable[[str, int | None, int | None, str], None]  # (row, done, total, what the row says)
Count = Callable[[str, int, int], None]  # (row, done, total)


def fraction(done: int | None, total: int, unit: str) -> str:
    """'120/600 files'."""
    return f"{done or 0:,}/{total:,} {unit}"


def describe(run: Any, progress: Any) -> str:
    """'120/600 files · 340 items · 118 indexed · 2 skipped · 1,204 chunks embedded'."""
    parts = []
    if progress.total is not None:
        parts.append(fraction(progress.done, progress.total, progress.unit or "items"))
    parts.append(f"{progress.seen:,} items · {run.upserted:,} indexed")
    if run.deleted:
        parts.append(f"{run.deleted:,} deleted")
    if run.skipped + run.errors:
        parts.append(f"{run.skipped + run.errors:,} skipped")
    parts.append(f"{run.embedded:,} chunks embedded")
    return " · ".join(parts)


@contextmanager
def bars(enabled: bool, stream: TextIO | None = None) -> Iterator[Bar | None]:
    """A `Bar` drawing on `stream` (stderr) when it is a terminal; None otherwise. Thread-safe:
    the demo's sources report from three threads."""
    stream = raw(stream or sys.stderr)  # rich draws its own escape sequences (counts and source names only)
    if not (enabled and stream.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    rows: dict[str, Any] = {}
    lock = threading.Lock()
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[row]}"),
        BarColumn(bar_width=20),
        TextColumn("{task.description}"),
        _times_column(),
    )
    with Progress(*columns, console=Console(file=stream, force_terminal=True), transient=False) as shown:

        def update(row: str, done: int | None, total: int | None, says: str) -> None:
            with lock:
                if row not in rows:
                    rows[row] = shown.add_task("", total=None, row=row)
                shown.update(rows[row], description=says, total=total, completed=done or 0)

        yield update


def clock(seconds: float) -> str:
    """'0:07', '12:30', '1:02:03'."""
    whole = int(max(seconds, 0))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def times(elapsed: float | None, remaining: float | None, finished: bool) -> str:
    """'0:13 elapsed, about 0:42 left'; no time left while it cannot be known, 'done' at the end."""
    said = f"{clock(elapsed or 0)} elapsed"
    if finished:
        return said + ", done"
    if remaining is not None:
        return said + f", about {clock(remaining)} left"
    return said


def _times_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Times(ProgressColumn):
        """The time spent, and the time left once the total is known and a rate measured."""

        def render(self, task: Any) -> Text:
            remaining = task.time_remaining if task.total is not None and task.completed else None
            return Text(times(task.elapsed, remaining, task.total is not None and task.finished), style="cyan")

    return Times()


@contextmanager
def progress_display(enabled: bool, stream: TextIO | None = None) -> Iterator[Update | None]:
    """An engine's `on_progress` callback drawn by `bars`, a row per source; None off a terminal."""
    with bars(enabled, stream) as bar:
        if bar is None:
            yield None
            return
        shown = bar
        yield lambda run, progress: shown(run.source, progress.done, progress.total, describe(run, progress))


@contextmanager
def count_display(enabled: bool, unit: str, stream: TextIO | None = None) -> Iterator[Count | None]:
    """A `(row, done, total)` callback drawn by `bars` (`inlet migrate`: documents per source;
    `inlet reindex`: chunks); None off a terminal."""
    with bars(enabled, stream) as bar:
        if bar is None:
            yield None
            return
        shown = bar
        yield lambda row, done, total: shown(row, done, total, fraction(done, total, unit))
