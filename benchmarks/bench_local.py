"""`inlet search` beside a running daemon (forwarded over the local socket) vs run directly.

A direct `inlet search` opens the index and loads the model in its own process; a forwarded one
asks the daemon, which has both loaded. Wall time of whole `inlet` processes, median of --runs,
with the floor of any `inlet` process (`inlet --version`) measured in the same session.

    python benchmarks/bench_local.py [--runs 5] [--docs 50]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inlet.server.local_channel import LocalClient

QUERY = "who relights the harbour lantern"


def inlet(cwd: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "inlet", *args],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "INLET_CONFIG": str(cwd / "config.toml")},
    )
    return time.perf_counter() - started


def median_of(runs: int, cwd: Path, *args: str) -> tuple[float, list[float]]:
    times = [inlet(cwd, *args) for _ in range(runs)]
    return statistics.median(times), times


def wait_for_channel(index: Path, daemon: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while LocalClient.find(index) is None:
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the daemon did not open its local channel")
        time.sleep(0.1)  # polling for an observable event


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--docs", type=int, default=50)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        for n in range(opts.docs):
            (root / "docs" / f"note-{n}.md").write_text(f"Note {n}: the harbour lantern, entry {n}.")
        (root / "config.toml").write_text(
            '[index]\npath = "index"\n[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
        )
        inlet(root, "backfill", "notes")
        floor, _ = median_of(opts.runs, root, "--version")
        direct, direct_all = median_of(opts.runs, root, "search", QUERY)
        env = {**os.environ, "INLET_CONFIG": str(root / "config.toml")}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "inlet", "daemon"], cwd=root, stderr=subprocess.DEVNULL, env=env
        )
        try:
            wait_for_channel(root / "index", daemon)
            first = inlet(root, "search", QUERY)  # the daemon loads its model on its first query
            forwarded, forwarded_all = median_of(opts.runs, root, "search", QUERY)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(120)
    print(f"inlet search, {opts.docs} docs, median of {opts.runs} (wall, whole process):")
    print(f"  direct (opens the index, loads the model): {direct:.2f} s  {[round(t, 2) for t in direct_all]}")
    print(
        f"  forwarded to a running daemon:             {forwarded:.2f} s  {[round(t, 2) for t in forwarded_all]}"
        f"  (first one, daemon loading its model: {first:.2f} s)"
    )
    print(f"  floor, `inlet --version`:                  {floor:.2f} s")
    print(
        f"  forwarded / direct: {forwarded / direct:.2f}x; above the floor: "
        f"{(forwarded - floor) / max(direct - floor, 1e-9):.2f}x"
    )


if __name__ == "__main__":
    main()
