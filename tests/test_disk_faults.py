"""A full or read-only index folder: `inlet sync` exits 1 with one line naming the folder and the
cause (no traceback), nothing already indexed is lost or torn, and once space is back the next run
finishes and the index equals a clean backfill.

The folder is a real small tmpfs (the tests run as root, so permissions would not stop a write):
filled to the last bytes with a filler file for ENOSPC, and a read-only bind mount for EROFS.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inlet.index import vectors
from inlet.index.store import Index
from inlet.sync.engine import Engine
from inlet.storage.sqlite.state import SqliteState

from inlet.config import Settings, load_config, parse_config
from tests.test_crash_matrix import WORDS, snapshot

# Long words the model's tokenizer keeps whole: many bytes on disk for few chunks to embed.
LONG_WORDS = [
    "international",
    "configuration",
    "responsibility",
    "environmental",
    "administration",
    "communication",
    "transportation",
    "understanding",
    "representative",
    "infrastructure",
    "organization",
    "management",
    "development",
    "performance",
    "significant",
    "relationship",
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): no real full or read-only disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def write_notes(folder: Path, first: int, count: int, words: int, long: bool = False) -> None:
    """`long`: words the tokenizer keeps whole, about 14 bytes a token (numbered words are about 3)."""
    rng = random.Random(first)
    for n in range(first, first + count):
        picks = (rng.choice(LONG_WORDS) if long else f"{rng.choice(WORDS)}{rng.randrange(1000)}" for _ in range(words))
        (folder / f"note{n:03d}.md").write_text(f"# Note {n}\n\n{' '.join(picks)}\n")


def fill(mount: Path, leave: int) -> Path:
    """Fill the file system but for about `leave` bytes (ENOSPC for anything larger)."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as out:  # unbuffered: nothing left to flush (and fail) at close
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    with open(filler, "r+b") as out:
        out.truncate(max(filler.stat().st_size - leave, 0))
    return filler


def cli_sync(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inlet", "sync"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "INLET_CONFIG": str(config)},
    )


def write_config(folder: Path, index: Path, docs: Path, source_keys: str, sections: str = "") -> Path:
    """`folder/config.toml`: the index, `sections`, and a `notes` files source of `docs` with `source_keys`."""
    config = folder / "config.toml"
    config.write_text(
        f'[index]\npath = "{index}"\n{sections}[[sources]]\nname = "notes"\ntype = "files"\n'
        f'path = "{docs}"\n{source_keys}'
    )
    return config


def run_here(settings: Settings, embedder: Any) -> str:
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(Path(settings.index.path) / "state.db")
        try:
            return Engine(settings, index, state).run("notes", "sync").outcome
        finally:
            state.close()


def intact(settings: Settings, embedder: Any) -> dict[str, Any]:
    """The index opens, SQLite finds both databases sound, and catalog, full text and Chroma agree."""
    for name in ("catalog.db", "state.db"):
        db = sqlite3.connect(Path(settings.index.path) / name)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", name
        finally:
            db.close()
    return snapshot(settings, embedder)


def test_a_full_then_read_only_index_folder_fails_clearly_and_loses_nothing(
    small_disk: Path, tmp_path: Path, embedder: Any
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_notes(docs, 0, 8, 60)
    index = small_disk / "index"
    raw = {
        "index": {"path": str(index)},
        "sources": [{"name": "notes", "type": "files", "path": str(docs), "checkpoint_every": 4}],
    }
    config = write_config(tmp_path, index, docs, "checkpoint_every = 4\n")
    settings = parse_config(raw)
    assert run_here(settings, embedder) == "ok"
    before = intact(settings, embedder)

    write_notes(docs, 100, 8, 1000, long=True)  # 110 KB of text (stored thrice and more): far more than the 32 KB left
    # This process keeps the index's Chroma open through what follows, as a running server does:
    # opening it afresh writes to the folder, which a full disk refuses (`inlet search` says so).
    held = vectors.connect(Path(settings.index.path))
    filler = fill(small_disk, leave=32 * 1024)
    full = cli_sync(config, tmp_path)
    assert full.returncode == 1, full.stderr[-3000:]
    assert f"the index folder {index} is full" in full.stderr, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    after_full = intact(settings, embedder)  # whatever was committed is whole ...
    old = {d[0] for d in before["documents"]}
    assert old <= {d[0] for d in after_full["documents"]}  # ... and nothing indexed before was lost

    # A read-only bind mount over the folder: this process's open files keep the tmpfs busy, and
    # only the new mount point is read-only, which is all `inlet sync` sees.
    subprocess.run(["mount", "--bind", str(index), str(index)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(index)], check=True)
    try:
        read_only = cli_sync(config, tmp_path)
    finally:
        subprocess.run(["umount", str(index)], check=True)
    assert read_only.returncode == 1, read_only.stderr[-3000:]
    assert f"the index folder {index} is on a read-only file system" in read_only.stderr, read_only.stderr[-3000:]
    assert "Traceback" not in read_only.stderr

    filler.unlink()  # space is back: the next run finishes the job
    assert intact(settings, embedder) == after_full
    assert run_here(settings, embedder) == "ok"
    got = intact(settings, embedder)
    clean = parse_config({**raw, "index": {"path": str(tmp_path / "clean")}})
    assert run_here(clean, embedder) == "ok"
    assert got == intact(clean, embedder)
    assert len(got["documents"]) == 16
    vectors.disconnect(held)


COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["search", "budget"],
    ["backup", "BACKUP"],
    ["sync"],
    ["reindex"],
    ["serve"],
    ["daemon"],
    ["mcp", "--user", "a@example.com"],
]


def each_command(config: Path, backup: Path, skip: tuple[str, ...] = ()) -> Iterator[tuple[list[str], Any]]:
    from click.testing import CliRunner

    from inlet.cli import cli

    for command in (c for c in COMMANDS if c[0] not in skip):
        args = [str(backup) if a == "BACKUP" else a for a in command]
        yield command, CliRunner().invoke(cli, [*args, "--config", str(config)])


def notes_index(tmp_path: Path, index: Path, embedder: Any) -> tuple[Path, Settings]:
    """A `notes` files source backfilled into `index`; its config file and settings."""
    docs = tmp_path / "docs"
    docs.mkdir()
    write_notes(docs, 0, 4, 20)
    config = write_config(tmp_path, index, docs, 'every = "1h"\n', '[server]\nport = 0\n[daemon]\njitter = "0s"\n')
    settings = load_config(config)
    assert run_here(settings, embedder) == "ok"
    return config, settings


def test_every_command_names_a_read_only_or_full_index_folder_and_a_forwarded_run_says_it_as_alone(
    small_disk: Path, tmp_path: Path, text_hash_embedder: Any
) -> None:
    """Not only `sync`: whatever command meets a read-only or full index folder ends in one line
    naming `[index] path`, the folder and the cause, exit 1, no traceback; a sync or backfill
    forwarded to the process holding the index fails with the same line and exit code as alone."""
    from click.testing import CliRunner

    from inlet.cli import cli
    from inlet.server.local_commands import start_local_commands

    index = small_disk / "index"
    config, settings = notes_index(tmp_path, index, text_hash_embedder)
    subprocess.run(["mount", "--bind", str(index), str(index)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(index)], check=True)
    try:
        read_only = list(each_command(config, tmp_path / "backup"))
    finally:
        subprocess.run(["umount", str(index)], check=True)
    for command, done in read_only:
        assert done.exit_code == 1 and isinstance(done.exception, SystemExit), (command, done.output, done.exception)
        assert f"inlet: [index] path: the index folder {index} is on a read-only file system" in done.output, command

    with Index(settings.index, embedder=text_hash_embedder) as held:  # a holder, started before the disk filled
        state = SqliteState(held.path / "state.db")
        engine = Engine(settings, held, state)

        def run(name, kind, since, restart, cancel, env=None):
            return engine.run(name, kind, since=since, restart=restart, cancel=cancel, env=env)

        local = start_local_commands(settings, held, state, run)
        assert local is not None
        filler = fill(small_disk, leave=0)
        try:
            forwarded = [
                CliRunner().invoke(cli, [*args, "--config", str(config)])
                for args in (["sync", "--json"], ["backfill", "notes"])
            ]
        finally:
            local.close()
            state.close()
    full = f"inlet: [index] path: the index folder {index} is full (no space left on the device)"
    for done in forwarded:
        assert done.exit_code == 1 and done.stdout == "", done.output
        assert full in done.output and "internal error" not in done.output, done.output
    filler.unlink()  # the holder's closing freed a few blocks (its write-ahead logs): fill them too
    filler = fill(small_disk, leave=0)
    for command, done in each_command(config, tmp_path / "backup"):  # nobody holds it now
        assert done.exit_code == 1 and isinstance(done.exception, SystemExit), (command, done.output, done.exception)
        assert full in done.output, (command, done.output)
    filler.unlink()
    assert run_here(settings, text_hash_embedder) == "ok"  # room again: nothing was lost
    assert len(intact(settings, text_hash_embedder)["documents"]) == 4


def test_an_index_folder_of_another_account_says_to_run_as_that_account(text_hash_embedder: Any) -> None:
    """The service account's index (0700, as inlet makes it) used from another login: one line
    saying whose it is, not a PermissionError traceback. Run as root, the test takes the effective
    ids of `nobody` for the one command (the kernel's own permission checks; back to root after)."""
    import pwd
    import shutil
    import tempfile

    from click.testing import CliRunner

    from inlet.cli import cli

    if os.geteuid() != 0:
        pytest.skip("needs root, to run the command as another account")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no account 'nobody' to run the command as")
    home = Path(tempfile.mkdtemp())  # outside pytest's root-only folders: `nobody` reads the config
    try:
        home.chmod(0o755)
        config, _settings = notes_index(home, home / "index", text_hash_embedder)
        config.chmod(0o644)
        assert (home / "index").stat().st_mode & 0o777 == 0o700
        args = ["status", "--config", str(config)]
        assert CliRunner().invoke(cli, args).exit_code == 0  # as root, its owner (and every module is loaded)
        os.setegid(nobody.pw_gid)
        os.seteuid(nobody.pw_uid)
        try:
            done = CliRunner().invoke(cli, args)
        finally:
            os.seteuid(0)
            os.setegid(0)
    finally:
        shutil.rmtree(home)
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), (done.output, done.exception)
    assert done.output.strip() == (
        f"inlet: [index] path: the index folder {home / 'index'} belongs to another account (root): run inlet as "
        "root, the account that owns it (a daemon or server root runs answers only root's commands)"
    )


def test_a_run_that_cannot_record_its_failure_records_it_once_there_is_room(
    small_disk: Path, tmp_path: Path, text_hash_embedder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """probe33d F3: a daemon's run failed on a full index folder, and writing that failure to the
    full state.db failed too: tracebacks in the log, and the next run, once there was room, closed
    it as one "the process running it stopped (killed ...)". The engine (the daemon's, here in this
    process) keeps the failure, says it in one line, and records it, with its cause and end, before
    its next run of the source once it can."""
    import logging

    import json

    from click.testing import CliRunner

    from inlet.cli import cli
    from inlet.errors import StorageError
    from inlet.server.local_commands import start_local_commands
    from inlet.storage import ORPHANED
    from inlet.sync.daemon import Daemon

    docs = tmp_path / "docs"
    docs.mkdir()
    write_notes(docs, 0, 4, 20)
    settings = load_config(write_config(tmp_path, small_disk / "index", docs, ""))
    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(Path(settings.index.path) / "state.db")
        engine = Engine(settings, index, state)
        local = start_local_commands(  # as the daemon answers `inlet status`
            settings, index, state, lambda *args: engine.run(*args[:2]), unrecorded=engine.unrecorded
        )
        try:
            assert engine.run("notes", "backfill").outcome == "ok"
            write_notes(docs, 100, 4, 20)
            fillers: list[Path] = []

            def full_once_it_runs(frame: Any, event: str, arg: Any) -> None:  # a `sys.settrace` hook
                if event == "call" and frame.f_code is Engine._drive.__code__ and not fillers:
                    fillers.append(fill(small_disk, leave=0))  # the run is recorded as started: now the disk is full

            before = sys.gettrace()
            sys.settrace(full_once_it_runs)
            try:
                with caplog.at_level(logging.INFO):
                    failed = engine.run("notes", "sync")
                    with pytest.raises(StorageError, match="is full"):  # still full: no run can start
                        engine.run("notes", "sync")
                    retried = Daemon(settings, engine).sync_job("notes", "retry")  # the daemon's retry
            finally:
                sys.settrace(before)
            assert failed.outcome == "failed" and "is full" in (failed.error or ""), failed
            assert retried is not None and retried.outcome == "failed" and "is full" in (retried.error or "")
            assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback
            assert "cannot be recorded now" in caplog.text
            assert "notes" in engine.unrecorded and state.recent_runs("notes", 1)[0].finished_at is None
            status = CliRunner().invoke(cli, ["status", "--json", "--config", str(settings.file)])
            shown = json.loads(status.stdout)["sources"][0]  # the daemon says it from memory meanwhile
            assert shown["running"] is None and shown["last_run"]["outcome"] == "failed", status.output
            assert "is full" in shown["last_run"]["error"] and shown["failure_streak"] == 1

            fillers[0].unlink()  # room again
            done = engine.run("notes", "sync")
            assert (done.outcome, done.upserted) == ("ok", 4), done
            runs = state.recent_runs("notes", 3)
            assert [r.outcome for r in runs] == ["ok", "failed", "ok"]
            assert "is full" in (runs[1].error or "") and runs[1].error != ORPHANED
            assert runs[1].finished_at is not None and runs[1].finished_at <= runs[0].started_at
            assert not engine.unrecorded
        finally:
            assert local is not None
            local.close()
            state.close()


@pytest.mark.parametrize("damaged", ["state.db", "catalog.db"])
def test_every_command_names_a_damaged_index_file_and_the_way_back(
    damaged: str, tmp_path: Path, text_hash_embedder: Any
) -> None:
    """probe34h F3: an index file SQLite cannot read (overwritten, truncated) made every command die
    with a 40-line traceback that never named the file. It ends in one line naming the file and the
    way back (a restore), exit 1."""
    index = tmp_path / "index"
    config, _ = notes_index(tmp_path, index, text_hash_embedder)
    for side in index.glob(f"{damaged}-*"):
        side.unlink()
    (index / damaged).write_bytes(b"garbage " * 2000)
    for command, done in each_command(config, tmp_path / "backup"):
        assert done.exit_code == 1 and isinstance(done.exception, SystemExit), (command, done.output, done.exception)
        assert f"the index file {index / damaged} is damaged (file is not a database)" in done.output, command
        assert "inlet restore" in done.output and "Traceback" not in done.output, (command, done.output)


def damage_rows(database: Path, tables: tuple[str, ...]) -> int:
    """Overwrite the pages of `tables` in `database` (none of them read when it is opened): a bad
    sector or a torn copy under the rows. The number of pages damaged."""
    import sqlite3

    db = sqlite3.connect(database)
    try:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        marks = ",".join("?" * len(tables))
        damaged = [r[0] for r in db.execute(f"SELECT pageno FROM dbstat WHERE name IN ({marks})", tables)]
    finally:
        db.close()
    with database.open("r+b") as f:
        for page in damaged:
            f.seek((page - 1) * size)
            f.write(b"\xde\xad" * (size // 2))
    return len(damaged)


@pytest.mark.parametrize(
    ("damaged", "tables"), [("state.db", ("sources", "runs")), ("catalog.db", ("documents", "chunks", "acl"))]
)
def test_damage_a_command_reaches_after_opening_is_named_too_and_no_backup_copies_it(
    damaged: str, tables: tuple[str, ...], tmp_path: Path, text_hash_embedder: Any
) -> None:
    """probe35a F2: damage past a file's header (a bad sector, a torn write), which SQLite finds
    only when a query reaches the page, ended status, search, sync, serve and mcp in a 40-line
    traceback, and `inlet backup` copied it and said "backup written" (only a restore, when it was
    needed, refused the copy). Each names the file and the way back, exit 1, and no backup is left.
    (`serve` and `daemon` start: what they read at start is intact; a request meeting the damage
    fails alone.)"""
    index = tmp_path / "index"
    config, _ = notes_index(tmp_path, index, text_hash_embedder)
    for side in index.glob(f"{damaged}-*"):
        side.unlink()
    assert damage_rows(index / damaged, tables) > 0
    failed = set()
    for command, done in each_command(config, tmp_path / "backup", skip=("serve", "daemon")):  # these start
        assert done.exception is None or isinstance(done.exception, SystemExit), (command, done.output, done.exception)
        if done.exit_code:  # a command that reads no damaged page (status from counts) may answer
            assert done.exit_code == 1, (command, done.output)
            assert f"the index file {index / damaged} is damaged (" in done.output, (command, done.output)
            assert "inlet restore" in done.output and "Traceback" not in done.output, (command, done.output)
            failed.add(command[0])
    reach = {"state.db": {"status", "sync", "backup"}, "catalog.db": {"search", "backup"}}[damaged]
    assert reach <= failed, failed
    assert not (tmp_path / "backup").exists() or not any((tmp_path / "backup").iterdir())
