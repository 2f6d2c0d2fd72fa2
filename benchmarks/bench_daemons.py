"""Daemons sharing one PostgreSQL + one `chroma run` server: docs/s with 1 and 2 daemons, and takeover time.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_daemons.py [--repeats 3] [--lease 10]

1. Wait-bound: 4 Slack sources, each on its own sandbox workspace with Slack's tier limits (429 +
   Retry-After; every minute shrunk by `--time-scale`), the connector pacing itself to them. A
   daemon syncs `max_parallel = 2` sources at a time, so one daemon runs the 4 backfills in two
   waves and two daemons in one: near 2x is expected, since the rate limits, not the CPU, set the pace.
2. Embedding-bound: 4 folders of notes, every note embedded. Both daemons embed on the same cores
   (2 here), so a second daemon adds little: each embedding call already uses both cores.
3. Takeover: one daemon backfills a large folder; once it checkpointed and the second daemon is up
   (its schedule row is in the database), the first is killed with SIGKILL. Printed: seconds from
   the kill to the survivor's lease grant and to its first commit on that source, against `--lease`.

Docs/s is counted from the first backfill run's start to the last one's end (the `runs` table), so
each daemon's start-up (loading the model) is left out of both figures alike. Each configuration
runs `--repeats` times on a fresh database and collection; the median is printed, with every run.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers: the real servers

from tests.servers import chroma_server, new_database, postgres_server  # noqa: E402

WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega harbour lantern meadow".split()
SLACK_TOKEN_ENV = "INLET_BENCH_SLACK_TOKEN"


def write_notes(folder: Path, count: int, salt: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        words = " ".join(WORDS[(n * 7 + i * 3 + salt) % len(WORDS)] for i in range(120))
        (folder / f"note-{n:04d}.md").write_text(f"# Note {salt}-{n}\n\n{words} marker{salt}x{n}\n")


def folder_sources(count: int) -> str:
    return "".join(
        f'[[sources]]\nname = "s{s}"\ntype = "files"\npath = "docs{s}"\nevery = "1h"\ncheckpoint_every = 10\n'
        for s in range(count)
    )


def slack_sources(urls: list[str], time_scale: float, page_size: int) -> str:
    return "".join(
        f'[[sources]]\nname = "s{s}"\ntype = "slack"\ntoken_env = "{SLACK_TOKEN_ENV}"\n'
        f'base_url = "{url}/api/"\nevery = "1h"\npace_scale = {time_scale:g}\n'
        f"page_size = {page_size}\n"
        for s, url in enumerate(urls)
    )


def write_config(work: Path, url: str, chroma: str, sources: str, lease: float) -> Path:
    text = (
        f'[index]\npath = "index"\ndatabase_url = "{url}"\nchroma_url = "{chroma}"\n'
        f'[daemon]\njitter = "0s"\nmax_parallel = 2\nlease = "{lease:g}s"\n{sources}'
    )
    path = work / "config.toml"
    path.write_text(text)
    return path


def daemon(work: Path, cfg: Path, tag: str) -> subprocess.Popen[bytes]:
    from inlet.sandbox import slack

    with open(work / f"{tag}.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "inlet", "daemon", "--config", str(cfg), "-v"],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1", SLACK_TOKEN_ENV: slack.TOKEN},
        )


def rows(url: str, sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as db:
        try:
            return db.execute(sql, params).fetchall()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            return []  # before the first daemon migrated the schema


def wait(what: str, check: Callable[[], Any], procs: list[subprocess.Popen[bytes]], timeout: float = 900) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a daemon exited before {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def reset_chroma(chroma: str) -> None:
    import chromadb

    from inlet.index.vectors import COLLECTION

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma.rsplit(":", 1)[1]))
    if COLLECTION in [c.name for c in client.list_collections()]:
        client.delete_collection(COLLECTION)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(120)


def throughput(
    work: Path, server: str, chroma: str, sources: str, count: int, daemons: int, tag: str
) -> tuple[float, int, float]:
    """(docs/s, documents, seconds) of `daemons` daemons backfilling `count` sources."""
    url = new_database(server, f"bench_{tag.split()[-1]}_{daemons}")
    reset_chroma(chroma)
    cfg = write_config(work, url, chroma, sources, 30)
    launched = time.time()
    procs = [daemon(work, cfg, f"{tag}-{daemons}-{n}") for n in range(daemons)]
    try:
        wait(
            "every backfill",
            lambda: rows(url, "SELECT count(*) FROM sources WHERE phase = 'incremental'") == [(count,)],
            procs,
        )
        ((first, last),) = rows(url, "SELECT min(started_at), max(finished_at) FROM runs WHERE outcome = 'ok'")
        ((docs,),) = rows(url, "SELECT count(*) FROM documents")
        timeline = rows(
            url,
            "SELECT source, started_at, finished_at, upserted, embedded FROM runs "
            "WHERE outcome = 'ok' ORDER BY started_at",
        )
    finally:
        stop(procs)
    print(
        f"  {tag}, {daemons} daemon(s): {docs} documents in {last - first:.1f}s = {docs / (last - first):.1f} "
        f"docs/s; load {load()}",
        flush=True,
    )
    for n in range(daemons):
        print(f"    daemon {n}: {milestones(work / f'{tag}-{daemons}-{n}.err', launched)}", flush=True)
    print(
        "    runs (s from the daemons' launch): "
        + "; ".join(
            f"{source} {start - launched:.1f}-{end - launched:.1f} ({upserted} docs, {embedded} embedded)"
            for source, start, end, upserted, embedded in timeline
        ),
        flush=True,
    )
    return docs / (last - first), docs, last - first


MILESTONES = {
    "scheduled": re.compile(r"inlet daemon \(pid \d+\): \d+ source\(s\) scheduled"),
    "model loaded": re.compile(r"embedding model loaded in (\d+) ms"),
    "busy (held elsewhere)": re.compile(r"sync of '\w+' skipped: source"),
}
RAN = re.compile(r"\w+ of '(\w+)' ok: [1-9]\d* upserted")  # a run that wrote (not a no-op re-check)


def milestones(err: Path, launched: float) -> str:
    """When a daemon (its -v log) was up, loaded its model (and how long that took), first found a
    source held by the other, and which sources it backfilled: where the second daemon's time goes.
    (The `leases` table's last holder says nothing here: a daemon checking a queued source after
    the other finished it takes the lease for a moment and then skips the run.)"""
    seen: dict[str, str] = {}
    for line in err.read_text().splitlines():
        for what, pattern in MILESTONES.items():
            found = pattern.search(line)
            if found and what not in seen:
                at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - launched
                took = f" in {int(found.group(1)) / 1000:.1f}s" if found.groups() else ""
                seen[what] = f"{what}{took} at +{at:.1f}s"
    ran = RAN.findall(err.read_text())
    return ", ".join([*seen.values(), f"ran {', '.join(ran) or 'nothing'}"])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def compare(work: Path, server: str, chroma: str, sources: str, count: int, tag: str, repeats: int) -> None:
    runs: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for daemons in (1, 2):  # interleaved, so a change of load hits both alike
            runs[daemons].append(throughput(work, server, chroma, sources, count, daemons, tag)[0])
    one, two = statistics.median(runs[1]), statistics.median(runs[2])
    print(
        f"{tag}: median of {repeats}: 1 daemon {one:.1f} docs/s, 2 daemons {two:.1f} docs/s: "
        f"**{two / one:.2f}x** (runs: {[round(r, 1) for r in runs[1]]} vs {[round(r, 1) for r in runs[2]]}; "
        f"{os.cpu_count()} cores)",
        flush=True,
    )


@contextmanager
def slack_workspaces(count: int, messages: int, time_scale: float) -> Iterator[list[str]]:
    """`count` sandboxes, one Slack workspace each, with the published tier limits armed."""
    from inlet.sandbox import slack
    from inlet.sandbox.server import Sandbox
    from inlet.sandbox.workspace import Workspace

    with ExitStack() as stack:
        urls = []
        for n in range(count):
            ws = Workspace(rng=random.Random(n))
            for u in range(20):
                ws.add_user(f"user{u:04d}@{ws.domain}", f"user{u:04d}", f"User {u:04d}")
            slack.seed_generated(ws, channels=6, messages=messages)
            sandbox = stack.enter_context(Sandbox(ws, time_scale=time_scale))
            slack.tier_limits(sandbox.faults)
            urls.append(sandbox.ctx.http_url)
        yield urls


def takeover(work: Path, server: str, chroma: str, lease: float) -> tuple[float, float]:
    """Seconds from a SIGKILL of the holder to the survivor's lease grant and to its first commit."""
    url = new_database(server, "bench_takeover")
    reset_chroma(chroma)
    cfg = write_config(work, url, chroma, folder_sources(1), lease)
    first = daemon(work, cfg, "t-first")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait(
            "a checkpoint",
            lambda: rows(url, "SELECT 1 FROM sources WHERE checkpoint IS NOT NULL AND phase = 'backfill'"),
            [first],
        )
        second = daemon(work, cfg, "t-second")
        wait(
            "the second daemon's schedule",
            lambda: rows(url, "SELECT 1 FROM daemon_schedule WHERE pid = %s", second.pid),
            [first, second],
        )
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        first.wait(30)
        progress = "SELECT (SELECT count(*) FROM documents), (SELECT checkpoint FROM sources WHERE name = 's0')"
        at_kill = rows(url, progress)
        mine = f":{second.pid}"
        wait(
            "the survivor's lease",
            lambda: rows(url, "SELECT 1 FROM leases WHERE holder LIKE %s", f"%{mine}"),
            [second],
            timeout=lease * 4 + 120,
        )
        granted = time.monotonic() - killed
        wait(
            "the survivor's first commit (documents or a checkpoint)",
            lambda: rows(url, progress) != at_kill,
            [second],
            timeout=300,
        )
        committed = time.monotonic() - killed
    finally:
        stop([p for p in (first, second) if p is not None])
    return granted, committed


def rate_limited(work: Path, server: str, chroma: str, args: argparse.Namespace) -> None:
    with slack_workspaces(4, args.messages, args.time_scale) as urls:
        compare(
            work,
            server,
            chroma,
            slack_sources(urls, args.time_scale, args.page_size),
            4,
            "rate-limited Slack",
            args.repeats,
        )


def embedding_bound(work: Path, server: str, chroma: str, args: argparse.Namespace) -> None:
    for s in range(4):
        write_notes(work / f"docs{s}", args.files, s)
    compare(work, server, chroma, folder_sources(4), 4, "embedding-bound folders", args.repeats)


def takeovers(work: Path, server: str, chroma: str, args: argparse.Namespace) -> None:
    write_notes(work / "docs0", 1500, 99)
    times = []
    for _ in range(args.repeats):
        times.append(takeover(work, server, chroma, args.lease))
        print(
            f"  takeover after kill -9, lease {args.lease:g}s: lease granted {times[-1][0]:.1f}s and "
            f"first commit {times[-1][1]:.1f}s after the kill; load {load()}",
            flush=True,
        )
    print(
        f"takeover: median of {args.repeats}: lease granted {statistics.median(t[0] for t in times):.1f}s, "
        f"first commit {statistics.median(t[1] for t in times):.1f}s after the kill (lease "
        f"{args.lease:g}s)",
        flush=True,
    )


PARTS = {"slack": rate_limited, "folders": embedding_bound, "takeover": takeovers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=150, help="notes per folder source (embedding-bound)")
    parser.add_argument("--messages", type=int, default=600, help="messages per Slack workspace (wait-bound)")
    parser.add_argument("--time-scale", type=float, default=6.0, help="Slack's minute shrunk this many times")
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--only", choices=["slack", "folders", "takeover"], action="append")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its daemons and servers
    only = set(args.only or ["slack", "folders", "takeover"])
    print(f"load average at start: {load()}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="inlet-bench-d-") as tmp,
        tempfile.TemporaryDirectory(prefix="inlet-bench-dpg-") as pg_folder,
        postgres_server(Path(pg_folder)) as server,
        chroma_server(Path(tmp) / "chroma") as chroma,
    ):
        work = Path(tmp)
        for part in ("takeover", "slack", "folders"):
            if part in only:
                try:
                    PARTS[part](work, server, chroma, args)
                except (Exception, SystemExit) as exc:  # one part failing leaves the others' figures
                    print(f"{part}: failed: {exc!r}", flush=True)
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
