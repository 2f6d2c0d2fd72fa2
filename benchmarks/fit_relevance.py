"""Fit `relevance` (inlet/index/relevance_model.json) on the train part of the natural questions.

    .venv/bin/python benchmarks/fit_relevance.py --keep DIR [--questions FILE ...] [--answer-only] [--answer-allow S]
                                                 [--folds K] [--write]

Runs every train question of `quality_natural.json` and of `quality_natural_paraphrase.json` (the same
corpus, questions worded away from their answers: without them the model learns to trust shared
words) on the corpus quality_natural.py builds (k = 10,
as an admin, recency off), labels each result 1 when its document answers the question (copies
included) and 0 otherwise (every result of a question without an answer is 0), and fits a logistic
model on the features search computes (`inlet.index.search.features_of`) by Newton's method with a
small L2 penalty: no new dependency. Then it picks the thresholds on the same questions:
`min_relevance`, the highest value under which at most `--allow` of answerable questions' best result
falls (they would get match "none"; `--allow`), and `strong`, the lowest value above which the best result
answers at least 90% of the time. Last the answer-level model `match` is decided from: a logistic model over
`relevance.answer_features` (the best relevance of the question's results under the model just fitted, and the
number of content words of what was searched for, the question less the phrases read as filters), labelled 1
when any of the first five results answers, and its threshold
`answer.min`: the highest that calls none for at most `--answer-allow` of the answerable train questions.
`--folds K` first prints what that decision does on questions it was not fitted on: K folds of the train questions
(a question and its paraphrases, which share answer documents, in the same fold; repeated over 5 shuffles), the
answer-level model and its threshold fitted on the other folds, `none` counted on the held fold per set. Held-out
questions are never read. `--write` saves the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from datetime import datetime
from pathlib import Path

import numpy as np
from quality_natural import build, copies

from inlet.config import load_config
from inlet.index import relevance, search
from inlet.index.store import Index

HERE = Path(__file__).parent


def collect(index: Index, labelled: list[dict], groups: dict[str, set[str]], top: int) -> tuple[list, list, list, list]:
    """Feature rows and labels of each question's first `top` results, and per question: (answerable, its
    rows, is the first result an answer) and (every result's features, the question, does a top-5 one answer)."""
    rows, labels, best, answers = [], [], [], []
    for item in labelled:
        asked = datetime.fromisoformat(item["asked_at"].replace("Z", "+00:00")) if item.get("asked_at") else None
        got = search.answer(index, search.SearchRequest(query=item["query"], k=10, recency_half_life_days=0, now=asked))
        if got.hits and not got.hits[0].features:  # the newest documents listed: relevance set, not computed
            continue
        wanted = set().union(*(groups[a] for a in item["answers"])) if item["answers"] else set()
        first = len(rows)
        for hit in got.hits[:top]:
            rows.append([hit.features[name] for name in relevance.FEATURES])
            labels.append(1.0 if hit.doc_id in wanted else 0.0)
        best.append(
            (bool(item["answers"]), list(range(first, len(rows))), got.hits[0].doc_id in wanted if got.hits else False)
        )
        answers.append(
            (
                [[hit.features[name] for name in relevance.FEATURES] for hit in got.hits],
                got.searched,  # the words `match` counts: the question less the phrases read as filters
                any(hit.doc_id in wanted for hit in got.hits[:5]),
            )
        )
    return rows, labels, best, answers


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Logistic regression weights (bias last) by Newton's method; `l2` spares the bias."""
    design = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(design.shape[1])
    penalty = np.eye(design.shape[1]) * l2
    penalty[-1, -1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-design @ w))
        gradient = design.T @ (p - y) + penalty @ w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_answer(model: relevance.Model, answers: list, answerable: list[bool], allow: float, l2: float) -> dict:
    """The answer-level model over `relevance.answer_features` and its threshold `min` (see module docstring)."""
    features = []
    for hits, query, _ in answers:
        relevances = [model.relevance(dict(zip(relevance.FEATURES, r))) for r in hits]
        features.append(relevance.answer_features(relevances, query))
    x = np.asarray([[f[name] for name in relevance.ANSWER_FEATURES] for f in features], dtype=float)
    w = fit(x, np.asarray([1.0 if top5 else 0.0 for _, _, top5 in answers]), l2)
    weights = {k: round(float(v), 4) for k, v in zip(relevance.ANSWER_FEATURES, w[:-1])}
    scored = relevance.Model({}, 0.0, 0.0, 1.0, answer_weights=weights, answer_bias=round(float(w[-1]), 4))
    probs = sorted(scored.answers(f) for f, a in zip(features, answerable) if a)
    floor = probs[int(allow * len(probs))]  # at most this share of answerable questions below
    return {"weights": weights, "bias": scored.answer_bias, "min": round(floor - 0.0005, 4), "features": features}


def folds_of(labelled: list[dict], folds: int, seed: int) -> list[int]:
    """Each question's fold: questions sharing an answer document (a question and its paraphrases) together,
    each unanswerable question on its own."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys = []
    for n, item in enumerate(labelled):
        key = item["answers"][0] if item["answers"] else f"#{n}"
        for other in item["answers"][1:]:
            parent[root(other)] = root(key)
        keys.append(key)
    groups = sorted({root(k) for k in keys})
    random.Random(seed).shuffle(groups)
    fold = {g: n % folds for n, g in enumerate(groups)}
    return [fold[root(k)] for k in keys]


def cross_validate(
    model: relevance.Model, labelled: list[dict], answers: list, allow: float, l2: float, folds: int
) -> None:
    """Print `none` on the held fold's unanswerable and answerable questions, per set, over 5 shuffles."""
    answerable = [bool(item["answers"]) for item in labelled]
    counts: dict[str, list[int]] = {}
    for seed in range(5):
        fold_of = folds_of(labelled, folds, seed)
        for k in range(folds):
            inside = [n for n, f in enumerate(fold_of) if f != k]
            got = fit_answer(model, [answers[n] for n in inside], [answerable[n] for n in inside], allow, l2)
            scored = relevance.Model({}, 0.0, 0.0, 1.0, answer_weights=got["weights"], answer_bias=got["bias"])
            for n in (n for n, f in enumerate(fold_of) if f == k):
                hits, query, _ = answers[n]
                relevances = [model.relevance(dict(zip(relevance.FEATURES, r))) for r in hits]
                none = scored.answers(relevance.answer_features(relevances, query)) < got["min"]
                for name in (labelled[n]["set"], "all"):
                    tally = counts.setdefault(name, [0, 0, 0, 0])  # none, unanswerable, none, answerable
                    tally[2 if answerable[n] else 0] += none
                    tally[3 if answerable[n] else 1] += 1
    for name, (nu, u, na, a) in counts.items():
        print(
            f"{folds}-fold CV ({name}): none on {nu / max(1, u):.3f} of {u // 5} unanswerable, "
            f"{na / max(1, a):.3f} of {a // 5} answerable"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, required=True, help="the corpus folder of quality_natural.py")
    parser.add_argument("--top", type=int, default=10, help="fit on the first N results of each question")
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty of the fit")
    parser.add_argument(
        "--allow", type=float, default=0.05, help="share of answerable train questions that min_relevance may call none"
    )
    parser.add_argument(
        "--answer-allow",
        type=float,
        default=0.05,
        help="share of answerable train questions that the answer-level model may call none",
    )
    parser.add_argument("--folds", type=int, default=0, help="cross-validate the answer-level model over K folds first")
    parser.add_argument("--write", action="store_true", help="save the fitted model")
    parser.add_argument(
        "--answer-only",
        action="store_true",
        help="keep the saved per-result model and its thresholds; fit only the answer-level model of `match`",
    )
    parser.add_argument(
        "--questions",
        type=Path,
        nargs="+",
        default=[HERE / "quality_natural.json", HERE / "quality_natural_paraphrase.json"],
    )
    args = parser.parse_args()
    labelled = [
        {**q, "set": path.name}
        for path in args.questions
        for q in json.loads(path.read_text())["queries"]
        if q["split"] == "train"
    ]
    if not (args.keep / "config.toml").is_file():
        build(args.keep)
    with Index(load_config(args.keep / "config.toml").index) as index:
        groups = copies(index, labelled)
        rows, labels, best, answers = collect(index, labelled, groups, args.top)
    x, y = np.asarray(rows, dtype=float), np.asarray(labels)
    if args.answer_only:  # the saved per-result model as it is
        model = dataclasses.replace(relevance.model())
    else:
        w = fit(x, y, args.l2)
        model = relevance.Model(
            weights=dict(zip(relevance.FEATURES, map(float, w[:-1]))), bias=float(w[-1]), min_relevance=0.0, strong=1.0
        )
    probs = np.array([model.relevance(dict(zip(relevance.FEATURES, r))) for r in rows])
    tops = [(answerable, max((probs[i] for i in idx), default=0.0), right) for answerable, idx, right in best]
    answerable = sorted(p for a, p, _ in tops if a)
    floor = answerable[int(args.allow * len(answerable))]  # at most this share of answerable questions below
    min_relevance = round(float(floor) - 0.005, 3)
    strong = 1.0
    for t in sorted({round(float(p), 2) for _, p, _ in tops}):
        above = [right for _, p, right in tops if p >= t]
        if above and sum(above) / len(above) >= 0.9:
            strong = t
            break
    if args.answer_only:
        min_relevance, strong = model.min_relevance, model.strong
    unanswerable = [p for a, p, _ in tops if not a]
    if args.folds:
        cross_validate(model, labelled, answers, args.answer_allow, args.l2, args.folds)
    answer = fit_answer(model, answers, [a for a, _, _ in best], args.answer_allow, args.l2)
    model.answer_weights, model.answer_bias, model.answer_min = answer["weights"], answer["bias"], answer["min"]
    said = [
        model.match([model.relevance(dict(zip(relevance.FEATURES, r))) for r in hits], features)
        for hits, features in zip((h for h, _, _ in answers), answer["features"])
    ]
    none_on = [s == "none" for s in said]
    print(f"{len(labelled)} train questions, {len(rows)} results, {int(y.sum())} answering")
    print("weights:", {k: round(v, 3) for k, v in model.weights.items()}, "bias", round(model.bias, 3))
    print(
        f"min_relevance {min_relevance}: none on {sum(p < min_relevance for p in unanswerable)}/{len(unanswerable)} "
        f"unanswerable, {sum(p < min_relevance for p in answerable)}/{len(answerable)} answerable; strong {strong}"
    )
    print("answer-level weights:", answer["weights"], "bias", answer["bias"], "min", answer["min"])
    print(
        f"match none on {sum(n for n, (a, _, _) in zip(none_on, best) if not a)}/{len(unanswerable)} unanswerable, "
        f"{sum(n for n, (a, _, _) in zip(none_on, best) if a)}/{len(answerable)} answerable"
    )
    if args.write:
        relevance.MODEL_PATH.write_text(
            json.dumps(
                {
                    "comment": "fitted by benchmarks/fit_relevance.py on the train questions of "
                    + ", ".join(path.name for path in args.questions),
                    "weights": {k: round(v, 4) for k, v in model.weights.items()},
                    "bias": round(model.bias, 4),
                    "min_relevance": min_relevance,
                    "strong": strong,
                    "answer": {"weights": answer["weights"], "bias": answer["bias"], "min": answer["min"]},
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
