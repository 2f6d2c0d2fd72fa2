"""Daemons sharing one PostgreSQL + Chroma server: throughput with 1 and 2 daemons, and takeover time.

    .venv/bin/python benchmarks/bench_daemons.py --sources 4 --files 150

1. Throughput: `--sources` folder sources of `--files` notes each (embedding-bound: every note is
   embedded), synced by 1 daemon, then (fresh database and collection) by 2 daemons on the same
   configuration; prints documents per second from the first daemon start to the last backfill
   committed. Each daemon embeds on the same CPU, so on a machine with few cores 2 daemons gain
   little: the work is CPU-bound, not wait-bound.
2. Takeover: one daemon backfills a large source; it is killed (SIGKILL) after its first checkpoint
   while a second daemon waits; prints the seconds from the kill to the survivor's first run of
   that source, with `[daemon].lease` = `--lease`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests.servers: the real servers

from tests.servers import chroma_server, new_database, postgres_server  # noqa: E402

WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega harbour lantern meadow".split()


def write_notes(folder: Path, count: int, salt: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        words = " ".join(WORDS[(n * 7 + i * 3 + salt) % len(WORDS)] for i in range(120))
        (folder / f"note-{n:04d}.md").write_text(f"# Note {salt}-{n}\n\n{words} marker{salt}x{n}\n")


def config(work: Path, url: str, chroma: str, sources: int, lease: float) -> Path:
    text = (f'[index]\npath = "index"\ndatabase_url = "{url}"\nchroma_url = "{chroma}"\n'
            f'[daemon]\njitter = "0s"\nmax_parallel = 2\nlease = "{lease:g}s"\n')
    for s in range(sources):
        text += f'[[sources]]\nname = "s{s}"\ntype = "files"\npath = "docs{s}"\nevery = "1h"\ncheckpoint_every = 10\n'
    path = work / "config.toml"
    path.write_text(text)
    return path


def daemon(work: Path, cfg: Path, tag: str) -> subprocess.Popen[bytes]:
    err = open(work / f"{tag}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "inlet", "daemon", "--config", str(cfg)], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as db:
        try:
            return db.execute(sql).fetchall()   # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            return []


def wait(check, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.2)


def reset_chroma(chroma: str) -> None:
    import chromadb

    from inlet.index.vectors import COLLECTION

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma.rsplit(":", 1)[1]))
    if COLLECTION in [c.name for c in client.list_collections()]:
        client.delete_collection(COLLECTION)


def throughput(work: Path, server: str, chroma: str, sources: int, files: int, daemons: int) -> float:
    url = new_database(server, f"bench{daemons}")
    reset_chroma(chroma)
    cfg = config(work, url, chroma, sources, 30)
    started = time.monotonic()
    procs = [daemon(work, cfg, f"d{daemons}-{n}") for n in range(daemons)]
    try:
        wait(lambda: rows(url, "SELECT count(*) FROM sources WHERE phase = 'incremental'") == [(sources,)])
        seconds = time.monotonic() - started
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(120)
    return sources * files / seconds


def takeover(work: Path, server: str, chroma: str, lease: float) -> float:
    url = new_database(server, "takeover")
    reset_chroma(chroma)
    cfg = config(work, url, chroma, 1, lease)
    first = daemon(work, cfg, "t-first")
    wait(lambda: rows(url, "SELECT 1 FROM sources WHERE checkpoint IS NOT NULL AND phase = 'backfill'") != [])
    second = daemon(work, cfg, "t-second")
    time.sleep(20)   # let the second daemon load and find the source busy (a benchmark, not a test)
    first.send_signal(signal.SIGKILL)
    killed = time.time()
    first.wait(30)
    try:
        wait(lambda: len(rows(url, "SELECT id FROM runs")) >= 2)
        started = rows(url, "SELECT started_at FROM runs ORDER BY id DESC LIMIT 1")[0][0]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(120)
    return started - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--lease", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inlet-bench-d-") as tmp, \
            tempfile.TemporaryDirectory(prefix="inlet-bench-dpg-") as pg_folder, \
            postgres_server(Path(pg_folder)) as server, chroma_server(Path(tmp) / "chroma") as chroma:
        work = Path(tmp)
        for s in range(args.sources):
            write_notes(work / f"docs{s}", args.files, s)
        one = throughput(work, server, chroma, args.sources, args.files, 1)
        two = throughput(work, server, chroma, args.sources, args.files, 2)
        print(f"embedding-bound folders ({args.sources} x {args.files} notes): 1 daemon {one:.1f} docs/s, "
              f"2 daemons {two:.1f} docs/s ({two / one:.2f}x) on {os.cpu_count()} cores")
        write_notes(work / "docs0", 1500, 99)
        print(f"takeover after kill -9 with lease {args.lease:g}s: "
              f"{takeover(work, server, chroma, args.lease):.1f}s from the kill to the survivor's run")


if __name__ == "__main__":
    main()
