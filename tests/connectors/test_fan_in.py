"""`fan_in.merged`: producers in worker threads, their items merged in per-producer order."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from inlet.connectors.fan_in import merged


def counting(tag: str, n: int, started: list[str] | None = None) -> Iterator[tuple[str, int]]:
    if started is not None:
        started.append(tag)
    for i in range(n):
        yield tag, i


def test_each_producers_items_keep_their_order() -> None:
    got = list(merged([lambda t=t: counting(t, 200) for t in "abcd"], workers=3))
    assert len(got) == 800
    for tag in "abcd":
        assert [i for t, i in got if t == tag] == list(range(200))


def test_a_producers_error_is_raised_and_the_others_stop() -> None:
    def failing() -> Iterator[tuple[str, int]]:
        yield "x", 0
        raise ValueError("mailbox broke")

    endless_stopped = threading.Event()

    def endless() -> Iterator[tuple[str, int]]:
        try:
            n = 0
            while True:
                yield "e", n
                n += 1
        finally:
            endless_stopped.set()

    with pytest.raises(ValueError, match="mailbox broke"):
        list(merged([endless, failing], workers=2, depth=4))
    assert endless_stopped.is_set()  # merged returned only after the endless producer stopped


def test_closing_early_stops_workers_and_never_starts_waiting_producers() -> None:
    started: list[str] = []
    items = merged([lambda t=t: counting(t, 10_000, started) for t in "abc"], workers=1, depth=2)
    assert next(items) == ("a", 0)
    items.close()
    assert started == ["a"] and not [t for t in threading.enumerate() if t.name.startswith("fan-in")]
