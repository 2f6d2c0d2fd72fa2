"""Items of several producers, each run in a worker thread, merged into one iterator.

Invariants:
- The items of one producer come out in the order it made them (producers interleave freely).
- A producer's exception is raised from the merged iterator, and every other producer is stopped.
- Closing the merged iterator early (the consumer stopped) stops every worker at its next item; the
  call returns once each has finished the item in hand, and producers not yet started never start.

For connectors whose containers have independent limits (Gmail's quota is per mailbox): reading
them side by side multiplies what a sync can read in a second.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class _End:
    """A producer is done."""


@dataclass
class _Raised:
    error: BaseException


_END = _End()


def merged(
    producers: Sequence[Callable[[], Iterator[T]]], workers: int, *, name: str = "fan-in", depth: int = 64
) -> Iterator[T]:
    """Run up to `workers` producers at once; yield their items as they come."""
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(produce: Callable[[], Iterator[T]]) -> None:
        if stop.is_set():
            return
        try:
            for item in produce():
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Raised(exc))
        finally:
            put(_END)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
    try:
        for produce in producers:
            pool.submit(contextvars.copy_context().run, run, produce)  # the caller's context (a run stopping)
        remaining = len(producers)
        while remaining:
            item = out.get()
            if item is _END:
                remaining -= 1
            elif isinstance(item, _Raised):
                raise item.error
            else:
                yield item
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
