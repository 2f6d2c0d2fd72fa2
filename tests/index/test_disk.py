"""Which failures are a full or read-only index folder, however the storage layer words them."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from inlet.errors import StorageError
from inlet.index.disk import cause, storage_error, writes_to


def chained(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as got:
        return got


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (OSError(errno.EROFS, "Read-only file system"), errno.EROFS),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
        (OSError(errno.EFBIG, "File too large"), errno.EFBIG),
        (sqlite3.OperationalError("database or disk is full"), errno.ENOSPC),
        (sqlite3.OperationalError("attempt to write a readonly database"), errno.EROFS),
        (RuntimeError("Query error: Database error: (code: 13) database or disk is full"), errno.ENOSPC),
        (chained(RuntimeError("commit failed"), OSError(errno.ENOSPC, "No space")), errno.ENOSPC),
        (OSError(errno.ENOENT, "No such file"), None),
        (sqlite3.OperationalError("no such table: chunks"), None),
        (ValueError("bad input"), None),
    ],
)
def test_cause_reads_errno_sqlite_and_chroma_wording(exc: Exception, code: int | None) -> None:
    assert cause(exc) == code


def test_the_error_names_the_folder_and_keeps_other_failures_as_they_are(tmp_path) -> None:
    error = storage_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(error, StorageError) and error.exit_code == 1
    assert str(error).startswith(f"[index] path: the index folder {tmp_path} is full")
    with pytest.raises(StorageError, match="read-only file system"):
        with writes_to(tmp_path):
            raise sqlite3.OperationalError("attempt to write a readonly database")
    with pytest.raises(KeyError):
        with writes_to(tmp_path):
            raise KeyError("not a disk problem")


def test_a_storage_failure_that_does_not_say_why_is_explained_by_the_folder_or_left_alone(tmp_path) -> None:
    """SQLite's "unable to open database file" says nothing of the cause: a healthy folder leaves
    it as it is (a bug to report, with its traceback); a failure that is no storage one never
    blames the folder."""
    unexplained = sqlite3.OperationalError("unable to open database file")
    assert storage_error(unexplained, tmp_path) is None
    assert storage_error(KeyError("x"), tmp_path) is None
