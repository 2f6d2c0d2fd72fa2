"""`inlet migrate`: a folder index copied into PostgreSQL + a Chroma server and back, with its
vectors (not re-embedded), ACLs, checkpoints and runs; resumable; the source left as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inlet.config import IndexConfig, Settings
from inlet.index.search import SearchRequest, search
from inlet.storage import open_backend
from inlet.index.store import Index
from inlet.migrate import migrate
from tests.index.test_pg_storage import QUERIES, corpus, pg_config  # noqa: F401  (pg_config: a fixture)


def settings(index: IndexConfig) -> Settings:
    return Settings(index=index)


def answers(config: IndexConfig, embedder) -> list[tuple[list[float], list[str]]]:
    """Per query: the result scores, and the results scoring above the last (the synthetic corpus
    has exact ties, which either index may break its own way at the cut)."""
    with Index(config, embedder=embedder) as index:
        out = []
        for q in QUERIES:
            for user in (None, "user1@example.com"):
                for mode in ("hybrid", "lexical"):
                    request = SearchRequest(q, k=5, user=user, recency_half_life_days=0, mode=mode)
                    hits = [(h.chunk_id, round(h.score, 3)) for h in search(index, request)[0]]
                    cut = hits[-1][1] if hits else 0.0
                    out.append(([s for _, s in hits], sorted(c for c, s in hits if s > cut)))
        return out


def vectors(config: IndexConfig, embedder, ids: list[str]) -> np.ndarray:
    with Index(config, embedder=embedder) as index:
        got = index.collection.get(ids=ids, include=["embeddings"])
        order = {cid: n for n, cid in enumerate(got["ids"])}
        return np.array([got["embeddings"][order[cid]] for cid in ids])


def test_folder_to_postgres_and_back(tmp_path: Path, pg_config: IndexConfig, embedder) -> None:  # noqa: F811
    folder, back = IndexConfig(path=tmp_path / "folder"), IndexConfig(path=tmp_path / "back")
    with Index(folder, embedder=embedder) as index:
        index.apply(corpus(), generation=1)
    state = open_backend(folder).state()
    source = state.source("s")
    source.checkpoint, source.phase, source.generation = {"files": ["a"]}, "incremental", 1
    state.save_source(source)
    run = state.start_run("s", "backfill")
    run.outcome = "ok"
    state.finish_run(run)
    state.close()
    before = answers(folder, embedder)

    first = migrate(settings(folder), settings(pg_config))
    assert first.copied == 40 and first.skipped == 0 and first.counts == {"s": (30, 30), "t": (10, 10)}
    again = migrate(settings(folder), settings(pg_config))  # resumable: nothing left to copy
    assert again.copied == 0 and again.skipped == 40
    assert answers(pg_config, embedder) == before

    migrate(settings(pg_config), settings(back))
    assert answers(back, embedder) == before == answers(folder, embedder)  # the source is untouched
    ids = [f"s:{n}#0" for n in range(30)]
    assert np.allclose(vectors(back, embedder, ids), vectors(folder, embedder, ids), atol=1e-6)  # copied
    copied = open_backend(back).state()
    try:
        assert copied.source("s").checkpoint == {"files": ["a"]} and copied.source("s").phase == "incremental"
        assert [(r.kind, r.outcome) for r in copied.runs("s")] == [("backfill", "ok")]
    finally:
        copied.close()


def test_the_target_takes_the_source_models_record(tmp_path: Path, pg_config: IndexConfig, embedder) -> None:  # noqa: F811
    """Torch vectors copied into a database first opened with another backend: the database's record
    says torch (so its replicas still configured with the other are told to reindex, not served
    mixed vectors)."""
    from inlet.errors import EmbeddingMismatchError
    from inlet.index.embedding import Embedder

    torch = embedder if embedder.backend == "torch" else Embedder(backend="torch")
    int8 = embedder if embedder.backend == "onnx-int8" else Embedder(backend="onnx-int8")
    folder = IndexConfig(path=tmp_path / "folder", backend="torch")
    with Index(folder, embedder=torch) as index:
        index.apply(corpus()[:5], generation=1)
    target = pg_config.model_copy(update={"backend": "onnx-int8"})
    with Index(target, embedder=int8) as index:  # the empty database records onnx-int8
        assert index.record.backend == "onnx-int8"
    assert migrate(settings(folder), settings(target.model_copy(update={"backend": "torch"}))).copied == 5
    with Index(target.model_copy(update={"backend": "torch"}), embedder=torch) as index:
        assert index.record.backend == "torch" and index.collection.count() == 5
    with pytest.raises(EmbeddingMismatchError, match="backend 'torch'"):
        Index(target, embedder=int8)


def test_a_target_naming_another_model_or_backend_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    """The copy keeps the source's vectors: with another `[index]` backend every command on it
    failed (exit 2) after a migration that said it had copied everything."""
    from inlet.errors import ConfigError

    source = Settings(index=IndexConfig(path=tmp_path / "index", backend="onnx"), file=tmp_path / "config.toml")
    target = Settings(index=IndexConfig(path=tmp_path / "copy"), file=tmp_path / "copy.toml")
    with pytest.raises(ConfigError) as caught:
        migrate(source, target)
    message = str(caught.value)
    assert message.startswith(f"{source.file}: [index] backend is 'onnx', but {target.file} names 'onnx-int8'")
    assert f'Set backend = "onnx" in the [index] table of {target.file}' in message and "model is" not in message
    assert caught.value.exit_code == 2 and not (tmp_path / "copy").exists() and not (tmp_path / "index").exists()
    other = target.model_copy(update={"index": IndexConfig(path=tmp_path / "copy", model="x", backend="onnx")})
    with pytest.raises(ConfigError, match="\\[index\\] model is 'all-MiniLM-L6-v2', but .* names 'x'"):
        migrate(source, other)
