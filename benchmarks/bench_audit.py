"""The audit log's cost per request, and the backup's speed.

1. `/v1/search` p50 on a real uvicorn over a synthetic index (`synthetic.py`), with `[server]
   audit_log` off and on (a file), in alternating rounds of one process each so drift hits both;
   target: on <= 1.05x off.
2. `inlet backup`'s copy of the same index folder (`backup_index`: online SQLite backups and file
   copies under the write lock) vs a plain `shutil.copytree` of it, in MB/s.

    nice python benchmarks/bench_audit.py [--chunks 10000] [--rounds 4] [--requests 150]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from inlet.config import ApiKey, IndexConfig, ServerConfig, Settings
from inlet.index.backup import backup_index
from inlet.index.store import Index
from inlet.server.app import create_app

import synthetic

KEY = {"INLET_KEY_BENCH": "bench-secret"}


def p50(index: Index, audit: str | None, queries: list[str], n: int) -> float:
    keys = [ApiKey(name="bench", key_env="INLET_KEY_BENCH", user=synthetic.BENCH_USER)]
    settings = Settings(index=IndexConfig(path=index.path), server=ServerConfig(api_keys=keys, audit_log=audit))
    app = create_app(settings, index=index, env=KEY)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert app.state.retrieval.ready.wait(120)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/search"
    times = []
    with httpx.Client(headers={"Authorization": "Bearer bench-secret"}, timeout=60) as client:
        for q in queries[:10]:
            client.post(url, json={"query": q})
        for q in queries[10 : 10 + n]:
            started = time.perf_counter()
            assert client.post(url, json={"query": q}).status_code == 200
            times.append(time.perf_counter() - started)
    server.should_exit = True
    thread.join(30)
    return statistics.median(times)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inlet-bench-audit-") as tmp:
        root = Path(tmp)
        words = synthetic.build(root / "index", args.chunks)
        queries = synthetic.queries(words, 10 + args.requests)
        with Index(IndexConfig(path=root / "index")) as index:
            off, on = [], []
            for n in range(args.rounds):
                on.append(p50(index, str(root / f"audit-{n}.jsonl"), queries, args.requests))
                off.append(p50(index, None, queries, args.requests))
            lines = sum(len((root / f"audit-{n}.jsonl").read_text().splitlines()) for n in range(args.rounds))
            print(
                f"search p50, audit off: {statistics.median(off) * 1000:.1f} ms  (rounds: "
                f"{', '.join(f'{t * 1000:.1f}' for t in off)})"
            )
            print(
                f"search p50, audit on:  {statistics.median(on) * 1000:.1f} ms  (rounds: "
                f"{', '.join(f'{t * 1000:.1f}' for t in on)}); {lines} lines written"
            )
            print(f"audit on / off: {statistics.median(on) / statistics.median(off):.3f}x (target <= 1.05x)")

            size = folder_size(index.path)
            backups, copies = [], []
            for n in range(3):
                started = time.perf_counter()
                shutil.copytree(index.path, root / f"copy-{n}")
                copies.append(time.perf_counter() - started)
                report = backup_index(index, root / f"backup-{n}")
                backups.append(report.seconds)
            mb, backup, copy = size / 1e6, statistics.median(backups), statistics.median(copies)
            print(
                f"index folder {mb:.1f} MB; backup {mb / backup:.0f} MB/s (median of 3, writes paused "
                f"{report.paused_seconds:.2f} s) vs plain copy {mb / copy:.0f} MB/s: {copy / backup:.2f}x"
            )


if __name__ == "__main__":
    main()
