"""Backups of a folder index: a consistent copy while the index is in use, and putting one back.

Invariant: the copy is taken at a commit boundary of the index, holding its write lock
(`Index._writing`) for the whole copy, so the catalog, the Chroma folder and the sync state in it
belong to one moment between two batches. The SQLite files (catalog.db, state.db, Chroma's own
chroma.sqlite3) are copied with SQLite's online backup API, the rest of the Chroma folder (its
HNSW segment files, written only inside a batch) file by file. A checkpoint is saved after its
batch is committed, so the copied checkpoints never run ahead of the copied documents: the next
sync from a restored copy re-reads at most one batch, never skips one. The process holding the
index (a daemon) takes the copy itself when asked over the local channel; otherwise the command
opens the index, which nobody else may then write.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inlet.errors import ConfigError
from inlet.storage.lock import lock_index

if TYPE_CHECKING:
    from .store import Index

log = logging.getLogger(__name__)
MANIFEST = "inlet-backup.json"
SQLITE_SUFFIXES = (".db", ".sqlite3")
# The holder's own runtime files: its lock, socket and API address are not part of the index.
SKIPPED = {"inlet.sock", "index.lock", "daemon-api.json", "locks"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".lock")


@dataclass
class BackupReport:
    dest: str
    files: int
    bytes: int
    seconds: float
    paused_seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "paused_seconds": round(self.paused_seconds, 3),
        }


def backup_index(index: Index, dest: Path) -> BackupReport:
    """Copy the folder of the open `index` to `dest` (new or empty) between two batches."""
    if index.config.chroma_url or index.config.database_url:
        raise ConfigError(
            "inlet backup copies a folder index; with [index] database_url or chroma_url, back up "
            "the database and the Chroma server instead (docs/operations/backups.md)"
        )
    started = time.perf_counter()
    _empty_destination(dest)
    with index._writing:  # no batch is half written; none starts until the copy is done
        paused = time.perf_counter()
        files, size = copy_folder(index.path, dest)
        paused = time.perf_counter() - paused
    manifest = {
        "format": 1,
        "taken_at": datetime.now(timezone.utc).isoformat(),
        "source": str(index.path),
        "files": files,
        "bytes": size,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
    report = BackupReport(str(dest), files, size, time.perf_counter() - started, paused)
    log.info(
        "backup of %s written to %s: %d files, %.1f MB, writes paused %.2f s",
        index.path,
        dest,
        files,
        size / 1e6,
        paused,
    )
    return report


def copy_folder(src: Path, dest: Path) -> tuple[int, int]:
    """Every file of `src` under `dest`: SQLite databases through the online backup API (a
    consistent copy even while another connection writes), the rest as plain copies."""
    files = size = 0
    for root, dirs, names in os.walk(src):
        here = Path(root)
        dirs[:] = [d for d in dirs if d not in SKIPPED]
        target = dest / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in names:
            if name in SKIPPED or name.endswith(SKIPPED_SUFFIXES):
                continue
            source = here / name
            if name.endswith(SQLITE_SUFFIXES):
                _sqlite_copy(source, target / name)
            else:
                shutil.copy2(source, target / name)
            files += 1
            size += (target / name).stat().st_size
    return files, size


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.chmod(target, 0o600)


def _empty_destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"backup destination {dest} exists and is not an empty folder")
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)


def restore_index(src: Path, to: Path, replace: bool = False) -> Path | None:
    """Put the backup `src` at `to` (which must not be in use). An existing index at `to` is moved
    aside (returned) when `replace`, else refused."""
    if not (src / MANIFEST).is_file():
        raise ConfigError(f"{src} is not an inlet backup (no {MANIFEST}): take one with `inlet backup DEST`")
    aside = None
    if to.exists() and any(to.iterdir()):
        lock_index(to).release()  # a running daemon or server holds it: InletError naming the holder
        if not replace:
            raise ConfigError(f"{to} already holds an index: pass --replace to move it aside and restore")
        aside = to.with_name(f"{to.name}.replaced-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
        to.rename(aside)
    to.mkdir(parents=True, exist_ok=True, mode=0o700)
    copy_folder(src, to)
    (to / MANIFEST).unlink(missing_ok=True)
    log.info("backup %s restored to %s%s", src, to, f" (the index there moved to {aside})" if aside else "")
    return aside
