"""Score fusion: margins survive, scales do not matter, absent passages score nothing, and a lone
BM25 match or a passage holding a named identifier stays on top."""

import pytest

from inlet.index.search import fuse

DENSE = [("x", 0.90), ("y", 0.89), ("z", 0.88), ("w", 0.87)]  # a flat list: no clear winner
LEXICAL = [("y", 30.0), ("x", 1.1), ("z", 1.0), ("w", 0.9)]  # BM25 singles out y


def ordered(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=scores.get, reverse=True)


def test_a_clear_winner_in_one_list_beats_the_leader_of_a_flat_one():
    # Reciprocal-rank fusion would tie x and y (ranks 1 + 2 each); their scores do not.
    assert ordered(fuse([DENSE, LEXICAL]))[0] == "y"


def test_the_scale_of_a_retrievers_scores_does_not_matter():
    scaled = [(cid, score * 1000 + 5) for cid, score in LEXICAL]
    assert fuse([DENSE, scaled]) == pytest.approx(fuse([DENSE, LEXICAL]))


def test_one_list_keeps_its_order_and_absent_passages_score_zero():
    assert ordered(fuse([LEXICAL])) == ["y", "x", "z", "w"]
    both = fuse([DENSE, [("new", 3.0), ("x", 1.0)]])
    assert both["w"] == 0.0  # last in dense, absent from the other
    assert min(both.values()) >= 0.0  # recency multiplies scores: never negative


def test_a_lone_or_flat_list_counts_as_one_spread():
    assert fuse([[("only", 4.2)]]) == {"only": 1.0}
    assert fuse([[("a", 2.0), ("b", 2.0)]]) == {"a": 1.0, "b": 1.0}
    assert fuse([]) == {} and fuse([[], []]) == {}


LOOKALIKES = [(f"ticket-{n}", 0.60 - n * 0.002) for n in range(40)]  # dense: one a little ahead


def test_a_lone_bm25_match_beats_the_leader_of_a_dense_list_of_look_alikes():
    lone = [("ticket-31", 16.8)]  # the one passage holding INC-20931
    assert ordered(fuse([LOOKALIKES, lone], [0, 40]))[0] == "ticket-31"
    assert ordered(fuse([LOOKALIKES, lone]))[0] == "ticket-0"  # as a flat list it would lose


def test_padding_leaves_a_full_list_alone():
    assert fuse([DENSE, LEXICAL], [0, 4]) == fuse([DENSE, LEXICAL])


def test_passages_holding_more_named_identifiers_come_first_in_fused_order():
    lexical = [(f"ticket-{n}", 5.0 - n * 0.1) for n in range(40)]  # BM25 on the parts: not decisive
    scores = fuse([LOOKALIKES, lexical], [0, 40], {"ticket-37": 1, "ticket-38": 1, "ticket-39": 2})
    assert ordered(scores)[:4] == ["ticket-39", "ticket-37", "ticket-38", "ticket-0"]
    assert scores["ticket-38"] > 1.1 * scores["ticket-0"]  # more than recency can add
    assert ordered(fuse([LOOKALIKES], [0], {"elsewhere": 1}))[0] == "elsewhere"
