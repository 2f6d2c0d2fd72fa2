"""Each embedding backend loads offline from the packaged model and agrees with torch's vectors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from inlet.errors import ConfigError
from inlet.index.backends import BACKENDS, MAX_COSINE_DISTANCE, cache_dir, resolve_device
from inlet.index.embedding import Embedder

TEXTS = ["gas pipeline contract", "Who approved the west desk budget?", "é",
         "capacity " * 600,                       # longer than the model's window: truncated alike
         "Phillip, the curve shift file is attached. Let me know if the west desk numbers look off. " * 3]


@pytest.fixture(scope="module")
def models(embedder: Embedder) -> dict[str, Embedder]:
    """One embedder per backend (the session's default one reused), all loaded offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    return {b: embedder if b == embedder.backend else Embedder(backend=b) for b in BACKENDS}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_backend_vectors_are_within_the_documented_distance_of_torch(models, backend):
    reference = models["torch"].encode(TEXTS)
    vectors = models[backend].encode(TEXTS)
    assert vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    distance = 1.0 - (vectors * reference).sum(axis=1)
    assert distance.max() <= MAX_COSINE_DISTANCE[backend], distance
    assert models[backend].model_path == models["torch"].model_path   # the packaged model, not a download


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
    assert not list(cache_dir().rglob("*.tmp"))           # written under a temporary name, renamed


def test_device_auto_follows_torch_and_cuda_without_one_is_a_config_error():
    import torch

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
        return
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        resolve_device("cuda")


def test_an_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="'backend'"):
        Embedder(backend="tensorrt")


def test_the_export_is_fused_before_int8_with_attention_left_as_matmuls(models):
    """LayerNorm+residual and GELU run as ONNX Runtime's fused kernels; attention stays plain
    MatMuls, which int8 quantises per channel (its fused int8 form lost retrieval quality:
    EXPORT_VERSION 3)."""
    import onnx

    models["onnx-int8"].encode(["load"])
    folder = next(cache_dir().rglob("model-int8.onnx")).parent
    ops = {n: {node.op_type for node in onnx.load(str(folder / n), load_external_data=False).graph.node}
           for n in ("model.onnx", "model-int8.onnx")}
    assert {"SkipLayerNormalization", "BiasGelu"} <= ops["model.onnx"] and "Attention" not in ops["model.onnx"]
    assert "QAttention" not in ops["model-int8.onnx"]
    assert ops["model-int8.onnx"] & {"MatMulInteger", "DynamicQuantizeMatMul"}
