"""`inlet reindex`: re-embed the stored chunk texts with the configured model and backend.

No source is read: the catalog holds every chunk's text and every document's metadata. The new
vectors go into the reindex's own collection (see `fingerprint` for the record that tracks it),
source by source in doc_id order, the cursor saved after each batch, so a reindex killed at any
point resumes where it stopped. The index keeps serving the old vectors until every source is
complete; a sync of a source made meanwhile (with the old setting) sends that source back to the
queue, so the switch never exposes stale vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import fingerprint, vectors
from .catalog import chunk_id

if TYPE_CHECKING:
    from .store import Index

log = logging.getLogger(__name__)
BATCH_DOCS = 32   # documents embedded between two saves of the cursor

Progress = Callable[[int, int], None]   # (chunks done, chunks to do)


@dataclass
class ReindexResult:
    embedded: dict[str, int] = field(default_factory=dict)   # source -> chunks embedded by this run
    remaining: list[str] = field(default_factory=list)       # sources still holding old vectors
    switched: bool = False
    up_to_date: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"embedded": self.embedded, "remaining": self.remaining, "switched": self.switched,
                "up_to_date": self.up_to_date}


def run_reindex(index: "Index", sources: Sequence[str] = (), on_progress: Progress | None = None) -> ReindexResult:
    """Re-embed `sources` (default: all) and switch the index over once every source is done."""
    target = index.embedder.fingerprint
    record = index.record
    if record.fingerprint == target and record.pending is None:
        return ReindexResult(up_to_date=True)
    pending = _pending(index, target)
    counts = index.catalog.counts()
    todo = [s for s in (sources or sorted(counts)) if s in counts and s not in pending.done]
    total = sum(counts[s][1] for s in todo)
    collection = vectors.open_collection(index.path, index.config.chroma_url, pending.collection)
    result = ReindexResult()
    done = 0
    for source in todo:
        def progress(n: int, before: int = done) -> None:
            if on_progress:
                on_progress(before + n, total)

        result.embedded[source] = _source(index, collection, source, progress)
        done += counts[source][1]
    result.remaining = [s for s in sorted(index.catalog.counts()) if s not in pending.done]
    if not result.remaining:
        _switch(index, collection)
        result.switched = True
    return result


def _pending(index: "Index", target: dict[str, str]) -> fingerprint.Pending:
    """The reindex to `target` under way, or a new one (dropping one aimed elsewhere)."""
    record = index.record
    pending = record.pending
    if pending and {"model": pending.model, "backend": pending.backend} == target:
        return pending
    if pending:
        vectors.drop_collection(index.path, index.config.chroma_url, pending.collection)
    name = fingerprint.collection_for(target)
    if name != record.collection:   # a leftover of an abandoned reindex to the same target: start clean
        vectors.drop_collection(index.path, index.config.chroma_url, name)
    record.pending = fingerprint.Pending(model=target["model"], backend=target["backend"], collection=name)
    fingerprint.write(index.path, record)
    return record.pending


def _source(index: "Index", collection: Any, source: str, progress: Callable[[int], None]) -> int:
    """Embed one source's chunks from its cursor on; returns the chunks embedded."""
    from .store import chunk_rows

    pending = index.record.pending
    assert pending is not None
    if pending.source != source:
        pending.source, pending.cursor = source, None
    doc_ids = sorted(index.catalog.source_doc_ids(source))
    if pending.cursor is not None:
        doc_ids = [d for d in doc_ids if d > pending.cursor]
    embedded = 0
    for start in range(0, len(doc_ids), BATCH_DOCS):
        batch = doc_ids[start:start + BATCH_DOCS]
        stored = index.catalog.stored(batch)
        docs = list(index.catalog.documents(batch).values())
        texts_by_id = index.catalog.chunk_texts(chunk_id(d, n) for d in batch for n in range(stored[d].chunks))
        texts = {d.id: [texts_by_id[chunk_id(d.id, n)] for n in range(stored[d.id].chunks)] for d in docs}
        ids, inputs, metas = chunk_rows(docs, texts)
        if ids:
            collection.upsert(ids=ids, embeddings=index.embedder.encode(inputs), metadatas=metas)
        embedded += len(ids)
        pending.cursor = batch[-1]
        fingerprint.write(index.path, index.record)
        progress(embedded)
    pending.done.append(source)
    pending.source = pending.cursor = None
    fingerprint.write(index.path, index.record)
    log.info("reindex: %s done (%d chunks)", source, embedded)
    return embedded


def _switch(index: "Index", collection: Any) -> None:
    """Make the new vectors the index's (one atomic record write), then drop the old ones."""
    record = index.record
    pending = record.pending
    assert pending is not None
    old = record.collection
    index.record = fingerprint.Record(model=pending.model, backend=pending.backend, collection=pending.collection)
    fingerprint.write(index.path, index.record)
    index.collection = collection
    if old != pending.collection:
        vectors.drop_collection(index.path, index.config.chroma_url, old)
    log.info("reindex complete: the index now holds %s vectors", pending.backend)


def invalidate(index: "Index", sources: set[str] | None) -> None:
    """A write with the old setting during a reindex: the touched sources (None: all) are redone."""
    pending = index.record.pending
    if pending is None:
        return
    hit = [s for s in [*pending.done, pending.source] if s and (sources is None or s in sources)]
    if not hit:
        return
    collection = vectors.open_collection(index.path, index.config.chroma_url, pending.collection)
    for source in hit:
        collection.delete(where={"source": source})
    pending.done = [s for s in pending.done if s not in hit]
    if pending.source in hit:
        pending.source = pending.cursor = None
    fingerprint.write(index.path, index.record)
