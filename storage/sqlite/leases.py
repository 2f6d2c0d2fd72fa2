"""The folder's leases: one `flock` file per source under the index folder.

The kernel drops a `flock` when its process dies and never while it lives, so no other process can
take a source over from a live holder, and a folder's commits need no fence (`hold` yields None).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inlet.errors import SourceBusyError

from ..lock import FileLock
from ..types import Fence


class FolderLeases:
    """One `flock` file per source under `folder`, as the engine always used."""

    shared = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextmanager
    def hold(self, source: str) -> Iterator[Fence | None]:
        lock = FileLock(self.folder / f"{source}.lock")
        if not lock.acquire(source=source):
            raise SourceBusyError(f"source {source!r} is already being synced (pid {lock.holder().get('pid', '?')})")
        try:
            yield None
        finally:
            lock.release()

    def holders(self) -> dict[str, dict[str, Any]]:
        return {}

    def close(self) -> None:
        pass
