"""`inlet migrate --to NEW_CONFIG`: copy an index into the storage another configuration names.

Folder -> PostgreSQL + Chroma server, and back, or between any two. Nothing is re-embedded: each
document's chunks are copied with their vectors, read from the source's Chroma, so the target's
`[index]` must name the source's model and backend: another is refused before anything is copied
(every command on the copy would refuse its vectors). The source index is only read. The copy is
resumable: a document already in the target with the same content, the same metadata and the same
chunk count is skipped, so an interrupted migration run again continues where it stopped.
Checkpoints and run history are copied after the documents (a daemon on the target resumes each
source from its checkpoint, never ahead of its documents), and the migration ends with a count
check: documents and chunks per source, and vectors, must match.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from inlet.config import Settings
from inlet.errors import ConfigError, InletError
from inlet.index.store import Index
from inlet.storage import Commit, StateStore, chunk_id, open_backend
from inlet.storage.records import Record

log = logging.getLogger(__name__)
PAGE = 200  # documents copied per commit
Progress = Callable[[str, int, int], None]  # (source, documents done, documents in the source)


class MigrationError(InletError):
    """The copy ended with counts that differ: names the source."""


@dataclass
class MigrationReport:
    copied: int = 0
    skipped: int = 0
    chunks: int = 0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "copied": self.copied,
            "skipped": self.skipped,
            "chunks": self.chunks,
            "counts": {k: {"documents": d, "chunks": c} for k, (d, c) in self.counts.items()},
        }


def migrate(source: Settings, target: Settings, progress: Progress | None = None) -> MigrationReport:
    """Copy `source`'s index into `target`'s storage; raises MigrationError if the counts differ."""
    if _same_storage(source, target):
        raise InletError("the target configuration names the same index as the source: nothing to migrate")
    _same_embedding(source, target)
    report = MigrationReport()
    with (
        Index(source.index, role="migrate") as src,
        Index(target.index, role="migrate", reindexing=True) as dst,
    ):  # its record is the source's
        src_state, dst_state = open_backend(source).state(), open_backend(target).state()
        try:
            _copy_record(src, dst)
            names = sorted(set(src.catalog.counts()) | {s.name for s in source.sources})
            for name in names:
                _copy_documents(src, dst, name, src_state.source(name).generation, report, progress)
            for name in names:
                _copy_state(src_state, dst_state, name)
            _check(src, dst, report)
        finally:
            src_state.close()
            dst_state.close()
    return report


def _same_embedding(source: Settings, target: Settings) -> None:
    """Refuse, before anything is copied, a target whose `[index]` model or backend differs from
    the source's (`ConfigError`, exit 2, naming the keys and both files): the copy holds the
    source's vectors, not embedded again, so every command on it would refuse them."""
    keys = [key for key in ("model", "backend") if getattr(source.index, key) != getattr(target.index, key)]
    if not keys:
        return
    here, there = source.file or "the source configuration", target.file or "the target configuration"
    mine = " and ".join(f"{key} is {getattr(source.index, key)!r}" for key in keys)
    theirs = " and ".join(repr(getattr(target.index, key)) for key in keys)
    wanted = ", ".join(f"{key} = {json.dumps(getattr(source.index, key))}" for key in keys)
    raise ConfigError(
        f"{here}: [index] {mine}, but {there} names {theirs}: the copy keeps the source's vectors (nothing "
        f"is embedded again), so every command on it would refuse them. Set {wanted} in the [index] table of "
        f"{there} and run `inlet migrate` again (to change the model or backend, run `inlet reindex` on the "
        "copy after the migration)"
    )


def _copy_record(src: Index, dst: Index) -> None:
    """The target holds the source's vectors, so it takes the source's embedding record (model and
    backend; its configuration names the same, `_same_embedding`), also when it was opened before
    with another; an index that already holds vectors of another model is not mixed into."""
    if dst.record.fingerprint == src.record.fingerprint:
        return
    if dst.catalog.counts():
        raise InletError(
            f"{dst.keeper.where} holds vectors of model {dst.record.model!r} with backend "
            f"{dst.record.backend!r}, the source's are {src.record.model!r} with "
            f"{src.record.backend!r}: migrate into an empty index"
        )
    dst.keeper.save(Record(model=src.record.model, backend=src.record.backend, collection=dst.record.collection))


def _same_storage(a: Settings, b: Settings) -> bool:
    return open_backend(a).location == open_backend(b).location


def _pages(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), PAGE):
        yield items[start : start + PAGE]


def _copy_documents(
    src: Index, dst: Index, name: str, generation: int, report: MigrationReport, progress: Progress | None
) -> None:
    ids = src.catalog.source_doc_ids(name)
    done = 0
    for page in _pages(ids):
        stored = src.catalog.stored(page)
        present = dst.catalog.stored(page)
        todo = [d for d in page if d in stored and present.get(d) != stored[d]]
        report.skipped += len(page) - len(todo)
        if todo:
            report.chunks += _copy_page(src, dst, todo, {d: stored[d].chunks for d in todo}, generation)
            report.copied += len(todo)
        done += len(page)
        if progress:
            progress(name, done, len(ids))


def _copy_page(src: Index, dst: Index, doc_ids: list[str], chunks: dict[str, int], generation: int) -> int:
    """Vectors first, then the catalog (its commit is what makes the documents count as copied)."""
    docs = src.catalog.documents(doc_ids)
    ids = [chunk_id(d, n) for d in doc_ids for n in range(chunks[d])]
    texts = src.catalog.chunk_texts(ids)
    vectors = src.collection.get(ids=ids, include=["embeddings", "metadatas"]) if ids else None
    if vectors is not None and len(vectors["ids"]) != len(ids):
        missing = sorted(set(ids) - set(vectors["ids"]))[:3]
        raise MigrationError(
            f"the source index lacks vectors of {len(ids) - len(vectors['ids'])} chunk(s), "
            f"e.g. {missing}: run `inlet backfill --restart` on the source first"
        )
    if vectors is not None:
        dst.collection.upsert(ids=vectors["ids"], embeddings=vectors["embeddings"], metadatas=vectors["metadatas"])
    dst.catalog.commit(
        Commit(generation, [(docs[d], [texts[chunk_id(d, n)] for n in range(chunks[d])]) for d in doc_ids])
    )
    return len(ids)


def _copy_state(src: StateStore, dst: StateStore, name: str) -> None:
    """The checkpoint, and the run history unless an earlier, interrupted migration copied it."""
    state = src.source(name)
    if state.phase != "new" or state.checkpoint is not None:
        dst.save_source(state)
    if not dst.runs(name):
        for run in src.runs(name):
            if run.finished_at is not None:
                dst.add_run(run)


def _check(src: Index, dst: Index, report: MigrationReport) -> None:
    want, got = src.catalog.counts(), dst.catalog.counts()
    for name, counts in want.items():
        if got.get(name) != counts:
            raise MigrationError(
                f"source {name!r}: the target holds {got.get(name, (0, 0))} (documents, chunks), "
                f"the source {counts}: run the migration again to finish the copy"
            )
    vectors = dst.collection.count()
    total = sum(c for _, c in want.values())
    if vectors < total:
        raise MigrationError(f"the target's Chroma holds {vectors} vectors for {total} chunks: run the migration again")
    report.counts = got
