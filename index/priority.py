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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

BULK_TURN = 32        # chunks embedded between two looks at the query queue
YIELD_SHARE = 0.25    # a turn waits for queries at most this share of the previous turn's time
FIRST_WAIT = 0.1      # seconds the first turn may wait, before a turn's time is known


class QueryFirst:
    """Counts queries waiting for or in a forward pass; bulk turns wait (bounded) while any are."""

    def __init__(self, share: float = YIELD_SHARE) -> None:
        self.share = share
        self._pending = 0
        self._idle = threading.Condition()
        self.waited = 0.0   # seconds bulk turns spent waiting for queries (tests, benchmarks)

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

    def wait_turn(self, limit: float) -> float:
        """Wait until no query is pending or `limit` seconds passed; returns the seconds waited."""
        started = time.monotonic()
        with self._idle:
            while self._pending and (left := limit - (time.monotonic() - started)) > 0:
                self._idle.wait(left)
        waited = time.monotonic() - started
        self.waited += waited
        return waited


def in_turns(texts: Sequence[str], encode: Callable[[list[str]], "np.ndarray"], gate: QueryFirst,
             turn: int = BULK_TURN) -> "np.ndarray":
    """`encode(texts)` in turns of `turn` texts, longest first (so each turn pads little), waiting
    for pending queries before each turn; the vectors come back in the order of `texts`."""
    import numpy as np

    if not texts:
        return encode([])
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: Any = None
    limit = FIRST_WAIT
    for start in range(0, len(order), turn):
        part = order[start:start + turn]
        gate.wait_turn(limit)
        began = time.monotonic()
        vectors = encode([texts[i] for i in part])
        limit = gate.share * (time.monotonic() - began)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
        out[part] = vectors
    return out
