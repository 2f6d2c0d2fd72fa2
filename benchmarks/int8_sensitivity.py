"""Which of the model's linear layers lose most to int8: cosine of int8 variants to the fp32 export.

    .venv/bin/python benchmarks/int8_sensitivity.py [--data /work/shared/data/enron-mini] [--per-layer]

Unlabelled sample: 240 chunks of random enron-mini mails (the index's own chunker) and 120 mail
subjects (short, query-like). Reference: the fp32 ONNX export (within 1e-4 of torch). Each variant
is the export quantised as `onnx-int8` is (dynamic, per channel) with some weight MatMuls left in
fp32 (`nodes_to_exclude`), or with `reduce_range`. Printed per variant: mean cosine distance to
fp32 for chunks and for short texts, and the 5th percentile and minimum cosine. `--per-layer` adds
one variant per weight MatMul left in fp32 (leave-one-out: ~40 quantisations, ~5 min on one core).
Retrieval figures for the variants are in benchmarks/README.md (quality.py, quality_workplace.py).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from quality import load_mails

from inlet.index.backends import onnx_export
from inlet.index.chunking import chunk_text
from inlet.index.embedding import DEFAULT_MODEL, resolve_model


def sample(data: Path, tokenizer: Any) -> tuple[list[str], list[str]]:
    docs = load_mails(data)
    rng = random.Random(17)

    def count(texts: list[str]) -> list[int]:
        return [len(i) for i in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    chunks = [c.text for d in rng.sample(docs, 200) for c in chunk_text(d.text, count, 200, 32)]
    return rng.sample(chunks, min(240, len(chunks))), [d.title for d in rng.sample(docs, 150) if d.title][:120]


def embed(path: Path, inputs: list[dict[str, Any]]) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    rows = [session.run(None, {n: np.asarray(x[n], dtype=np.int64) for n in names})[0][0] for x in inputs]
    return np.array([r / np.linalg.norm(r) for r in rows])


def quantised(fp32: Path, inputs: list[dict[str, Any]], **options: Any) -> np.ndarray:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "int8.onnx"
        quantize_dynamic(
            str(fp32),
            str(dest),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            **options,
        )
        return embed(dest, inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/enron-mini"))
    parser.add_argument("--per-layer", action="store_true", help="leave each weight MatMul out in turn")
    args = parser.parse_args()
    import onnx
    from sentence_transformers import SentenceTransformer

    path = resolve_model(DEFAULT_MODEL)
    model = SentenceTransformer(path, device="cpu")
    fp32 = onnx_export(path, quantized=False, load_model=lambda: model).model
    chunks, short = sample(args.data, model.tokenizer)
    inputs = [model.tokenizer([t], truncation=True, max_length=model.max_seq_length) for t in chunks + short]
    reference = embed(fp32, inputs)
    graph = onnx.load(str(fp32)).graph
    weights = {i.name for i in graph.initializer}
    linear = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    produced_by = {out: n.op_type for n in graph.node for out in n.output}
    consumed_by = {name: n.op_type for n in graph.node for name in n.input}
    ffn_out = [n.name for n in linear if "Gelu" in produced_by.get(n.input[0], "")]  # fed by the GELU
    ffn_in = [n.name for n in linear if "Gelu" in consumed_by.get(n.output[0], "")]  # feeding it
    half = len(ffn_out) // 2
    variants: dict[str, dict[str, Any]] = {
        "all int8 (export 3)": {},
        "reduce_range": {"reduce_range": True},
        "FFN output projections of the first half of layers fp32": {"nodes_to_exclude": ffn_out[:half]},
        "every FFN output projection fp32": {"nodes_to_exclude": ffn_out},
        "FFN input and output projections of the first half fp32": {"nodes_to_exclude": ffn_out[:half] + ffn_in[:half]},
        "last layer fp32": {"nodes_to_exclude": [n.name for n in linear[-len(linear) // len(ffn_out) :]]},
    }
    if args.per_layer:
        variants.update({f"{n.name} fp32": {"nodes_to_exclude": [n.name]} for n in linear})
    print(f"{len(chunks)} chunks, {len(short)} subjects; cosine to fp32")
    print(f"{'variant':66} {'dist chunks':>11} {'dist short':>10} {'p5':>6} {'min':>6}")
    for name, options in variants.items():
        cos = (quantised(fp32, inputs, **options) * reference).sum(axis=1)
        print(
            f"{name:66} {1 - cos[: len(chunks)].mean():11.4f} {1 - cos[len(chunks) :].mean():10.4f} "
            f"{np.percentile(cos, 5):6.4f} {cos.min():6.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
