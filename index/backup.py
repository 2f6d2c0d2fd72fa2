"""Backups of a folder index: a consistent copy while the index is in use, and putting one back.

Invariant: the copy is taken at a commit boundary of the index, holding its write lock
(`Index._writing`) for the whole copy, so the catalog, the Chroma folder and the sync state in it
belong to one moment between two batches. The SQLite files (catalog.db, state.db, Chroma's own
chroma.sqlite3) are copied with SQLite's online backup API, the rest of the Chroma folder (its HNSW
segment files, written only inside a batch) file by file. A symbolic link inside the index folder
(`chroma/` on another disk) is followed: the backup holds what the index uses, never the link; one
that points nowhere, loops or points into the destination is refused, and a copy whose Chroma folder
lacks the vectors of its catalog's chunks is never reported as a backup, nor one of a database whose
pages SQLite's quick check finds damaged (`_check_copies`, naming the index file). Every file of a backup, its manifest
included, is created 0600 before its first byte is written, and its folders are 0700 (an existing
empty destination is tightened to 0700); a backup that fails part way is removed (a full or
read-only destination with an error naming the destination and the cause). An index whose files a
newer inlet wrote is refused before anything is copied, naming its own file (`Index` opens it). A checkpoint is saved
after its batch is committed, so the copied checkpoints never run ahead of the copied documents: the
next sync from a restored copy re-reads at most one batch, never skips one. The process holding the
index (a daemon) takes the copy itself when asked over the local channel; otherwise the command
opens the index, which nobody else may then write. The copy is written outside the index folder.
Neither a backup nor a restored copy carries the daemon's schedule (its next runs, keyed by its
pid): the copy is scheduled by no daemon until one runs on it.

A restore never touches the index already at its target until the backup has been copied into a
folder beside it and verified there (every file the manifest lists, same size and SHA-256; every
SQLite file passes its integrity check; schema steps this inlet knows; a backup from before the
listing holds as many files as its manifest counts, empty SQLite side files left by a reader that
opened it in place not counted; the Chroma folder holds the vectors of the catalog's chunks,
`vectors.missing_vectors`, which an earlier inlet's backup of an index with a symbolic link in it
left out); a bad backup leaves nothing
behind, and a restore that cannot write its copy (a full disk) says so without blaming the backup. A
backup is only read: a restore into it, or into a folder inside it, is refused; so is one into a
folder that is not empty and holds no index (`INDEX_MARKS`), with or without `replace`, before
anything is written there. Runs the copy shows
unfinished are closed as a crash leaves them (`close_orphan_runs`): the process running them is not
running them in the copy. The folder beside the target (`.NAME.restoring-…`, renamed
`.NAME.ready-…` once verified) is `flock`ed by its restore from its creation to its end; a restore
removes the ones no running restore holds (what a restore killed part way left) before it stages
its own, and a ready copy found where the index is missing is put in place (`inlet.storage.swap`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inlet.connectors.base import loop_free
from inlet.errors import BackupError, ConfigError, InletError, StorageError
from inlet.index import disk, vectors
from inlet.storage.lock import lock_index
from inlet.storage.migrations import Migrations
from inlet.storage.private import private_folder
from inlet.storage.records import COLLECTION, RECORD
from inlet.storage.records import read as read_record
from inlet.storage.sqlite.catalog import settled_chunks
from inlet.storage.sqlite.schema import CATALOG, STATE, damaged, named_damage
from inlet.storage.sqlite.state import SqliteState
from inlet.storage.swap import finish_swap, ready_prefix, restore_lock, staging_prefix

if TYPE_CHECKING:
    from inlet.config import IndexConfig

    from .store import Index

log = logging.getLogger(__name__)
MANIFEST = "inlet-backup.json"
FORMATS = (1,)  # the manifest formats this inlet reads
SQLITE_SUFFIXES = (".db", ".sqlite3")
SCHEMAS = {"catalog.db": CATALOG, "state.db": STATE}
# The holder's own runtime files: its lock, socket and API address are not part of the index.
SKIPPED = {"inlet.sock", "index.lock", "daemon-api.json", "locks"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".lock")
SIDE_SUFFIXES = ("-wal", "-journal")  # SQLite's side files a backup never holds (-shm is never copied)
RESTORED_MID_RUN = (
    "interrupted: the backup this index was restored from was taken during the run; "
    "the next run resumes from its last checkpoint"
)


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


def folder_index(config: IndexConfig, command: str) -> Path:
    """The folder `command` (backup, restore) works on; a `ConfigError` for an index kept in a
    database and a Chroma server, which their own tools back up."""
    if config.chroma_url or config.database_url:
        raise ConfigError(
            f"inlet {command} works on a folder index; with [index] database_url or chroma_url, back up "
            "and restore the database and the Chroma server instead (docs/operations/backups.md)"
        )
    return Path(config.path)


def backup_index(index: Index, dest: Path) -> BackupReport:
    """Copy the folder of the open `index` to `dest` (new or empty, outside the index) between two batches."""
    folder_index(index.config, "backup")
    _outside(index.path, dest)
    started = time.perf_counter()
    try:
        created = _empty_destination(dest)
    except OSError as exc:
        raise StorageError(f"cannot write the backup: {_unwritable(exc, dest)}") from exc
    try:
        with index._writing:  # no batch is half written; none starts until the copy is done
            paused = time.perf_counter()
            files, size = copy_folder(index.path, dest)
            paused = time.perf_counter() - paused
        _check_copies(index.path, dest)
        _forget_daemon(dest / "state.db")
        lacking = lacking_vectors(dest)
        if lacking is not None:
            raise InletError(
                f"the copy of {index.path} lacks the index's vectors ({_lacking_words(lacking)}); the partial "
                f"copy at {dest} was removed and no backup was written"
            )
        manifest = {
            "format": 1,
            "taken_at": datetime.now(timezone.utc).isoformat(),
            "source": str(index.path),
            "files": files,
            "bytes": size,
            "listing": _listing(dest),
        }
        with open(_new_private_file(dest / MANIFEST), "w") as out:
            out.write(json.dumps(manifest, indent=2))
    except (OSError, sqlite3.Error) as exc:
        _discard(dest, created)
        raise StorageError(
            f"cannot write the backup: {_unwritable(exc, dest)}; the partial copy at {dest} was removed, "
            "run the backup again once this is fixed"
        ) from exc
    except BaseException:  # whatever stops it, no partial copy stays to be taken for a backup
        _discard(dest, created)
        raise
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


def _resolved(path: Path, what: str) -> Path:
    """`path` resolved; a loop of symbolic links is a `ConfigError` naming `what` it is and the path."""
    try:
        return loop_free(path)
    except ValueError as exc:
        raise ConfigError(f"{what} {exc}") from None


def _outside(index: Path, dest: Path) -> None:
    """Refuse a destination inside the index folder (it would copy itself), or the folder or a parent of it."""
    home, there = index.resolve(), _resolved(dest, "backup destination")
    if there != home and there.is_relative_to(home):
        raise ConfigError(f"backup destination {dest} is inside the index folder {index}: give a folder outside it")
    if home.is_relative_to(there):
        raise ConfigError(
            f"backup destination {dest} is the index folder {index} or holds it: give a folder outside it"
        )


def copy_folder(src: Path, dest: Path, live: bool = True) -> tuple[int, int]:
    """Every file of `src` under `dest`, files 0600 (from their first byte) and folders 0700. From a `live`
    index, SQLite databases go through the online backup API (a consistent copy even while another
    connection writes) and their -wal files are left out; from a backup, which nobody writes, every
    file is copied as it is (a read-only backup folder too). A symbolic link in `src` (`chroma/` moved
    to another disk) is copied as what it points to, so the copy holds everything the index uses; a
    link that points nowhere, to a folder holding it (a loop), or into `dest` is refused (`ConfigError`)."""
    files = size = 0
    skipped = SKIPPED_SUFFIXES if live else ("-shm", ".lock")
    into = dest.resolve()
    for root, dirs, names in os.walk(src, followlinks=True):
        here = Path(root)
        dirs[:] = [d for d in dirs if d not in SKIPPED]
        for link in (here / n for n in [*dirs, *names] if n not in SKIPPED and (here / n).is_symlink()):
            _followable(link, here, into)
        target = dest / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in names:
            if name in SKIPPED or name.endswith(skipped):
                continue
            os.close(_new_private_file(target / name))  # SQLite and copyfile keep the mode of the file
            if live and name.endswith(SQLITE_SUFFIXES):
                _sqlite_copy(here / name, target / name)
            else:
                shutil.copyfile(here / name, target / name)
            files += 1
            size += (target / name).stat().st_size
    return files, size


def _followable(link: Path, here: Path, dest: Path) -> None:
    """Refuse the symbolic link `link` in the folder `here` when copying what it points to cannot
    give a copy of it: it points nowhere, to `here` or a folder holding it (a copy without end), or
    to the copy's destination `dest`, inside it or a folder holding it."""
    target = link.resolve()
    why = None
    if not target.exists():
        why = f"points to {target}, which does not exist"
    elif here.resolve().is_relative_to(target):
        why = f"points to {target}, which holds it (a loop)"
    elif target.is_relative_to(dest) or dest.is_relative_to(target):
        why = f"points to {target}, inside the copy's destination {dest} or holding it"
    if why is not None:
        raise ConfigError(
            f"cannot copy {link}: this symbolic link {why}; point it at the folder it stands for, or copy elsewhere"
        )


def _new_private_file(path: Path) -> int:
    """A new empty file at `path`, readable by its owner only (0600): its open descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _check_copies(src: Path, dest: Path) -> None:
    """Each SQLite database copied from `src` to `dest` passes SQLite's quick check, or the backup
    is refused naming the index file it came from: the online backup copies pages without reading
    what they hold, so a damaged page (a bad sector, a torn write) would be found only by the
    restore that needs the copy. Run once writes go on again."""
    for copy in sorted(p for p in dest.rglob("*") if p.is_file() and p.name.endswith(SQLITE_SUFFIXES)):
        original = src / copy.relative_to(dest)
        db = sqlite3.connect(copy)
        try:
            with named_damage(original):
                problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        finally:
            db.close()
        if problems != ["ok"]:
            raise damaged(original, problems[0])


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _listing(folder: Path) -> dict[str, dict[str, Any]]:
    """Each file under `folder` by its relative path: its size and SHA-256."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return out


def _empty_destination(dest: Path) -> bool:
    """`dest` as an empty folder only its owner may enter (0700): True when it was made here."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"backup destination {dest} exists and is not an empty folder")
    if dest.is_dir():
        dest.chmod(0o700)
        return False
    private_folder(dest)
    return True


def _discard(dest: Path, created: bool) -> None:
    """Remove a failed backup: `dest` itself when it was made for it, else what was written in it."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for path in list(dest.iterdir()):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _unwritable(exc: BaseException, folder: Path) -> str:
    """Why a write into `folder` failed, in words: a full or read-only disk by name, else the error."""
    code = disk.cause(exc)
    if code is not None:
        return f"{folder} {disk.CAUSES[code]}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or folder}: {exc.strerror}"
    return str(exc)


def _forget_daemon(state_db: Path) -> None:
    """Drop the daemon's schedule from a copy's state: its next runs are the live daemon's, not the copy's."""
    if not state_db.is_file():
        return
    state = SqliteState(state_db)
    try:
        for pid in {pid for _, pid in state.daemon_next_runs().values()}:
            state.clear_next_runs(pid)
    finally:
        state.close()


def restore_index(src: Path, to: Path, replace: bool = False) -> Path | None:
    """Put the backup `src` at `to` (which must not be in use), copied and verified beside it first.
    An existing index at `to` is then moved aside (returned) when `replace`, else refused. A
    restore stopped between its two renames is finished first (`finish_swap`)."""
    manifest = _manifest(src)
    _apart(src, to)
    finish_swap(to)
    if to.exists() and not to.is_dir():
        raise ConfigError(f"cannot restore to {to}: it is a file, not a folder")
    occupied = to.is_dir() and any(to.iterdir())
    if occupied and not _holds_index(to):  # a mistyped --to: never moved aside as "the index that was there"
        raise ConfigError(
            f"cannot restore to {to}: it is not empty and holds no inlet index (no {', '.join(INDEX_MARKS)}); "
            "restore to a new or empty folder, or to an index"
        )
    # a running daemon or server holds it: InletError naming it and saying to stop it first
    lock = lock_index(to, role="restore") if occupied else None
    try:
        if occupied and not replace:
            raise ConfigError(f"{to} already holds an index: pass --replace to move it aside and restore")
        _remove_stale_staging(to)
        with _staging(src, to, manifest) as staged:
            aside = _swap(staged, to, occupied)
    finally:
        if lock is not None:
            lock.release()
    log.info("backup %s restored to %s%s", src, to, f" (the index there moved to {aside})" if aside else "")
    return aside


INDEX_MARKS = (*SCHEMAS, "chroma", RECORD, "index.lock")
"""What only an inlet index folder holds: a non-empty folder without any of them is not one."""


def _holds_index(folder: Path) -> bool:
    return any((folder / name).exists() for name in INDEX_MARKS)


def _apart(src: Path, to: Path) -> None:
    """Refuse a restore into the backup, a folder inside it or one holding it: a backup is only read."""
    backup, there = _resolved(src, "backup"), _resolved(to, "restore destination")
    if there.is_relative_to(backup) or backup.is_relative_to(there):
        raise ConfigError(
            f"cannot restore to {to}: it is the backup {src}, inside it or holds it, and a backup is only "
            "read; restore to a folder outside it"
        )


def _manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{src} is not an inlet backup (no {MANIFEST}): take one with `inlet backup DEST`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"backup {src}: {MANIFEST} cannot be read ({exc})") from exc
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise BackupError(f"backup {src}: {MANIFEST} is not a backup manifest (no format)")
    if manifest["format"] not in FORMATS:
        raise BackupError(
            f"backup {src}: {MANIFEST} has format {manifest['format']!r}, which this inlet does not know: "
            "a newer inlet wrote it; restore it with that version"
        )
    return manifest


def _remove_stale_staging(to: Path) -> None:
    """Remove the staging folders beside `to` that no running restore holds (`_staging`'s `flock`):
    what a restore killed while it copied (kill -9, OOM, a reboot) left, a partial copy of a backup
    that nothing else would ever remove; and, `to` being there, the ready copies of restores killed
    before they moved it aside. Each removal is logged; one that cannot be removed is only logged
    (the restore goes on)."""
    try:
        found = sorted(to.parent.glob(staging_prefix(to) + "*"))
        if to.exists():
            found += sorted(to.parent.glob(ready_prefix(to) + "*"))
    except OSError:
        return
    for folder in found:
        with restore_lock(folder, wait=False) as held:
            if not held:
                continue  # a restore running now (or no folder any more)
            try:
                shutil.rmtree(folder)
                log.info("removed %s, the partial copy of a restore that was stopped before it finished", folder)
            except OSError as exc:
                log.warning("could not remove %s, left by a restore that was stopped: %s", folder, exc)


@contextmanager
def _staging(src: Path, to: Path, manifest: dict[str, Any]) -> Iterator[Path]:
    """A new folder beside `to` with the backup copied into it and verified (`_fill`), `flock`ed from
    its creation until the restore ends, so that a later restore removes only the staging folders
    no running restore holds (`_remove_stale_staging`); removed on any failure, and on leaving
    unless it was moved into place."""
    try:
        to.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = Path(tempfile.mkdtemp(prefix=staging_prefix(to), dir=to.parent))
    except OSError as exc:
        raise _copy_error(exc, src, to) from exc
    handle: int | None = None
    try:
        handle = os.open(staged, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise _copy_error(exc, src, to) from exc
    try:
        _fill(src, staged, to, manifest)
        yield staged
    finally:
        if staged.exists():  # not moved into place
            shutil.rmtree(staged, ignore_errors=True)
        os.close(handle)  # releases the flock


def _fill(src: Path, staged: Path, to: Path, manifest: dict[str, Any]) -> None:
    """The backup copied into `staged` and verified there; the runs it shows unfinished closed, the
    daemon's schedule dropped."""
    try:
        copy_folder(src, staged, live=False)
    except OSError as exc:
        raise _copy_error(exc, src, to) from exc
    (staged / MANIFEST).unlink(missing_ok=True)
    _verify(src, staged, manifest)
    try:
        _close_unfinished_runs(staged / "state.db")
        _forget_daemon(staged / "state.db")
    except (OSError, sqlite3.Error) as exc:
        raise _copy_error(exc, src, to) from exc


def _copy_error(exc: OSError | sqlite3.Error, src: Path, to: Path) -> BackupError | StorageError:
    """A file of the backup that cannot be read blames the backup; a full or read-only disk under
    `to` is the destination's, whichever file name the error carries (a failed `sendfile` names the
    source even when the write failed)."""
    if isinstance(exc, OSError) and exc.filename and disk.cause(exc) is None:
        name = Path(exc.filename)
        if name.is_relative_to(src):
            return BackupError(f"backup {src}: {name.relative_to(src)} cannot be read ({exc.strerror})")
    return StorageError(
        f"cannot write the restored copy: {_unwritable(exc, to.parent)}; the backup {src} is not at fault "
        f"and the index at {to} is untouched"
    )


def _verify(src: Path, staged: Path, manifest: dict[str, Any]) -> None:
    """Raise `BackupError` naming the first file of the copy that is missing, differs from the
    manifest, fails SQLite's integrity check or holds schema steps this inlet does not know."""
    listing: dict[str, dict[str, Any]] | None = manifest.get("listing")
    copied = _listing(staged)
    if listing is None:  # a backup from before the listing: as many files as it counted
        # such a backup holds no SQLite side file: one is what a reader opening it in place left (an
        # earlier release's restore did); empty, it holds nothing and is not counted
        side = [name for name in copied if name.endswith(SIDE_SUFFIXES)]
        counted = len(copied) - sum(1 for name in side if copied[name]["bytes"] == 0)
        if counted != manifest.get("files"):
            missing = "".join(f"{name} is missing; " for name in SCHEMAS if name not in copied)
            extra = [name for name in side if copied[name]["bytes"]]
            left = (
                f" (beside them {', '.join(extra)}, which a backup does not hold: SQLite left it opening the "
                "backup in place)"
                if extra
                else ""
            )
            raise BackupError(
                f"backup {src}: {missing}it holds {counted} files{left}, its {MANIFEST} counts {manifest.get('files')}"
            )
    else:
        for name, want in listing.items():
            have = copied.get(name)
            if have is None:
                raise BackupError(f"backup {src}: {name} is missing (listed in its {MANIFEST})")
            if have != want:
                raise BackupError(f"backup {src}: {name} differs from what its {MANIFEST} records (damaged)")
    for name in copied:
        if name.endswith(SQLITE_SUFFIXES):
            _check_database(src, staged, name)
    lacking = lacking_vectors(staged)
    if lacking is not None:
        raise BackupError(
            f"backup {src}: it lacks the index's vectors ({_lacking_words(lacking)}): an earlier inlet took it without "
            "following a symbolic link in the index folder. Take a new backup; or, to keep this one, restore its "
            "catalog.db, state.db and embedding.json by hand and run `inlet reindex`"
        )


def lacking_vectors(folder: Path, copy: bool = True) -> tuple[int, str] | None:
    """The settled chunks of the catalog of the index folder `folder` (a `copy` nobody writes, a
    backup's, unless False) and what its `chroma/` lacks of their vectors, in words
    (`vectors.missing_vectors`); None when it holds them (or the catalog holds no chunk). Read
    only: a live folder may be in use."""
    if not (folder / "catalog.db").is_file():
        return None
    chunks = settled_chunks(folder / "catalog.db", copy)
    record = read_record(folder)
    missing = vectors.missing_vectors(folder / "chroma", record.collection if record else COLLECTION, chunks, copy)
    return None if missing is None else (chunks, missing)


def _lacking_words(lacking: tuple[int, str]) -> str:
    return f"catalog.db holds {lacking[0]} chunks, chroma/ holds {lacking[1]}"


def _check_database(src: Path, staged: Path, name: str) -> None:
    db = sqlite3.connect(staged / name)
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError(f"backup {src}: {name} fails SQLite's integrity check ({problems[0]})")
        if name in SCHEMAS:
            _check_schema(src, name, SCHEMAS[name], db)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"backup {src}: {name} is damaged ({exc})") from exc
    finally:
        db.close()


def _check_schema(src: Path, name: str, schema: Migrations, db: sqlite3.Connection) -> None:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchall():
        return  # made before steps were recorded: adopted when opened
    unknown = {row[0] for row in db.execute("SELECT name FROM schema_migrations")} - set(schema.names)
    if unknown:
        raise BackupError(
            f"backup {src}: {name} has schema step(s) {', '.join(sorted(unknown))}, which this inlet does not "
            "know: a newer inlet wrote it; restore it with that version"
        )


def _close_unfinished_runs(path: Path) -> None:
    """Runs the copy shows in progress end as a crash leaves them: nobody runs them in the copy."""
    if not path.is_file():
        return
    state = SqliteState(path)
    try:
        for source in state.sources_with_unfinished_runs():
            state.close_orphan_runs(source, RESTORED_MID_RUN)
    finally:
        state.close()


def aside_path(to: Path, now: datetime) -> Path:
    """Where the index at `to` moves when a restore replaces it: `to.replaced-<time>`, with a
    count after it should that name be taken (two restores in one second)."""
    base = to.with_name(f"{to.name}.replaced-{now:%Y%m%dT%H%M%SZ}")
    aside, n = base, 1
    while aside.exists():
        n += 1
        aside = base.with_name(f"{base.name}-{n}")
    return aside


def _swap(staged: Path, to: Path, occupied: bool) -> Path | None:
    """Put the verified copy at `to`; the index there (if any) moves aside first: its new path.
    The copy takes its ready name before anything moves, so a crash between the two renames
    leaves it to be put in place by the next open (`finish_swap`). Should a rename fail, the
    index is put back and the copy removed."""
    ready = staged.with_name(ready_prefix(to) + staged.name.removeprefix(staging_prefix(to)))
    aside = aside_path(to, datetime.now(timezone.utc)) if occupied else None
    try:
        staged.rename(ready)
    except OSError as exc:
        raise StorageError(f"cannot put the restored copy at {to}: {exc}; the index there is untouched") from exc
    try:
        if aside is not None:
            to.rename(aside)
        elif to.exists():
            to.rmdir()  # an empty folder
        try:
            ready.rename(to)
        except OSError:
            if aside is not None:
                aside.rename(to)
            raise
    except OSError as exc:
        shutil.rmtree(ready, ignore_errors=True)
        raise StorageError(f"cannot put the restored copy at {to}: {exc}; the index there is untouched") from exc
    return aside
