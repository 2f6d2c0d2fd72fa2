"""Shared fixtures: a live sandbox per test (its workspace is mutated by tests), temp dirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inlet.sandbox.server import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb
