"""Shared fixtures: a live sandbox per test (its workspace is mutated by tests), temp dirs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from inlet.sandbox.server import Sandbox


# ONNX exports go to one cache dir per test session (exported once, by the first test that needs
# one; subprocesses inherit it), unless the developer points INLET_CACHE_DIR at a kept one.
_OWN_CACHE = "INLET_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["INLET_CACHE_DIR"] = tempfile.mkdtemp(prefix="inlet-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_CACHE:
        shutil.rmtree(os.environ["INLET_CACHE_DIR"], ignore_errors=True)


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
    return model
