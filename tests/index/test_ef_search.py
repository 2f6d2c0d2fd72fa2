"""`[index] ef_search` reaches the Chroma collection, new or existing, and changes what a dense query finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inlet.config import IndexConfig, parse_config
from inlet.errors import ConfigError

# Run in fresh processes: Chroma reads ef_search when it loads a collection's HNSW index, once per
# process. Random unit vectors in 384 dimensions are hard for HNSW: a narrow search misses many of
# the true nearest neighbours, a wide one finds (nearly) all of them.
PROBE = r"""
import json, sys
from pathlib import Path
import numpy as np
from inlet.index import vectors

path, mode, ef = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(3)
points = rng.standard_normal((3000, 384)).astype(np.float32)
points /= np.linalg.norm(points, axis=1, keepdims=True)
collection = vectors.open_collection(vectors.connect(path), ef_search=ef)
if mode == "build":
    for start in range(0, len(points), 500):
        collection.add(ids=[str(i) for i in range(start, start + 500)], embeddings=points[start:start + 500])
    sys.exit(0)
queries = rng.standard_normal((40, 384)).astype(np.float32)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
found = collection.query(query_embeddings=queries, n_results=10, include=[])["ids"]
truth = [{str(i) for i in np.argsort(-(points @ q))[:10]} for q in queries]
recall = float(np.mean([len(set(ids) & t) / 10 for ids, t in zip(found, truth)]))
print(json.dumps({"recall": recall, "ef_search": collection.configuration_json["hnsw"]["ef_search"]}))
"""


def probe(path, mode: str, ef: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), mode, str(ef)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1]) if mode == "query" else {}


def test_ef_search_is_applied_to_an_existing_collection_and_changes_recall(tmp_path):
    probe(tmp_path, "build", 100)
    narrow = probe(tmp_path, "query", 10)
    wide = probe(tmp_path, "query", 500)
    narrow_again = probe(tmp_path, "query", 10)
    assert (narrow["ef_search"], wide["ef_search"]) == (10, 500)
    assert wide["recall"] >= 0.95
    assert narrow["recall"] < wide["recall"] - 0.2
    assert narrow_again["recall"] == narrow["recall"]  # set back down, not just raised once


def test_the_configured_ef_search_reaches_a_new_index(tmp_path):
    from inlet.index.store import Index

    with Index(IndexConfig(path=tmp_path / "ix", ef_search=37)) as index:
        assert index.collection.configuration_json["hnsw"]["ef_search"] == 37
    with Index(IndexConfig(path=tmp_path / "ix")) as index:  # the default, re-applied on open
        assert index.collection.configuration_json["hnsw"]["ef_search"] == 200


def test_a_bad_ef_search_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="ef_search"):
        parse_config({"index": {"ef_search": 0}, "sources": []})
