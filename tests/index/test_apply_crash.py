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
from inlet.index.vectors import KEY


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
        assert index.repair("w").documents == len(docs) + len(deletions)
        assert snapshot(index) == expected
        assert index.repair("w").documents == 0


class CountingEmbedder:
    """An embedder that counts the texts it runs through the model."""

    def __init__(self, model: Any) -> None:
        self.model, self.texts = model, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def encode(self, texts: list[str], on_turn: Any = None) -> Any:
        self.texts += len(texts)
        return self.model.encode(texts, on_turn=on_turn)


HANDBOOK = [f"Section {i}: the {i}th rule of the handbook says staff file form {i} by Friday." for i in range(300)]
EDITED = HANDBOOK[:150] + ["Section 150: this rule was rewritten entirely, with a new form."] + HANDBOOK[151:]
APPENDIX = [f"Appendix {i}: forms filed late go to the {i}th desk." for i in range(30)]


def check_repair_embeds_only_changed_chunks(config: IndexConfig, model: Any, keyless: bool = False) -> None:
    """A long document's edit is killed after its vectors went to Chroma and before the catalog
    commit; `repair` must embed only the chunks whose text differs (every chunk, when Chroma's
    chunks carry no key: `keyless`, as an older inlet wrote them), and leave every chunk of the
    catalog with the vector of the catalog's text."""
    before, after = doc(9, " ".join(HANDBOOK)), doc(9, " ".join(EDITED + APPENDIX))
    with Index(config, embedder=model) as index:
        index.apply([before])
        real = index.catalog.commit
        index.catalog.commit = lambda batch: real(batch) if batch.marked else _raise(Crash())  # type: ignore[method-assign]
        with pytest.raises(Crash):
            index.apply([after])
        old, new = index.chunk(before), index.chunk(after)
        if keyless:
            written = index.collection.get()["ids"]
            index.collection.update(ids=written, metadatas=[{KEY: None}] * len(written))
    changed = sum(a != b for a, b in zip(old, new))
    assert len(old) > 10 and 0 < changed <= 4 and len(new) > len(old)  # a long document, a small edit
    expected = len(old) if keyless else changed
    counting = CountingEmbedder(model)
    with Index(config, embedder=counting) as index:  # type: ignore[arg-type]
        repaired = index.repair("w")
        assert counting.texts == expected  # the model saw only the texts the killed write changed
        assert (repaired.documents, repaired.embedded_chunks) == (1, expected)  # and the run counts them
        ids = [f"w:9#{n}" for n in range(len(old))]
        texts = index.catalog.chunk_texts(ids)
        assert sorted(index.collection.get()["ids"]) == sorted(ids)  # the killed write's extra chunk is gone
        for cid in ids:
            vector = model.encode([f"{before.title}\n{texts[cid]}"])[0]
            hit = index.collection.query(query_embeddings=[vector], n_results=1, include=["distances"])
            assert hit["ids"][0][0] == cid and hit["distances"][0][0] < 1e-4


def _raise(exc: Exception) -> None:
    raise exc


def test_repair_embeds_only_the_chunks_the_killed_write_changed(tmp_path: Path, text_hash_embedder: Any) -> None:
    check_repair_embeds_only_changed_chunks(IndexConfig(path=tmp_path / "index"), text_hash_embedder)


def test_repair_embeds_again_the_chunks_an_older_inlet_wrote(tmp_path: Path, text_hash_embedder: Any) -> None:
    """With no key beside a vector, nothing proves it is the catalog's text's: it is embedded again."""
    check_repair_embeds_only_changed_chunks(IndexConfig(path=tmp_path / "index"), text_hash_embedder, keyless=True)
