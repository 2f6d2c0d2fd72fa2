"""Retrieval quality on workplace questions that name things: recall@5 and nDCG@10 per query kind.

    .venv/bin/python benchmarks/quality_workplace.py [--keep DIR] [--show-misses] [--backend B] [--exact-dense]
    .venv/bin/python benchmarks/quality_workplace.py --keep DIR --database-url URL --chroma-url URL

The corpus is what a team would index: the sandbox's sample Slack workspace, Drive and one
mailbox (Robert Badeer's 122 Enron mails, through Outlook and Gmail), backfilled through the real connectors and
engine against the sandbox servers, plus generated folders of 300 look-alike support tickets and
40 runbooks (inlet/sandbox/tickets.py) read by the `files` connector. The labelled set,
`quality_queries_workplace.json`, was written before any tuning on it and kept out of tuning:
each query has a kind (identifier, person, channel, folder, date, paraphrase) and one answer
document. Figures as in quality.py, per kind and overall, for dense, BM25 and hybrid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from quality import MODES, answer_groups, evaluate, use_exact_dense

from inlet.config import load_config
from inlet.connectors.model import Document
from inlet.connectors.registry import connector_class
from inlet.demo import backfill_all, demo_config
from inlet.index.backends import BACKENDS, DEFAULT_BACKEND
from inlet.index.store import Index
from inlet.sandbox.server import Sandbox
from inlet.sandbox.tickets import write_folders
from inlet.storage import open_backend

HERE = Path(__file__).parent
MAILBOX = "robert.badeer@enron.com"


def build(root: Path, backend: str) -> None:
    """Backfill the sandbox's three sources and index the generated folders under `root`."""
    with Sandbox() as sb:
        toml, secrets = sb.config(index_path=root / "index")
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(demo_config(toml, root / "index", 0, mailboxes=(MAILBOX,)))
        settings = load_config(config)
        with Index(settings.index.model_copy(update={"backend": backend}), role="benchmark") as index:
            state = open_backend(settings).state()
            try:
                for run in backfill_all(settings, index, state, {**os.environ, **secrets}, progress=False):
                    print(f"  {run.source}: {run.outcome}, {run.upserted} documents", file=sys.stderr)
            finally:
                state.close()
            tickets, runbooks = write_folders(root / "folders")
            index.apply(load_folder("tickets", tickets) + load_folder("runbooks", runbooks))


def load_folder(name: str, folder: Path) -> list[Document]:
    cls = connector_class("files")
    config = cls.Config.model_validate({"name": name, "type": "files", "path": str(folder)})
    return [item for item in cls(config, {}).load(None) if isinstance(item, Document)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=HERE / "quality_queries_workplace.json")
    parser.add_argument("--keep", type=Path, help="build the corpus here (or reuse it) instead of a temp folder")
    parser.add_argument("--show-misses", action="store_true", help="print the queries each mode misses")
    parser.add_argument(
        "--database-url",
        help="evaluate the corpus migrated into PostgreSQL (with --chroma-url; "
        "`inlet migrate --to` from the --keep folder) instead of the folder",
    )
    parser.add_argument("--chroma-url", help="the Chroma server beside --database-url")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help="embedding backend (a --keep folder must have been built with it)",
    )
    parser.add_argument(
        "--exact-dense", action="store_true", help="brute-force dense ranking instead of HNSW (quality.py)"
    )
    args = parser.parse_args()
    labelled = json.loads(args.queries.read_text())["queries"]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        started = time.perf_counter()
        if not (root / "folders").is_dir():
            build(root, args.backend)
        config = load_config(root / "config.toml").index.model_copy(update={"backend": args.backend})
        if args.database_url:
            config = config.model_copy(update={"database_url": args.database_url, "chroma_url": args.chroma_url})
        with Index(config) as index:
            counts = index.catalog.counts()
            print(
                f"backend {args.backend}: corpus: {counts} (built in {time.perf_counter() - started:.0f}s)",
                file=sys.stderr,
            )
            missing = [q["answer"] for q in labelled if not index.catalog.stored([q["answer"]])]
            if missing:
                raise SystemExit(f"answers not in the corpus: {missing}")
            index.embedder.encode_query("warm up")
            if args.exact_dense:
                use_exact_dense(index)
            report(index, labelled, args.show_misses)


def report(index: Index, labelled: list[dict[str, str]], show_misses: bool) -> None:
    """Per kind and mode; a copy of an answer (the demo's mailbox is indexed through both Outlook and
    Gmail) counts as it (`quality.answer_groups`)."""
    every = [doc_id for source in index.catalog.counts() for doc_id in index.catalog.source_doc_ids(source)]
    copies = answer_groups(list(index.catalog.documents(every).values()))
    kinds = sorted({q["kind"] for q in labelled})
    print(f"{len(labelled)} queries; recall@5 / nDCG@10 per kind")
    print(f"{'kind':12} {'n':>3} " + " ".join(f"{mode:>15}" for mode in MODES))
    for kind in [*kinds, "all"]:
        subset = [q for q in labelled if kind in ("all", q["kind"])]
        cells, missed = [], []
        for mode in MODES:
            misses: list[str] = []
            recall, ndcg, _, _ = evaluate(index, subset, copies, mode, misses)
            cells.append(f"{recall / len(subset):.3f} / {ndcg / len(subset):.3f}")
            missed.append(f"   {mode} missed (not in top 10): " + "; ".join(misses))
        print(f"{kind:12} {len(subset):3} " + " ".join(f"{c:>15}" for c in cells))
        if show_misses and kind != "all":
            print("\n".join(line for line in missed if not line.endswith(": ")))


if __name__ == "__main__":
    main()
