"""A torn write of the state database (a crash or power cut mid-write) never yields a garbled
checkpoint: the database opens, passes SQLite's integrity check, and holds the last checkpoint
whose commit reached the disk whole, or an earlier one.

The files are captured while the database is open (the WAL holds the recent commits, as after a
SIGKILL), then the WAL is cut at seeded random byte offsets or has bytes of its tail flipped.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from inlet.storage import SourceState
from inlet.storage.sqlite.state import SqliteState

SAVES = 40
SEED = 16


def captured(tmp_path: Path) -> Path:
    """state.db and its WAL as a killed process leaves them, after SAVES checkpoint commits."""
    live = tmp_path / "live"
    state = SqliteState(live / "state.db")
    for n in range(1, SAVES + 1):
        state.save_source(SourceState("mail", {"cursor": n, "pad": "x" * 300}, "backfill", 1))
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    for name in ("state.db", "state.db-wal"):
        shutil.copy(live / name, frozen / name)
    state.close()
    assert (frozen / "state.db-wal").stat().st_size > 0
    return frozen


def reopen(files: Path, into: Path) -> int:
    shutil.copytree(files, into)
    state = SqliteState(into / "state.db")
    try:
        checkpoint = state.source("mail").checkpoint
    finally:
        state.close()
    db = sqlite3.connect(into / "state.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    return int(checkpoint["cursor"]) if checkpoint else 0


@pytest.mark.parametrize("damage", ["cut", "flip"])
def test_a_torn_wal_gives_a_whole_earlier_checkpoint(tmp_path: Path, damage: str) -> None:
    frozen = captured(tmp_path)
    assert reopen(frozen, tmp_path / "intact") == SAVES
    size = (frozen / "state.db-wal").stat().st_size
    rng = random.Random(SEED)
    seen = set()
    for trial in range(12):
        torn = tmp_path / f"torn-{trial}"
        shutil.copytree(frozen, torn)
        wal = torn / "state.db-wal"
        data = bytearray(wal.read_bytes())
        at = rng.randrange(32, size)
        if damage == "cut":
            data = data[:at]
        else:
            for i in range(at, min(at + 16, size)):
                data[i] ^= 0xFF
        wal.write_bytes(bytes(data))
        cursor = reopen(torn, tmp_path / f"open-{trial}")
        assert 0 <= cursor <= SAVES
        seen.add(cursor)
    assert len(seen) > 1  # the damage landed at different commits
