"""Event-to-searchable latency per service, change events vs polling, against the sandbox.

Run by hand: `python benchmarks/bench_events.py [--changes 200] [--whole-changes 50] [--poll-changes 20]
[--poll-every 5s] [--services slack,outlook,google_drive]`.

For each service, one real daemon (real engine, index and model) over the sandbox source:
- events: schedule six hours away, change events on (Socket Mode; Graph subscriptions and Drive
  push channels to the daemon's own API); N changes made one after another, each timed from the
  mutation in the sandbox to the moment its document is in the index with its new text; each
  event runs a sync of the channel or folder it names (Drive: the changes feed);
- events, whole source (the baseline before scoped runs): the same, but every event syncs the
  whole source, as the schedule does (`WholeSourceDaemon` drops the scope);
- polling: events off, `every = --poll-every`; each change is made at a random phase of the interval
  (a uniform wait first), so the figure is what a schedule of that length gives. Latency under
  polling grows with the interval (about half of it at p50, all of it at p99): a 15-minute schedule
  gives ~450 s at p50 and ~900 s at p99.
Beside each row: the p50/p99 of the runs' own durations (from the state database), so a tail can
be told apart (a slow run, or time before the run: delivery, debounce, a run in flight), and the
service API calls per run (the sandbox's count), where a scoped run and a whole-source one differ.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inlet.config import parse_config
from inlet.index.embedding import Embedder
from inlet.index.store import Index
from inlet.sandbox import drive_state as ds
from inlet.sandbox import graph
from inlet.sandbox import slack as ss
from inlet.sandbox.server import Sandbox
from inlet.sync.daemon import Daemon
from inlet.server.daemon_api import ApiPlan
from inlet.sync.engine import Engine, RunResult
from inlet.storage import StateStore, open_backend

OPS, BADEER = "G0PRIVOPS1", "robert.badeer@enron.com"
SOURCES = {"slack": "sandbox-slack", "outlook": "sandbox-mail", "google_drive": "sandbox-drive"}
API = {"slack": "slack:*", "outlook": "graph:*", "google_drive": "drive:*"}   # the sandbox's call counters
NARROW: dict[str, dict[str, Any]] = {
    "slack": {"pace_scale": 1e6},                           # every channel the bot is in (6)
    "outlook": {"mailboxes": [BADEER], "folders": ["*"]},   # 6 folders (Junk, Deleted, Drafts left out)
    "google_drive": {"max_requests_per_second": 0},
}
EVENTS: dict[str, tuple[dict[str, Any], str | None]] = {   # keys that turn events on; the hook URL key
    "slack": ({"events": True, "app_token_env": "INLET_SANDBOX_SLACK_APP_TOKEN"}, None),
    "outlook": ({}, "notifications_url"),
    "google_drive": ({}, "push_url"),
}
Change = Callable[[Sandbox, str], str]   # makes a change holding `token`; returns the document id


def change_slack(sb: Sandbox, token: str) -> str:
    return f"sandbox-slack:{OPS}:{ss.post_message(sb.ws, OPS, f'{token} status update from the on-call')}"


def change_outlook(sb: Sandbox, token: str) -> str:
    return f"sandbox-mail:{graph.add_message(sb.ws, BADEER, 'inbox', token, f'{token} nomination').id}"


def change_drive(sb: Sandbox, token: str) -> str:
    folder = next(f.id for f in sb.ws.drive.files.values() if f.name == "Operations")
    f = ds.add_file(sb.ws, f"{token}.txt", "text/plain", f"{token} runbook", parent=folder, owner="a@example.com",
                    permissions=[ds.anyone_permission()])
    return f"sandbox-drive:{f.id}"


CHANGES: dict[str, Change] = {"slack": change_slack, "outlook": change_outlook, "google_drive": change_drive}


class WholeSourceDaemon(Daemon):
    """The baseline: every event syncs its whole source, as before scoped runs."""

    def event_sync(self, name: str, scope: frozenset[str] | None = None) -> RunResult | None:
        return super().event_sync(name, None)


@contextmanager
def daemon_for(service: str, events: bool, every: str, embedder: Embedder,
               tmp: Path, whole: bool = False) -> Iterator[tuple[Sandbox, Index, StateStore]]:
    """A backfilled source and its running daemon (serving its API when the service needs webhooks)."""
    with Sandbox() as sb:
        text, env = sb.config(tmp / "index")
        raw = tomllib.loads(text)
        keys, hook = EVENTS[service] if events else ({}, None)
        raw["sources"] = [{**s, **NARROW[service], **keys, "every": every}
                          for s in raw["sources"] if s["name"] == SOURCES[service]]
        raw["daemon"], raw["server"] = {"jitter": "0s"}, {"host": "127.0.0.1", "port": 0}
        plan = ApiPlan.bind(parse_config(raw)) if hook else None
        if plan and hook:
            raw["sources"][0][hook] = f"{plan.url}/hooks/{service}/{SOURCES[service]}"
        settings = parse_config(raw)
        with Index(settings.index, embedder) as index:
            state = open_backend(settings).state()
            engine = Engine(settings, index, state, env={**os.environ, **env})   # env: the sandbox's tokens
            engine.run(SOURCES[service], "sync")
            daemon = (WholeSourceDaemon if whole else Daemon)(settings, engine)
            api = plan.start(settings, index, state, daemon) if plan else None
            daemon.start(events=events)
            try:
                if events:
                    assert daemon.events is not None
                    deadline = time.monotonic() + 30
                    while not daemon.events.report(SOURCES[service])["live"] and time.monotonic() < deadline:
                        time.sleep(0.05)
                yield sb, index, state
            finally:
                daemon.shutdown(grace=10)
                if api:
                    api.stop()
                state.close()


def latencies(service: str, sb: Sandbox, index: Index, n: int, phase: float, timeout: float) -> list[float]:
    out = []
    for i in range(n):
        if phase:
            time.sleep(random.uniform(0, phase))   # a uniform phase against the polling interval
        token = f"zq{service[:2]}{i:04d}x{random.randrange(10**6):06d}"
        started = time.monotonic()
        doc_id = CHANGES[service](sb, token)
        while True:
            doc = index.catalog.document(doc_id)
            if doc is not None and token in doc.text:
                out.append(time.monotonic() - started)
                break
            if time.monotonic() - started > timeout:
                out.append(float("inf"))
                break
            time.sleep(0.01)
    return out


def run_seconds(state: StateStore, source: str) -> list[float]:
    """How long each run after the first (the backfill) took."""
    rows = state._exec("SELECT finished_at - started_at FROM runs WHERE source = ? AND finished_at IS NOT NULL "
                       "ORDER BY id", (source,))
    return [float(r[0]) for r in rows[1:]] or [float("nan")]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--whole-changes", type=int, default=50, help="changes for the whole-source row (0: none)")
    parser.add_argument("--poll-changes", type=int, default=20)
    parser.add_argument("--poll-every", default="5s")
    parser.add_argument("--services", default="slack,outlook,google_drive")
    args = parser.parse_args()
    random.seed(7)
    embedder = Embedder()
    embedder.encode(["warm up"])
    poll_seconds = float(args.poll_every.rstrip("s"))
    print(f"{'service':<13} {'mode':<16} {'n':>4} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'run p50':>8} "
          f"{'run p99':>8} {'calls/run':>9}")
    for service in args.services.split(","):
        for mode, events, every, n, phase in (
                ("events", True, "6h", args.changes, 0.0),
                ("events, whole", True, "6h", args.whole_changes, 0.0),
                (f"poll {args.poll_every}", False, args.poll_every, args.poll_changes, poll_seconds)):
            if not n:
                continue
            whole = mode == "events, whole"
            with tempfile.TemporaryDirectory() as tmp, \
                    daemon_for(service, events, every, embedder, Path(tmp), whole) as (sb, index, state):
                sb.faults.reset_counts()
                lat = latencies(service, sb, index, n, phase, timeout=max(30.0, 4 * poll_seconds))
                runs = run_seconds(state, SOURCES[service])
                calls = sb.faults.count(API[service]) / max(1, len(runs))
            print(f"{service:<13} {mode:<16} {n:>4} {statistics.median(lat):>7.2f} {pct(lat, 0.99):>7.2f} "
                  f"{max(lat):>7.2f} {pct(runs, 0.5):>8.2f} {pct(runs, 0.99):>8.2f} {calls:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
