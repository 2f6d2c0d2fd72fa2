"""Crawl a generated Drive with the google_drive connector and print throughput and API cost.

Run by hand: `.venv/bin/python benchmarks/bench_drive.py [--files 5000] [--concurrency 4]`.
Prints files/s of the full crawl, Drive API calls per file, and the cost of a no-change re-sync.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from inlet.connectors.google_drive import GoogleDriveConfig, GoogleDriveConnector
from inlet.connectors.model import Checkpoint, Deletion, Document, Skipped
from inlet.sandbox import drive
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    started = time.perf_counter()
    ws = Workspace(rng=random.Random(0))
    for n in range(50):
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}")
    drive.seed_generated(ws, files=args.files)
    print(f"seeded {len(ws.drive.files)} items ({args.files} files) in {time.perf_counter() - started:.1f}s")

    with Sandbox(ws=ws) as sb:
        creds = drive.write_credentials(sb.ctx, Path(sb.ctx.workdir) / "sa.json")
        config = GoogleDriveConfig(
            name="bench",
            type="google_drive",
            credentials_file=creds,
            api_endpoint=sb.ctx.http_url + "/drive/v3/",
            concurrency=args.concurrency,
            page_size=args.page_size,
            max_requests_per_second=0,
        )
        connector = GoogleDriveConnector(config)
        counts = {"documents": 0, "skipped": 0, "failed": 0, "deletions": 0, "checkpoints": 0}
        state = None
        sb.faults.reset_counts()
        t0 = time.perf_counter()
        for item in connector.load(None):
            if isinstance(item, Document):
                counts["documents"] += 1
            elif isinstance(item, Skipped):
                counts["skipped" if not item.failed else "failed"] += 1
            elif isinstance(item, Deletion):
                counts["deletions"] += 1
            elif isinstance(item, Checkpoint):
                counts["checkpoints"] += 1
                state = item.state
        elapsed = time.perf_counter() - t0
        calls = sb.faults.count("drive:*")
        files = counts["documents"] + counts["skipped"] + counts["failed"]
        print(
            f"full crawl: {files} files in {elapsed:.1f}s = {files / elapsed:.0f} files/s "
            f"(concurrency {args.concurrency}, page size {args.page_size})"
        )
        print(f"  {counts}")
        print(
            f"  API calls: {calls} = {calls / files:.2f} per file; by route: "
            f"{ {k: v for k, v in sorted(sb.faults.calls.items())} }"
        )

        sb.faults.reset_counts()
        t0 = time.perf_counter()
        resync = [i for i in connector.load(state) if not isinstance(i, Checkpoint)]
        print(
            f"no-change re-sync: {len(resync)} items, {sb.faults.count('drive:*')} API call(s) "
            f"({sb.faults.count('drive:changes.list')} changes.list), {time.perf_counter() - t0:.3f}s"
        )


if __name__ == "__main__":
    main()
