"""The copies a restore keeps beside an index folder, and the finish of a swap a crash cut short.

Invariant: a copy is renamed from its staging name (`.NAME.restoring-…`, possibly partial) to its
ready name (`.NAME.ready-…`) only once it is whole and verified, and the restore holds an `flock` on
it from its creation to its end. So whenever the index folder is missing and a ready copy no
restore holds lies beside it, a restore was stopped between moving the old index aside and putting
its copy in place: that copy is the index meant to be there, and the next process opening the
folder renames it into place (`finish_swap`) instead of starting an empty index.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def staging_prefix(to: Path) -> str:
    """The name prefix of a copy being made for `to` (it may be partial)."""
    return f".{to.name}.restoring-"


def ready_prefix(to: Path) -> str:
    """The name prefix of a copy of a backup for `to` that is whole and verified."""
    return f".{to.name}.ready-"


def finish_swap(to: Path) -> Path | None:
    """When `to` is missing and a ready copy lies beside it, rename the newest into place (waiting
    for a restore still holding it, which then finishes itself): the copy moved, or None."""
    try:
        if to.exists():
            return None
        ready = sorted(to.parent.glob(ready_prefix(to) + "*"), key=_mtime, reverse=True)
    except OSError:  # a name too long, a parent not readable: the caller's own error says it
        return None
    for copy in ready:
        with restore_lock(copy, wait=True) as held:  # a running restore holds it until it has finished
            if not held:
                continue  # moved by a restore finishing now, or by another process finishing this one
            if to.exists():
                return None
            try:
                copy.rename(to)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("could not put %s, a verified restored copy, at %s: %s", copy, to, exc)
                return None
        log.warning(
            "%s was missing: a restore was stopped between moving the index there aside and putting its "
            "verified copy in place; the copy %s is now the index at %s",
            to,
            copy.name,
            to,
        )
        return copy
    return None


@contextmanager
def restore_lock(folder: Path, *, wait: bool) -> Iterator[bool]:
    """The `flock` a restore holds on its copy `folder` from its creation to its end, taken (waiting
    for it when `wait`): True while held; False when the folder is no folder any more, a link, or
    (not waiting) a running restore holds it."""
    if folder.is_symlink() or not folder.is_dir():
        yield False
        return
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
