"""Natural questions: recall@5, nDCG@10, top-1/top-3 per kind, duplicates per list, and `match`.

    .venv/bin/python benchmarks/quality_natural.py [--keep DIR] [--split heldout|train|blind|blind2|blind3|blind4|all]
                                                   [--compare REF] [--questions FILE] [--show-misses] [--reliability]
                                                   [--user EMAIL]

The corpus is what the demo indexes: the sandbox's sample Slack workspace, Drive, Microsoft files
and Teams, and two mailboxes (Phillip Allen's and Robert Badeer's, through Outlook and Gmail),
backfilled through the real connectors and engine against the sandbox servers (`--keep DIR` builds
it once and reuses it). The labelled set, `quality_natural.json`, holds questions the way people ask
an assistant, each with every document that answers it, or none (kind `none`: the corpus holds no
answer), and a `split`: `train` questions calibrate `relevance` (`inlet/index/relevance_model.json`,
fitted by `fit_relevance.py`) and may guide ranking changes, `heldout` questions are only measured.
`--questions quality_natural_blind.json --split blind` measures the blind set: written apart from
this one and never tuned on; `--questions quality_natural_blind2.json --split blind2` the second,
written by someone who never saw the ranking code and measured once; `--questions
quality_natural_blind3.json --split blind3` the third and `quality_natural_blind4.json --split blind4`
the fourth, written the same way.

Per answerable question, over the ranked documents (one result per document, k = 10, asked as an
admin, recency off, `asked_at` as the question's time): top-1, top-3, recall@5 (answer among the
first five), nDCG@10 (1 / log2(1 + rank)); `--user EMAIL` asks as that user instead (their ACL
filters every read, so a question whose answers they may not see counts as missed). Copies of an
answer (`quality.answer_groups`) count as it.
`dup` is the share of result lists (k = 5, as the API returns them) that hold a document twice.
`none%` is the share that got `match == "none"`: wanted high for kind `none`, low for the others.
`--compare REF` runs the ranking code of git REF (its index/search.py) on the same index in the same
run, as "before".

Labels name documents by id. Before anything is built, every labelled answer is checked against the
ids the sandbox's (deterministic) seed data gives (`sandbox_ids`), and the script stops naming those
it lacks: a change to the sandbox's seeding renumbers documents (a Drive file's id follows the order
the sandbox creates files in), and its labels must then be mapped by title to the new ids
(`tests/index/test_bench_scripts.py` checks every labelled set).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from quality import answer_groups

from inlet.config import load_config
from inlet.demo import DEMO_MAILBOXES, backfill_all, demo_config
from inlet.index import search as current
from inlet.index.store import Index
from inlet.sandbox import drive_state
from inlet.sandbox.sample import sample_workspace
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.storage.sqlite.state import SqliteState

HERE = Path(__file__).parent
Run = Callable[[Index, dict[str, Any], int], tuple[list[str], str | None]]
USER: str | None = None  # `--user`: who asks (None: an admin, no ACL)


def build(root: Path) -> None:
    """Backfill the sandbox's Slack, Drive and the demo's two mailboxes under `root`."""
    with Sandbox() as sb:
        toml, secrets = sb.config(index_path=root / "index")
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(demo_config(toml, root / "index", 0, mailboxes=DEMO_MAILBOXES))
        settings = load_config(config)
        with Index(settings.index, role="benchmark") as index:
            state = SqliteState(root / "index" / "state.db")
            try:
                for run in backfill_all(settings, index, state, {**os.environ, **secrets}, progress=False):
                    print(f"  {run.source}: {run.outcome}, {run.upserted} documents", file=sys.stderr)
            finally:
                state.close()


def sandbox_ids(ws: Workspace) -> set[str]:
    """The ids the demo's sources give what they read from the sandbox's workspace `ws` (its seeding
    is deterministic), checked without indexing: every labelled answer must be one. A superset of
    the corpus (every Slack message, every mailbox), so it catches ids that no longer exist."""
    ids = {f"sandbox-drive:{f.id}" for f in drive_state.state(ws).files.values()}
    ids |= {f"sandbox-slack:{c.id}:{m.ts}" for c in ws.slack.channels.values() for m in c.messages}
    ids |= {f"sandbox-files:{item}" for item in ws.m365_files.items}
    ids |= {f"sandbox-teams:{m.channel_id}:{m.id}" for m in ws.teams.messages.values()}
    ids |= {f"sandbox-mail:{message}" for message in ws.mail.messages}
    return ids | {f"sandbox-gmail:{box}/{m}" for box, b in ws.gmail.mailboxes.items() for m in b.messages}


def unknown_answers(labelled: list[dict[str, Any]], known: set[str]) -> list[str]:
    """The labelled answers that are not documents of the corpus, in order, each once."""
    return list(dict.fromkeys(a for q in labelled for a in q["answers"] if a not in known))


def missing_answers(name: str, missing: list[str]) -> SystemExit:
    """The refusal to measure labels that name documents the corpus lacks (every such answer would
    count as a miss): which ones, and the likely cause."""
    return SystemExit(
        f"{name}: {len(missing)} labelled answer(s) are not documents of the sandbox corpus: {', '.join(missing)}. "
        "The sandbox's seed data changed how it numbers them (a Drive file's id comes from the order the "
        "sandbox creates files in): map each to the document of the same title in the corpus and fix the labels"
    )


def baseline_module(ref: str) -> ModuleType:
    """index/search.py as of git `ref`, loaded as a module of `inlet.index` (same index, old ranking)."""
    source = subprocess.run(
        ["git", "show", f"{ref}:index/search.py"], cwd=HERE.parent, check=True, capture_output=True, text=True
    ).stdout
    # Older trees kept Filters in index/catalog.py; it lives in the storage package now.
    source = source.replace(
        "from .catalog import Filters, chunk_doc_id", "from inlet.storage.types import Filters, chunk_doc_id"
    )
    spec = importlib.util.spec_from_loader("inlet.index._search_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "inlet.index"
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{ref}:index/search.py", "exec"), module.__dict__)
    return module


def runner(module: ModuleType) -> Run:
    """(document ids best first, match or None) for a labelled question, with `module`'s search."""

    def run(index: Index, item: dict[str, Any], k: int) -> tuple[list[str], str | None]:
        asked = datetime.fromisoformat(item["asked_at"].replace("Z", "+00:00")) if item.get("asked_at") else None
        fields = dict(query=item["query"], k=k, recency_half_life_days=0, user=USER)
        if hasattr(module, "answer"):
            got = module.answer(index, module.SearchRequest(**fields, now=asked))
            return [h.doc_id for h in got.hits], got.match
        hits, _ = module.search(index, module.SearchRequest(**fields, per_document=1))
        return list(dict.fromkeys(h.doc_id for h in hits)), None

    return run


def duplicates(module: ModuleType, index: Index, query: str) -> bool:
    """Does the k = 5 list the API returns (its default passages per document) hold a document twice?"""
    request = module.SearchRequest(query=query, k=5, recency_half_life_days=0, user=USER)
    hits = module.answer(index, request).hits if hasattr(module, "answer") else module.search(index, request)[0]
    ids = [h.doc_id for h in hits]
    return len(ids) != len(set(ids))


def copies(index: Index, labelled: list[dict[str, Any]]) -> dict[str, set[str]]:
    """answer id -> itself and every copy of it (quality.answer_groups: the demo indexes the same
    mailboxes through Outlook and Gmail, whose texts differ in header forms and whitespace)."""
    answers = {a for q in labelled for a in q["answers"]}
    every = [doc_id for source in index.catalog.counts() for doc_id in index.catalog.source_doc_ids(source)]
    groups = answer_groups(list(index.catalog.documents(every).values()))
    return {answer: groups.get(answer, {answer}) for answer in answers}


def evaluate(
    index: Index, module: ModuleType, labelled: list[dict[str, Any]], groups: dict[str, set[str]]
) -> list[dict[str, Any]]:
    """One row per question: rank of the first answer (None: not in the first 10), match, dup."""
    run = runner(module)
    rows = []
    for item in labelled:
        ranking, match = run(index, item, 10)
        wanted = set().union(*(groups[a] for a in item["answers"])) if item["answers"] else set()
        rank = next((n for n, doc_id in enumerate(ranking, 1) if doc_id in wanted), None)
        rows.append({"item": item, "rank": rank, "match": match, "dup": duplicates(module, index, item["query"])})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in rows if r["item"]["answers"]]
    n = max(1, len(answerable))
    ranks = [r["rank"] for r in answerable]
    out = {
        "n": len(rows),
        "top1": sum(1 for x in ranks if x == 1) / n,
        "top3": sum(1 for x in ranks if x and x <= 3) / n,
        "recall5": sum(1 for x in ranks if x and x <= 5) / n,
        "ndcg10": sum(1 / math.log2(1 + x) for x in ranks if x) / n,
        "dup": sum(r["dup"] for r in rows) / max(1, len(rows)),
    }
    if rows and rows[0]["match"] is not None:
        out["none%"] = sum(r["match"] == "none" for r in rows) / max(1, len(rows))
    return out


def report(name: str, rows: list[dict[str, Any]]) -> None:
    kinds = sorted({r["item"]["kind"] for r in rows})
    print(f"\n{name}")
    print(f"{'kind':8} {'n':>4} {'top1':>6} {'top3':>6} {'R@5':>6} {'nDCG10':>7} {'dup':>6} {'none%':>6}")
    for kind in [*kinds, "all"]:
        subset = [r for r in rows if kind in ("all", r["item"]["kind"])]
        s = summary(subset)
        cells = (
            "   -  " * 4
            if kind == "none"
            else f"{s['top1']:6.3f} {s['top3']:6.3f} {s['recall5']:6.3f} {s['ndcg10']:7.3f}"
        )
        print(f"{kind:8} {len(subset):4} {cells} {s['dup']:6.3f} {s.get('none%', float('nan')):6.3f}")
    if rows and rows[0]["match"] is not None:
        answerable = [r for r in rows if r["item"]["answers"]]
        unanswerable = [r for r in rows if not r["item"]["answers"]]
        said = [r for r in rows if r["match"] != "none"]
        right = [r for r in said if r["item"]["answers"]]
        print(
            f"match != none: precision {len(right) / max(1, len(said)):.3f} (answerable among those flagged), "
            f"recall {len(right) / max(1, len(answerable)):.3f} (answerable flagged); "
            f"none on {sum(r['match'] == 'none' for r in unanswerable)}/{len(unanswerable)} unanswerable, "
            f"{sum(r['match'] == 'none' for r in answerable)}/{len(answerable)} answerable"
        )


def reliability(index: Index, labelled: list[dict[str, Any]], groups: dict[str, set[str]]) -> None:
    """Reliability table of `relevance` on these questions: per bin, mean predicted vs share correct
    (a result is correct when its document answers the question)."""
    bins = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.35), (0.35, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.01)]
    pairs: list[tuple[float, bool]] = []
    for item in labelled:
        asked = datetime.fromisoformat(item["asked_at"].replace("Z", "+00:00")) if item.get("asked_at") else None
        got = current.answer(
            index, current.SearchRequest(query=item["query"], k=10, recency_half_life_days=0, now=asked, user=USER)
        )
        wanted = set().union(*(groups[a] for a in item["answers"])) if item["answers"] else set()
        pairs += [(h.relevance, h.doc_id in wanted) for h in got.hits]
    print(f"\nreliability of relevance over {len(pairs)} results")
    print(f"{'bin':>11} {'n':>5} {'predicted':>10} {'observed':>9}")
    for low, high in bins:
        inside = [(p, y) for p, y in pairs if low <= p < high]
        if inside:
            print(
                f"{low:4.2f}-{min(high, 1.0):4.2f} {len(inside):5} {sum(p for p, _ in inside) / len(inside):10.3f} "
                f"{sum(y for _, y in inside) / len(inside):9.3f}"
            )
    brier = sum((p - y) ** 2 for p, y in pairs) / max(1, len(pairs))
    print(f"Brier score {brier:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", "--queries", dest="queries", type=Path, default=HERE / "quality_natural.json")
    parser.add_argument("--keep", type=Path, help="build the corpus here (or reuse it) instead of a temp folder")
    parser.add_argument(
        "--split", choices=("heldout", "train", "blind", "blind2", "blind3", "blind4", "all"), default="heldout"
    )
    parser.add_argument("--compare", metavar="REF", help="also run git REF's ranking code on the same index")
    parser.add_argument("--show-misses", action="store_true", help="print questions whose answer is not in the top 3")
    parser.add_argument("--reliability", action="store_true", help="print the reliability table of `relevance`")
    parser.add_argument("--user", metavar="EMAIL", help="ask as this user (their ACL applies) instead of an admin")
    args = parser.parse_args()
    global USER
    USER = args.user
    labelled = [
        q for q in json.loads(args.queries.read_text())["queries"] if args.split == "all" or q["split"] == args.split
    ]
    missing = unknown_answers(labelled, sandbox_ids(sample_workspace()))
    if missing:
        raise missing_answers(args.queries.name, missing)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        started = time.perf_counter()
        if not (root / "config.toml").is_file():
            build(root)
        with Index(load_config(root / "config.toml").index) as index:
            print(f"corpus: {index.catalog.counts()} (ready in {time.perf_counter() - started:.0f}s)", file=sys.stderr)
            missing = [a for a in unknown_answers(labelled, set()) if not index.catalog.stored([a])]
            if missing:  # an index kept (`--keep`) from an earlier sandbox
                raise missing_answers(f"{args.queries.name} in {root}", missing)
            index.embedder.encode_query("warm up")
            groups = copies(index, labelled)
            print(
                f"{args.queries.name}, split {args.split}: {len(labelled)} questions "
                f"({sum(1 for q in labelled if not q['answers'])} without an answer in the corpus)"
            )
            if args.compare:
                report(f"before ({args.compare})", evaluate(index, baseline_module(args.compare), labelled, groups))
            rows = evaluate(index, current, labelled, groups)
            report("now", rows)
            if args.show_misses:
                for r in rows:
                    if r["item"]["answers"] and (r["rank"] is None or r["rank"] > 3):
                        print(f"   miss (rank {r['rank']}, {r['match']}): {r['item']['query']}")
                    if not r["item"]["answers"] and r["match"] != "none":
                        print(f"   unanswerable but {r['match']}: {r['item']['query']}")
            if args.reliability:
                reliability(index, labelled, groups)


if __name__ == "__main__":
    main()
