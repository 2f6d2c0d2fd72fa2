"""Advisory file locks that die with their process.

Embedded Chroma is thread-safe but not process-safe, so one process at a time opens an index
folder; a source is synced by one run at a time. `flock` locks are released by the kernel when
the holder exits, so a crashed or killed process never leaves a lock stuck.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from inlet.errors import IndexLockedError


class FileLock:
    """A non-blocking exclusive lock on `path`; the holder's pid and command are written beside it.
    A new lock file is 0600 and a new folder for it 0700, as every file of the index folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self, **info: Any) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "since": time.time(), "command": " ".join(sys.argv[:3]), **info}))
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def holder(self) -> dict[str, Any]:
        """Who holds the lock (best effort: the file the holder wrote)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}


def lock_index(path: Path, **info: Any) -> FileLock:
    """Take the index folder for this process, or explain who has it."""
    lock = FileLock(path / "index.lock")
    if not lock.acquire(**info):
        holder = lock.holder()
        who = f"pid {holder.get('pid', '?')} ({holder.get('command', 'inlet')})"
        hint = f"; its API is at {holder['api_url']}" if holder.get("api_url") else ""
        if holder.get("role") == "mcp":
            hint = (
                " (an agent's MCP server: `inlet sync`, `backfill`, `search` and `status` run through it; "
                "to run `inlet daemon` or `inlet serve`, quit the agent app, start them, then the agent, "
                "whose `inlet mcp` then asks them)"
            )
        raise IndexLockedError(
            f"the index at {path} is in use by {who}{hint}. Embedded Chroma cannot be shared "
            "between processes: wait for it to finish, stop it, or query the running server "
            "(or set [index].chroma_url to use a Chroma server).",
            who,
        )
    return lock
