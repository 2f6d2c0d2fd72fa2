"""`inlet reindex`: re-embed the stored chunk texts with the configured model and backend.

No source is read: the catalog holds every chunk's text and every document's metadata. The new
vectors go into the reindex's own collection (see `fingerprint` for the record that tracks it),
source by source in doc_id order, the cursor saved after each batch, so a reindex killed at any
point resumes where it stopped. The index keeps serving the old vectors until every source is
complete; a sync of a source made meanwhile (with the old setting) sends that source back to the
queue, so the switch never exposes stale vectors.

A Chroma server or index folder that lost the live collection (`vectors.check_held`:
`RecordKeeper.lost`) is restored the same way: a reindex to the model the record already names, the live collection
re-created empty meanwhile so the daemons' writes go on (other processes open it meanwhile).

With the record in the index database, daemons on other hosts may write it meanwhile (sending a
source back to the queue): every write here is refused if the record changed since it was read,
and the step is then redone from the record as it now stands (`RecordChanged`). Every
change of the record goes through its owner, the index's `RecordKeeper` (index/record.py).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inlet.errors import InletError
from inlet.storage import CatalogStore
from inlet.storage.records import Pending, Record
from inlet.storage.types import chunk_id

from . import fingerprint
from .record import RecordKeeper
from .vectors import chunk_rows

if TYPE_CHECKING:
    from .embedding import Embedder
    from .store import Index

log = logging.getLogger(__name__)
BATCH_DOCS = 32  # documents embedded between two saves of the cursor
PASSES = 3  # rounds over the sources left, when syncs on other hosts keep sending some back

Progress = Callable[[int, int], None]  # (chunks done, chunks to do)


@dataclass
class ReindexResult:
    embedded: dict[str, int] = field(default_factory=dict)  # source -> chunks embedded by this run
    remaining: list[str] = field(default_factory=list)  # sources still holding old vectors
    switched: bool = False
    up_to_date: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "embedded": self.embedded,
            "remaining": self.remaining,
            "switched": self.switched,
            "up_to_date": self.up_to_date,
        }


def run_reindex(index: "Index", sources: Sequence[str] = (), on_progress: Progress | None = None) -> ReindexResult:
    """Re-embed `sources` (default: all) and switch the index over once every source is done."""
    keeper, catalog = index.keeper, index.catalog
    target = index.embedder.fingerprint
    if keeper.record.fingerprint == target and keeper.record.pending is None and not keeper.lost:
        return ReindexResult(up_to_date=True)
    if keeper.lost:
        log.warning("%s: the index's vectors were lost; embedding every chunk again", keeper.where)
    pending = _pending(keeper, target)
    collection = keeper.open_collection(pending.collection)
    result = ReindexResult()
    for _ in range(PASSES):  # another pass for sources a sync elsewhere sent back meanwhile
        counts = catalog.counts()
        todo = [s for s in (sources or sorted(counts)) if s in counts and s not in _ours(keeper, target).done]
        if not todo:
            break
        total = sum(counts[s][1] for s in todo)
        done = 0
        for source in todo:

            def progress(n: int, before: int = done, total: int = total) -> None:
                if on_progress:
                    on_progress(before + n, total)

            embedded = _source(keeper, catalog, index.embedder, collection, source, target, progress)
            result.embedded[source] = result.embedded.get(source, 0) + embedded
            done += counts[source][1]
    result.remaining = _remaining(keeper, catalog, target)
    if not result.remaining:
        result.switched = _switch(keeper, collection, target)
        if not result.switched:  # a sync sent a source back at the last moment
            result.remaining = _remaining(keeper, catalog, target)
    return result


def _remaining(keeper: RecordKeeper, catalog: CatalogStore, target: dict[str, str]) -> list[str]:
    return [s for s in sorted(catalog.counts()) if s not in _ours(keeper, target).done]


def _ours(keeper: RecordKeeper, target: dict[str, str]) -> Pending:
    """The reindex to `target` as the record now stands; another process may have replaced it."""
    pending = keeper.record.pending
    if pending is None or {"model": pending.model, "backend": pending.backend} != target:
        raise InletError(
            f"{keeper.where}: another `inlet reindex` changed the embedding record while this "
            "one ran; run `inlet reindex` again"
        )
    return pending


def _pending(keeper: RecordKeeper, target: dict[str, str]) -> Pending:
    """The reindex to `target` under way, or a new one (dropping one aimed elsewhere)."""
    while True:
        record = keeper.record
        pending = record.pending
        if pending and {"model": pending.model, "backend": pending.backend} == target:
            return pending
        if pending:
            keeper.drop_collection(pending.collection)
        name = fingerprint.collection_for(target)
        if name != record.collection:  # a leftover of an abandoned reindex to the same target: start clean
            keeper.drop_collection(name)
        new = Pending(model=target["model"], backend=target["backend"], collection=name)
        if keeper.save(Record(record.model, record.backend, record.collection, new)):
            return new


def _source(
    keeper: RecordKeeper,
    catalog: CatalogStore,
    embedder: "Embedder",
    collection: Any,
    source: str,
    target: dict[str, str],
    progress: Callable[[int], None],
) -> int:
    """Embed one source's chunks from its cursor on; returns the chunks embedded."""
    doc_ids = sorted(catalog.source_doc_ids(source))
    embedded = 0
    while True:
        pending = _ours(keeper, target)
        if source in pending.done:
            return embedded
        if pending.source != source:
            pending.source, pending.cursor = source, None
        start = 0 if pending.cursor is None else bisect.bisect_right(doc_ids, pending.cursor)
        batch = doc_ids[start : start + BATCH_DOCS]
        if not batch:
            pending.done.append(source)
            pending.source = pending.cursor = None
            if keeper.save(keeper.record):
                log.info("reindex: %s done (%d chunks)", source, embedded)
                return embedded
            doc_ids = sorted(catalog.source_doc_ids(source))  # a sync may have sent it back
            continue
        stored = catalog.stored(batch)
        docs = list(catalog.documents(batch).values())
        texts_by_id = catalog.chunk_texts(chunk_id(d, n) for d in batch for n in range(stored[d].chunks))
        texts = {d.id: [texts_by_id[chunk_id(d.id, n)] for n in range(stored[d.id].chunks)] for d in docs}
        ids, inputs, metas = chunk_rows(docs, texts, embedder.fingerprint)
        if ids:
            collection.upsert(ids=ids, embeddings=embedder.encode(inputs), metadatas=metas)
        pending.cursor = batch[-1]
        if not keeper.save(keeper.record):  # redo from the record as it stands (a sync may have changed this source)
            doc_ids = sorted(catalog.source_doc_ids(source))
            continue
        embedded += len(ids)
        progress(embedded)


def _switch(keeper: RecordKeeper, collection: Any, target: dict[str, str]) -> bool:
    """Make the new vectors the index's (one atomic record write), then drop the old ones; False
    if another process changed the record first (nothing switched)."""
    pending = _ours(keeper, target)
    old = keeper.record.collection
    if not keeper.save(Record(model=pending.model, backend=pending.backend, collection=pending.collection)):
        return False
    keeper.use(collection)
    if old != pending.collection:
        keeper.drop_collection(old)
    log.info("reindex complete: the index now holds %s vectors", pending.backend)
    return True
