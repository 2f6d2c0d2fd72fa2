"""Several processes opening one new SQLite index at once all get it (no "database is locked")."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
from pathlib import Path

from inlet.storage.sqlite.schema import CATALOG, connect

PROCESSES = 6
ROUNDS = 30


def _open(path: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.queues.Queue[str]) -> None:
    barrier.wait()  # every process reaches the empty file together
    try:
        connect(Path(path), CATALOG, synchronous="NORMAL").close()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        errors.put(f"{type(exc).__name__}: {exc}")


def test_commands_opening_a_new_index_together_all_open_it(tmp_path: Path) -> None:
    # `inlet status` started beside a first backfill: SQLite refused one of two processes switching
    # a new file to WAL at once, without waiting (2 of 150 CLI rounds, 15 of 80 direct opens).
    context = multiprocessing.get_context("fork")
    errors: multiprocessing.queues.Queue[str] = context.Queue()
    for n in range(ROUNDS):
        path = tmp_path / f"r{n}" / "catalog.db"
        path.parent.mkdir()
        barrier = context.Barrier(PROCESSES)
        workers = [context.Process(target=_open, args=(str(path), barrier, errors)) for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [w.exitcode for w in workers] == [0] * PROCESSES
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
