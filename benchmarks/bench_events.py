"""Event-to-searchable latency per service, change events vs polling, against the sandbox.

Run by hand: `python benchmarks/bench_events.py [--changes 200] [--whole-changes 50] [--poll-changes 20]
[--poll-every 5s] [--services slack,outlook,google_drive] [--bursts 3 --burst 12 --burst-rate 4]`.

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
- Slack bursts (`--bursts`, 0: none): Slack's real tiers (`pace_scale` 1, the sandbox enforcing
  them too), bursts of `--burst` changes at `--burst-rate` a second (new messages, thread replies,
  edits, deletions of the previous burst's messages), each timed from the mutation until its thread
  document has (or, deleted, no longer has) it; twice in one run: "before" rebuilds the old path
  (every message event re-reads the channel's info, members and recent history; one-call bucket
  per method, new for every run; people looked up again by every run), "after" is this code
  (the thread from the event payload plus at most one `conversations.replies`; the burst-tolerant
  pacer shared by the source's runs). 429s from the sandbox are counted.
Beside each row: the p50/p99 of the runs' own durations (from the state database), so a tail can
be told apart (a slow run, or time before the run: delivery, debounce, a run in flight), and the
service API calls per run (the sandbox's count), where a scoped run and a whole-source one differ.
"""

from __future__ import annotations

import argparse
from collections import Counter
import os
import random
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from inlet.config import parse_config
from inlet.connectors import slack as slack_connector
from inlet.connectors import slack_client
from inlet.connectors.kit import Buckets
from inlet.connectors.slack_events import split_container
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
API = {"slack": "slack:*", "outlook": "graph:*", "google_drive": "drive:*"}  # the sandbox's call counters
NARROW: dict[str, dict[str, Any]] = {
    "slack": {"pace_scale": 1e6},  # every channel the bot is in (6)
    "outlook": {"mailboxes": [BADEER], "folders": ["*"]},  # 6 folders (Junk, Deleted, Drafts left out)
    "google_drive": {"max_requests_per_second": 0},
}
EVENTS: dict[str, tuple[dict[str, Any], str | None]] = {  # keys that turn events on; the hook URL key
    "slack": ({"events": True, "app_token_env": "INLET_SANDBOX_SLACK_APP_TOKEN"}, None),
    "outlook": ({}, "notifications_url"),
    "google_drive": ({}, "push_url"),
}
Change = Callable[[Sandbox, str], str]  # makes a change holding `token`; returns the document id


def change_slack(sb: Sandbox, token: str) -> str:
    return f"sandbox-slack:{OPS}:{ss.post_message(sb.ws, OPS, f'{token} status update from the on-call')}"


def change_outlook(sb: Sandbox, token: str) -> str:
    return f"sandbox-mail:{graph.add_message(sb.ws, BADEER, 'inbox', token, f'{token} nomination').id}"


def change_drive(sb: Sandbox, token: str) -> str:
    folder = next(f.id for f in sb.ws.drive.files.values() if f.name == "Operations")
    f = ds.add_file(
        sb.ws,
        f"{token}.txt",
        "text/plain",
        f"{token} runbook",
        parent=folder,
        owner="a@example.com",
        permissions=[ds.anyone_permission()],
    )
    return f"sandbox-drive:{f.id}"


CHANGES: dict[str, Change] = {"slack": change_slack, "outlook": change_outlook, "google_drive": change_drive}


class WholeSourceDaemon(Daemon):
    """The baseline: every event syncs its whole source, as before scoped runs."""

    def event_sync(self, name: str, scope: frozenset[str] | None = None) -> RunResult | None:
        return super().event_sync(name, None)


class BeforeDaemon(Daemon):
    """The old Slack event path: a message event reads its whole channel (the payload is ignored)."""

    def event_sync(self, name: str, scope: frozenset[str] | None = None) -> RunResult | None:
        bare = frozenset(split_container(c)[0] for c in scope) if scope is not None else None
        return super().event_sync(name, bare)


@contextmanager
def old_pacing() -> Iterator[None]:
    """The old pacer and people lookups: a one-call bucket per method, new for every run (so no
    burst, and no budget shared by runs), and no people remembered from earlier runs."""

    def fresh(source: str, base_url: str, per_minute: Any, scale: float = 1.0) -> Buckets:
        return Buckets({m: r * scale / 60.0 / slack_client.HEADROOM for m, r in per_minute.items()})

    saved = slack_client.shared_pacing, slack_connector._met
    slack_client.shared_pacing = fresh
    slack_connector._met = lambda conn: {}
    try:
        yield
    finally:
        slack_client.shared_pacing, slack_connector._met = saved


@contextmanager
def daemon_for(
    service: str,
    events: bool,
    every: str,
    embedder: Embedder,
    tmp: Path,
    whole: bool = False,
    extra: dict[str, Any] | None = None,
    daemon_class: type[Daemon] | None = None,
) -> Iterator[tuple[Sandbox, Index, StateStore]]:
    """A backfilled source and its running daemon (serving its API when the service needs webhooks)."""
    with Sandbox() as sb:
        text, env = sb.config(tmp / "index")
        raw = tomllib.loads(text)
        keys, hook = EVENTS[service] if events else ({}, None)
        raw["sources"] = [
            {**s, **NARROW[service], **keys, **(extra or {}), "every": every}
            for s in raw["sources"]
            if s["name"] == SOURCES[service]
        ]
        raw["daemon"], raw["server"] = {"jitter": "0s"}, {"host": "127.0.0.1", "port": 0}
        plan = ApiPlan.bind(parse_config(raw)) if hook else None
        if plan and hook:
            raw["sources"][0][hook] = f"{plan.url}/hooks/{service}/{SOURCES[service]}"
        settings = parse_config(raw)
        unpaced = raw | {"sources": [{**raw["sources"][0], **NARROW[service]}]}  # the backfill: not what is timed
        with Index(settings.index, embedder) as index:
            state = open_backend(settings).state()
            env = {**os.environ, **env}  # the sandbox's tokens
            Engine(parse_config(unpaced), index, state, env=env).run(SOURCES[service], "sync")
            engine = Engine(settings, index, state, env=env)
            daemon = (daemon_class or (WholeSourceDaemon if whole else Daemon))(
                settings, engine, hooks=plan is not None
            )
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
            time.sleep(random.uniform(0, phase))  # a uniform phase against the polling interval
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


MISSED: Counter[str] = Counter()  # changes of a burst not seen within the timeout, by kind


def burst_latencies(
    sb: Sandbox, index: Index, bursts: int, size: int, rate: float, timeout: float = 60.0
) -> list[float]:
    """Bursts of Slack changes at `rate` a second; each timed until its document shows it."""
    person = sb.ws.user_by_email("hamza@example.com")  # a member of the channel
    user = person.id if person else None
    out: list[float] = []
    spares: list[str] = []  # single messages of earlier bursts, for the deletions
    for b in range(bursts):
        pending: dict[int, tuple[float, str, str, bool]] = {}  # i -> (started, doc id, token, present)
        top = top_text = ""
        for i in range(size):
            token = f"zqburst{b:02d}x{i:03d}x{random.randrange(10**6):06d}"
            kind = i % 5  # new message, reply to it, edit of it, a single message, deletion of an older one
            started = time.monotonic()
            if kind == 1 and top:
                ss.post_message(sb.ws, OPS, f"{token} reply with details", user, thread_ts=top)
                pending[i] = (started, f"sandbox-slack:{OPS}:{top}", token, True)
            elif kind == 2 and top:  # the edit keeps the words before it: each change stays findable
                top_text = f"{top_text} {token} edited"
                ss.edit_message(sb.ws, OPS, top, top_text)
                pending[i] = (started, f"sandbox-slack:{OPS}:{top}", token, True)
            elif kind == 4 and len(spares) > 2:
                gone = spares.pop(0)
                ss.delete_message(sb.ws, OPS, gone)
                pending[i] = (started, f"sandbox-slack:{OPS}:{gone}", "", False)
            else:
                ts = ss.post_message(sb.ws, OPS, f"{token} status from the on-call", user)
                if kind == 0:
                    top, top_text = ts, f"{token} status from the on-call"
                else:
                    spares.append(ts)
                pending[i] = (started, f"sandbox-slack:{OPS}:{ts}", token, True)
            next_at = started + 1.0 / rate
            while time.monotonic() < next_at or (i == size - 1 and pending):
                for j, (t0, doc_id, tok, present) in list(pending.items()):
                    doc = index.catalog.document(doc_id)
                    if (doc is not None and tok in doc.text) if present else doc is None:
                        out.append(time.monotonic() - t0)
                        del pending[j]
                    elif time.monotonic() - t0 > timeout:
                        out.append(float("inf"))
                        MISSED[("new", "reply", "edit", "single", "deletion")[j % 5]] += 1
                        del pending[j]
                time.sleep(0.01)
        time.sleep(2.0)  # a pause between bursts
    return out


def run_seconds(state: StateStore, source: str) -> list[float]:
    """How long each run after the first (the backfill) took."""
    rows = state._exec(
        "SELECT finished_at - started_at FROM runs WHERE source = ? AND finished_at IS NOT NULL ORDER BY id", (source,)
    )
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
    parser.add_argument("--bursts", type=int, default=3, help="Slack bursts at the real tiers (0: none)")
    parser.add_argument("--burst", type=int, default=12, help="changes per burst")
    parser.add_argument("--burst-rate", type=float, default=4.0, help="changes a second within a burst")
    args = parser.parse_args()
    random.seed(7)
    embedder = Embedder()
    embedder.encode(["warm up"])
    poll_seconds = float(args.poll_every.rstrip("s"))
    print(
        f"{'service':<13} {'mode':<16} {'n':>4} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'run p50':>8} "
        f"{'run p99':>8} {'calls/run':>9}"
    )
    if args.bursts and "slack" in args.services.split(","):
        bursts(args, embedder)
    for service in args.services.split(","):
        for mode, events, every, n, phase in (
            ("events", True, "6h", args.changes, 0.0),
            ("events, whole", True, "6h", args.whole_changes, 0.0),
            (f"poll {args.poll_every}", False, args.poll_every, args.poll_changes, poll_seconds),
        ):
            if not n:
                continue
            whole = mode == "events, whole"
            with (
                tempfile.TemporaryDirectory() as tmp,
                daemon_for(service, events, every, embedder, Path(tmp), whole) as (sb, index, state),
            ):
                sb.faults.reset_counts()
                lat = latencies(service, sb, index, n, phase, timeout=max(30.0, 4 * poll_seconds))
                runs = run_seconds(state, SOURCES[service])
                calls = sb.faults.count(API[service]) / max(1, len(runs))
            print(
                f"{service:<13} {mode:<16} {n:>4} {statistics.median(lat):>7.2f} {pct(lat, 0.99):>7.2f} "
                f"{max(lat):>7.2f} {pct(runs, 0.5):>8.2f} {pct(runs, 0.99):>8.2f} {calls:>9.1f}",
                flush=True,
            )


def bursts(args: argparse.Namespace, embedder: Embedder) -> None:
    """The Slack burst rows, before and after, at the real tiers."""
    for mode in ("before", "after"):
        label = f"burst {args.burst}@{args.burst_rate:g}/s, {mode}"
        with (
            tempfile.TemporaryDirectory() as tmp,
            old_pacing() if mode == "before" else nullcontext(),
            daemon_for(
                "slack",
                True,
                "6h",
                embedder,
                Path(tmp),
                extra={"pace_scale": 1.0},
                daemon_class=BeforeDaemon if mode == "before" else Daemon,
            ) as (sb, index, state),
        ):
            ss.tier_limits(sb.faults)
            sb.faults.reset_counts()
            lat = burst_latencies(sb, index, args.bursts, args.burst, args.burst_rate)
            runs = run_seconds(state, SOURCES["slack"])
            calls = sb.faults.count("slack:*") / max(1, len(runs))
            throttled = sum(sb.faults.rejected.values())
            missed = ", ".join(f"{k} {n}" for k, n in sorted(MISSED.items())) or "none"
            MISSED.clear()
        print(
            f"{'slack':<13} {label:<16} {len(lat):>4} {statistics.median(lat):>7.2f} {pct(lat, 0.99):>7.2f} "
            f"{max(lat):>7.2f} {pct(runs, 0.5):>8.2f} {pct(runs, 0.99):>8.2f} {calls:>9.1f}  "
            f"runs {len(runs)}, 429s {throttled}, missed (60 s): {missed}",
            flush=True,
        )


if __name__ == "__main__":
    main()
