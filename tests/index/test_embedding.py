"""Query embeddings: the fast path gives the corpus path's vectors; concurrent queries share a batch."""

import threading
from pathlib import Path

import numpy as np
import pytest

from inlet.index.backends import MAX_COSINE_DISTANCE
from inlet.index.embedding import QueryBatcher

QUERIES = ["gas pipeline contract", "Who approved the west desk budget?", "é", "capacity " * 600]


def test_query_vectors_equal_corpus_vectors(embedder):
    corpus = embedder.encode(QUERIES)
    queries = np.vstack([embedder.encode_query(q) for q in QUERIES])
    assert queries.shape == corpus.shape == (len(QUERIES), embedder.dimension)
    distance = 1.0 - (queries * corpus).sum(axis=1)  # long text truncated the same way; int8
    assert distance.max() <= max(MAX_COSINE_DISTANCE[embedder.backend], 1e-5)  # rounds per batch
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)


class RecordingEncoder:
    """Stands in for the model: records batch sizes; the first batch waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts):
        self.batches.append(list(texts))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(30)
        if "boom" in texts:
            raise RuntimeError("model failed")
        return np.array([[float(len(t)), 1.0] for t in texts])


def test_queries_waiting_together_share_one_forward_pass():
    encoder = RecordingEncoder()
    batcher = QueryBatcher(encoder)
    first = batcher.submit("a")
    assert encoder.entered.wait(30)  # the worker is busy with "a"
    waiting = [batcher.submit("x" * n) for n in range(2, 7)]
    encoder.release.set()
    assert first.result(30)[0] == 1.0
    assert [f.result(30)[0] for f in waiting] == [2.0, 3.0, 4.0, 5.0, 6.0]  # each caller its own vector
    assert [len(b) for b in encoder.batches] == [1, 5]


def test_a_failed_batch_fails_its_callers_and_later_queries_still_run():
    encoder = RecordingEncoder()
    batcher = QueryBatcher(encoder)
    first = batcher.submit("a")
    assert encoder.entered.wait(30)
    failing = [batcher.submit("boom"), batcher.submit("bb")]
    encoder.release.set()
    first.result(30)
    for future in failing:
        with pytest.raises(RuntimeError, match="model failed"):
            future.result(30)
    assert batcher.encode("ccc")[0] == 3.0


def test_an_idle_worker_exits_and_the_next_query_starts_another():
    encoder = RecordingEncoder()
    encoder.release.set()
    batcher = QueryBatcher(encoder)
    batcher.IDLE_EXIT = 0.01
    assert batcher.encode("aa")[0] == 2.0
    worker = batcher._worker
    assert worker is not None
    worker.join(30)  # exits once idle: it no longer pins the model
    assert not worker.is_alive()
    assert batcher.encode("bbb")[0] == 3.0  # a new worker serves the next query


@pytest.mark.parametrize(
    ("files", "lacking"),
    [
        ({}, "neither modules.json nor config.json"),
        ({"config.json": "{}"}, "no weights"),  # a sub-folder of a download (1_Pooling holds a config.json)
        ({"modules.json": "[]", "README.md": "x"}, "no weights"),
    ],
)
def test_a_model_folder_without_a_model_is_a_config_error_naming_the_key(tmp_path, files, lacking) -> None:
    """Refused when the configuration is used, not by the loader at the first embedding (a
    traceback after 20 s, every run)."""
    from inlet.errors import ConfigError
    from inlet.index.embedding import Embedder, resolve_model

    folder = tmp_path / "model"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(ConfigError, match=rf"\[index\] key 'model': the folder {folder} .*{lacking}"):
        resolve_model(str(folder))
    with pytest.raises(ConfigError, match=r"\[index\] key 'model'"):
        Embedder(str(folder))
    (folder / "sub").mkdir()
    (folder / "sub" / "model.safetensors").write_bytes(b"x")
    if files:  # weights beside modules.json or config.json (or in a module's folder): a model
        assert resolve_model(str(folder)) == str(folder)
    packaged = Path(resolve_model("all-MiniLM-L6-v2"))  # the packaged default passes the same check
    assert (packaged / "modules.json").is_file()
