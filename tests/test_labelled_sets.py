"""The blind natural-question set stays blind and well formed.

`benchmarks/quality_natural_blind.json` is only measured, never tuned on: none of its questions may
appear in the set that ranking and `relevance` are fitted on. (Whether its answer ids exist in the
demo's corpus is checked by `benchmarks/quality_natural.py` itself, which refuses to run otherwise.)
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


def test_blind_questions_are_not_in_the_tuned_set() -> None:
    tuned = {q["query"].strip().lower() for q in questions("quality_natural.json")}
    blind = [q["query"].strip().lower() for q in questions("quality_natural_blind.json")]
    assert len(blind) == len(set(blind))
    assert [q for q in blind if q in tuned] == []


def test_blind_set_is_well_formed() -> None:
    blind = questions("quality_natural_blind.json")
    assert {q["split"] for q in blind} == {"blind"}
    assert {q["kind"] for q in blind} <= KINDS
    answerable = [q for q in blind if q["answers"]]
    assert len(answerable) >= 60 and len(blind) - len(answerable) >= 20
    for q in blind:
        assert (q["kind"] == "none") == (not q["answers"]), q["query"]
        assert len(q["answers"]) == len(set(q["answers"])), q["query"]
        assert {a.split(":", 1)[0] for a in q["answers"]} <= SOURCES, q["query"]
        if "asked_at" in q:
            datetime.fromisoformat(q["asked_at"].replace("Z", "+00:00"))
