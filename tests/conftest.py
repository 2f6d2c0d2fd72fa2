"""Shared fixtures: a live sandbox per test (its workspace is mutated by tests), temp dirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inlet.sandbox.server import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def embedder():
    """The real default model, loaded once per test session."""
    from inlet.index.embedding import Embedder

    model = Embedder()
    model.encode(["warm up"])
    return model
