"""Queries first (index/priority.py) and embedding from several threads at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from inlet.index.priority import QueryFirst, SearchBudget, in_turns


def fake_encode(calls: list[list[str]]):
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)

    return encode


def test_turns_keep_the_order_of_the_texts_and_are_bounded():
    texts = [f"text {'x' * (n * 7 % 23)} {n}" for n in range(70)]
    calls: list[list[str]] = []
    vectors = in_turns(texts, fake_encode(calls), QueryFirst(), turn=32)
    assert [len(c) for c in calls] == [32, 32, 6]
    assert vectors[:, 0].tolist() == [float(len(t)) for t in texts]
    assert in_turns([], fake_encode([]), QueryFirst()).shape[0] == 0


def test_a_turn_waits_for_pending_queries_until_they_leave():
    gate = QueryFirst()
    gate.arrive(2)
    waited = ThreadPoolExecutor(1).submit(gate.wait_turn, 30.0)
    gate.leave(1)
    assert not waited.done()  # one query still pending: still waiting
    gate.leave(1)
    assert waited.result(timeout=10) < 30.0


def test_a_turn_waits_at_most_its_limit_so_queries_cannot_starve_a_backfill():
    gate = QueryFirst()
    gate.arrive()  # a query that never leaves
    started = time.monotonic()
    calls: list[list[str]] = []
    in_turns([f"t{n}" for n in range(96)], fake_encode(calls), gate, turn=32)
    assert len(calls) == 3
    assert gate.waited > 0 and time.monotonic() - started < 5.0


def test_bulk_embedding_counts_as_running_while_it_embeds():
    gate = QueryFirst()
    assert not gate.bulk_active
    seen: list[bool] = []
    in_turns(["a", "b"], lambda texts: seen.append(gate.bulk_active) or np.ones((len(texts), 2)), gate)
    assert seen == [True] and gate.bulk_active  # and a little after (BULK_LINGER): between batches


def run_searches(budget: SearchBudget, clients: int, each: int, work: float) -> tuple[float, int]:
    """`clients` threads run `each` searches of `work` seconds (simulated work) through `budget`;
    returns the wall time and the most searches seen running at once."""
    running, most = [0], [0]
    lock = threading.Lock()

    def search() -> None:
        with budget.admit():
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(work)  # the search's work, not a synchronisation
            with lock:
                running[0] -= 1

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(search) for _ in range(clients * each)]:
            future.result(timeout=60)
    return time.monotonic() - started, most[0]


def test_without_bulk_embedding_searches_run_freely():
    budget = SearchBudget(QueryFirst(), share=0.1)
    _, most = run_searches(budget, clients=4, each=3, work=0.02)
    assert budget.paced == 0 and most > 1


def test_beside_bulk_embedding_searches_take_turns_within_their_share():
    gate = QueryFirst()
    gate.bulk_started()
    budget = SearchBudget(gate, share=0.5, max_wait=30.0)
    wall, most = run_searches(budget, clients=4, each=4, work=0.02)
    assert budget.paced == 16 and most == 1
    # 16 searches of 20 ms, each followed by 20 ms without a search: at least ~0.62 s in all
    assert wall >= 0.95 * 16 * 0.02 / 0.5 - 0.02


def test_a_search_waits_for_its_turn_at_most_max_wait():
    gate = QueryFirst()
    gate.bulk_started()
    budget = SearchBudget(gate, share=0.01, max_wait=0.3, max_pause=30.0)  # 20 ms of search: ~2 s pause
    run_searches(budget, clients=1, each=1, work=0.02)
    started = time.monotonic()
    run_searches(budget, clients=1, each=1, work=0.0)
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.9


def test_with_many_waiting_the_pauses_shrink_to_keep_latency_bounded():
    gate = QueryFirst()
    gate.bulk_started()
    budget = SearchBudget(gate, share=0.01, max_wait=30.0, max_pause=0.1)  # 2 s pauses unless many wait
    wall, most = run_searches(budget, clients=8, each=2, work=0.01)
    assert most == 1
    assert wall < 8.0  # 16 pauses of 2 s would take 32 s; with 7 waiting, each is ~0.1 / 7 s


def test_no_query_pending_means_no_wait():
    gate = QueryFirst()
    assert gate.wait_turn(30.0) < 1.0


def test_tokens_counted_and_queries_embedded_beside_a_bulk_encode(embedder):
    """The Hugging Face tokenizer is not thread-safe: a padded query batch beside token counting
    used to come back ragged (ValueError, a 500 under load). Every call must succeed and give
    what it gives alone, while a bulk encode runs a few rounds."""
    texts = ["word " * n for n in range(5, 400, 7)]
    counts = embedder.count_tokens(texts)
    queries = [f"query {n} " * (n + 1) for n in range(4)]
    alone = {q: embedder.encode_query(q) for q in queries}
    errors: list[BaseException] = []
    bulk_done = threading.Event()

    def loop(work) -> None:
        try:
            while not bulk_done.is_set():
                work()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def count() -> None:
        assert embedder.count_tokens(texts) == counts

    def query(q: str) -> None:
        assert float(np.dot(embedder.encode_query(q), alone[q])) > 0.97

    def bulk() -> None:
        try:
            for _ in range(3):
                embedder.encode(texts)
        finally:
            bulk_done.set()

    threads = [threading.Thread(target=bulk), threading.Thread(target=loop, args=(count,))]
    threads += [threading.Thread(target=loop, args=(lambda q=q: query(q),)) for q in queries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
