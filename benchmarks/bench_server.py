"""Load test of POST /v1/search over HTTP, against a baseline of embedding + raw Chroma query.

    .venv/bin/python benchmarks/bench_server.py [--chunks 100000] [--seconds 60] [--clients 16]

1. Builds a synthetic index of `--chunks` one-chunk documents in a temporary folder. To save
   embedding time (100k chunks would take ~20 min on 2 cores) the chunk vectors are random unit
   vectors written straight into Chroma, and the texts (random words, so BM25 has work to do) straight
   into the catalog; the queries use real embeddings. About 70% of documents are public, the rest
   visible to 3 of 200 users, to another domain, or to admins only.
2. Baseline, same process, same data: `--clients` threads each embedding a query and running a raw
   Chroma query (depth 40, as search does), without and with the user's ACL `where`; then a stricter
   baseline that embeds through inlet's query batcher, so its ratio isolates everything else.
3. Starts `inlet serve` in a subprocess and drives /v1/search with `--clients` concurrent clients for
   `--seconds` each: as an admin (no ACL filter) and as a user key (ACL filter in both retrievers).
   Its config names the synthetic sources (a source left out is not served). Before timing, 20
   queries per key must each return results, or the run stops; during it an empty answer counts
   as an error.
Prints throughput, p50/p99 and error counts. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from inlet.config import IndexConfig
from inlet.connectors.model import principals_for
from inlet.index import vectors
from inlet.storage import Filters
from inlet.index.embedding import serve_queries
from inlet.index.store import Index
from synthetic import BENCH_USER, SOURCES, build, queries, vocabulary

ADMIN_KEY, USER_KEY = "bench-admin-key", "bench-user-key"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def drive(clients: int, seconds: float, one: Callable[[str], bool], qs: list[str]) -> dict[str, float]:
    """`clients` threads calling `one(query)` in a loop for `seconds`; latencies in ms."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            q = qs[i % len(qs)]
            i += clients
            t0 = time.perf_counter()
            ok = one(q)
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(ms)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def baseline(path: Path, qs: list[str], clients: int, seconds: float) -> dict[str, dict[str, float]]:
    index = Index(IndexConfig(path=path))
    index.embedder.encode(["warm"])
    user_filter = Filters(principals=tuple(principals_for(BENCH_USER) or ()))
    out = {}
    for label, filters in (("raw chroma, no ACL", Filters()), ("raw chroma, user ACL", user_filter)):

        def one(q: str, f: Filters = filters) -> bool:
            vector = index.embedder.encode([q])[0]
            return bool(vectors.query(index.collection, vector, f, 40))

        out[label] = drive(clients, seconds, one, qs)
        print(f"  {label}: done", file=sys.stderr)

    # The stricter baseline: the same raw query with inlet's batched query embedding and torch
    # setting, so the ratio to it is what hybrid ranking, ACL and HTTP cost on their own.
    serve_queries()

    def batched(q: str) -> bool:
        return bool(vectors.query(index.collection, index.embedder.encode_query(q), Filters(), 40))

    out["raw chroma, batched embedding"] = drive(clients, seconds, batched, qs)
    print("  raw chroma, batched embedding: done", file=sys.stderr)
    index.close()
    return out


def config_text(path: Path, port: int, empty: Path) -> str:
    """The server's config: the index, two keys, and every synthetic source (`src0`..`src3`, as
    `files` sources of an empty folder, which the server never syncs): a source missing from the
    config is not served, so without them every answer would be empty."""
    sources = "".join(f'\n[[sources]]\nname = "{name}"\ntype = "files"\npath = "{empty}"\n' for name in SOURCES)
    return (
        f'[index]\npath = "{path}"\n\n[server]\nport = {port}\nmax_body_bytes = 65536\n\n'
        '[[server.api_keys]]\nname = "bench-admin"\nkey_env = "BENCH_ADMIN_KEY"\nadmin = true\n\n'
        f'[[server.api_keys]]\nname = "bench-user"\nkey_env = "BENCH_USER_KEY"\nuser = "{BENCH_USER}"\n' + sources
    )


def serve(path: Path, port: int) -> subprocess.Popen[bytes]:
    config = path.parent / "bench.toml"
    empty = path.parent / "bench-empty"
    empty.mkdir(exist_ok=True)
    config.write_text(config_text(path, port, empty))
    env = {**os.environ, "BENCH_ADMIN_KEY": ADMIN_KEY, "BENCH_USER_KEY": USER_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inlet", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:  # a benchmark, not a test: polling for readiness is fine
        try:
            if httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit("inlet serve exited early")
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("inlet serve did not become ready")


def check_answers(port: int, qs: list[str]) -> None:
    """Every query of the run must find something, as each key (the synthetic words are in most
    documents): an empty answer means the server is not serving the index (a source missing from
    its config, say), and its timings would measure nothing. Exits with the reason."""
    for label, key in (("admin", ADMIN_KEY), ("user", USER_KEY)):
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"}
        ) as c:
            for q in qs[:20]:
                r = c.post("/v1/search", json={"query": q, "k": 10})
                if r.status_code != 200 or not r.json().get("results"):
                    raise SystemExit(
                        f"/v1/search as {label} returned no results for {q!r} (HTTP {r.status_code}: "
                        f"{r.text[:200]}): the server is not serving the benchmark's index, so its "
                        "figures would measure nothing"
                    )


def over_http(port: int, qs: list[str], clients: int, seconds: float) -> dict[str, dict[str, float]]:
    out = {}
    local = threading.local()
    reasons: Counter[str] = Counter()
    lock = threading.Lock()

    def failed(reason: str) -> None:
        with lock:
            reasons[reason] += 1

    for label, key in (("/v1/search, admin (no ACL)", ADMIN_KEY), ("/v1/search, user key (ACL)", USER_KEY)):

        def one(q: str, key: str = key, label: str = label) -> bool:
            client = getattr(local, key, None)
            if client is None:
                client = httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"}
                )
                setattr(local, key, client)
            try:
                r = client.post("/v1/search", json={"query": q, "k": 10})
            except httpx.HTTPError as e:
                failed(f"{label}: {type(e).__name__}")
                return False
            if r.status_code != 200:
                failed(f"{label}: HTTP {r.status_code}")
                return False
            if not r.json().get("results"):  # an empty answer is an error
                failed(f"{label}: no results")
                return False
            return True

        out[label] = drive(clients, seconds, one, qs)
        print(f"  {label}: done", file=sys.stderr)
    for reason, n in reasons.most_common():
        print(f"  errors, {reason}: {n}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--port", type=int, default=18484)
    parser.add_argument("--path", type=Path, help="reuse (or build into) this index folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path or Path(tmp) / "index"
        if not (path / "catalog.db").exists():
            print(f"building {args.chunks} chunks in {path}", file=sys.stderr)
            words = build(path, args.chunks)
        else:
            words = vocabulary(random.Random(7))
        qs = queries(words)
        results = baseline(path, qs, args.clients, args.seconds)
        proc = serve(path, args.port)
        try:
            check_answers(args.port, qs)
            results.update(over_http(args.port, qs, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    base = results["raw chroma, no ACL"]["p50"]
    strict = results["raw chroma, batched embedding"]["p50"]
    print(f"\n{args.chunks} chunks, {args.clients} concurrent clients, {args.seconds:.0f} s per phase")
    print(
        f"{'phase':32} {'req':>7} {'err':>4} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'p50/base':>8} {'/batched':>8}"
    )
    for label, r in results.items():
        print(
            f"{label:32} {r['requests']:7.0f} {r['errors']:4.0f} {r['rps']:7.1f} {r['p50']:8.1f} "
            f"{r['p99']:8.1f} {r['p50'] / base:8.2f} {r['p50'] / strict:8.2f}"
        )


if __name__ == "__main__":
    main()
