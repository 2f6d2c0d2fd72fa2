"""Slack backfill under Slack's own rate limits: calls made vs needed, wall time vs the floor.

Run by hand: `python benchmarks/bench_slack.py [--messages 50000] [--channels 20] [--time-scale 60]`.
The sandbox enforces the published per-method tiers with every minute shrunk by `--time-scale`;
the connector paces itself to the same (scaled) tiers. The floor is the time the busiest method
needs at its allowed rate: no client can be faster without being refused.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from inlet.connectors.model import Checkpoint, Document
from inlet.connectors.slack import SlackConfig, SlackConnector
from inlet.sandbox import slack
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace


def build(messages: int, channels: int, users: int, seed: int) -> Workspace:
    ws = Workspace(rng=random.Random(seed))
    for n in range(users):
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}")
    slack.seed_generated(ws, channels=channels, messages=messages)
    return ws


def minimum_calls(ws: Workspace, page: int) -> dict[str, int]:
    """The calls any client needs for a full backfill with this page size."""
    st = ws.slack
    mine = [c for c in st.channels.values() if slack.BOT_USER in c.members]
    visible = [c for c in st.channels.values() if not c.is_private or slack.BOT_USER in c.members]
    return {
        "auth.test": 1,
        "users.list": math.ceil(len(ws.users) / 200),
        "conversations.list": max(1, math.ceil(len(visible) / 200)),
        "conversations.members": sum(1 for c in mine if c.is_private and not c.is_im),
        "conversations.history": sum(max(1, math.ceil(len(c.messages) / page)) for c in mine),
        "conversations.replies": sum(math.ceil(len(r) / page) for c in mine for r in c.replies.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--time-scale", type=float, default=60.0)
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    ws = build(args.messages, args.channels, args.users, args.seed)
    total = sum(len(c.messages) + sum(map(len, c.replies.values())) for c in ws.slack.channels.values())
    threads = sum(len(c.replies) for c in ws.slack.channels.values())
    print(
        f"workspace: {total} messages, {threads} threads with replies, {len(ws.slack.channels)} channels, "
        f"{len(ws.users)} users (built in {time.perf_counter() - t0:.1f}s)"
    )

    with Sandbox(ws, time_scale=args.time_scale) as sb:
        slack.tier_limits(sb.faults)
        cfg = SlackConfig(
            name="bench",
            type="slack",
            token_env="T",
            base_url=sb.ctx.http_url + "/api/",
            pace_scale=args.time_scale,
            page_size=args.page_size,
        )
        conn = SlackConnector(cfg, {"T": slack.TOKEN})
        docs, checkpoint = 0, None
        start = time.perf_counter()
        for item in conn.load(None):
            if isinstance(item, Document):
                docs += 1
            elif isinstance(item, Checkpoint):
                checkpoint = item.state
        wall = time.perf_counter() - start
        made = {k.split(":", 1)[1]: n for k, n in sb.faults.calls.items() if k.startswith("slack:")}
        rejected = sum(sb.faults.rejected.values())
        need = minimum_calls(ws, args.page_size)
        rate = {m: slack.TIERS[m] * args.time_scale / 60.0 for m in need}  # calls per second
        floor_by_method = {m: need[m] / rate[m] for m in need}
        floor = max(floor_by_method.values())
        print(f"\nbackfill: {docs} documents in {wall:.1f}s")
        print(f"{'method':<24}{'made':>8}{'needed':>8}{'floor s':>9}")
        for m in need:
            print(f"{m:<24}{made.get(m, 0):>8}{need[m]:>8}{floor_by_method[m]:>9.1f}")
        for m in sorted(set(made) - set(need)):
            print(f"{m:<24}{made[m]:>8}{0:>8}")
        print(f"{'total':<24}{sum(made.values()):>8}{sum(need.values()):>8}")
        print(f"429 answers: {rejected}")
        print(
            f"wall {wall:.1f}s vs rate-limit floor {floor:.1f}s (busiest method): {wall / floor:.2f}x "
            f"(target <= 1.2x); real-time equivalent {wall * args.time_scale / 60:.0f} min"
        )

        sb.faults.reset_counts()
        start = time.perf_counter()
        again = [i for i in conn.load(checkpoint) if isinstance(i, Document)]
        resync = time.perf_counter() - start
        history = sb.faults.count("slack:conversations.history")
        member_channels = sum(1 for c in ws.slack.channels.values() if slack.BOT_USER in c.members)
        print(
            f"\nno-change re-sync: {len(again)} documents, {history} history calls for {member_channels} "
            f"channels ({history / member_channels:.2f} per channel), "
            f"{sb.faults.count('slack:conversations.replies')} replies calls, {resync:.1f}s"
        )


if __name__ == "__main__":
    main()
