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

from inlet.config import Settings, parse_config
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
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
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
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "{index}"\n[[sources]]\nname = "notes"\ntype = "files"\n'
        f'path = "{docs}"\ncheckpoint_every = 4\n'
    )
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
