"""The query benchmarks measure what they say: `bench_server.py`'s server serves the synthetic
sources it indexed (a source left out of the config is not served, so every answer would be empty),
and `synthetic.build` stamps the index with the backend a benchmark then opens it with."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from inlet.config import IndexConfig, parse_config
from inlet.errors import EmbeddingMismatchError
from inlet.index.store import Index

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import `synthetic` as a sibling
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_load_tests_server_config_names_every_synthetic_source(tmp_path):
    import tomllib

    bench, synthetic = _module("bench_server"), _module("synthetic")
    text = bench.config_text(tmp_path / "ix", 18484, tmp_path / "empty")
    settings = parse_config(tomllib.loads(text))
    assert {s.name for s in settings.sources} == set(synthetic.SOURCES)
    built = {d.source for docs, _ in synthetic.batches(40, size=40) for d in docs}
    assert built == set(synthetic.SOURCES)


def test_a_synthetic_index_opens_with_the_backend_it_was_built_for(tmp_path, text_hash_embedder):
    synthetic = _module("synthetic")
    synthetic.build(tmp_path / "ix", 8, backend="torch")
    Index(IndexConfig(path=tmp_path / "ix", backend="torch")).close()  # as `bench_index.py query --backend torch`
    with pytest.raises(EmbeddingMismatchError, match="backend 'torch'"):  # stamped torch, not the default
        Index(IndexConfig(path=tmp_path / "ix"), embedder=text_hash_embedder).close()


def test_every_labelled_answer_is_a_document_of_the_sandbox_corpus():
    """The natural-question labels name documents by id; the sandbox seeds its data the same way
    every time, so each id must be one it gives (a change to the seeding that renumbers documents,
    as Drive's did, would otherwise count every such answer as a miss, or stop the benchmark)."""
    import json

    from inlet.sandbox.sample import sample_workspace

    bench = _module("quality_natural")
    known = bench.sandbox_ids(sample_workspace())
    sets = sorted(BENCHMARKS.glob("quality_natural*.json"))
    assert len(sets) >= 6
    for path in sets:
        labelled = json.loads(path.read_text())["queries"]
        assert sum(len(q["answers"]) for q in labelled) > 0
        assert bench.unknown_answers(labelled, known) == [], path.name
    assert bench.unknown_answers([{"answers": ["sandbox-drive:gone", "sandbox-drive:gone"]}], known) == [
        "sandbox-drive:gone"
    ]
