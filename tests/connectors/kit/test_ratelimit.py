"""The kit's token bucket: a burst at once, then the rate; shared fairly by threads."""

from __future__ import annotations

import threading

from inlet.connectors.kit import Buckets, TokenBucket
from inlet.connectors.kit.retry import waits_end_when
from inlet.errors import RetriableError


class Clock:
    """A clock that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)


def test_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, burst=3, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]  # 3 at once, then one every 1/2 s, queued in order
    clock.now += 10  # a long idle time refills at most `burst` tokens
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_take_sleeps_what_it_reserved_and_zero_rate_is_unlimited() -> None:
    clock = Clock()
    bucket = TokenBucket(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.take()
    assert clock.sleeps == [0.25, 0.5] and bucket.waited == 0.75
    free = TokenBucket(0.0, clock=clock, sleep=clock.sleep)
    assert [free.take() for _ in range(100)] == [0.0] * 100


def test_threads_never_share_a_slot() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, burst=1, clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(round(w, 6) for w in waits) == [round(n / 10, 6) for n in range(100)]  # 100 distinct slots


def test_buckets_are_per_key() -> None:
    clock = Clock()
    buckets = Buckets({"history": 1.0, "users": 2.0}, clock=clock, sleep=clock.sleep)
    assert [
        buckets.take("history"),
        buckets.take("users"),
        buckets.take("history"),
        buckets.take("users"),
        buckets.take("unpaced"),
    ] == [0.0, 0.0, 1.0, 0.5, 0.0]
    assert buckets.waited == 1.5


def test_a_budget_caps_every_window_however_bursty() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, burst=5, budget=6, window=10.0, clock=clock, sleep=clock.sleep)
    at = [clock.now + bucket.reserve() for _ in range(14)]
    assert at[:5] == [100.0] * 5 and at[5] == 101.0  # the burst, then the rate
    assert at[6] == 110.0  # six in ten seconds: the seventh waits for the first
    assert all(at[i + 6] - at[i] >= 10.0 for i in range(len(at) - 6))
    assert at == sorted(at)  # still granted in asking order


def test_a_stop_ends_a_pacing_wait_and_the_call_gives_up() -> None:
    bucket = TokenBucket(1 / 600, burst=1)  # the second call would wait ten minutes
    bucket.take()
    stop = threading.Event()
    outcome: list[BaseException] = []

    def call() -> None:
        with waits_end_when(stop.is_set):
            try:
                bucket.take()
            except RetriableError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    stop.set()
    worker.join(timeout=30)  # a poll every STOP_POLL seconds sees the stop; without it: 600 s
    assert not worker.is_alive()
    assert len(outcome) == 1 and "stopped" in str(outcome[0])


def test_a_paced_call_counts_in_the_budget_window_from_when_it_finished() -> None:
    # The service counts a call when it arrives: a call that left late or travelled long must not
    # let the one a window after its grant reach the service inside its window (a 429).
    clock = Clock()
    buckets = Buckets({"m": 10.0}, bursts={"m": 2}, budgets={"m": 2}, window=10.0, clock=clock, sleep=clock.sleep)
    with buckets.paced("m"):
        clock.now += 3.0  # the first call takes three seconds to come back
    with buckets.paced("m"):
        pass
    with buckets.paced("m") as waited:
        pass
    assert waited == 10.0  # ten seconds from when the first call finished (103), not from its grant (100)
    assert buckets.take("m") == 10.0  # and the fourth, a window after the second, which finished at 103 too
