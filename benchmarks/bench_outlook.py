"""Outlook connector throughput against the sandbox (run by hand: `python benchmarks/bench_outlook.py`).

Prints messages/s of a full backfill of a generated mailbox set, Graph calls per message, the
checkpoint size, and what a no-change re-sync costs (one delta call per folder is the goal).
"""

from __future__ import annotations

import argparse
import json
import random
import time
import tomllib

from inlet.connectors.model import Checkpoint, Document
from inlet.connectors.outlook import OutlookConfig, OutlookConnector
from inlet.sandbox import graph
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=5)
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    started = time.perf_counter()
    ws = Workspace(rng=random.Random(0))
    for n in range(20):
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}")
    graph.seed_generated(ws, mailboxes=args.mailboxes, mails=args.mails)
    print(
        f"seeded {len(ws.mail.messages):,} messages in {args.mailboxes} mailboxes "
        f"in {time.perf_counter() - started:.1f}s"
    )

    with Sandbox(ws) as sb:
        block, env = graph.source(sb.ctx, sb.ctx.workdir)
        config = tomllib.loads(block)["sources"][0] | {"page_size": args.page_size}
        connector = OutlookConnector(OutlookConfig(**config), env)

        sb.faults.reset_counts()
        started = time.perf_counter()
        documents = checkpoints = 0
        state = None
        for item in connector.load(None):
            if isinstance(item, Document):
                documents += 1
            elif isinstance(item, Checkpoint):
                checkpoints += 1
                state = item.state
        elapsed = time.perf_counter() - started
        calls = sb.faults.count("graph:*")
        assert state is not None
        folders = sum(len(box["folders"]) for box in state["mailboxes"].values())
        print(f"backfill: {documents:,} documents in {elapsed:.1f}s = {documents / elapsed:,.0f} messages/s")
        print(
            f"  graph calls: {calls:,} ({calls / documents:.3f} per message; "
            f"{sb.faults.count('graph:messages.delta'):,} delta pages), "
            f"token requests: {sb.faults.count('identity:token')}"
        )
        print(f"  {checkpoints} checkpoints, last one {len(json.dumps(state)) / 1024:,.0f} KiB, {folders} folders")

        sb.faults.reset_counts()
        started = time.perf_counter()
        changed = sum(isinstance(i, Document) for i in connector.load(state))
        print(
            f"no-change re-sync: {time.perf_counter() - started:.2f}s, {changed} documents, "
            f"{sb.faults.count('graph:messages.delta')} delta calls for {folders} folders, "
            f"{sb.faults.count('graph:*')} graph calls in all (folder listings included)"
        )


if __name__ == "__main__":
    main()
