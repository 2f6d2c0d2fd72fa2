"""Each embedding backend loads offline from the packaged model and agrees with torch's vectors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from inlet.errors import ConfigError
from inlet.index.backends import BACKENDS, MAX_COSINE_DISTANCE, cache_dir, onnx_export, resolve_device
from inlet.index.embedding import Embedder, resolve_model

TEXTS = [
    "gas pipeline contract",
    "Who approved the west desk budget?",
    "é",
    "capacity " * 600,  # longer than the model's window: truncated alike
    "Phillip, the curve shift file is attached. Let me know if the west desk numbers look off. " * 3,
]


@pytest.fixture(scope="module")
def models(embedder: Embedder) -> dict[str, Embedder]:
    """One embedder per backend (the session's default one reused), all loaded offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    return {b: embedder if b == embedder.backend else Embedder(backend=b) for b in BACKENDS}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_backend_vectors_are_within_the_documented_distance_of_torch(models, backend):
    """The ONNX path (ONNX Runtime + `tokenizers`, no torch) against sentence-transformers in torch:
    fp32 within cosine 1e-4 (similarity >= 0.9999), int8 within its documented rounding."""
    reference = models["torch"].encode(TEXTS)
    vectors = models[backend].encode(TEXTS)
    assert vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    distance = 1.0 - (vectors * reference).sum(axis=1)
    assert distance.max() <= MAX_COSINE_DISTANCE[backend], distance
    assert models[backend].model_path == models["torch"].model_path  # the packaged model, not a download


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_path_gives_the_corpus_vectors(models, backend):
    corpus = models[backend].encode(TEXTS)
    queries = np.vstack([models[backend].encode_query(t) for t in TEXTS])
    distance = 1.0 - (queries * corpus).sum(axis=1)
    assert distance.max() <= max(MAX_COSINE_DISTANCE[backend], 1e-5), distance


def test_onnx_exports_are_cached_once_for_every_process(models):
    models["onnx-int8"].encode(["load"])
    files = sorted(p.name for p in cache_dir().rglob("*.onnx"))
    assert files == ["model-int8.onnx", "model.onnx"]
    assert not list(cache_dir().rglob("*.tmp"))  # written under a temporary name, renamed


def test_device_auto_follows_torch_and_cuda_without_one_is_a_config_error():
    import torch

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
        return
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        resolve_device("cuda")


def test_an_int8_query_vector_does_not_depend_on_the_queries_batched_with_it(models):
    """Concurrent queries share a batch (`QueryBatcher`); int8 quantises each forward pass's
    activations with one scale, so each query of a batch runs its own pass: the same vector alone
    or beside another user's query."""
    import numpy as np

    int8 = models["onnx-int8"]
    query = "gas prices in california"
    alone = int8._encode_short([query])[0]
    beside = int8._encode_short([query, "pipeline capacity and storage in the Permian basin, winter 2001 outlook"])[0]
    assert np.array_equal(alone, beside)
    assert np.array_equal(alone, int8.encode_query(query))


def test_an_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="'backend'"):
        Embedder(backend="tensorrt")


def test_the_export_fuses_gelu_only_before_int8(models):
    """GELU runs as ONNX Runtime's fused kernel; LayerNorm stays apart from its residual add (the
    fused kernel was slower: EXPORT_VERSION 4) and attention stays plain MatMuls, which int8
    quantises per channel (its fused int8 form lost retrieval quality: EXPORT_VERSION 3)."""
    import onnx

    models["onnx-int8"].encode(["load"])
    folder = next(cache_dir().rglob("model-int8.onnx")).parent
    ops = {
        n: {node.op_type for node in onnx.load(str(folder / n), load_external_data=False).graph.node}
        for n in ("model.onnx", "model-int8.onnx")
    }
    assert {"LayerNormalization", "BiasGelu"} <= ops["model.onnx"]
    assert not {"SkipLayerNormalization", "Attention"} & ops["model.onnx"]
    assert "QAttention" not in ops["model-int8.onnx"]
    assert ops["model-int8.onnx"] & {"MatMulInteger", "DynamicQuantizeMatMul"}


HEAVY = ("torch", "sentence_transformers", "transformers")

PROBE = """
import json, sys
from inlet.index.embedding import Embedder
for backend in ("onnx", "onnx-int8"):
    e = Embedder(backend=backend)
    e.encode(["a corpus text", "another"]); e.encode_query("a query"); e.count_tokens(["count me"])
    e.max_tokens, e.dimension
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def test_onnx_backends_run_without_torch_once_exported(models):
    """With the export cached, a process embeds corpora and queries and counts tokens with ONNX
    Runtime and `tokenizers` alone: torch and sentence-transformers cost a CLI seconds to import."""
    for backend in ("onnx", "onnx-int8"):
        models[backend].encode(["export"])  # both exports in the cache
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
        timeout=300,
    ).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_onnx_token_counts_are_the_models_own(models):
    """Chunk budgets count with the export's tokenizer exactly as with the model's (chunk
    boundaries do not depend on the backend)."""
    texts = [t for t in TEXTS] + ["  spaced\ttext\n", "naïve café — 東京", ""]
    assert models["onnx-int8"].count_tokens(texts) == models["torch"].count_tokens(texts)
    assert models["onnx-int8"].max_tokens == models["torch"].max_tokens
    assert models["onnx-int8"].dimension == models["torch"].dimension


def test_an_older_cache_with_graphs_only_is_completed_without_a_new_export(models, tmp_path, monkeypatch):
    """A cache made before the tokenizer and the model's facts were kept beside the graphs: the
    model is loaded once to add them; the graphs are kept, not exported again."""
    from inlet.index.embedding import _load

    models["onnx-int8"].encode(["export"])
    shutil.copytree(cache_dir(), tmp_path / "cache")
    monkeypatch.setenv("INLET_CACHE_DIR", str(tmp_path / "cache"))
    folder = next(cache_dir().rglob("model-int8.onnx")).parent
    (folder / "tokenizer.json").unlink()
    (folder / "model.json").unlink()
    graphs = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    loads: list[str] = []

    def load() -> object:
        loads.append("loaded")
        return _load(resolve_model("all-MiniLM-L6-v2"), "cpu")

    export = onnx_export(resolve_model("all-MiniLM-L6-v2"), quantized=True, load_model=load)
    again = onnx_export(resolve_model("all-MiniLM-L6-v2"), quantized=True, load_model=load)
    assert loads == ["loaded"] and export == again
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")} == graphs
    assert (export.max_length, export.dimension) == (models["torch"].max_tokens, models["torch"].dimension)
    assert (
        export.load_tokenizer().encode("gas pipeline").ids
        == models["torch"]._counting_tokenizer()("gas pipeline", truncation=True)["input_ids"]
    )


def test_making_the_export_says_so_once_before_it_starts(tmp_path, monkeypatch, caplog):
    """The first command after install exports the model (~20 s, ~1.4 GB): one WARNING (shown at the
    CLI's default level) says what and where before the model is even loaded; a cached export says
    nothing."""
    import logging

    monkeypatch.setenv("INLET_CACHE_DIR", str(tmp_path / "cache"))

    class Stop(Exception):
        pass

    def load() -> object:
        raise Stop  # the export's work starts here: what was logged by now is what a user sees first

    with caplog.at_level(logging.WARNING, logger="inlet.index.backends"), pytest.raises(Stop):
        onnx_export(resolve_model("all-MiniLM-L6-v2"), quantized=True, load_model=load)
    notes = [r for r in caplog.records if r.levelno == logging.WARNING and "once" in r.getMessage()]
    assert len(notes) == 1 and str(tmp_path / "cache") in notes[0].getMessage()


def test_a_cached_export_is_used_without_a_notice(embedder, caplog):
    import logging

    embedder.encode(["export"])
    with caplog.at_level(logging.WARNING, logger="inlet.index.backends"):
        onnx_export(resolve_model("all-MiniLM-L6-v2"), quantized=True, load_model=lambda: None)
    assert not caplog.records
