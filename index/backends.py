"""Embedding backends: the sentence-transformers model in torch, or exported to ONNX Runtime.

sentence-transformers' own ONNX backend (`backend="onnx"`) needs optimum-onnx, whose releases
require transformers < 4.58 while sentence-transformers 6 requires transformers >= 5: the two
cannot be installed together. So inlet exports the loaded sentence-transformers model itself
(`torch.onnx.export` of the whole module chain: transformer, pooling, normalisation) and, for
`onnx-int8`, quantises the weights with ONNX Runtime's dynamic int8 quantisation (per channel).

Before quantisation the graph goes through ONNX Runtime's transformer optimizer, which fuses each
layer's GELU with its bias into one kernel. LayerNorm and its residual add are left apart, here and
in the session's own optimizations: ONNX Runtime's fused `SkipLayerNormalization` kernel took 29% of
int8's time, and plain `Add` + `LayerNormalization` embed 1.3x the chunks per CPU second with the
same closeness to torch (benchmarks/README.md, issue 29). Attention is left unfused: its int8 form
(`QAttention`) cost retrieval quality (export 2: first-set hybrid nDCG@10 0.019 under torch's; see
benchmarks/README.md), while the per-channel int8 MatMuls keep it. The export runs the model with
eager attention (the same arithmetic as torch's default SDPA kernel), the graph the optimizer knows.

The export is made once per model, offline, from the local model folder, into a user cache dir
(`$INLET_CACHE_DIR`, else `$XDG_CACHE_HOME/inlet`, else `~/.cache/inlet`) keyed by the model files and
the exporter's versions, and reused by every process. Each file is written under a temporary name
and renamed into place, so processes exporting at the same time never read a partial file. Making
the export logs one WARNING first (what it is, where, that it happens once): it is the first
command's silent ~20 s and its ~1.4 GB peak of memory.

Running an export needs only ONNX Runtime and the `tokenizers` package: beside the graph the cache
holds the model's own fast tokenizer (`tokenizer.json`, saved from the loaded model) and its input
window and dimension (`model.json`). torch and sentence-transformers are imported only to make the
export, once, and for the `torch` backend: importing them costs a CLI process seconds of CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inlet.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
DEVICES = ("cpu", "cuda", "auto")
DEFAULT_BACKEND = "onnx-int8"  # benchmarks/README.md: the fastest backend that keeps retrieval quality
EXPORT_VERSION = 4  # bump when the exported graph changes: old cache entries are then ignored
# (2: eager attention, fused by ONNX Runtime's BERT optimizer before int8;
# 3: the same without attention fusion; 4: nor LayerNorm with its residual);
# not in the index fingerprint: see `fingerprint` for why
ONNX_OPSET = 17
UNFUSED = ["SkipLayerNormFusion"]  # ONNX Runtime's session optimizations left out (module docstring)
# Largest cosine distance to torch's vector of the same text (tests/index/test_backends.py): ONNX fp32
# runs the same arithmetic; int8 rounds weights per channel and activations per batch (so a text's
# vector also moves slightly with its batch-mates), measured >= 0.98 similarity on Enron mail.
MAX_COSINE_DISTANCE = {"torch": 0.0, "onnx": 1e-4, "onnx-int8": 0.03}
# Tokens (padded) per ONNX Runtime forward pass. Its CPU attention kernel writes every score of a
# batch (batch x heads x tokens², 45 MB for 32 chunks of ~170 tokens) before the softmax reads them
# back, and the feed-forward layer's activations grow with the batch too: past a few hundred tokens
# they spill out of a core's L2 cache and the run is memory-bound. One or two ~170-token chunks per
# run embed 1.9x the chunks per CPU second of batches of 32 (int8; benchmarks/README.md, issue 17).
TOKENS_PER_RUN = 384
_export_lock = threading.Lock()


def resolve_device(device: str) -> str:
    """`auto` is CUDA when torch sees one, else the CPU; `cuda` without one is a configuration error."""
    _check_device(device)
    import torch

    has_cuda = bool(torch.cuda.is_available())
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "[index] key 'device': 'cuda' was asked for but torch sees no CUDA device "
            '(set device = "auto" or "cpu")'
        )
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"


def resolve_onnx_device(device: str) -> str:
    """The ONNX backends' device, from ONNX Runtime alone (no torch): `auto` is CUDA when this
    onnxruntime has its CUDA provider, else the CPU; `cuda` without it is a configuration error."""
    _check_device(device)
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "[index] key 'device': 'cuda' was asked for but this onnxruntime has no CUDA "
            'provider (install onnxruntime-gpu, set device = "cpu", or use backend = "torch")'
        )
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise ConfigError(f"[index] key 'device': {device!r} is not one of {', '.join(DEVICES)}")


def cache_dir() -> Path:
    """Where exported models are kept (shared by every index and process of this user)."""
    explicit = os.environ.get("INLET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inlet"


def model_key(model_path: str) -> str:
    """A short hash naming one model folder's files and the exporter: a changed model or a new
    torch/ONNX Runtime gets a fresh export instead of a stale one. The versions come from the
    installed packages' metadata, so checking the cache imports neither."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}|{_version('torch')}|{_version('onnxruntime')}".encode())
    root = Path(model_path)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "onnx" not in p.relative_to(root).parts):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # no torch: only exports made elsewhere with none can match
        return "-"


@dataclass(frozen=True)
class OnnxExport:
    """One cached export: what the ONNX backends run, without the model's Python objects."""

    model: Path  # the graph (fp32, or int8 when quantised)
    tokenizer: Path  # the model's fast tokenizer, as sentence-transformers loaded it
    max_length: int  # tokens per text, special tokens included (longer texts are truncated)
    dimension: int

    def load_tokenizer(self, truncate: bool = True) -> Any:
        """A fresh `tokenizers.Tokenizer` (one per user: a tokenizer is not shared across threads):
        truncating to the model's window for embedding, or not at all for counting tokens. The
        saved file's own padding and truncation settings (left by its last call) are reset."""
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.tokenizer))
        tokenizer.no_padding()
        if truncate:
            tokenizer.enable_truncation(self.max_length)
        else:
            tokenizer.no_truncation()
        return tokenizer


def onnx_export(model_path: str, quantized: bool, load_model: Callable[[], Any]) -> OnnxExport:
    """The cached export of `model_path`, made now if the cache lacks it: only then is the
    sentence-transformers model loaded (`load_model`)."""
    folder = cache_dir() / "onnx" / f"{Path(model_path).name}-{model_key(model_path)}"
    fp32, tokenizer, meta = folder / "model.onnx", folder / "tokenizer.json", folder / "model.json"
    target = folder / "model-int8.onnx" if quantized else fp32
    if not (target.exists() and tokenizer.exists() and meta.exists()):
        with _export_lock:  # threads of one process export once; other processes are safe by rename
            _make(load_model, fp32, target, tokenizer, meta)
    facts = json.loads(meta.read_text())
    return OnnxExport(
        model=target, tokenizer=tokenizer, max_length=int(facts["max_length"]), dimension=int(facts["dimension"])
    )


def _make(load_model: Callable[[], Any], fp32: Path, target: Path, tokenizer: Path, meta: Path) -> None:
    """Whichever of the export's files are missing (an older cache may hold only the graphs)."""
    st_model: Any = None

    def model() -> Any:
        nonlocal st_model
        if st_model is None:
            st_model = load_model()
        return st_model

    if not (fp32.exists() and target.exists()):
        # Seen at the default log level: the command is otherwise silent for ~20 s, and the export
        # needs ~1.4 GB of memory where every later command fits in ~250 MB (docs/getting-started.md).
        log.warning(
            "preparing the embedding model for this machine (ONNX export%s into %s): done once, "
            "takes about 20 s and 1.4 GB of memory",
            " + int8 quantisation" if target != fp32 else "",
            target.parent,
        )
    if not fp32.exists():
        _atomic(fp32, lambda tmp: _export(model(), tmp))
    if target != fp32 and not target.exists():
        _atomic(target, lambda tmp: _quantize(fp32, tmp))
    if not tokenizer.exists():
        _atomic(tokenizer, lambda tmp: model().tokenizer.backend_tokenizer.save(str(tmp)))
    if not meta.exists():
        facts = {"max_length": int(model().max_seq_length), "dimension": int(model().get_embedding_dimension())}
        _atomic(meta, lambda tmp: tmp.write_text(json.dumps(facts)))


def _atomic(target: Path, write: Any) -> None:
    import time

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    started = time.perf_counter()
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s in %.1f s", target, time.perf_counter() - started)


def _traceable(st_model: Any, names: list[str]) -> Any:
    """The sentence-transformers module chain as a function of positional tensors (what the
    tracer needs), returning the sentence embedding."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = st_model

        def forward(self, *tensors: Any) -> Any:
            return self.inner(dict(zip(names, tensors)))["sentence_embedding"]

    return Wrapper().eval()


def _export(st_model: Any, dest: Path) -> None:
    """The traced model, then fused by ONNX Runtime's BERT optimizer (models it does not know as
    BERT-like keep the plain graph: fusion is a speed-up, never needed for the vectors)."""
    with _workspace(dest.parent) as work:
        raw = work / "model.onnx"
        _trace(st_model, raw)
        _fuse(st_model, raw, dest)


@contextmanager
def _workspace(near: Path) -> Iterator[Path]:
    """A folder of this export's own beside `near`: ONNX Runtime's tools write working files
    beside their input (`model-inferred.onnx`), under names two processes exporting at once share."""
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=near))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _trace(st_model: Any, dest: Path) -> None:
    import torch

    sample = st_model.tokenizer(
        ["an example sentence", "a second, longer example sentence for shapes"], padding=True, return_tensors="pt"
    )
    names = list(sample.keys())
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes["sentence_embedding"] = {0: "batch"}
    cpu_model = st_model.to("cpu")
    transformer: Any = getattr(cpu_model[0], "auto_model", None)
    attention = getattr(getattr(transformer, "config", None), "_attn_implementation", None)
    if attention is not None:
        transformer.set_attn_implementation("eager")  # the graph the optimizer below knows
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on a graph it exports correctly (tested)
            torch.onnx.export(
                _traceable(cpu_model, names),
                tuple(sample[n] for n in names),
                str(dest),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
    finally:
        if attention is not None:
            transformer.set_attn_implementation(attention)


def _fuse(st_model: Any, source: Path, dest: Path) -> None:
    import shutil

    config: Any = getattr(getattr(st_model[0], "auto_model", None), "config", None)
    if getattr(config, "model_type", None) not in ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert"):
        shutil.copyfile(source, dest)
        return
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_attention = False  # int8 `QAttention` lost retrieval quality (benchmarks/README.md)
    options.enable_skip_layer_norm = False  # slower than Add + LayerNormalization (module docstring)
    fused = optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=1,
        optimization_options=options,
    )
    log.info("ONNX fusion: %s", {k: v for k, v in fused.get_fused_operator_statistics().items() if v})
    fused.save_model_to_file(str(dest))


class _QuietRoot(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _quantize(source: Path, dest: Path) -> None:
    """Dynamic int8 weights, one scale per output channel: per-tensor scales lose too much of
    MiniLM (cosine to torch as low as 0.44 in a trial; per channel >= 0.98)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _QuietRoot()
    logging.getLogger().addFilter(quiet)  # ONNX Runtime logs an advisory on the root logger
    try:
        with _workspace(dest.parent) as work:
            own = work / source.name
            os.link(source, own)  # the quantizer's working files go beside this name, not the cache's
            # the fused operators are ONNX Runtime's own, which shape inference does not type: their
            # outputs are float32, as `DefaultTensorType` says
            quantize_dynamic(
                str(own),
                str(dest),
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        logging.getLogger().removeFilter(quiet)


class OnnxEncoder:
    """Runs an exported model with ONNX Runtime; tokenisation is the sentence-transformers
    model's own fast tokenizer (saved with the export, run by `tokenizers`), so the inputs
    (truncation included) are exactly what torch would see. Each encoder has its own tokenizer.

    `workers` > 1 runs that many forward passes at once, each on one thread (the session is
    made with one intra-op thread; ONNX Runtime's `run` may be called from several threads).
    The runs are small (`TOKENS_PER_RUN`), and splitting one small run over two threads joins
    them after every operator: one run per core does not wait, and a core that another process
    takes slows one run instead of stalling both (benchmarks/README.md, embedding).
    """

    def __init__(
        self, export: OnnxExport, device: str, threads: int = 0, spinning: bool = True, workers: int = 1
    ) -> None:
        import onnxruntime as ort

        self.tokenizer = export.load_tokenizer()
        self.dimension = export.dimension
        self.workers = workers if device == "cpu" else 1
        self._pool: ThreadPoolExecutor | None = None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self.workers > 1 else threads  # 0: one per physical core
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of layers: nothing to run beside
        options.log_severity_level = 3
        if not spinning:  # idle intra-op threads sleep instead of spinning (they burn a core others need)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(
                    "[index] device is CUDA but this onnxruntime has no CUDA provider "
                    '(install onnxruntime-gpu, or use backend = "torch")'
                )
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(
            str(export.model), options, providers=providers, disabled_optimizers=UNFUSED
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str], batch_size: int) -> "np.ndarray":
        """Unit vectors. The texts are tokenised once, all together, longest first, and run in
        batches of at most `TOKENS_PER_RUN` padded tokens (at least one text, at most `batch_size`),
        so each batch pads only to its own longest text and stays in cache."""
        import numpy as np

        ids = self._ids(texts)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        parts = []
        start = 0
        while start < len(order):
            size = max(1, min(batch_size, TOKENS_PER_RUN // len(ids[order[start]])))
            parts.append(order[start : start + size])
            start += size
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for part, vectors in zip(parts, self._map(lambda part: self._run([ids[i] for i in part]), parts)):
            out[part] = vectors
        return out

    def _map(self, run: Callable[[list[int]], "np.ndarray"], parts: list[list[int]]) -> Iterable["np.ndarray"]:
        if self.workers <= 1 or len(parts) <= 1:
            return map(run, parts)
        if self._pool is None:  # made by the first bulk call; its threads end with the process
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="inlet-onnx")
        return self._pool.map(run, parts)

    def encode_short(self, texts: Sequence[str]) -> "np.ndarray":
        """One forward pass over `texts` as given."""
        return self._run(self._ids(texts))

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def _run(self, ids: list[list[int]]) -> "np.ndarray":
        import numpy as np

        width = max(len(i) for i in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)  # padding: masked out, any id will do
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        given = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}
        vectors = self.session.run(None, {name: given[name] for name in self.inputs})[0]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
