"""Search latency on PostgreSQL + a Chroma server against the folder (SQLite + embedded Chroma).

    .venv/bin/python benchmarks/bench_pg.py --chunks 100000 [--shared-buffers 1GB] [--lexical-only]
    nice -n 10 .venv/bin/python benchmarks/bench_pg.py --reuse DIR --build-only   # once: the preparation
    flock /work/bench.lock .venv/bin/python benchmarks/bench_pg.py --reuse DIR     # then measure, repeatably

1. Builds the synthetic index of `--chunks` one-chunk documents (synthetic.py: Zipf texts, mixed
   ACLs, random unit vectors: embedding 100k chunks takes hours here) twice from the same batches:
   into a folder, and into a PostgreSQL server (initdb in a temporary folder, as the tests do) and
   `chroma run`, through the PostgreSQL catalog's own commit (postings, statistics) and Chroma's
   client, printing how long each took. `inlet migrate` would give the same index, far slower.
   Then VACUUM ANALYZE, as autovacuum does after a bulk load: the visibility map lets the ranking
   read postings from the index alone.
2. Runs the same queries, as a user (ACL filter), through both, interleaved query by query so the
   machine's noise hits both alike: lexical (BM25 alone) and hybrid (`search()`: the query embedded
   for real by the configured model, then Chroma, BM25, exact matches, fusion, texts), and prints
   p50/p99 per backend and the PostgreSQL/folder ratio of the medians.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers: the real servers

from synthetic import BENCH_USER, SEED, batches, build, queries, upsert_vectors, vocabulary  # noqa: E402

from inlet.config import IndexConfig  # noqa: E402
from inlet.connectors.model import principals_for  # noqa: E402
from inlet.index import vectors  # noqa: E402
from inlet.storage import Filters  # noqa: E402
from inlet.index.search import SearchRequest, search  # noqa: E402
from inlet.storage import Commit  # noqa: E402
from inlet.index.store import Index  # noqa: E402
from tests.servers import chroma_server, new_database, postgres_server  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


COMMIT_DOCS = 500  # per catalog commit: a 4,000-document one spent over the server's 5 s idle-in-transaction
#                     limit between its statements (a niced build on a busy machine) and was cut off


def build_pg(config: IndexConfig, n_chunks: int) -> None:
    """The synthetic documents (the same as `build`'s) straight into PostgreSQL and the Chroma server."""
    started = time.perf_counter()
    with Index(config, embedder=None) as index:
        done = 0
        for docs, vecs in batches(n_chunks):
            upsert_vectors(index.collection, docs, vecs)
            for start in range(0, len(docs), COMMIT_DOCS):
                index.catalog.commit(Commit(0, [(d, [d.text]) for d in docs[start : start + COMMIT_DOCS]]))
            done += len(docs)
            print(f"  PostgreSQL: {done}/{n_chunks} chunks ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
        with index.catalog.pool.connection() as db:  # type: ignore[attr-defined]
            db.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shared-buffers", help="PostgreSQL's shared_buffers (default: the server's, 128MB)")
    parser.add_argument("--lexical-only", action="store_true", help="skip hybrid (query embedding dominates it)")
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="keep both indexes in DIR: built there once, measured from there on later runs",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build (into --reuse DIR) and stop: the preparation, run apart from the measurement",
    )
    args = parser.parse_args()
    if args.build_only and not args.reuse:
        parser.error("--build-only needs --reuse DIR (to keep what it builds)")
    with tempfile.TemporaryDirectory(prefix="inlet-bench-pg-") as tmp:
        work = args.reuse or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        built = work / f"built-{args.chunks}"  # written once both indexes are complete
        folder_built = work / f"built-folder-{args.chunks}"  # the folder alone (a build cut off after it)
        reused = built.exists()
        folder = IndexConfig(path=work / "folder")
        if not reused and not folder_built.exists():
            started = time.perf_counter()
            build(folder.path, args.chunks)
            print(f"folder built: {args.chunks} chunks in {time.perf_counter() - started:.0f}s", file=sys.stderr)
            folder_built.touch()
        settings = (f"shared_buffers={args.shared_buffers}",) if args.shared_buffers else ()
        # a niced build on a busy machine: `chroma run` took over the tests' 60 s to answer
        with postgres_server(work / "pg", settings) as server, chroma_server(work / "chroma", timeout=300) as chroma:
            database = server.rsplit("/", 1)[0] + "/bench" if reused else new_database(server, "bench")
            pg = IndexConfig(database_url=database, chroma_url=chroma)
            if not reused:
                vectors.drop_collection(
                    vectors.connect(work, chroma), chroma, vectors.COLLECTION
                )  # a cut-off build's, as new_database
                started = time.perf_counter()
                build_pg(pg, args.chunks)
                print(f"PostgreSQL + Chroma server built in {time.perf_counter() - started:.0f}s", file=sys.stderr)
                built.touch()
            if not args.build_only:
                words = vocabulary(random.Random(SEED))
                measure(folder, pg, queries(words, args.queries), ("lexical",) if args.lexical_only else MODES)


MODES = ("lexical", "hybrid")


def measure(folder: IndexConfig, pg: IndexConfig, qs: list[str], modes: tuple[str, ...] = MODES) -> None:
    principals = tuple(principals_for(BENCH_USER) or ())
    filters = Filters(principals=principals)
    with Index(folder) as a, Index(pg, embedder=None) as b:
        b.embedder = a.embedder  # one model in memory: both pay the same query embedding
        if "hybrid" in modes:
            a.embedder.encode_query("warm up")
        times: dict[tuple[str, str], list[float]] = {}
        for q in qs[:20]:  # warm caches of both
            a.lexical(q, filters, 40)
            b.lexical(q, filters, 40)
        for q in qs:
            for name, index in (("folder", a), ("postgres", b)):
                started = time.perf_counter()
                index.lexical(q, filters, 40)
                times.setdefault((name, "lexical"), []).append((time.perf_counter() - started) * 1000)
                if "hybrid" not in modes:
                    continue
                started = time.perf_counter()
                search(index, SearchRequest(q, k=10, user=BENCH_USER))
                times.setdefault((name, "hybrid"), []).append((time.perf_counter() - started) * 1000)
    print(f"{len(qs)} queries as {BENCH_USER} (ACL filter), ms")
    print(f"{'mode':8} {'backend':9} {'p50':>7} {'p99':>7}")
    for mode in modes:
        for name in ("folder", "postgres"):
            t = times[(name, mode)]
            print(f"{mode:8} {name:9} {statistics.median(t):7.1f} {percentile(t, 99):7.1f}")
        ratio = statistics.median(times[("postgres", mode)]) / statistics.median(times[("folder", mode)])
        print(f"{mode:8} postgres/folder p50 ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
