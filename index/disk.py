"""Recognises a failed write to the index folder (disk full, read-only, over quota, file size
limit) wherever it surfaces: an `OSError` from Python, SQLite's "database or disk is full" or
"readonly database", or Chroma's wrapped rendering of the same, and says so naming the folder.

Every store commits atomically (SQLite transactions, Chroma's own log), so a failed write loses
nothing committed before it; the run stops at the failure and the next one resumes from the last
checkpoint. What the user needs is the folder and the cause, not a traceback from a storage layer.
"""

from __future__ import annotations

import errno
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


def storage_error(exc: BaseException, folder: Path | str) -> StorageError | None:
    """A `StorageError` naming `folder` when `exc` is a failed write there, else None."""
    if isinstance(exc, StorageError):
        return exc
    code = cause(exc)
    if code is None:
        return None
    return StorageError(
        f"the index folder {folder} {CAUSES[code]}: nothing already indexed was lost; "
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
