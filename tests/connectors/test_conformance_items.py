"""The conformance suite fails a connector that yields something that is not an inlet item.

The engine fails such a run (a generator where `yield from` was meant, a checkpoint method not
called, a checkpoint's bare state): the suite must say so in a test of its own, and must not pass
it off as a sample without mid-pass checkpoints by skipping its resume test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from inlet.connectors import Checkpoint, Connector
from inlet.connectors.model import Item
from inlet.connectors.testing import ConformanceSuite, Runs, check_every_item_is_an_inlet_item
from tests.connectors.test_conformance_checks import Desk, DeskCase, DeskConfig, desk


class Slipping(Desk):
    """`Desk` with every checkpoint but the last yielded as `slip` makes it."""

    slip: Any = None

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        items = list(super().load(checkpoint, since=since))
        for n, item in enumerate(items):
            yield Slipping.slip(item) if isinstance(item, Checkpoint) and n < len(items) - 1 else item


class SlippingCase(DeskCase):
    def connector(self, spoiled: bool = False) -> Connector:
        return Slipping(DeskConfig(name=self.name, type="desk"), self.env)


def slipping(slip: Any) -> Runs:
    Slipping.slip = staticmethod(slip)
    case = desk()
    return Runs.of(SlippingCase(case.raw, case.env, bad_env=case.bad_env, api=True))


@pytest.mark.parametrize(
    ("slip", "named"),
    [
        (lambda cp: cp.model_copy, "yields, at item 1 (and 5 more), method ("),  # `state.checkpoint`, not called
        (lambda cp: cp.state, "yields, at item 1 (and 5 more), dict ({'seen': {'T-1'"),  # no `Checkpoint(...)`
        (lambda cp: iter([cp]), "`yield` written for `yield from`?"),
    ],
    ids=["method", "dict", "generator"],
)
def test_an_item_that_is_not_an_inlet_item_fails_its_check_naming_it(slip: Any, named: str) -> None:
    runs = slipping(slip)
    with pytest.raises(AssertionError) as caught:
        check_every_item_is_an_inlet_item(runs)
    assert "the first full pass" in str(caught.value) and named in str(caught.value), caught.value


def test_a_pass_whose_mid_pass_checkpoints_are_not_items_fails_the_resume_test_instead_of_skipping() -> None:
    """With its checkpoints yielded wrong, the pass has no checkpoint before its last: that is the
    bug, not a property of the sample."""
    runs = slipping(lambda cp: cp.state)
    with pytest.raises(AssertionError, match="not an inlet item"):
        try:
            ConformanceSuite().test_resuming_from_a_mid_pass_checkpoint_loses_nothing(runs)
        except pytest.skip.Exception as skipped:  # what the suite did before: reads as the sample's
            raise RuntimeError(f"skipped instead of failing: {skipped}") from None


def test_the_correct_connector_yields_only_items() -> None:
    check_every_item_is_an_inlet_item(Runs.of(desk()))
