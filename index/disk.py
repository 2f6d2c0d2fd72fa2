"""Recognises a failed write to the index folder (disk full, read-only, over quota, file size
limit) wherever it surfaces: an `OSError` from Python, SQLite's "database or disk is full" or
"readonly database", or Chroma's wrapped rendering of the same, and says so naming the folder.
A storage failure whose own words do not say why (SQLite's "unable to open database file", "disk
I/O error", a `PermissionError`) is explained by the folder itself when it is read-only, full, or
not this account's to use (another account's: run as that account); any other failure is left as
it is. Every command (the CLI's and a holder's forwarded ones) goes through `storage_error`.

Every store commits atomically (SQLite transactions, Chroma's own log), so a failed write loses
nothing committed before it; the run stops at the failure and the next one resumes from the last
checkpoint. What the user needs is the folder and the cause, not a traceback from a storage layer.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inlet.errors import StorageError

CAUSES = {
    errno.ENOSPC: "is full (no space left on the device)",
    errno.EDQUOT: "is over its disk quota",
    errno.EROFS: "is on a read-only file system",
    errno.EFBIG: "has a file at the file size limit",
}
# How SQLite (directly or inside Chroma) words the same conditions.
WORDING = (
    ("disk is full", errno.ENOSPC),
    ("no space left", errno.ENOSPC),
    ("quota", errno.EDQUOT),
    ("readonly database", errno.EROFS),
    ("read-only file system", errno.EROFS),
    ("file too large", errno.EFBIG),
)


def cause(exc: BaseException) -> int | None:
    """The errno of a failed index write behind `exc` (or its causes), None when it is not one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in CAUSES:
            return current.errno
        text = str(current).lower()
        for words, code in WORDING:
            if words in text:
                return code
        current = current.__cause__ or current.__context__
    return None


def folder_cause(folder: Path | str) -> int | None:
    """Why this account cannot use `folder` (or, when it does not exist yet, the folder that would
    hold it): EROFS (a read-only file system), ENOSPC (no byte free), EACCES (not this account's to
    read and write); None when nothing is wrong with it."""
    path = _existing(Path(folder))
    try:
        disk = os.statvfs(path)
    except (OSError, AttributeError):  # gone meanwhile, or no statvfs (Windows)
        return None
    if disk.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if (disk.f_bfree if os.geteuid() == 0 else disk.f_bavail) == 0:
        return errno.ENOSPC
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        return errno.EACCES
    return None


def _existing(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (what a folder not made yet would be in)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _from_storage(exc: BaseException) -> bool:
    """Whether `exc` (or a cause of it) is a file system, SQLite or Chroma failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, sqlite3.Error)) or type(current).__module__.startswith("chromadb"):
            return True
        current = current.__cause__ or current.__context__
    return False


def _not_ours(folder: Path) -> str:
    """Why this account may not use `folder`, and what to do: run as the account that owns it, or
    give the owner's rights back to a folder of its own."""
    import pwd

    path = _existing(folder)
    found = path.stat()
    if found.st_uid == os.geteuid():
        return (
            f"is not readable and writable by this account, its owner (mode {found.st_mode & 0o777:04o}): "
            f"give it back its rights (chmod u+rwx {path})"
        )
    try:
        owner = pwd.getpwuid(found.st_uid).pw_name
    except KeyError:
        owner = f"uid {found.st_uid}"
    return (
        f"belongs to another account ({owner}): run inlet as {owner}, the account that owns it "
        f"(a daemon or server {owner} runs answers only {owner}'s commands)"
    )


def storage_error(exc: BaseException, folder: Path | str) -> StorageError | None:
    """A `StorageError` naming `[index] path`, `folder` and the cause when `exc` is a failed write
    there, or a storage failure the folder explains (`folder_cause`); else None."""
    if isinstance(exc, StorageError):
        return exc
    code = cause(exc)
    if code is None and _from_storage(exc):
        code = folder_cause(folder)
    if code is None:
        return None
    if code == errno.EACCES:
        return StorageError(f"[index] path: the index folder {folder} {_not_ours(Path(folder))}")
    return StorageError(
        f"[index] path: the index folder {folder} {CAUSES[code]}: nothing already indexed was lost; "
        f"make room (or make it writable) and run again, it resumes from the last checkpoint"
    )


@contextmanager
def writes_to(folder: Path | str) -> Iterator[None]:
    """Turn a failed write to `folder` inside the block into a `StorageError`."""
    try:
        yield
    except Exception as exc:
        error = storage_error(exc, folder)
        if error is None or error is exc:
            raise
        raise error from exc
