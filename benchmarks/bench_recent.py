"""Recent first on a big Slack workspace: how soon the last week is searchable at Slack's real
limits, and what the recent pass adds to the whole backfill against the rate-limit floor.

Run by hand: `python benchmarks/bench_recent.py [--messages 50000] [--time-scale 60] [--window-days 7]`.
The sandbox enforces Slack's published per-method tiers (as `bench_slack.py`); the connector paces
itself to the same tiers.

1. Time to searchable, at the real tier limits (no time scaling): the real engine backfills into a
   real index (the default model embeds) with `recent_first`; the clock stops when the recent pass
   is committed (every thread started in the window is then in the index) and the run is stopped.
2. Whole backfill, with every minute shrunk by `--time-scale`: the connector's two passes exactly as
   the engine makes them (`load(None, since=window start)`, then `load(None)`) against one full
   pass, and against the floor (the time the busiest method needs, at its allowed rate, for the
   calls any full backfill must make). Embedding is left out here: it overlaps the fetching and
   does not depend on the recent pass, and on a scaled clock it would dominate.

The generated history ends at a fixed 2023 date; the window is "the last `--window-days` of that
history", given as the window from now that covers exactly those days, so it holds what a live
workspace's last week would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_slack import build, minimum_calls  # noqa: E402

from inlet.config import IndexConfig, Settings  # noqa: E402
from inlet.connectors.slack import SlackConfig, SlackConnector  # noqa: E402
from inlet.index.embedding import Embedder  # noqa: E402
from inlet.index.store import Index  # noqa: E402
from inlet.sandbox import slack  # noqa: E402
from inlet.sandbox.server import Sandbox  # noqa: E402
from inlet.sandbox.workspace import Workspace  # noqa: E402
from inlet.storage.sqlite.state import SqliteState  # noqa: E402
from inlet.sync.engine import Engine  # noqa: E402

HISTORY_END = 1_700_000_000  # where `slack.seed_generated` ends its history


def in_window(ws: Workspace, since: float) -> int:
    """Threads (top-level messages) of the bot's channels posted at or after `since`."""
    return sum(
        1 for c in ws.slack.channels.values() if slack.BOT_USER in c.members for m in c.messages if float(m.ts) >= since
    )


def config(sb: Sandbox, scale: float, args: argparse.Namespace, window: str) -> SlackConfig:
    return SlackConfig(
        name="bench",
        type="slack",
        token_env="T",
        base_url=sb.ctx.http_url + "/api/",
        pace_scale=scale,
        page_size=args.page_size,
        recent_first=window,
    )


def time_to_searchable(ws: Workspace, args: argparse.Namespace, window: str) -> tuple[float | None, int, int]:
    """Seconds until the recent window is committed at the real limits; documents then; calls made."""
    embedder = Embedder()
    embedder.encode(["warm up"])
    with Sandbox(ws, time_scale=1.0) as sb, tempfile.TemporaryDirectory() as folder:
        slack.tier_limits(sb.faults)
        settings = Settings(index=IndexConfig(path=Path(folder)), sources=[config(sb, 1.0, args, window)])
        with Index(settings.index, embedder=embedder) as index:
            state = SqliteState(Path(folder) / "state.db")
            seen: dict[str, float] = {}

            def searchable(name: str, since: datetime) -> None:  # the recent pass is committed
                seen["at"] = time.perf_counter()
                seen["docs"] = len(index.catalog.source_doc_ids(name))
                engine.stop.set()  # the full pass is measured on a scaled clock (part 2)

            engine = Engine(settings, index, state, env={"T": slack.TOKEN}, stop_work=0.0, on_recent=searchable)
            start = time.perf_counter()
            engine.run("bench", "backfill")
            state.close()
        calls = sum(n for k, n in sb.faults.calls.items() if k.startswith("slack:"))
    return (seen["at"] - start if "at" in seen else None), int(seen.get("docs", 0)), calls


def passes(ws: Workspace, args: argparse.Namespace, since: datetime | None) -> tuple[float, dict[str, int], int]:
    """The connector's passes on the scaled clock: wall seconds, calls per method, 429 answers."""
    with Sandbox(ws, time_scale=args.time_scale) as sb:
        slack.tier_limits(sb.faults)
        conn = SlackConnector(config(sb, args.time_scale, args, "0"), {"T": slack.TOKEN})
        start = time.perf_counter()
        if since is not None:
            for _ in conn.load(None, since=since):
                pass
        for _ in conn.load(None):
            pass
        wall = time.perf_counter() - start
        made = {k.split(":", 1)[1]: n for k, n in sb.faults.calls.items() if k.startswith("slack:")}
        return wall, made, sum(sb.faults.rejected.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--time-scale", type=float, default=60.0)
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--window-days", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ws = build(args.messages, args.channels, args.users, args.seed)
    since = HISTORY_END - args.window_days * 86400
    window = f"{(time.time() - since) / 86400:.6f}d"  # from now back to the history's last week
    wanted = in_window(ws, since)
    need = minimum_calls(ws, args.page_size)
    rate = {m: slack.TIERS[m] * args.time_scale / 60.0 for m in need}
    floor = max(need[m] / rate[m] for m in need)
    total = sum(len(c.messages) + sum(map(len, c.replies.values())) for c in ws.slack.channels.values())
    print(
        f"workspace: {total} messages, {len(ws.slack.channels)} channels; {wanted} threads in the last "
        f"{args.window_days:g} days; time scale {args.time_scale:g}; floor {floor:.1f}s "
        f"({floor * args.time_scale / 60:.1f} min real time)"
    )
    searchable, docs, calls = time_to_searchable(ws, args, window)
    print(
        f"\n1. at the real tier limits: the last {args.window_days:g} days searchable after "
        + (f"{searchable:.1f}s" if searchable is not None else "never (the recent pass did not finish)")
        + f" ({docs} documents indexed, {wanted} threads in the window, {calls} calls; target <= 120s)"
    )

    start_of_window = datetime.fromtimestamp(since, timezone.utc)
    on, on_made, on_429 = passes(ws, args, start_of_window)
    off, off_made, off_429 = passes(ws, args, None)
    busiest = {m: max(on_made.get(m, 0), need[m]) / rate[m] for m in need}
    print(f"\n2. whole backfill, time scale {args.time_scale:g} (floor {floor:.1f}s):")
    print(f"{'method':<24}{'needed':>8}{'one pass':>10}{'recent+full':>13}")
    for m in need:
        print(f"{m:<24}{need[m]:>8}{off_made.get(m, 0):>10}{on_made.get(m, 0):>13}")
    print(
        f"recent first: wall {on:.1f}s = {on / floor:.2f}x the floor (target <= 1.1x), {on / off:.2f}x one "
        f"full pass ({off:.1f}s = {off / floor:.2f}x the floor); calls {sum(on_made.values())} vs "
        f"{sum(off_made.values())}; busiest method's floor with the extra calls "
        f"{max(busiest.values()) / floor:.2f}x; 429 answers {on_429} and {off_429}"
    )


if __name__ == "__main__":
    main()
