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
        if copy.is_symlink() or not copy.is_dir():
            continue
        try:
            handle = os.open(copy, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue  # moved by a restore finishing now, or by another process finishing this one
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)  # a running restore holds it until it has finished
            if to.exists():
                return None
            if not copy.exists():
                continue
            copy.rename(to)
        except OSError as exc:
            log.warning("could not put %s, a verified restored copy, at %s: %s", copy, to, exc)
            return None
        finally:
            os.close(handle)
        log.warning(
            "%s was missing: a restore was stopped between moving the index there aside and putting its "
            "verified copy in place; the copy %s is now the index at %s",
            to,
            copy.name,
            to,
        )
        return copy
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
