"""A crash inside `apply()` after the vector write and before the catalog commit loses nothing.

The catalog transaction is the commit record: vectors are written to Chroma first. The fault is
injected at exactly that point (the catalog transaction aborts after its statements, as a killed
process's would), then the next sync applies the same batch again. The index must equal a clean
index of the final state: the same documents, chunk counts in the catalog and in Chroma, texts,
ACLs in both stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index.store import Index


class Crash(Exception):
    pass


def doc(n: int, text: str, acl: ACL | None = None) -> Document:
    return Document(
        id=f"w:{n}", source="w", source_type="files", title=f"Doc {n}", text=text, acl=acl or ACL(public=True)
    )


LONG = " ".join(f"Paragraph {i} of the handbook explains the travel policy in detail." for i in range(60))
BEFORE = [
    doc(1, LONG),
    doc(2, "Parking garage B closes for repairs.", ACL(users=["a@x.com"])),
    doc(3, "The cafeteria serves lasagna on Thursdays."),
]
CHANGES = {
    "new documents": ([doc(4, "Badge readers reboot at midnight."), doc(5, LONG + " Appendix.")], []),
    "text shrinks": ([doc(1, "The travel policy is now one line.")], []),
    "acl only": ([doc(2, "Parking garage B closes for repairs.", ACL(domains=["x.com"]))], []),
    "deletion": ([], ["w:3", "w:1"]),
}


def snapshot(index: Index) -> dict[str, Any]:
    query = index.catalog._query
    docs = query("SELECT doc_id, content_hash, meta_hash, chunks FROM documents ORDER BY doc_id")
    chunks = query("SELECT chunk_id, text FROM chunks ORDER BY chunk_id")
    acl = query("SELECT principal, doc_id FROM acl ORDER BY doc_id, principal")
    fts = query("SELECT count(*) FROM chunks_fts")[0][0]
    stored = index.collection.get(include=["metadatas"])
    vectors = sorted(
        (cid, meta["doc_id"], meta["n"], tuple(meta["acl"])) for cid, meta in zip(stored["ids"], stored["metadatas"])
    )
    return {"docs": docs, "chunks": chunks, "acl": acl, "fts": fts, "vectors": vectors}


@contextmanager
def crash_before_catalog_commit(index: Index) -> Iterator[None]:
    """The write's first transaction (its marks, `Index.repair`) commits; the second, the catalog's
    commit record, dies after its statements."""
    real = index.catalog.transaction
    calls = 0

    @contextmanager
    def dying() -> Iterator[Any]:
        nonlocal calls
        calls += 1
        with real() as db:
            yield db
            if calls == 2:
                raise Crash("killed between the vector write and the catalog commit")

    index.catalog.transaction = dying  # type: ignore[method-assign]
    try:
        yield
    finally:
        index.catalog.transaction = real  # type: ignore[method-assign]


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_next_apply_repairs_a_crash_between_vectors_and_catalog(tmp_path: Path, embedder: Any, change: str) -> None:
    docs, deletions = CHANGES[change]
    final = {d.id: d for d in BEFORE if d.id not in deletions}
    final.update({d.id: d for d in docs})
    with Index(IndexConfig(path=tmp_path / "clean"), embedder=embedder) as clean:
        clean.apply(list(final.values()))
        expected = snapshot(clean)
    with Index(IndexConfig(path=tmp_path / "crashed"), embedder=embedder) as index:
        index.apply(BEFORE)
        with crash_before_catalog_commit(index), pytest.raises(Crash):
            index.apply(docs, deletions)
        assert snapshot(index)["docs"] == snapshot_docs_of(index, BEFORE)  # the catalog did not move
    with Index(IndexConfig(path=tmp_path / "crashed"), embedder=embedder) as index:  # the next run
        index.apply(docs, deletions)
        assert snapshot(index) == expected


def snapshot_docs_of(index: Index, docs: list[Document]) -> list[tuple[Any, ...]]:
    stored = index.catalog.stored([d.id for d in docs])
    return sorted((s.doc_id, s.content_hash, s.meta_hash, s.chunks) for s in stored.values())


@pytest.mark.parametrize("change", ["new documents", "text shrinks", "acl only", "deletion"])
def test_repair_settles_a_crashed_write_the_source_never_repeats(tmp_path: Path, embedder: Any, change: str) -> None:
    """The killed batch is never applied again (its documents were deleted, or changed back, before
    the resume): `repair` alone must bring Chroma back to what the catalog holds."""
    docs, deletions = CHANGES[change]
    with Index(IndexConfig(path=tmp_path / "clean"), embedder=embedder) as clean:
        clean.apply(BEFORE)
        expected = snapshot(clean)
    with Index(IndexConfig(path=tmp_path / "crashed"), embedder=embedder) as index:
        index.apply(BEFORE)
        with crash_before_catalog_commit(index), pytest.raises(Crash):
            index.apply(docs, deletions)
        assert snapshot(index) != expected  # Chroma moved, the catalog did not
    with Index(IndexConfig(path=tmp_path / "crashed"), embedder=embedder) as index:  # the next run
        assert index.repair("w") == len(docs) + len(deletions)
        assert snapshot(index) == expected
        assert index.repair("w") == 0
