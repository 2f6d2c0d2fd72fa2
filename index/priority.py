"""Queries first: bulk embedding (backfills, syncs) yields to query embedding in the same process.

`inlet daemon --serve` embeds a backfill's chunks and the searches' queries with one model on the
same cores. Without an order, a query waits behind a whole batch of a few hundred chunks (seconds
on two cores), and with eight clients searching, queries arrive faster than a batch ends. So bulk
embedding runs in small turns (`BULK_TURN` chunks, a fraction of a second), and before each turn
it waits while queries are queued or being embedded: a query waits for at most the turn in hand.

The wait is bounded, so a steady stream of queries cannot starve a backfill: a turn waits at most
`YIELD_SHARE` of the time the previous turn took to embed, which keeps the backfill at
1 / (1 + YIELD_SHARE) of its speed or better as far as waiting goes (benchmarks/bench_responsive.py
measures the whole effect under load). A process that embeds no queries never waits.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

BULK_TURN = 32  # chunks embedded between two looks at the query queue
YIELD_SHARE = 0.25  # a turn waits for queries at most this share of the previous turn's time
FIRST_WAIT = 0.1  # seconds the first turn may wait, before a turn's time is known
BULK_LINGER = 2.0  # seconds after its last turn that bulk embedding still counts as running
# (a backfill between two batches: fetching, chunking, writing)


class QueryFirst:
    """Counts queries waiting for or in a forward pass; bulk turns wait (bounded) while any are."""

    def __init__(self, share: float = YIELD_SHARE) -> None:
        self.share = share
        self._pending = 0
        self._idle = threading.Condition()
        self.waited = 0.0  # seconds bulk turns spent waiting for queries (tests, benchmarks)
        self._bulk = 0  # bulk encodes in progress
        self._bulk_ended = -float("inf")  # when the last one ended (monotonic)

    def arrive(self, n: int = 1) -> None:
        """`n` queries were queued for embedding."""
        with self._idle:
            self._pending += n

    def leave(self, n: int = 1) -> None:
        """`n` queries have their vectors."""
        with self._idle:
            self._pending = max(0, self._pending - n)
            if not self._pending:
                self._idle.notify_all()

    @property
    def pending(self) -> int:
        return self._pending

    def bulk_started(self) -> None:
        with self._idle:
            self._bulk += 1

    def bulk_ended(self) -> None:
        with self._idle:
            self._bulk -= 1
            self._bulk_ended = time.monotonic()

    @property
    def bulk_active(self) -> bool:
        """Whether bulk embedding runs in this process now or ran within `BULK_LINGER` seconds."""
        return self._bulk > 0 or time.monotonic() - self._bulk_ended < BULK_LINGER

    def wait_turn(self, limit: float) -> float:
        """Wait until no query is pending or `limit` seconds passed; returns the seconds waited."""
        started = time.monotonic()
        with self._idle:
            while self._pending and (left := limit - (time.monotonic() - started)) > 0:
                self._idle.wait(left)
        waited = time.monotonic() - started
        self.waited += waited
        return waited


def in_turns(
    texts: Sequence[str],
    encode: Callable[[list[str]], "np.ndarray"],
    gate: QueryFirst,
    turn: int | None = None,
    on_turn: Callable[[int], None] | None = None,
) -> "np.ndarray":
    """`encode(texts)` in turns of `turn` (default `BULK_TURN`) texts, longest first (so each turn
    pads little), waiting for pending queries before each turn; `on_turn(n)` after each turn of `n`
    (progress, and where a stop may end it by raising); the vectors come back in the order of `texts`."""
    import numpy as np

    if not texts:
        return encode([])
    turn = turn or BULK_TURN
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: Any = None
    limit = FIRST_WAIT
    gate.bulk_started()
    try:
        for start in range(0, len(order), turn):
            part = order[start : start + turn]
            gate.wait_turn(limit)
            began = time.monotonic()
            vectors = encode([texts[i] for i in part])
            limit = gate.share * (time.monotonic() - began)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
            out[part] = vectors
            if on_turn is not None:
                on_turn(len(part))
    finally:
        gate.bulk_ended()
    return out


SEARCH_SHARE = 0.7  # while bulk embedding runs, searches are in progress at most this share of the time
SEARCH_MAX_WAIT = 1.0  # seconds a search waits for its turn at most: past that it runs anyway
SEARCH_MAX_PAUSE = 0.25  # seconds the pauses ahead of the last waiting search add up to at most


class SearchBudget:
    """While bulk embedding runs in this process, searches run one at a time and take turns with idle
    time, so searching fills at most `share` of the wall time; otherwise they run freely.

    Clients that search without pause take whatever CPU they are given: eight of them kept both
    cores busy and a backfill beside them ran at a third of its speed (issue #16). Queries still go
    first in the model (`QueryFirst`), but their number per second is bounded here: after a search
    that took t seconds, the next starts t * (1 - share) / share later at the earliest. Waiting
    searches start in arrival order, and none waits more than `max_wait`, so the latency this adds
    is bounded whatever the number of clients (they then share the cores as without a budget).
    With many waiting, the pause shrinks so the pauses ahead of the last add up to `max_pause` at
    most: the share gives way before the latency target does (p50 <= 300 ms with eight clients).
    """

    def __init__(
        self,
        gate: QueryFirst,
        share: float = SEARCH_SHARE,
        max_wait: float = SEARCH_MAX_WAIT,
        max_pause: float = SEARCH_MAX_PAUSE,
    ) -> None:
        self.gate = gate
        self.share = share
        self.max_wait = max_wait
        self.max_pause = max_pause
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # tickets of waiting searches, oldest first
        self._running = 0
        self._free_at = 0.0  # monotonic time the next search may start
        self.paced = 0  # searches admitted through the budget (tests, metrics)
        self.waited = 0.0  # seconds they waited in all

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Run the body as one search: at once when no bulk embedding runs, else in its turn."""
        if not self.gate.bulk_active:
            yield
            return
        self._wait_turn()
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                now = time.monotonic()
                pause = min((now - started) * (1 - self.share) / self.share, self.max_pause / max(1, len(self._queue)))
                self._free_at = max(self._free_at, now) + pause
                self._cond.notify_all()

    def _wait_turn(self) -> None:
        ticket = object()
        arrived = time.monotonic()
        deadline = arrived + self.max_wait
        with self._cond:
            self._queue.append(ticket)
            while (now := time.monotonic()) < deadline:
                if self._queue[0] is ticket and not self._running and now >= self._free_at:
                    break
                self._cond.wait(
                    min(deadline, max(self._free_at, now + 0.001)) - now
                    if self._queue[0] is ticket and not self._running
                    else deadline - now
                )
            self._queue.remove(ticket)
            self._running += 1
            self.paced += 1
            self.waited += time.monotonic() - arrived
            self._cond.notify_all()  # the next in line may now watch the clock
