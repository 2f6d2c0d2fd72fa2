"""Identical chunks are embedded once, across documents and sources, and deletes stay correct."""

from __future__ import annotations

import numpy as np

from inlet.config import IndexConfig
from inlet.index.dedup import text_key
from inlet.index.store import Index
from tests.index.test_store import doc

LICENCE = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software."


def vector(index: Index, chunk: str) -> np.ndarray:
    return np.asarray(index.collection.get(ids=[chunk], include=["embeddings"])["embeddings"][0])


def test_copies_reuse_one_vector_and_survive_the_original_s_delete(tmp_path, embedder):
    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as index:
        first = index.apply([doc(1, LICENCE, title="LICENSE"), doc(2, LICENCE, title="LICENSE")])
        assert (first.embedded_chunks, first.reused_chunks) == (1, 1)  # one batch: embedded once
        other = index.apply(
            [doc(3, LICENCE, source="vendor", title="LICENSE"), doc(4, "Something else entirely.", source="vendor")]
        )
        assert (other.embedded_chunks, other.reused_chunks) == (1, 1)  # across sources
        original = vector(index, "wiki:1#0")
        assert np.allclose(vector(index, "vendor:3#0"), original)

        assert index.apply([], ["wiki:1", "wiki:2"]).deleted == 2
        assert np.allclose(vector(index, "vendor:3#0"), original)  # the copy keeps its vector
        key = text_key(embedder.fingerprint, f"LICENSE\n{LICENCE}")
        assert index.catalog.keyed_chunks([key]) == {key: "vendor:3#0"}  # one reference left

        again = index.apply([doc(5, LICENCE, title="LICENSE")])  # found through the survivor
        assert (again.embedded_chunks, again.reused_chunks) == (0, 1)
        assert index.apply([], ["vendor:3"]).deleted == 1
        changed = index.apply([doc(5, "A new text for five.", title="LICENSE")])
        assert changed.embedded_chunks == 1
        last = index.apply([doc(6, LICENCE, title="LICENSE")])  # no copy left: embedded anew
        assert (last.embedded_chunks, last.reused_chunks) == (1, 0)
        assert index.catalog._query("SELECT COUNT(key) FROM chunks")[0][0] == 3  # docs 4, 5, 6
