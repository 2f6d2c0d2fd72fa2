"""Backups of a folder index: a copy taken in the middle of a backfill, restored, shows that run
interrupted, finishes the backfill and equals an index that never stopped (documents, chunks,
vectors, ACLs); `inlet backup` asks a running holder to take the copy between two batches, never
into the index folder itself; `inlet restore` puts it back, and a damaged backup (a file changed or
missing, a database that fails its integrity check, a newer schema) is refused with exit 2 before
the index at the target is touched."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import IndexConfig, Settings
from inlet.connectors.files import FilesConfig
from inlet.errors import InletError
from inlet.index.embedding import Embedder
from inlet.index import backup
from inlet.index.backup import MANIFEST, backup_index, restore_index
from inlet.index.store import Index, Prepared
from inlet.server.local_commands import start_local_commands
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine
from tests.test_disk_faults import fill, small_disk  # noqa: F401 (a fixture)

FILES = 12
# fp32: a text's vector does not depend on the batch it was embedded in (the int8 model quantizes
# activations per batch), so a restored index and a clean one can be compared vector by vector.
BACKEND = "onnx"


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(backend=BACKEND)


class PausingIndex(Index):
    """Stops the writer after its second batch, committed, until the test lets it go on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0
        self.reached = threading.Event()
        self.go = threading.Event()

    def write(self, batch: Prepared) -> Any:
        stats = super().write(batch)
        self.writes += 1
        if self.writes == 2:
            self.reached.set()
            assert self.go.wait(120)
        return stats


def make_settings(tmp_path: Path, folder: Path, index: str) -> Settings:
    source = FilesConfig(name="docs", type="files", path=folder, checkpoint_every=3, users=["alice@example.com"])
    return Settings(index=IndexConfig(path=tmp_path / index, batch_size=8, backend=BACKEND), sources=[source])


def snapshot(index: Index) -> dict[str, Any]:
    """Documents with their ACLs and chunks, and the vectors by chunk id."""
    ids = sorted(index.catalog.source_doc_ids("docs"))
    stored = index.catalog.stored(ids)
    docs = index.catalog.documents(stored)
    vectors = index.collection.get(include=["embeddings"])
    return {
        "docs": {i: (docs[i].text, docs[i].title, docs[i].acl.model_dump(), stored[i].chunks) for i in ids},
        "vectors": dict(zip(vectors["ids"], (np.asarray(v) for v in vectors["embeddings"]), strict=True)),
    }


def assert_same(one: dict[str, Any], two: dict[str, Any]) -> None:
    assert one["docs"] == two["docs"] and len(one["docs"]) == FILES
    assert one["vectors"].keys() == two["vectors"].keys()
    differ = [key for key, vector in one["vectors"].items() if not np.allclose(vector, two["vectors"][key], atol=1e-5)]
    assert differ == []


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    box = tmp_path / "box"
    box.mkdir()
    for n in range(FILES):
        (box / f"note-{n:02}.md").write_text(
            f"# Note {n}\n\nThe pipeline number {n} carries {n * 7} units of gas "
            f"to the western storage site, reviewed by team {n % 3}.\n"
        )
    return box


def test_a_backup_taken_mid_backfill_restores_and_finishes_like_a_clean_one(
    tmp_path: Path, folder: Path, fp32: Embedder
) -> None:
    clean_settings = make_settings(tmp_path, folder, "clean")
    with Index(clean_settings.index, embedder=fp32) as clean:
        state = SqliteState(clean.path / "state.db")
        assert Engine(clean_settings, clean, state, env={}).run("docs", "backfill").outcome == "ok"
        state.close()
        expected = snapshot(clean)

    live_settings = make_settings(tmp_path, folder, "live")
    with PausingIndex(live_settings.index, embedder=fp32) as live:
        state = SqliteState(live.path / "state.db")
        engine = Engine(live_settings, live, state, env={})
        run = threading.Thread(target=engine.run, args=("docs", "backfill"))
        run.start()
        try:
            assert live.reached.wait(120)
            report = backup_index(live, tmp_path / "backup")  # the writer is between two batches
        finally:
            live.go.set()
            run.join(120)
        state.close()
    assert report.files >= 3 and (tmp_path / "backup" / MANIFEST).is_file()
    assert not (tmp_path / "backup" / "index.lock").exists()

    restored = tmp_path / "restored"
    assert restore_index(tmp_path / "backup", restored) is None
    settings = make_settings(tmp_path, folder, "restored")
    with Index(settings.index, embedder=fp32) as index:
        halfway = len(index.catalog.source_doc_ids("docs"))
        assert 0 < halfway < FILES  # the copy is of the middle of the backfill
        state = SqliteState(index.path / "state.db")
        assert state.running("docs") is None  # the copied run is nobody's: not shown running
        last = state.last_run("docs")
        assert last is not None and last.kind == "backfill" and (last.error or "").startswith("interrupted")
        result = Engine(settings, index, state, env={}).run("docs", "sync")
        state.close()
        assert result.outcome == "ok" and result.upserted <= FILES - 3  # from the copy's checkpoint on
        assert_same(snapshot(index), expected)


def test_inlet_backup_asks_the_holder_and_restore_refuses_to_overwrite(
    tmp_path: Path, folder: Path, fp32: Embedder
) -> None:
    settings = make_settings(tmp_path, folder, "held")
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{settings.index.path}"\n')
    with Index(settings.index, embedder=fp32) as index:
        state = SqliteState(index.path / "state.db")
        Engine(settings, index, state, env={}).run("docs", "backfill")
        expected = snapshot(index)
        local = start_local_commands(settings, index, state, lambda *a: None)  # type: ignore[arg-type,return-value]
        assert local is not None
        try:
            done = CliRunner().invoke(cli, ["backup", str(tmp_path / "copy"), "--json", "--config", str(config)])
            assert done.exit_code == 0, done.output
            dots = CliRunner().invoke(cli, ["backup", f"{tmp_path}/no/../copy2", "--json", "--config", str(config)])
            assert json.loads(dots.output)["dest"] == str(tmp_path / "copy2")  # the folder it names, written so
            again = CliRunner().invoke(cli, ["backup", str(tmp_path / "copy"), "--config", str(config)])
            assert again.exit_code != 0 and "not an empty folder" in again.output
            busy = CliRunner().invoke(cli, ["restore", str(tmp_path / "copy"), "--replace", "--config", str(config)])
            assert busy.exit_code != 0 and "in use" in busy.output  # never under a running holder
        finally:
            local.close()
            state.close()
    refused = CliRunner().invoke(cli, ["restore", str(tmp_path / "copy"), "--config", str(config)])
    assert refused.exit_code != 0 and "--replace" in refused.output
    done = CliRunner().invoke(cli, ["restore", str(tmp_path / "copy"), "--replace", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert len(list(tmp_path.glob("held.replaced-*"))) == 1
    with Index(settings.index, embedder=fp32) as index:
        assert_same(snapshot(index), expected)
    with pytest.raises(InletError, match="not an inlet backup"):
        restore_index(folder, tmp_path / "elsewhere")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, fp32: Embedder) -> Path:
    """A backup of a backfilled index (copy it before damaging it)."""
    tmp_path = tmp_path_factory.mktemp("made")
    box = tmp_path / "box"
    box.mkdir()
    for n in range(FILES):
        (box / f"note-{n:02}.md").write_text(f"# Note {n}\n\nThe pipeline number {n} is reviewed by team {n % 3}.\n")
    settings = make_settings(tmp_path, box, "index")
    with Index(settings.index, embedder=fp32) as index:
        state = SqliteState(index.path / "state.db")
        Engine(settings, index, state, env={}).run("docs", "backfill")
        state.close()
        backup_index(index, tmp_path / "backup")
    return tmp_path / "backup"


@pytest.fixture
def live(tmp_path: Path, made: Path) -> Path:
    """An index folder in place at `tmp_path / "live"` (a restored copy of `made`)."""
    restore_index(made, tmp_path / "live")
    return tmp_path / "live"


def files_of(folder: Path) -> dict[str, bytes]:
    """Each file's bytes but the lock's (a restore takes it to check that nobody uses the index)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "index.lock"
    }


def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\x5a" * 4096  # a page of the catalog overwritten
    path.write_bytes(bytes(data))


def drop_listing(backup: Path) -> None:
    """The manifest as a backup from before the listing wrote it (only the number of files)."""
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest.pop("listing", None)
    (backup / MANIFEST).write_text(json.dumps(manifest))


def restore_cli(src: Path, to: Path) -> Any:
    return CliRunner().invoke(cli, ["restore", str(src), "--to", str(to), "--replace"])


def assert_refused(done: Any, live: Path, before: dict[str, bytes], *words: str) -> None:
    """Exit 2, one line naming what is wrong, the index at `live` as it was, nothing left beside it."""
    assert done.exit_code == 2, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)  # no traceback
    assert len(done.output.strip().splitlines()) == 1 and all(w in done.output for w in words), done.output
    assert files_of(live) == before
    assert sorted(p.name for p in live.parent.iterdir()) == ["backup", "live"]


def test_a_damaged_backup_is_refused_before_the_index_it_would_replace_is_touched(
    tmp_path: Path, made: Path, live: Path
) -> None:
    before = files_of(live)
    backup = tmp_path / "backup"
    shutil.copytree(made, backup)
    damage(backup / "catalog.db")
    assert_refused(restore_cli(backup, live), live, before, "catalog.db", "differs")
    drop_listing(backup)  # without the listing, SQLite's integrity check finds it
    assert_refused(restore_cli(backup, live), live, before, "catalog.db", "damaged")


def test_a_non_empty_folder_that_holds_no_index_is_never_restored_over_nor_moved_aside(
    tmp_path: Path, made: Path
) -> None:
    """Probe 31e F8: a mistyped `--to` (a folder a `files` source reads, say) is refused, with or
    without --replace, and not called an index; nothing is created in it or beside it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.txt").write_text("mine")
    for done in (
        CliRunner().invoke(cli, ["restore", str(made), "--to", str(photos)]),
        restore_cli(made, photos),
    ):
        assert done.exit_code == 2, done.output
        assert "is not empty and holds no inlet index" in done.output and "already holds" not in done.output
        assert [p.name for p in photos.iterdir()] == ["notes.txt"]
        assert not list(tmp_path.glob("photos.*"))


def test_a_backup_missing_a_file_is_refused(tmp_path: Path, made: Path, live: Path) -> None:
    before = files_of(live)
    backup = tmp_path / "backup"
    shutil.copytree(made, backup)
    (backup / "state.db").unlink()
    assert_refused(restore_cli(backup, live), live, before, "state.db", "missing")
    drop_listing(backup)
    assert_refused(restore_cli(backup, live), live, before, "state.db is missing", "counts")


def test_a_backup_from_before_the_listing_restores_beside_the_empty_side_files_a_reader_left(
    tmp_path: Path, made: Path, live: Path
) -> None:
    """An earlier release's restore opened the backup's SQLite files in place, leaving empty -wal and
    -shm files in it: they hold nothing, and the backup restores. A side file holding something is
    named when the count is refused."""
    backup = tmp_path / "backup"
    shutil.copytree(made, backup)
    drop_listing(backup)
    for name in ("catalog.db", "state.db"):
        for side in ("-wal", "-shm"):
            (backup / f"{name}{side}").write_bytes(b"")
    restored = tmp_path / "restored"
    done = CliRunner().invoke(cli, ["restore", str(backup), "--to", str(restored)])
    assert done.exit_code == 0, done.output
    assert (restored / "catalog.db").is_file()
    shutil.rmtree(restored)
    before = files_of(live)
    (backup / "state.db-wal").write_bytes(b"x" * 32)
    assert_refused(restore_cli(backup, live), live, before, "state.db-wal", "counts")


def test_a_backup_of_a_newer_schema_is_refused(tmp_path: Path, made: Path, live: Path) -> None:
    before = files_of(live)
    backup = tmp_path / "backup"
    shutil.copytree(made, backup)
    db = sqlite3.connect(backup / "state.db")
    db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('m999_from_the_future', 0)")
    db.commit()
    db.close()
    drop_listing(backup)
    assert_refused(restore_cli(backup, live), live, before, "state.db", "m999_from_the_future")


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` as a read-only backup: its modes for a user, a read-only bind mount for root (whom
    modes do not stop); skipped where root may not mount."""
    if os.geteuid() != 0:
        for path in [*folder.rglob("*"), folder]:
            path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield folder
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o700 if path.is_dir() else 0o600)
        return
    mounted = folder.with_name(folder.name + "-ro")
    mounted.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(mounted)], capture_output=True).returncode:
        pytest.skip("root here may not mount a read-only folder")
    try:
        yield mounted
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


def test_restore_replace_says_where_the_old_index_went_and_reads_a_read_only_backup(
    tmp_path: Path, made: Path, live: Path, fp32: Embedder
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(made, backup)
    for path in backup.rglob("*"):
        path.chmod(0o500 if path.is_dir() else 0o400)  # the copy of a read-only file stays writable
    before = files_of(backup)
    with read_only(backup) as src:
        done = restore_cli(src, live)
    assert done.exit_code == 0, done.output
    assert files_of(backup) == before
    assert not [p for p in made.rglob("*") if p.name.endswith(("-wal", "-shm"))]  # restored, never written
    aside = next(tmp_path.glob("live.replaced-*"))
    assert str(aside) in done.output and (aside / "catalog.db").is_file()
    assert all(p.stat().st_mode & 0o777 in (0o600, 0o700) for p in [live, *live.rglob("*")])
    settings = make_settings(tmp_path, tmp_path, "live")
    with Index(settings.index, embedder=fp32) as index:
        assert len(index.catalog.source_doc_ids("docs")) == FILES


def test_backup_refuses_a_destination_inside_the_index_or_holding_it(
    tmp_path: Path, live: Path, fp32: Embedder
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{live}"\nbackend = "{BACKEND}"\n')
    before = files_of(live)
    inner = CliRunner().invoke(cli, ["backup", str(live / "inner"), "--config", str(config)])
    assert inner.exit_code == 2 and "inside the index folder" in inner.output, inner.output
    assert not (live / "inner").exists()
    settings = make_settings(tmp_path, tmp_path, "live")
    with Index(settings.index, embedder=fp32) as index:
        for dest in (live, tmp_path, live / "a" / "b"):
            with pytest.raises(InletError, match="outside it"):
                backup_index(index, dest)
    assert files_of(live).keys() == before.keys() and not (live / "a").exists()


def test_a_backup_or_restore_destination_that_is_a_loop_of_symbolic_links_is_one_line_naming_it(
    tmp_path: Path, made: Path, live: Path
) -> None:
    """probe35b F5: `inlet backup lp1` (lp1 -> lp2 -> lp1) ended in a `RuntimeError: Symlink loop`
    traceback, exit 1; so did a restore `--to` one. Exit 2, one line naming the path."""
    (tmp_path / "lp1").symlink_to(tmp_path / "lp2")
    (tmp_path / "lp2").symlink_to(tmp_path / "lp1")
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{live}"\nbackend = "{BACKEND}"\n')
    before = files_of(live)
    done = CliRunner().invoke(cli, ["backup", str(tmp_path / "lp1"), "--config", str(config)])
    one_line_failure(done, 2, f"backup destination {tmp_path / 'lp1'} is a loop of symbolic links")
    one_line_failure(restore_cli(made, tmp_path / "lp1"), 2, f"restore destination {tmp_path / 'lp1'} is a loop")
    assert files_of(live).keys() == before.keys()  # nothing copied into the index, nothing moved


def test_a_second_restore_in_the_same_second_moves_the_index_to_a_name_of_its_own(tmp_path):
    now = datetime(2026, 12, 6, 14, 0, 5, tzinfo=timezone.utc)
    first = backup.aside_path(tmp_path / "live", now)
    assert first.name == "live.replaced-20261206T140005Z"
    first.mkdir()
    second = backup.aside_path(tmp_path / "live", now)
    assert second.name == "live.replaced-20261206T140005Z-2" and not second.exists()


def test_restore_with_a_database_config_is_refused_like_backup(tmp_path: Path, made: Path) -> None:
    """An index kept in PostgreSQL and a Chroma server is not a folder: restoring into the default
    folder would make an index that configuration never reads."""
    config = tmp_path / "pg.toml"
    config.write_text(
        '[index]\ndatabase_url = "postgresql://inlet@127.0.0.1:1/inlet"\nchroma_url = "http://127.0.0.1:1"\n'
    )
    for command in (["backup", str(tmp_path / "copy")], ["restore", str(made)]):
        done = CliRunner().invoke(cli, [*command, "--config", str(config)])
        assert done.exit_code == 2 and "works on a folder index" in done.output, done.output
    assert not (tmp_path / ".inlet").exists() and not (tmp_path / "copy").exists()


def modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_a_backup_is_private_and_neither_it_nor_a_restore_carries_the_daemon_schedule(
    tmp_path: Path, live: Path, fp32: Embedder
) -> None:
    state = SqliteState(live / "state.db")
    state.set_next_runs(os.getpid(), {"docs": time.time() + 3600})  # a daemon runs on `live`
    state.close()
    dest = tmp_path / "bk"
    dest.mkdir()
    dest.chmod(0o755)  # an existing empty folder, open to others
    old = os.umask(0o022)
    try:
        with Index(make_settings(tmp_path, tmp_path, "live").index, embedder=fp32) as index:
            backup_index(index, dest)
    finally:
        os.umask(old)
    found = modes(dest)
    assert MANIFEST in found and "state.db" in found
    assert {name: oct(mode) for name, mode in found.items() if mode not in (0o600, 0o700)} == {}
    assert all(mode == 0o700 for name, mode in found.items() if (dest / name).is_dir())

    def schedule(db: Path) -> dict[str, Any]:
        state = SqliteState(db)
        try:
            return state.daemon_next_runs()
        finally:
            state.close()

    assert schedule(dest / "state.db") == {} and list(schedule(live / "state.db")) == ["docs"]
    older = tmp_path / "older"  # a backup taken before: its state holds the daemon's next runs
    shutil.copytree(dest, older)
    db = sqlite3.connect(older / "state.db")
    db.execute("INSERT INTO daemon_schedule (source, next_run, pid, updated) VALUES ('docs', 1, ?, 1)", (os.getpid(),))
    db.commit()
    db.close()
    drop_listing(older)
    restore_index(older, tmp_path / "restored")
    assert schedule(tmp_path / "restored" / "state.db") == {}


def test_a_copy_cut_short_leaves_no_file_others_could_read(tmp_path: Path) -> None:
    """A file is 0600 from its first byte: here the copy stops at a file size limit mid-file."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(1 << 20))
    old_umask, old_handler = os.umask(0o022), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limits[1]))
    try:
        with pytest.raises(OSError):
            backup.copy_folder(src, tmp_path / "dest", live=False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old_handler)
        os.umask(old_umask)
    assert 0 < (tmp_path / "dest" / "big.bin").stat().st_size < 1 << 20
    assert stat.S_IMODE((tmp_path / "dest" / "big.bin").stat().st_mode) == 0o600


def one_line_failure(done: Any, code: int, *words: str) -> None:
    """Exit `code`, no traceback, one `inlet:` line holding `words` (a log line may come before it)."""
    assert done.exit_code == code, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    said = [line for line in done.output.splitlines() if line.startswith("inlet:")]
    assert len(said) == 1 and all(w in said[0] for w in words) and "Traceback" not in done.output, done.output


def test_a_backup_to_a_full_or_read_only_folder_says_so_and_leaves_nothing(
    tmp_path: Path, live: Path, small_disk: Path, fp32: Embedder
) -> None:
    settings = make_settings(tmp_path, tmp_path, "live")
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{live}"\nbackend = "{BACKEND}"\n')
    pre = small_disk / "pre"
    pre.mkdir()
    filler = fill(small_disk, leave=64 * 1024)

    def backup_cli(dest: Path) -> Any:
        return CliRunner().invoke(cli, ["backup", str(dest), "--config", str(config)])

    with Index(settings.index, embedder=fp32) as index:  # a holder: the copy is taken in it
        state = SqliteState(index.path / "state.db")
        local = start_local_commands(settings, index, state, lambda *a: None)  # type: ignore[arg-type,return-value]
        assert local is not None
        try:
            held = backup_cli(small_disk / "held")
        finally:
            local.close()
            state.close()
    one_line_failure(held, 1, f"cannot write the backup: {small_disk / 'held'} is full", "removed")
    assert "internal error" not in held.output
    alone = backup_cli(pre)  # nobody holds the index: the command copies it itself
    one_line_failure(alone, 1, f"cannot write the backup: {pre} is full")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "pre"] and list(pre.iterdir()) == []
    filler.unlink()
    assert backup_cli(pre).exit_code == 0 and (pre / MANIFEST).is_file()  # a retry works

    with read_only(small_disk) as mounted:
        refused = backup_cli(mounted / "new")
    one_line_failure(refused, 1, f"cannot write the backup: {mounted / 'new'} is on a read-only file system")


def test_a_restore_onto_a_full_or_read_only_disk_blames_the_disk_not_the_backup(
    tmp_path: Path, made: Path, small_disk: Path
) -> None:
    fill(small_disk, leave=64 * 1024)
    done = restore_cli(made, small_disk / "restored")
    one_line_failure(done, 1, "cannot write the restored copy", f"{small_disk} is full", "not at fault")
    assert "cannot be read" not in done.output
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    with read_only(small_disk) as mounted:
        refused = restore_cli(made, mounted / "restored")
    one_line_failure(refused, 1, f"{mounted} is on a read-only file system", "not at fault")


def test_a_restore_into_the_backup_is_refused(tmp_path: Path, made: Path) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(made, backup)
    before = files_of(backup)
    for to in (backup / "sub", backup):
        done = restore_cli(backup, to)
        one_line_failure(done, 2, f"cannot restore to {to}", f"the backup {backup}")
    assert files_of(backup) == before and sorted(p.name for p in backup.iterdir()) == sorted(
        p.name for p in made.iterdir()
    )


def test_a_restore_removes_the_staging_folders_of_restores_that_were_killed(
    tmp_path: Path, made: Path, live: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """probe33d F2: a restore killed while it copied (kill -9: no handler runs) left its partial
    copy `.live.restoring-…` beside the index for good. The next restore removes it, but not the
    staging folder of a restore running now (it holds that folder's lock)."""
    import fcntl
    import logging

    killed = tmp_path / ".live.restoring-k1ll3d00"
    killed.mkdir(mode=0o700)
    shutil.copy2(made / "catalog.db", killed / "catalog.db")  # a part of the copy, as far as it got
    running = tmp_path / ".live.restoring-runn1ng0"
    running.mkdir(mode=0o700)
    handle = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(handle, fcntl.LOCK_EX)  # as a restore under way holds its own
    try:
        with caplog.at_level(logging.INFO, logger="inlet.index.backup"):
            assert restore_index(made, live, replace=True) is not None
    finally:
        os.close(handle)
    assert not killed.exists() and running.is_dir()
    assert str(killed) in caplog.text and str(running) not in caplog.text
    assert (live / "catalog.db").is_file()
    assert sorted(p.name for p in tmp_path.glob(".live.restoring-*")) == [running.name]  # none of its own left


KILL_AT_LAST_RENAME = """
import os, signal, sys
from pathlib import Path

target = Path(sys.argv[1])

def kill_before_the_copy_is_put_in_place(event, args):
    # a crash (kill -9, OOM, power cut) between moving the old index aside and the last rename
    if event != "os.rename" or Path(os.fsdecode(args[1])) != target:
        return
    if any(target.parent.glob(target.name + ".replaced-*")):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(kill_before_the_copy_is_put_in_place)
from inlet.index.backup import restore_index
restore_index(Path(sys.argv[2]), target, replace=True)
"""


def test_a_restore_killed_between_its_two_renames_is_finished_by_the_next_open_not_restarted_empty(
    tmp_path: Path, made: Path, live: Path, fp32: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """probe33d F5: `inlet restore --replace` killed after moving the index aside and before putting
    its verified copy in place left no index at the path; the next command started a new, empty one
    (a full re-download). The next open puts the verified copy in place; a restore run afterwards
    finds it there."""
    import logging
    import sys

    shutil.rmtree(live / "chroma")  # the index being replaced differs from the backup
    (live / "catalog.db").unlink()
    child = [sys.executable, "-c", KILL_AT_LAST_RENAME, str(live), str(made)]
    done = subprocess.run(child, check=False, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not live.exists() and next(tmp_path.glob("live.replaced-*")).is_dir()  # the crash's state
    settings = make_settings(tmp_path, tmp_path / "box", "live")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "{live}"\nbackend = "{BACKEND}"\n\n'
        f'[[sources]]\nname = "docs"\ntype = "files"\npath = "{tmp_path / "box"}"\nusers = ["alice@example.com"]\n'
    )
    (tmp_path / "box").mkdir()
    with caplog.at_level(logging.WARNING, logger="inlet.storage.swap"):
        status = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert status.exit_code == 0, status.output
    assert f"docs (files): {FILES} documents" in status.output, status.output
    assert "a restore was stopped between" in caplog.text
    assert not list(tmp_path.glob(".live.*"))  # nothing left beside it
    with Index(settings.index, embedder=fp32) as index:
        assert len(index.catalog.source_doc_ids("docs")) == FILES


def relist(folder: Path) -> None:
    """The manifest as a backup that holds only what `folder` holds now wrote it."""
    manifest = json.loads((folder / MANIFEST).read_text())
    listing = {name: entry for name, entry in backup._listing(folder).items() if name != MANIFEST}
    manifest.update(files=len(listing), listing=listing)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_a_chroma_folder_on_another_disk_is_backed_up_as_what_the_link_points_to(
    tmp_path: Path, live: Path, fp32: Embedder
) -> None:
    """Probe 34g F3: with `chroma/` a symbolic link (the vectors moved to another disk), the backup
    held no vector and said "backup written". Now it holds the folder the link points to, and
    restores with every vector; a link that loops or points into the destination is refused."""
    elsewhere = tmp_path / "disk2" / "chroma"
    elsewhere.parent.mkdir()
    shutil.move(live / "chroma", elsewhere)
    (live / "chroma").symlink_to(elsewhere)
    settings = make_settings(tmp_path, tmp_path, "live")
    with Index(settings.index, embedder=fp32) as index:
        held = index.collection.count()
        report = backup_index(index, tmp_path / "bk")
        assert held == FILES and not (tmp_path / "bk" / "chroma").is_symlink()
        assert {p.relative_to(elsewhere) for p in elsewhere.rglob("*") if p.is_file()} == {
            p.relative_to(tmp_path / "bk" / "chroma") for p in (tmp_path / "bk" / "chroma").rglob("*") if p.is_file()
        }
        (elsewhere / "loop").symlink_to(live)
        with pytest.raises(InletError, match="loop"):
            backup_index(index, tmp_path / "bk2")
        (elsewhere / "loop").unlink()
        (elsewhere / "inward").symlink_to(tmp_path / "bk3", target_is_directory=True)
        (tmp_path / "bk3").mkdir()
        with pytest.raises(InletError, match="inside the copy's destination"):
            backup_index(index, tmp_path / "bk3")
        (elsewhere / "inward").unlink()
    assert not (tmp_path / "bk2").exists() and list((tmp_path / "bk3").iterdir()) == []
    restore_index(tmp_path / "bk", tmp_path / "restored")
    with Index(make_settings(tmp_path, tmp_path, "restored").index, embedder=fp32) as index:
        assert index.collection.count() == held and report.files > 4


def test_a_backup_that_left_out_the_vectors_is_refused(tmp_path: Path, made: Path, live: Path) -> None:
    """Probe 34g F3: what an earlier inlet wrote for an index whose `chroma/` was a link (no Chroma
    folder, and a manifest listing only the rest) verified and restored an index with no vector;
    so did one missing only the HNSW folder Chroma recorded writing. Both are refused now."""
    before = files_of(live)
    bk = tmp_path / "backup"
    shutil.copytree(made, bk)
    (segment,) = [p.name for p in (bk / "chroma").iterdir() if p.is_dir()]
    db = sqlite3.connect(bk / "chroma" / "chroma.sqlite3")  # as Chroma records an HNSW index it wrote out
    with db:
        db.execute("INSERT OR REPLACE INTO max_seq_id (segment_id, seq_id) VALUES (?, ?)", (segment, FILES))
    db.close()
    shutil.rmtree(bk / "chroma" / segment)
    relist(bk)
    assert_refused(restore_cli(bk, live), live, before, f"holds no folder {segment}", "inlet reindex")
    shutil.rmtree(bk / "chroma")
    relist(bk)
    assert_refused(restore_cli(bk, live), live, before, "lacks the index's vectors", "no chroma.sqlite3")
