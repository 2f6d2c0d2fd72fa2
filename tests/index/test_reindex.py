"""The index records its vectors' model and backend, refuses another, and `run_reindex` moves it over."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from inlet.config import IndexConfig
from inlet.errors import EmbeddingMismatchError, VectorsLost
from inlet.storage import records
from inlet.index import vectors
from inlet.index.backup import backup_index
from inlet.index.embedding import Embedder
from inlet.index.reindex import run_reindex
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from tests.index.test_store import CORPUS, doc


@pytest.fixture(scope="module")
def torch_embedder(embedder: Embedder) -> Embedder:
    return embedder if embedder.backend == "torch" else Embedder(backend="torch")


@pytest.fixture(scope="module")
def onnx_embedder(embedder: Embedder) -> Embedder:
    return embedder if embedder.backend == "onnx-int8" else Embedder(backend="onnx-int8")


@pytest.fixture
def torch_index(tmp_path, torch_embedder):
    path = tmp_path / "ix"
    with Index(IndexConfig(path=path), embedder=torch_embedder) as ix:
        ix.apply(CORPUS, generation=1)
    return path


def top(index: Index, query: str) -> str:
    hits, _ = search(index, SearchRequest(query=query, k=1, mode="dense", recency_half_life_days=0))
    return hits[0].doc_id


def test_another_backend_is_refused_naming_both_and_the_fix(torch_index, onnx_embedder):
    assert records.read(torch_index).fingerprint == {"model": "all-MiniLM-L6-v2", "backend": "torch"}
    with pytest.raises(EmbeddingMismatchError) as refused:
        Index(IndexConfig(path=torch_index), embedder=onnx_embedder)
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert "'torch'" in message and "'onnx-int8'" in message and "inlet reindex [SOURCE ...]" in message
    Index(IndexConfig(path=torch_index), embedder=onnx_embedder, reindexing=True).close()  # lock released


def test_an_index_from_before_records_is_taken_as_torch(torch_index, onnx_embedder):
    (torch_index / records.RECORD).unlink()
    with pytest.raises(EmbeddingMismatchError, match="backend 'torch'"):
        Index(IndexConfig(path=torch_index), embedder=onnx_embedder)


def test_reindex_source_by_source_keeps_old_vectors_until_all_are_done(torch_index, torch_embedder, onnx_embedder):
    with Index(IndexConfig(path=torch_index), embedder=onnx_embedder, reindexing=True) as ix:
        first = run_reindex(ix, ["wiki"])
        assert first.embedded == {"wiki": 3} and first.remaining == ["exec"] and not first.switched
    record = records.read(torch_index)
    assert record.backend == "torch" and record.pending.done == ["wiki"]
    with Index(IndexConfig(path=torch_index), embedder=torch_embedder) as ix:  # still served the old way
        assert top(ix, "how do I change my vpn credentials") == "wiki:2"
        ix.apply([doc(6, "Lunch moves to the atrium.")], generation=2)  # a wiki change meanwhile...
    assert records.read(torch_index).pending.done == []  # ...sends wiki back to the queue
    with Index(IndexConfig(path=torch_index), embedder=onnx_embedder, reindexing=True) as ix:
        rest = run_reindex(ix)
        assert rest.embedded == {"exec": 2, "wiki": 4} and rest.switched
    record = records.read(torch_index)
    assert record.backend == "onnx-int8" and record.pending is None and record.collection != "inlet_chunks"
    with Index(IndexConfig(path=torch_index), embedder=onnx_embedder) as ix:
        assert top(ix, "how do I change my vpn credentials") == "wiki:2"
        assert top(ix, "lunch moved to the atrium") == "wiki:6"
        assert ix.collection.count() == 6
        assert run_reindex(ix).up_to_date


def test_the_record_is_plain_json(torch_index):
    raw = json.loads((torch_index / records.RECORD).read_text())
    assert raw == {"model": "all-MiniLM-L6-v2", "backend": "torch", "collection": "inlet_chunks", "pending": None}


def test_status_refuses_an_index_of_another_backend_as_every_command_does(torch_index, tmp_path):
    """The command an operator runs after a configuration change says what the daemon and the
    server will say, instead of reporting every source healthy."""
    from click.testing import CliRunner

    from inlet.cli import cli

    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{torch_index}"\nbackend = "onnx-int8"\n')
    refused = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert refused.exit_code == 2, refused.output
    assert "'torch'" in refused.output and "'onnx-int8'" in refused.output and "inlet reindex" in refused.output
    config.write_text(f'[index]\npath = "{torch_index}"\nbackend = "torch"\n')
    assert CliRunner().invoke(cli, ["status", "--config", str(config)]).exit_code == 0


def segment_folders(index: Path) -> set[str]:
    return {p.name for p in (index / "chroma").iterdir() if p.is_dir()}


def segments(index: Path) -> set[str]:
    """The vector segments Chroma's database names: the folders a collection in use owns."""
    db = sqlite3.connect(index / "chroma" / "chroma.sqlite3")
    try:
        return {row[0] for row in db.execute("SELECT id FROM segments WHERE scope = 'VECTOR'")}
    finally:
        db.close()


@pytest.fixture
def other_backend(text_hash_embedder) -> Embedder:
    """The same hashed vectors recorded as another backend: a reindex to it re-makes the collection."""
    other = type(text_hash_embedder)(backend="onnx" if text_hash_embedder.backend != "onnx" else "onnx-int8")
    other.count_tokens(["warm up"])
    return other


def test_a_reindex_removes_the_old_vectors_folder(tmp_path, text_hash_embedder, other_backend):
    """Chroma deletes a collection from its database but leaves its HNSW folder on disk
    (chroma-core/chroma#5259): the old vectors stayed beside the new, copied by every backup."""
    path = tmp_path / "ix"
    with Index(IndexConfig(path=path), embedder=text_hash_embedder) as ix:
        ix.apply(CORPUS, generation=1)
    before = segment_folders(path)
    assert len(before) == 1
    with Index(IndexConfig(path=path), embedder=other_backend, reindexing=True) as ix:
        assert run_reindex(ix).switched
        assert segment_folders(path) == segments(path) and not segment_folders(path) & before
    with Index(IndexConfig(path=path), embedder=other_backend) as ix:
        assert ix.collection.count() == len(CORPUS)
        backup_index(ix, tmp_path / "backup")
    assert segment_folders(tmp_path / "backup") == segments(path)


def test_opening_the_index_removes_a_folder_an_earlier_reindex_left(tmp_path, text_hash_embedder):
    """An index reindexed by an earlier release holds its old vectors' folder: the next opening
    removes it, so no backup carries it; the folders of the live collection stay."""
    path = tmp_path / "ix"
    with Index(IndexConfig(path=path), embedder=text_hash_embedder) as ix:
        ix.apply(CORPUS, generation=1)
    client = vectors.connect(path)
    try:
        old = client.create_collection("inlet_chunks_old", embedding_function=None)
        old.upsert(ids=["a"], embeddings=[[0.1] * text_hash_embedder.dimension])
        client.delete_collection("inlet_chunks_old")  # as the earlier release dropped it
    finally:
        vectors.disconnect(client)
    assert len(segment_folders(path)) == 2, "Chroma removed the folder itself: chroma-core/chroma#5259 is fixed"
    with Index(IndexConfig(path=path), embedder=text_hash_embedder) as ix:
        assert segment_folders(path) == segments(path) and len(segments(path)) == 1
        assert ix.collection.count() == len(CORPUS)
        backup_index(ix, tmp_path / "backup")
    assert segment_folders(tmp_path / "backup") == segments(path)


def test_an_index_folder_that_lost_its_vectors_is_refused_until_a_reindex_embeds_them_again(
    tmp_path, text_hash_embedder
):
    """Probe 34g F3: an index folder whose `chroma/` was lost (left out of a backup) was opened as an
    empty collection, and every search fell back to keywords without a word. Now each opening refuses
    it naming the folder, the counts and `inlet reindex`, which embeds the catalog's chunks again; so
    is one whose HNSW folder Chroma recorded writing is missing (Chroma rebuilt only the last writes)."""
    path = tmp_path / "ix"
    config = IndexConfig(path=path)
    with Index(config, embedder=text_hash_embedder) as ix:
        ix.apply(CORPUS, generation=1)
        chunks = ix.collection.count()
    (segment,) = segments(path)
    db = sqlite3.connect(path / "chroma" / "chroma.sqlite3")  # as Chroma records an HNSW index it wrote out
    with db:
        db.execute("INSERT OR REPLACE INTO max_seq_id (segment_id, seq_id) VALUES (?, ?)", (segment, chunks))
    db.close()
    shutil.move(path / "chroma" / segment, tmp_path / "elsewhere")
    with pytest.raises(VectorsLost, match=f"holds no folder {segment} .*although the catalog holds {chunks} chunks"):
        Index(config, embedder=text_hash_embedder)
    shutil.rmtree(path / "chroma")
    with pytest.raises(VectorsLost) as lost:
        Index(config, embedder=text_hash_embedder)
    said = str(lost.value)
    assert f"{path / 'chroma'}" in said and "no collection inlet_chunks" in said and "inlet reindex" in said
    from click.testing import CliRunner

    from inlet.cli import cli

    settings = tmp_path / "config.toml"
    settings.write_text(f'[index]\npath = "{path}"\nbackend = "{text_hash_embedder.backend}"\n')
    status = CliRunner().invoke(cli, ["status", "--config", str(settings)])
    assert status.exit_code == 1 and "no collection inlet_chunks" in status.output, status.output
    assert "inlet reindex" in status.output
    with Index(config, embedder=text_hash_embedder, reindexing=True) as ix:
        assert run_reindex(ix).switched
    with Index(config, embedder=text_hash_embedder) as ix:
        assert ix.collection.count() == chunks
    assert CliRunner().invoke(cli, ["status", "--config", str(settings)]).exit_code == 0
