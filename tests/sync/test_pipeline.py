"""The overlapped pipeline keeps a serial run's order: checkpoints behind their batches, versions in order."""

from __future__ import annotations

import threading

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index.chunking import COUNT_SLICE
from inlet.index.priority import BULK_TURN
from inlet.index.store import Index
from inlet.sync.pipeline import Pipeline


def doc(n: int, text: str) -> Document:
    return Document(id=f"d:{n}", source="d", source_type="files", title=f"Doc {n}", text=text, acl=ACL(public=True))


LONG = "\n\n".join(f"Paragraph {i} about quarterly revenue in region {i}. " * 8 for i in range(12))


@pytest.fixture
def index(tmp_path, embedder):
    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as ix:
        yield ix


def test_an_action_runs_only_after_every_batch_before_it_is_written(index):
    seen: list[int] = []
    with Pipeline(index, threading.Lock()) as pipeline:
        for n in range(3):
            pipeline.submit([doc(n, f"Note {n} on the harbour lantern. " * 40)], [], 1, None)
            pipeline.after(lambda: seen.append(len(index.catalog.stored([f"d:{i}" for i in range(3)]))))
        pipeline.drain()
    assert seen == [1, 2, 3]
    assert index.collection.count() == sum(c for _, c in index.catalog.counts().values())


def test_two_versions_of_a_document_in_flight_apply_in_order(index):
    """The second batch reads the stored state only after the first is written: the short second
    version drops the long first version's extra chunks, and a deletion after both wins."""
    written = []
    with Pipeline(index, threading.Lock(), on_written=lambda batch, stats: written.append(stats)) as pipeline:
        pipeline.submit([doc(1, LONG)], [], 1, None)
        pipeline.submit([doc(1, "Now a single short paragraph about lasagna."), doc(2, LONG)], [], 1, None)
        pipeline.drain()
        assert index.catalog.stored(["d:1"])["d:1"].chunks == 1
        assert index.collection.count() == sum(c for _, c in index.catalog.counts().values())
        pipeline.submit([], ["d:2"], 1, None)
        pipeline.drain()
    assert [s.upserted for s in written] == [1, 2, 0] and written[-1].deleted == 1
    assert index.collection.get(where={"doc_id": "d:2"})["ids"] == []


def test_a_failing_stage_is_raised_to_the_caller_and_nothing_behind_it_runs(index):
    ran: list[str] = []

    def fail() -> None:
        raise OSError("disk full")

    with Pipeline(index, threading.Lock()) as pipeline:
        pipeline.after(fail)
        with pytest.raises(OSError, match="disk full"):
            pipeline.drain()
        with pytest.raises(OSError):  # the pipeline takes nothing more
            pipeline.after(lambda: ran.append("late"))
    assert ran == []


def test_abandon_drops_what_is_not_yet_embedded_with_the_checkpoints_behind_it(index):
    release = threading.Event()
    ran: list[str] = []
    with Pipeline(index, threading.Lock()) as pipeline:
        pipeline.after(lambda: release.wait(60))  # holds the writer; the batch waits behind it
        pipeline.submit([doc(1, "A note on the meadow.")], [], 1, None)
        pipeline.after(lambda: ran.append("checkpoint"))
        pipeline.abandon()
        release.set()
        pipeline.drain()
    written = bool(index.catalog.stored(["d:1"]))
    # The batch may have been embedding when abandon() came (then it is written, and the checkpoint
    # behind it may or may not have reached the embedding stage first): a batch written without its
    # checkpoint is re-read on resume; a checkpoint without the batch before it would lose it.
    assert written or ran == []


def test_a_stop_cuts_the_batch_being_embedded_short(index):
    """One huge file is one batch: a stop ends its embedding after the slice under way, and the
    batch is dropped (re-read on resume), not embedded to its end first."""
    huge = doc(1, "\n\n".join(f"Section {i}: the ledger of shipment {i} was reconciled." * 6 for i in range(800)))
    slices: list[int] = []
    pipeline = Pipeline(index, threading.Lock(), on_embedded=lambda n: (slices.append(n), pipeline.abandon()))
    with pipeline:
        pipeline.submit([huge], [], 1, None)
        pipeline.drain()
    assert len(slices) == 1  # of the many slices the batch holds
    assert not index.catalog.stored(["d:1"]) and index.collection.count() == 0


def test_a_stop_cuts_a_batch_of_a_few_hundred_chunks_after_one_turn_of_the_model(index):
    """A stopped run waits for the turn of the model under way (`BULK_TURN` chunks, a fraction of
    a second), not for the batch's whole embedding (seconds on a busy machine)."""
    notes = [doc(n, f"Memo {n}: the freight of crate {n} was weighed twice at the dock.") for n in range(5 * BULK_TURN)]
    turns: list[int] = []
    pipeline = Pipeline(index, threading.Lock(), on_embedded=lambda n: (turns.append(n), pipeline.abandon()))
    with pipeline:
        pipeline.submit(notes, [], 1, None)
        pipeline.drain()
    assert turns == [BULK_TURN]
    assert not index.catalog.stored([n.id for n in notes]) and index.collection.count() == 0


def test_a_stop_ends_the_chunking_of_one_huge_file_between_two_slices_of_counting(index, monkeypatch):
    """Chunking one huge file counts its tokens a slice at a time: a stop noticed after the first
    slice drops the batch there (re-read on resume), before the other slices are counted."""
    counted: list[int] = []
    count = index.embedder.count_tokens
    monkeypatch.setattr(index.embedder, "count_tokens", lambda texts: (counted.append(len(texts)), count(texts))[1])
    huge = doc(1, "\n\n".join(f"Entry {i} of the harbour log." for i in range(3 * COUNT_SLICE)))
    embedded: list[int] = []
    with Pipeline(index, threading.Lock(), on_embedded=embedded.append, stopping=lambda: bool(counted)) as pipeline:
        pipeline.submit([huge], [], 1, None)
        pipeline.drain()
    assert counted == [COUNT_SLICE]  # one slice of three
    assert pipeline.abandoned and embedded == [] and not index.catalog.stored(["d:1"])
