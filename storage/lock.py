"""Advisory file locks that die with their process.

Embedded Chroma is thread-safe but not process-safe, so one process at a time opens an index
folder; a source is synced by one run at a time. `flock` locks are released by the kernel when
the holder exits, so a crashed or killed process never leaves a lock stuck.

A process refused the index is told who holds it (its pid and command line, `command_line`) and
what to do: a command that needs the folder to itself (`ALONE`: no holder runs it for another)
beside a process that runs until stopped (`SERVING`) is told to stop that process first; a local
command beside a daemon or server, which it waited for (it answers once started), to run again.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from inlet.errors import IndexLockedError

# the `role` of commands that need the index folder to themselves: no holder runs them for another
ALONE = ("reindex", "migrate", "restore")
SERVING = ("daemon", "serve", "mcp", "demo")  # holders that run until they are stopped
MAX_COMMAND = 80  # characters of a holder's command line shown


def command_line(argv: Sequence[str]) -> str:
    """`argv` as a person reads it: the program's name (`inlet`, not the path it was run by), the
    subcommand and its arguments, cut with "…" after about `MAX_COMMAND` characters, never between
    an option and its value."""
    if not argv:
        return "inlet"
    program = Path(argv[0]).name
    words = ["inlet" if program.endswith(".py") else program]  # `python -m inlet` runs inlet/__main__.py
    args, i = list(argv[1:]), 0
    while i < len(args):
        takes_value = args[i].startswith("-") and "=" not in args[i] and i + 1 < len(args)
        group = args[i : i + 2] if takes_value and not args[i + 1].startswith("-") else args[i : i + 1]
        if len(words) > 1 and len(" ".join(words + group)) > MAX_COMMAND:
            return " ".join(words) + " …"
        words += group
        i += len(group)
    return " ".join(words)


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
        handle.write(json.dumps({"pid": os.getpid(), "since": time.time(), "command": command_line(sys.argv), **info}))
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


def other_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the index folder `path` (what its lock file says, as `FileLock.holder`), when a
    live process other than this one does; None when nobody does. The lock is tested, not taken
    (a shared `flock`, released at once), and its file is never created here."""
    lock = path / "index.lock"
    info = FileLock(lock).holder()
    if info.get("pid") == os.getpid():
        return None
    try:
        handle = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return info
    finally:
        os.close(handle)  # releases the shared lock if it was taken
    return None


def lock_index(path: Path, **info: Any) -> FileLock:
    """Take the index folder for this process (`info`, its `role` among it, recorded for the next
    one), or explain who has it and what the refused command (`role`) can do about it."""
    lock = FileLock(path / "index.lock")
    if not lock.acquire(**info):
        raise _refusal(path, lock.holder(), info.get("role"))
    return lock


def _refusal(path: Path, holder: dict[str, Any], role: Any) -> IndexLockedError:
    pid = holder.get("pid", "?")
    who = f"pid {pid} ({holder.get('command', 'inlet')})"
    serving = holder.get("role") in SERVING or bool(holder.get("api_url"))
    if role in ALONE and serving:
        stop = (
            "quit the agent app running it"
            if holder.get("role") == "mcp"
            else f"Ctrl-C, `kill {pid}` or its service manager"
        )
        return IndexLockedError(
            f"`inlet {role}` cannot run while {who} holds the index at "
            f"{path}: embedded Chroma is open in one process at a time, and that process does not run "
            f"`inlet {role}` for another. Stop it first ({stop}), run this command again, then start "
            "that process again.",
            who,
        )
    hint = f"; its API is at {holder['api_url']}" if holder.get("api_url") else ""
    if holder.get("role") == "mcp":
        hint = (
            " (an agent's MCP server: `inlet sync`, `backfill`, `search` and `status` run through it; "
            "`inlet daemon` and `inlet serve` ask it to hand the index over, and this one did not in time: "
            "quit the agent app, start them, then the agent, whose `inlet mcp` then asks them)"
        )
    if role in ALONE:
        return IndexLockedError(
            f"`inlet {role}`: the index at {path} is in use by {who}. Embedded Chroma cannot be shared "
            "between processes: wait for it to finish (or stop it), then run this command again.",
            who,
        )
    if serving and holder.get("role") != "mcp" and role not in SERVING:  # waited for (`held_or_here`)
        return IndexLockedError(
            f"the index at {path} is held by {who}{hint}, which runs `inlet search`, `sync` and the other "
            "local commands of its user once it has started, and did not answer in time: it is starting "
            "(loading its model, upgrading the index) or stopping. Run this command again in a moment.",
            who,
        )
    refused = f"`inlet {role}`: " if role else ""
    return IndexLockedError(
        f"{refused}the index at {path} is in use by {who}{hint}. Embedded Chroma cannot be shared "
        "between processes: wait for it to finish, stop it, or query the running server "
        "(or set [index].chroma_url to use a Chroma server).",
        who,
    )
