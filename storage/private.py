"""The index folder is private to its owner: created 0700, its files 0600.

The catalog holds the text of every restricted document and the state database the sources'
checkpoints, so any other local account that can read the folder reads everything the ACLs
protect. Folders and files are created under a 0o077 umask (the process umask is restored right
after, so nothing else the process writes changes); SQLite gives its -wal and -shm files the mode
of their database. A folder that already exists with group or other access is left as the
owner set it, with a warning at start-up that says how to close it.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inlet.connectors.base import not_a_folder
from inlet.errors import ConfigError, StorageError

log = logging.getLogger(__name__)
PRIVATE_UMASK = 0o077
_UMASK_LOCK = threading.RLock()  # os.umask is process-wide: one change at a time (nested: the same mask)


@contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created inside are readable by their owner only."""
    with _UMASK_LOCK:
        old = os.umask(PRIVATE_UMASK)
        try:
            yield
        finally:
            os.umask(old)


def private_folder(path: Path, key: str | None = None, *, warn_open: bool = True) -> None:
    """Create `path` (and missing parents) 0700, or warn (unless not `warn_open`: the caller's
    caller does) when an existing one is open to others. For a folder a configuration `key` names
    (`[index] path`): a `ConfigError` when a file is where the folder must be, a `StorageError`
    when it cannot be created (permission denied, a read-only disk), each naming the key and the
    folder; without `key` (a backup's destination, whose caller words it), the `OSError`."""
    named = f"{key}: " if key else ""
    blocked = not_a_folder(path) if key else None
    if blocked:
        raise ConfigError(f"{named}{blocked}")
    try:
        new = not path.is_dir()
        if new:
            with private_files():
                path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if key is None:
            raise
        why = (
            "permission denied: this account may not create it (make its parent folder writable, or choose "
            "another path)"
            if exc.errno in (errno.EACCES, errno.EPERM)
            else (exc.strerror or str(exc))
        )
        raise StorageError(f"{named}cannot create the folder {path}: {why}") from exc
    if new or not warn_open:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the index folder %s is readable by other accounts (mode %s): it holds the text of "
            "restricted documents; run 'chmod -R go-rwx %s'",
            path,
            oct(mode),
            path,
        )
