"""Search stays answered while `inlet daemon --serve` backfills (issue #16, item 5).

A real daemon process backfills two `files` sources, one visible to alice only and one to bob only,
committing every few files, while clients search as both users through its API. Every request must
be answered (no error, no timeout), answers must arrive while the backfill is part-way (between
commits: the catalog's document count rises between answers), and nobody sees the other's notes.
Latency figures belong to benchmarks/bench_responsive.py, not here.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from pathlib import Path

import httpx

from .test_daemon import Proc, wait_for

USERS = {"alice": "alice@example.com", "bob": "bob@example.com"}
FILES_EACH = 32
CLIENTS = 4
WORDS = "harbour lantern ledger invoice pipeline contract meeting budget forecast storage capacity".split()


def write_sources(root: Path) -> Path:
    for owner in USERS:
        folder = root / owner
        folder.mkdir()
        for n in range(FILES_EACH):
            words = " ".join(WORDS[(n * 5 + i * 3) % len(WORDS)] for i in range(60))
            (folder / f"note-{n:03d}.md").write_text(f"# {owner} note {n}\n\n{words} {owner}{n}\n")
    sources = "".join(
        f'[[sources]]\nname = "{owner}"\ntype = "files"\npath = "{owner}"\nevery = "1h"\n'
        f'users = ["{email}"]\ncheckpoint_every = 4\n\n'
        for owner, email in USERS.items()
    )
    config = root / "config.toml"
    config.write_text(f'[index]\npath = "index"\n[daemon]\njitter = "0s"\n[server]\nport = 0\n\n{sources}')
    return config


def documents(index: Path) -> int:
    if not (index / "catalog.db").exists():
        return 0
    db = sqlite3.connect(f"file:{index / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        db.close()


def backfilled(index: Path) -> bool:
    if not (index / "state.db").exists():
        return False
    db = sqlite3.connect(f"file:{index / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        phases = [row[0] for row in db.execute("SELECT phase FROM sources")]
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    return len(phases) == len(USERS) and all(p == "incremental" for p in phases)


def test_searches_are_answered_between_the_commits_of_a_backfill(tmp_path: Path) -> None:
    config = write_sources(tmp_path)
    index = tmp_path / "index"
    total = FILES_EACH * len(USERS)
    daemon = Proc(tmp_path, "daemon", "--serve", "--config", str(config), tag="daemon")
    failures: list[str] = []
    leaks: list[str] = []
    seen_counts: list[int] = []  # the catalog's document count right after each answer
    done = threading.Event()
    try:
        api_file = index / "daemon-api.json"
        api = json.loads(wait_for("the API", lambda: api_file.exists() and api_file.read_text(), daemon, 120))
        wait_for("the model", lambda: httpx.get(api["api_url"] + "/readyz", timeout=30).status_code == 200, daemon, 180)

        def client(n: int) -> None:
            owner = list(USERS)[n % len(USERS)]
            with httpx.Client(
                base_url=api["api_url"], timeout=60, headers={"Authorization": f"Bearer {api['agent_key']}"}
            ) as http:
                while not done.is_set():
                    query = f"{WORDS[n]} {WORDS[-n - 1]} {owner}{n}"
                    try:
                        response = http.post("/v1/search", json={"query": query, "user": USERS[owner], "k": 5})
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:300]}")
                        continue
                    seen_counts.append(documents(index))
                    leaks.extend(
                        r["doc_id"] for r in response.json()["results"] if not r["doc_id"].startswith(f"{owner}:")
                    )

        clients = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            wait_for("the backfill", lambda: backfilled(index), daemon, 300)
        finally:
            done.set()
            for thread in clients:
                thread.join(timeout=120)
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.stderr()[-3000:]
    assert not failures, failures[:5]
    assert not leaks, leaks[:5]
    assert documents(index) == total
    part_way = sorted({n for n in seen_counts if 0 < n < total})
    assert len(part_way) >= 2, f"answers only at document counts {sorted(set(seen_counts))}"
