"""Shared fixtures: a live sandbox per test (its workspace is mutated by tests), temp dirs.

Every sandbox a test starts without a workspace of its own serves a fresh copy of the sample
workspace, seeded once per session (tests/workspaces.py).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import inlet.sandbox.server
from inlet.sandbox.server import Sandbox
from tests import workspaces


# ONNX exports go to one cache dir per test session (exported once, by the first test that needs
# one; subprocesses inherit it), unless the developer points INLET_CACHE_DIR at a kept one.
_OWN_CACHE = "INLET_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["INLET_CACHE_DIR"] = tempfile.mkdtemp(prefix="inlet-test-cache-")


inlet.sandbox.server.sample_workspace = workspaces.sample  # what `Sandbox()` serves when given no workspace


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_CACHE:
        shutil.rmtree(os.environ["INLET_CACHE_DIR"], ignore_errors=True)


def freeze_survivors() -> None:
    """Collect garbage, then move every surviving object out of the cyclic collector's reach.

    This process holds torch, transformers, Chroma and every test module: a full collection
    walked some 400k objects, about 1 s of CPU after the model loaded (several seconds on a busy
    machine), and every thread stood still meanwhile, a sandbox or API server answering a test
    included (a 5 s client timeout expired once in CI). Frozen objects are still freed by
    reference counting; only cycles among them are kept, for the rest of the session."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    freeze_survivors()
    for item in session.items:  # a slow check that runs beside the suite (tests/test_types.py)
        if isinstance(item, pytest.Function) and hasattr(item.module, "start_early"):
            item.module.start_early()
            break


@pytest.fixture(scope="module", autouse=True)
def _frozen_after_each_module() -> Iterator[None]:
    """What a module leaves alive (imports, caches, session fixtures) is frozen at its end, so
    the collections of the next module walk only the next module's objects."""
    yield
    freeze_survivors()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def embedder():
    """The real default model and backend, loaded (and exported, for ONNX) once per test session."""
    from inlet.index.embedding import Embedder

    model = Embedder()
    model.encode(["warm up"])
    freeze_survivors()  # the model's objects: long-lived
    return model


@pytest.fixture(scope="session")
def text_hash_embedder():
    """The real model's tokenizer (chunk boundaries are the real ones) with vectors made from a
    hash of each text: for tests of what gets stored, where ranking is not asked and embedding a
    whole sandbox would take a minute."""
    import hashlib

    import numpy as np

    from inlet.index.embedding import Embedder

    class TextHashEmbedder(Embedder):
        def _encode_bulk(self, texts: list[str]) -> np.ndarray:
            seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
            vectors = np.array(
                [np.random.default_rng(s).standard_normal(self.dimension) for s in seeds], dtype=np.float32
            ).reshape(len(texts), self.dimension)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    model = TextHashEmbedder()
    model.count_tokens(["warm up"])
    return model


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    """One real PostgreSQL server per test session (see tests/servers.py)."""
    import tempfile

    from tests.servers import postgres_server

    # Not under pytest's private (0700) temp root: the server may run as an unprivileged user.
    with tempfile.TemporaryDirectory(prefix="inlet-pg-") as folder, postgres_server(Path(folder)) as url:
        yield url


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory) -> Iterator[str]:
    """One real `chroma run` server per test session; tests keep apart by database or collection."""
    from tests.servers import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma")) as url:
        yield url


@pytest.fixture
def database_url(postgres_url, request) -> str:
    """A fresh database on the session's server, for one test."""
    import re

    from tests.servers import new_database

    return new_database(postgres_url, "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50])
