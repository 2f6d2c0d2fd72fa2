"""The blind natural-question sets stay blind and well formed; the paraphrased training set is well formed.

`benchmarks/quality_natural_blind.json`, `..._blind2.json`, `..._blind3.json` and `..._blind4.json` are only measured,
never tuned on: none of their questions may appear in the set that ranking and `relevance` are
fitted on, nor in another blind set. `benchmarks/quality_natural_paraphrase.json`
is training material only (every question `train`) and repeats no question of the other two sets.
(Whether answer ids exist in the demo's corpus is checked by `benchmarks/quality_natural.py` itself,
which refuses to run otherwise.)
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
KINDS = {"how", "none", "person", "source", "time", "what", "when", "who", "why"}
SOURCES = {"sandbox-slack", "sandbox-drive", "sandbox-files", "sandbox-teams", "sandbox-mail", "sandbox-gmail"}


def questions(name: str) -> list[dict]:
    return json.loads((BENCHMARKS / name).read_text())["queries"]


BLIND = {
    "quality_natural_blind.json": "blind",
    "quality_natural_blind2.json": "blind2",
    "quality_natural_blind3.json": "blind3",
    "quality_natural_blind4.json": "blind4",
}


def test_blind_questions_are_not_in_the_tuned_set_nor_in_another_blind_set() -> None:
    seen = {q["query"].strip().lower() for q in questions("quality_natural.json")}
    seen |= {q["query"].strip().lower() for q in questions("quality_natural_paraphrase.json")}
    for name in BLIND:
        blind = [q["query"].strip().lower() for q in questions(name)]
        assert len(blind) == len(set(blind)), name
        assert [q for q in blind if q in seen] == [], name
        seen |= set(blind)


def well_formed(labelled: list[dict], split: str, answerable: int, unanswerable: int) -> None:
    """Every question in `split`, of a known kind, kind `none` exactly when it has no answer."""
    assert {q["split"] for q in labelled} == {split}
    assert {q["kind"] for q in labelled} <= KINDS
    with_answers = [q for q in labelled if q["answers"]]
    assert len(with_answers) >= answerable and len(labelled) - len(with_answers) >= unanswerable
    for q in labelled:
        assert q["query"].strip(), q
        assert (q["kind"] == "none") == (not q["answers"]), q["query"]
        assert len(q["answers"]) == len(set(q["answers"])), q["query"]
        assert {a.split(":", 1)[0] for a in q["answers"]} <= SOURCES, q["query"]
        if "asked_at" in q:
            datetime.fromisoformat(q["asked_at"].replace("Z", "+00:00"))


def test_blind_sets_are_well_formed() -> None:
    for name, split in BLIND.items():
        well_formed(questions(name), split, answerable=60, unanswerable=19)


def test_paraphrase_set_is_well_formed() -> None:
    well_formed(questions("quality_natural_paraphrase.json"), "train", answerable=90, unanswerable=40)


def test_paraphrase_questions_are_new() -> None:
    """The paraphrased set is fitted on: it repeats neither the labelled set nor the blind one."""
    labelled = {q["query"].strip().lower() for q in questions("quality_natural.json")}
    labelled |= {q["query"].strip().lower() for q in questions("quality_natural_blind.json")}
    paraphrased = [q["query"].strip().lower() for q in questions("quality_natural_paraphrase.json")]
    assert len(paraphrased) == len(set(paraphrased))
    assert [q for q in paraphrased if q in labelled] == []
