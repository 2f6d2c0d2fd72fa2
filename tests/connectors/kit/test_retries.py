"""The kit's retries of failed reads: remembered in the checkpoint, read again until read, gone or
given up, and a given-up item is still a failed skip on every run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field

from inlet.connectors.kit import GIVE_UP_AFTER, OUTAGE_AFTER, CheckpointModel, Outage, Retries
from inlet.connectors.kit.retry import waits_end_when
from inlet.connectors.model import Deletion, Document, Item, Skipped
from inlet.errors import RetriableError


class State(CheckpointModel):
    retries: Retries = Field(default_factory=Retries)


class Source:
    """Reads items by id: each answer is taken from `answers` (a failure when none is left)."""

    def __init__(self, state: State, **answers: list[str]) -> None:
        self.state, self.answers = state, answers
        self.reads: list[str] = []

    def read(self, native_id: str) -> Iterator[Item]:
        self.reads.append(native_id)
        left = self.answers.get(native_id) or ["fail"]
        answer = left.pop(0)
        doc_id = f"s:{native_id}"
        if answer == "none":
            return
        item: Item = (
            Document(id=doc_id, source="s", source_type="t", text="hello")
            if answer == "doc"
            else Deletion(id=doc_id)
            if answer == "gone"
            else Skipped(id=doc_id, reason="403 forbidden", title=f"{native_id}.txt")
        )
        yield self.state.retries.note(native_id, item)

    def run(self) -> list[Any]:
        """One run: the replay, then the checkpoint stored and loaded again."""
        items = list(self.state.retries.replay(self.read))
        self.state = State.load(self.state.dump(), source="s") or State()
        return items


def test_a_failed_read_is_replayed_until_it_is_read_then_forgotten() -> None:
    source = Source(State(), a=["fail", "fail", "doc"])
    assert isinstance(next(source.read("a")), Skipped)
    assert [type(i) for i in source.run()] == [Skipped]
    assert source.state.retries.failed["a"].attempts == 2
    assert [type(i) for i in source.run()] == [Document]
    assert source.state.retries.failed == {} and source.run() == [] and source.reads == ["a", "a", "a"]


def test_a_deleted_item_or_one_no_longer_in_scope_is_forgotten() -> None:
    source = Source(State(), gone=["fail", "gone"], out=["fail", "none"])
    for native_id in ("gone", "out"):
        list(source.read(native_id))
    assert [type(i) for i in source.run()] == [Deletion]
    assert source.state.retries.failed == {}


def test_a_skip_by_policy_forgets_and_a_given_up_item_is_still_a_failed_skip_each_run() -> None:
    state = State()
    state.retries.note("p", Skipped(id="s:p", reason="403"))
    state.retries.note("p", Skipped(id="s:p", reason="too large", failed=False))
    assert state.retries.failed == {}
    source = Source(state)
    list(source.read("x"))
    for _ in range(GIVE_UP_AFTER - 1):
        source.run()
    assert source.state.retries.failed["x"].attempts == GIVE_UP_AFTER and len(source.reads) == GIVE_UP_AFTER
    for _ in range(2):  # not read any more, never dropped: a failed skip naming the item on each run
        (skip,) = source.run()
        assert isinstance(skip, Skipped) and skip.failed and skip.id == "s:x" and skip.title == "x.txt"
        assert "not read again after 5 failed reads" in skip.reason and skip.reason.startswith("403 forbidden")
    assert len(source.reads) == GIVE_UP_AFTER
    assert isinstance(
        source.state.retries.note("x", Document(id="s:x", source="s", source_type="t", text="t")), Document
    )
    assert source.state.retries.failed == {}  # read once the source reported it again


def test_a_server_error_is_its_items_failed_read_until_reads_fail_so_in_a_row() -> None:
    """`Outage`: the reason names the item and the call (not the source twice); a read between two
    failures resets the count; the `OUTAGE_AFTER`-th in a row fails the run, naming the last."""
    outage = Outage("src")
    failure = RetriableError("source 'src': GET /items/a: Graph answered 500 generalException", 7.0)
    assert outage.failed("a.txt", failure) == "a.txt: GET /items/a: Graph answered 500 generalException"
    outage.read()
    for n in range(1, OUTAGE_AFTER):
        assert outage.failed(f"f{n}.txt", failure).startswith(f"f{n}.txt: GET /items/a")
    with pytest.raises(RetriableError) as caught:
        outage.failed("last.txt", failure)
    assert str(caught.value).startswith(f"source 'src': {OUTAGE_AFTER} reads in a row kept answering server errors")
    assert "the last of last.txt: GET /items/a: Graph answered 500" in str(caught.value)
    assert caught.value.retry_after == 7.0


def test_a_read_failing_while_the_run_stops_ends_the_run() -> None:
    """Its retries were cut short: no verdict on the item, the run ends at its checkpoint."""
    with waits_end_when(lambda: True), pytest.raises(RetriableError, match="src.*a.txt: boom"):
        Outage("src").failed("a.txt", RetriableError("boom"))
