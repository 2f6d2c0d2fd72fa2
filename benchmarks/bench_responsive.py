"""Search while `inlet daemon --serve` backfills: latency, failures, ACL leaks, and the backfill's speed.

Two `files` sources (half the files each, one visible to alice only, one to bob only) backfill in a
real `inlet daemon --serve`. First alone (the unloaded backfill speed), then again from an empty
index while `--clients` concurrent HTTP clients search `/v1/search` as alice and bob (the daemon's
on_behalf_of key) from the moment `/readyz` answers until `--seconds` have passed and the backfill
has finished (so the whole backfill runs under load; capped at `--max-seconds`). Reported: requests,
failures (an error status or no answer within `--timeout`), p50/p99 latency overall and of the
requests answered while the backfill ran, results that belong to the other user (ACL leaks), and
the backfill's documents/s loaded vs unloaded (from the runs' own start and finish times).

    flock /work/bench.lock python benchmarks/bench_responsive.py [--files 600] [--clients 8] [--seconds 60]

Targets (issue #16): 0 failures, p50 <= 300 ms, p99 <= 2 s, 0 leaks, loaded backfill >= 0.7x unloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

USERS = {"alice": "alice@example.com", "bob": "bob@example.com"}
WORDS = (
    "harbour lantern ledger invoice pipeline contract meeting budget forecast storage capacity review "
    "approval customer outage rollback deploy schedule vendor freight warehouse audit payroll "
    "migration backup firewall incident runbook escalation quarterly renewal licence shipment "
    "tariff clearance pallet inventory replenishment supplier onboarding offboarding laptop "
    "badge access request policy exception retention archive mailbox calendar travel expense"
).split()


def write_corpus(root: Path, files: int, seed: int = 16) -> None:
    """`files` notes of ~350 words (two or three chunks each), half in alice/, half in bob/."""
    rng = random.Random(seed)
    for n in range(files):
        owner = "alice" if n % 2 == 0 else "bob"
        folder = root / owner
        folder.mkdir(exist_ok=True)
        paragraphs = [" ".join(rng.choices(WORDS, k=rng.randint(90, 130))) + "." for _ in range(3)]
        (folder / f"note-{n:04d}.md").write_text(f"# {owner} note {n}\n\n" + "\n\n".join(paragraphs))


def write_config(root: Path, port: int) -> Path:
    sources = "".join(
        f'[[sources]]\nname = "{owner}"\ntype = "files"\npath = "{owner}"\nevery = "1h"\nusers = ["{email}"]\n\n'
        for owner, email in USERS.items()
    )
    config = root / "config.toml"
    config.write_text(
        f'[index]\npath = "index"\n\n[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[daemon]\njitter = "0s"\n\n{sources}'
    )
    return config


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """`inlet daemon --serve` on `root`'s config, from an empty index."""

    def __init__(self, root: Path) -> None:
        import shutil

        shutil.rmtree(root / "index", ignore_errors=True)
        self.root = root
        self.index = root / "index"
        self.log = open(root / "daemon.err", "a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("INLET_CONFIG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inlet", "daemon", "--serve", "--config", str(root / "config.toml")],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def wait_for(self, what: str, check: Callable[[], object], timeout: float = 600) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited before {what}:\n{(self.root / 'daemon.err').read_text()[-3000:]}")
            time.sleep(0.1)  # polling an observable state
        raise SystemExit(f"timed out waiting for {what}")

    def api(self) -> dict[str, str]:
        path = self.index / "daemon-api.json"
        found = self.wait_for("the API file", lambda: path.exists() and path.read_text())
        return json.loads(str(found))

    def finished(self, what: str) -> tuple[float, float, int]:
        """`backfill()` once both backfills finished (waited for)."""
        return self.wait_for(what, self.backfill)  # type: ignore[return-value]

    def backfill(self) -> tuple[float, float, int] | None:
        """(first start, last finish, documents) of the two backfills once both finished, else None."""
        rows = self._rows("SELECT started_at, finished_at, upserted FROM runs WHERE kind = 'backfill'")
        if len(rows) < len(USERS) or any(r[1] is None for r in rows):
            return None
        return min(r[0] for r in rows), max(r[1] for r in rows), sum(r[2] for r in rows)

    def documents(self) -> int:
        rows = self._rows("SELECT count(*) FROM documents", "catalog.db")
        return int(rows[0][0]) if rows else 0

    def _rows(self, sql: str, db: str = "state.db") -> list[tuple]:
        if not (self.index / db).exists():
            return []
        conn = sqlite3.connect(f"file:{self.index / db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
        finally:
            conn.close()

    def cpu(self) -> float:
        """CPU seconds (user + system) the daemon has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    during: list[float] = field(default_factory=list)  # of those, answered mid-backfill
    failures: list[str] = field(default_factory=list)
    leaks: int = 0
    with_results: int = 0
    window: float = 0.0


async def client(
    n: int, url: str, key: str, until: Callable[[], bool], done_at: Callable[[], bool], load: Load, timeout: float
) -> None:
    owner = list(USERS)[n % len(USERS)]
    rng = random.Random(n)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers={"Authorization": f"Bearer {key}"}) as http:
        while not until():
            query = " ".join(rng.sample(WORDS, 3))
            started = time.perf_counter()
            backfilling = not done_at()
            try:
                response = await http.post("/v1/search", json={"query": query, "user": USERS[owner], "k": 5})
            except httpx.HTTPError as exc:
                load.failures.append(f"{type(exc).__name__} after {time.perf_counter() - started:.1f}s")
                continue
            took = time.perf_counter() - started
            if response.status_code != 200:
                load.failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            load.latencies.append(took)
            if backfilling and not done_at():
                load.during.append(took)
            results = response.json()["results"]
            load.with_results += bool(results)
            load.leaks += sum(1 for r in results if not r["doc_id"].startswith(f"{owner}:"))


def run_loaded(daemon: Daemon, clients: int, seconds: float, max_seconds: float, timeout: float) -> Load:
    api = daemon.api()
    daemon.wait_for("/readyz", lambda: _ready(api["api_url"]))
    load = Load()
    started = time.monotonic()

    def finished() -> bool:
        return daemon.backfill() is not None

    state = {"finished": False}

    def until() -> bool:
        elapsed = time.monotonic() - started
        return elapsed >= max_seconds or (elapsed >= seconds and state["finished"])

    async def watch() -> None:
        while not until():
            state["finished"] = state["finished"] or finished()
            await asyncio.sleep(0.25)

    async def main() -> None:
        await asyncio.gather(
            watch(),
            *(
                client(n, api["api_url"], api["agent_key"], until, lambda: state["finished"], load, timeout)
                for n in range(clients)
            ),
        )

    asyncio.run(main())
    load.window = time.monotonic() - started
    return load


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="clients search at least this long")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="and at most this long")
    parser.add_argument("--timeout", type=float, default=30.0, help="a request unanswered this long fails")
    parser.add_argument("--skip-unloaded", action="store_true")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (daemon logs: daemon.err)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = opts.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        write_corpus(root, opts.files)
        write_config(root, free_port())
        unloaded = None
        unloaded_cpu = 0.0
        if not opts.skip_unloaded:
            daemon = Daemon(root)
            try:
                daemon.api()
                start, end, docs = daemon.finished("the unloaded backfill")
                unloaded = docs / (end - start)
                unloaded_cpu = daemon.cpu()
            finally:
                daemon.stop()
            print(f"unloaded backfill: {docs} docs in {end - start:.1f} s = {unloaded:.2f} docs/s", flush=True)
        daemon = Daemon(root)
        try:
            load = run_loaded(daemon, opts.clients, opts.seconds, opts.max_seconds, opts.timeout)
            start, end, docs = daemon.finished("the loaded backfill")
            loaded_cpu = daemon.cpu()
        finally:
            daemon.stop()
    loaded = docs / (end - start)
    total = len(load.latencies) + len(load.failures)
    print(
        f"{opts.clients} clients for {load.window:.0f} s ({opts.files} files, load average {os.getloadavg()[0]:.2f}):"
    )
    print(
        f"  requests {total}, failed {len(load.failures)}, ACL leaks {load.leaks}, "
        f"answers with results {load.with_results}"
    )
    print(
        f"  latency p50 {pct(load.latencies, 0.5):.0f} ms, p99 {pct(load.latencies, 0.99):.0f} ms, "
        f"max {max(load.latencies, default=0) * 1000:.0f} ms"
    )
    print(
        f"  answered during the backfill: {len(load.during)}, p50 {pct(load.during, 0.5):.0f} ms, "
        f"p99 {pct(load.during, 0.99):.0f} ms"
    )
    if load.failures:
        print(f"  failures (first 5): {load.failures[:5]}")
    print(
        f"  loaded backfill: {docs} docs in {end - start:.1f} s = {loaded:.2f} docs/s"
        + (f"; {loaded / unloaded:.2f}x unloaded" if unloaded else "")
    )
    if unloaded:  # both daemons loaded the model and backfilled the same files: the rest is searching
        per_request = (loaded_cpu - unloaded_cpu) / max(1, total) * 1000
        print(
            f"  daemon CPU: {unloaded_cpu:.0f} s unloaded, {loaded_cpu:.0f} s loaded; searching "
            + (
                f"~{per_request:.1f} ms a request"
                if per_request > 0
                else "not measurable (a busy machine: the unloaded run's spinning threads took more)"
            )
        )
    if load.latencies:
        print(f"  mean {statistics.mean(load.latencies) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
