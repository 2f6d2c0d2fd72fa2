"""Microsoft 365 files and Teams connectors: API calls per file and per message against the minimum,
and the no-change re-sync cost.

Run by hand: `python benchmarks/bench_m365.py [--files 2000] [--threads 1000]`. Every HTTP request a connector sends
(identity, Graph, download URLs) is counted on its own transport. The minimum per file is one
`/content` call plus the download it redirects to; delta pages and the `$batch` of permissions
(20 files a call) add `1/page_size + 1/20`. A no-change re-sync should cost one delta call per drive
(plus the two `$batch` calls that list the drives and refresh group memberships).
Teams: the minimum per thread is 1/50 of a delta page plus 1/20 of a replies `$batch`; a no-change
re-sync should cost at most one call per channel (plus the team listing and two `$batch` calls).
"""

from __future__ import annotations

import argparse
import random
import time
import tomllib
from collections import Counter

import httpx

from inlet.connectors.kit.transport import ssl_context
from inlet.connectors.microsoft_files import MicrosoftFilesConfig, MicrosoftFilesConnector
from inlet.connectors.model import Checkpoint, Document
from inlet.connectors.teams import TeamsConfig, TeamsConnector
from inlet.sandbox import graph_files, graph_teams
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace


class Counting(httpx.BaseTransport):
    """Counts requests by kind (the last path segment that names an API)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.calls = inner, Counter[str]()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        kind = next(
            (k for k in ("token", "delta", "content", "$batch", "_graph_download", "openid", "teams") if k in path),
            "other",
        )
        self.calls[kind] += 1
        return self.inner.handle_request(request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1000)
    args = parser.parse_args()
    files(args)
    teams(args)


def files(args: argparse.Namespace) -> None:
    ws = Workspace(rng=random.Random(0))
    for n in range(20):
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}")
    graph_files.seed_generated(ws, files=args.files)
    with Sandbox(ws) as sb:
        block, env = graph_files.source(sb.ctx, sb.ctx.workdir)
        config = tomllib.loads(block)["sources"][0] | {"page_size": args.page_size, "users": []}
        counting = Counting(httpx.HTTPTransport(verify=ssl_context(sb.ctx.ca_path)))
        connector = MicrosoftFilesConnector(MicrosoftFilesConfig(**config), env, transport=counting)

        started = time.perf_counter()
        items = list(connector.load(None))
        seconds = time.perf_counter() - started
        documents = sum(isinstance(i, Document) for i in items)
        state = next(i for i in reversed(items) if isinstance(i, Checkpoint)).state
        graph_calls = sum(v for k, v in counting.calls.items() if k not in ("token", "openid"))
        minimum = documents * 2 + documents / 20 + documents / args.page_size
        print(f"backfill: {documents:,} files in {seconds:.1f}s ({documents / seconds:.0f} files/s)")
        print(f"  calls: {dict(counting.calls)}")
        print(
            f"  Graph calls per file: {graph_calls / documents:.3f} (minimum {minimum / documents:.3f}: "
            f"content + download, 1/20 permissions batch, 1/{args.page_size} delta page)"
        )

        counting.calls.clear()
        started = time.perf_counter()
        again = list(connector.load(state))
        drives = len(state["drives"])
        print(
            f"no-change re-sync: {sum(not isinstance(i, Checkpoint) for i in again)} items in "
            f"{time.perf_counter() - started:.2f}s; calls {dict(counting.calls)} for {drives} drive(s) "
            f"(target: {drives} delta call(s))"
        )


def teams(args: argparse.Namespace) -> None:
    ws = Workspace(rng=random.Random(0))
    for n in range(20):
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}")
    graph_teams.seed_generated(ws, threads=args.threads)
    messages = len(graph_teams.teams_state(ws).messages)
    with Sandbox(ws) as sb:
        block, env = graph_teams.source(sb.ctx, sb.ctx.workdir)
        counting = Counting(httpx.HTTPTransport(verify=ssl_context(sb.ctx.ca_path)))
        connector = TeamsConnector(TeamsConfig(**tomllib.loads(block)["sources"][0]), env, transport=counting)
        started = time.perf_counter()
        items = list(connector.load(None))
        seconds = time.perf_counter() - started
        threads = sum(isinstance(i, Document) for i in items)
        state = next(i for i in reversed(items) if isinstance(i, Checkpoint)).state
        graph_calls = sum(v for k, v in counting.calls.items() if k not in ("token", "openid"))
        channels = len(state["channels"])
        minimum = threads / 50 + threads / 20 + 1 + 2
        print(
            f"teams backfill: {threads:,} threads ({messages:,} messages) in {seconds:.1f}s; calls "
            f"{dict(counting.calls)}"
        )
        print(
            f"  Graph calls per message: {graph_calls / messages:.4f}, per thread {graph_calls / threads:.4f} "
            f"(minimum per thread {minimum / threads:.4f}: 1/50 delta page, 1/20 replies batch, listings)"
        )
        counting.calls.clear()
        again = list(connector.load(state))
        print(
            f"teams no-change re-sync: {sum(not isinstance(i, Checkpoint) for i in again)} items; calls "
            f"{dict(counting.calls)} for {channels} channel(s) (target: at most {channels} delta call(s) + listings)"
        )


if __name__ == "__main__":
    main()
