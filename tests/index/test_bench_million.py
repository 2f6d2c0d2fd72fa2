"""benchmarks/bench_million.py measures what it says: its recall truth is the exact top 10 over every
chunk (and over those the benchmark user may see), and its corpus is deterministic, clustered and
permissioned as the documents say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from inlet.connectors.model import principals_for

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_million.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_million", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(bench):
    m = bench.model()
    return m, [bench.batch(m, n, 1500) for n in range(3)]


def test_the_truth_kept_batch_by_batch_is_the_exact_top_ten(bench, corpus):
    m, batches = corpus
    _, qvecs = bench.queries(m, 40)
    truth = bench.Truth(qvecs)
    ids: list[str] = []
    for docs, vecs, visible in batches:
        chunk_ids = [f"{d.id}#{n}" for d, texts in docs for n in range(len(texts))]
        truth.add(chunk_ids, vecs, visible)
        ids += chunk_ids
    everything = np.concatenate([v for _, v, _ in batches])
    seen = np.concatenate([s for _, _, s in batches])
    sims = qvecs @ everything.T
    for i in range(len(qvecs)):
        assert set(truth.ids["all"][i]) == {ids[j] for j in np.argsort(-sims[i])[:10]}
        allowed = np.where(seen, sims[i], -9.0)
        assert set(truth.ids["acl"][i]) == {ids[j] for j in np.argsort(-allowed)[:10]}


def test_the_corpus_is_deterministic_clustered_and_its_acl_flags_follow_the_principals(bench, corpus):
    m, batches = corpus
    docs, vecs, visible = batches[1]
    again_docs, again_vecs, _ = bench.batch(m, 1, 1500)
    assert [d.id for d, _ in docs] == [d.id for d, _ in again_docs]
    assert np.array_equal(vecs, again_vecs)
    assert len(vecs) == 1500 == sum(len(t) for _, t in docs)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    user = set(principals_for(bench.BENCH_USER) or ())
    flags = [bool(user & set(d.acl.principals())) for d, texts in docs for _ in texts]
    assert flags == visible.tolist()
    assert 0.4 < visible.mean() < 0.95  # the ACL filter has work to do, and leaves most
    # Clustered, not uniform: a chunk's nearest other chunk is far closer than a random pair.
    sims = vecs[:300] @ vecs.T
    np.fill_diagonal(sims[:, :300], -1.0)
    assert np.median(sims.max(axis=1)) > np.median(sims) + 0.3
