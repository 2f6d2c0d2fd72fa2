"""The kit's typed checkpoints: stored as plain dicts, older versions migrated or restarted cleanly."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from inlet.connectors.kit import CheckpointModel
from inlet.connectors.kit.checkpoint import Migration
from inlet.connectors.model import Checkpoint


class V1(CheckpointModel):
    cursor: str | None = None
    seen: dict[str, int] = {}


def _rename_cursor(data: dict[str, Any]) -> dict[str, Any]:
    return {"token": data.get("cursor"), "seen": data.get("seen", {})}


class V3(CheckpointModel):
    VERSION: ClassVar[int] = 3
    MIGRATIONS: ClassVar[dict[int, Migration]] = {1: _rename_cursor, 2: lambda d: {**d, "pages": len(d["seen"])}}
    token: str | None = None
    seen: dict[str, int] = {}
    pages: int = 0


def test_dump_is_a_plain_dict_with_a_version_and_loads_back() -> None:
    state = V1(cursor="c1", seen={"a": 1})
    assert state.dump() == {"cursor": "c1", "seen": {"a": 1}, "version": 1}
    assert state.checkpoint() == Checkpoint(state={"cursor": "c1", "seen": {"a": 1}, "version": 1})
    assert V1.load(state.dump(), source="s") == state


def test_a_stored_dict_without_version_is_version_one() -> None:
    assert V1.load({"cursor": "old", "seen": {"x": 2}}, source="s") == V1(cursor="old", seen={"x": 2})
    assert V1.load(None, source="s") is None


def test_an_older_version_is_migrated_step_by_step() -> None:
    migrated = V3.load({"cursor": "c9", "seen": {"a": 1, "b": 2}}, source="s")
    assert migrated == V3(token="c9", seen={"a": 1, "b": 2}, pages=2)
    assert V3.load({"token": "t", "seen": {}, "version": 2}, source="s") == V3(token="t", pages=0)


def test_what_cannot_be_vouched_for_restarts(caplog: pytest.LogCaptureFixture) -> None:
    class NoPath(CheckpointModel):
        VERSION: ClassVar[int] = 2
        token: str

    with caplog.at_level(logging.WARNING):
        assert NoPath.load({"token": "x"}, source="mail") is None  # no step from 1 to 2
        assert V1.load({"cursor": "c", "version": 7}, source="mail") is None  # newer than the code
        assert V1.load({"seen": "not a dict"}, source="mail") is None  # does not validate
    assert len(caplog.records) == 3 and all("source 'mail'" in r.getMessage() for r in caplog.records)
    assert "starting over" in caplog.records[0].getMessage()


def test_the_model_shares_nothing_with_the_stored_dict() -> None:
    class Nested(CheckpointModel):
        channels: dict[str, dict[str, Any]] = {}

    stored = {"channels": {"C1": {"threads": ["1.0"]}}}
    state = Nested.load(stored, source="s")
    assert state is not None
    state.channels["C1"]["threads"].append("2.0")
    dumped = state.dump()
    dumped["channels"]["C1"]["threads"].clear()
    assert stored == {"channels": {"C1": {"threads": ["1.0"]}}} and state.channels["C1"]["threads"] == ["1.0", "2.0"]
