"""Gmail connector cost against the sandbox (run by hand: `python benchmarks/bench_gmail.py`).

Gmail's limit is quota units per user (250 a second; messages.get 5, messages.list 5, history.list
2, getProfile and labels.list 1, attachments.get 5), so the figures that matter are units and HTTP
requests per message against the minimum, not seconds. Prints, for a generated mailbox set:

- the connector's backfill (messages.list + format=raw through the batch endpoint): units and HTTP
  requests per message, messages/s, and 429s met (the client paces itself to the quota: 0 expected);
- the two other ways to read the same messages, measured with the same client: one format=raw GET
  per message, and format=full plus attachments.get for each PDF/DOCX/text attachment;
- a no-change re-sync: Gmail calls per mailbox (the goal: one history.list each).

The minimum is one messages.get per message (5 units) plus one messages.list page per 500 ids and one
getProfile per mailbox; labels.list once per mailbox for the label names.
"""

from __future__ import annotations

import argparse
import base64
import random
import time
import tomllib
from typing import Any

from inlet.connectors.gmail import GmailConfig, GmailConnector
from inlet.connectors.model import Checkpoint, Document
from inlet.sandbox import gmail
from inlet.sandbox import gmail_state as gs
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace

READABLE = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "text/csv",
)


def units_spent(sb: Sandbox) -> int:
    return sum(gs.state(sb.ws).units.values())


def http_requests(sb: Sandbox) -> int:
    """Requests on the wire: a batch is one, however many reads it carries."""
    calls = {k: v for k, v in sb.faults.calls.items() if k.startswith("gmail:")}
    inner = calls.get("gmail:messages.get", 0) if calls.get("gmail:batch") else 0
    return sum(calls.values()) - inner


def reset(sb: Sandbox) -> None:
    sb.faults.reset_counts()
    st = gs.state(sb.ws)
    st.units.clear()
    st.throttled = 0


def backfill(sb: Sandbox, connector: GmailConnector) -> tuple[int, dict[str, Any], float]:
    reset(sb)
    started = time.perf_counter()
    documents, state = 0, None
    for item in connector.load(None):
        if isinstance(item, Document):
            documents += 1
        elif isinstance(item, Checkpoint):
            state = item.state
    assert state is not None
    return documents, state, time.perf_counter() - started


def one_by_one(sb: Sandbox, connector: GmailConnector, fmt: str) -> tuple[int, int]:
    """Read every message with one GET each (`raw`, or `full` + attachments.get); (messages, attachments)."""
    reset(sb)
    messages = attachments = 0
    for mailbox in connector.config.mailboxes:
        client = connector.client(mailbox)
        client.profile()
        client.labels()
        token = None
        while True:
            page = client.list_messages(None, None, token, 500)
            for ref in page.get("messages", []):
                found = client.get(ref["id"], fmt)
                messages += 1
                if fmt == "full":
                    for part in walk(found["payload"]):
                        if part.get("filename") and part["mimeType"] in READABLE:
                            data = client.attachment(ref["id"], part["body"]["attachmentId"])["data"]
                            assert base64.urlsafe_b64decode(data)
                            attachments += 1
            token = page.get("nextPageToken")
            if not token:
                break
    return messages, attachments


def resync(sb: Sandbox, connector: GmailConnector, state: dict[str, Any], boxes: int) -> None:
    reset(sb)
    items = [i for i in connector.load(state) if not isinstance(i, Checkpoint)]
    gmail_calls = {k: v for k, v in sb.faults.calls.items() if k.startswith("gmail:")}
    print(
        f"no-change re-sync of {boxes} mailboxes: {len(items)} items, Gmail calls {gmail_calls} "
        f"({sum(gmail_calls.values()) / boxes:.1f} per mailbox), {units_spent(sb)} units"
    )


def walk(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [part, *(p for sub in part.get("parts", []) for p in walk(sub))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=2)
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=GmailConfig.model_fields["batch_size"].default)
    parser.add_argument("--concurrency", type=int, default=GmailConfig.model_fields["concurrency"].default)
    parser.add_argument("--backfill-only", action="store_true", help="skip the one-GET-per-message readings")
    args = parser.parse_args()

    ws = Workspace(rng=random.Random(0))
    for n in range(20):
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}")
    started = time.perf_counter()
    gmail.seed_generated(ws, mailboxes=args.mailboxes, mails=args.mails)
    print(f"seeded {args.mails:,} messages in {args.mailboxes} mailboxes in {time.perf_counter() - started:.1f}s")

    with Sandbox(ws) as sb:
        block, env = gmail.source(sb.ctx, sb.ctx.workdir)
        config = tomllib.loads(block)["sources"][0] | {"batch_size": args.batch_size, "concurrency": args.concurrency}
        connector = GmailConnector(GmailConfig(**config), env)
        boxes = len(connector.config.mailboxes)

        documents, state, elapsed = backfill(sb, connector)
        units, requests = units_spent(sb), http_requests(sb)
        pages = sb.faults.count("gmail:messages.list")
        minimum = 5 * documents + 5 * pages + 2 * boxes
        side_by_side = min(args.concurrency, boxes)
        print(
            f"backfill (batch of {args.batch_size}, format=raw, {side_by_side} mailboxes at once): {documents:,} "
            f"messages in {elapsed:.1f}s = {documents / elapsed:,.0f} messages/s (the quota's bound: "
            f"{250 / 5 * side_by_side:,.0f}/s)"
        )
        print(
            f"  quota units: {units:,} = {units / documents:.3f} per message (minimum {minimum / documents:.3f}: "
            f"{units / minimum:.3f}x); HTTP requests: {requests:,} = {requests / documents:.3f} per message; "
            f"429s: {gs.state(sb.ws).throttled}"
        )

        resync(sb, connector, state, boxes)
        if args.backfill_only:
            return
        messages, _ = one_by_one(sb, connector, "raw")
        print(
            f"one GET per message, format=raw: {units_spent(sb) / messages:.3f} units and "
            f"{http_requests(sb) / messages:.3f} HTTP requests per message"
        )
        messages, attachments = one_by_one(sb, connector, "full")
        print(
            f"format=full + attachments.get: {units_spent(sb) / messages:.3f} units and "
            f"{http_requests(sb) / messages:.3f} HTTP requests per message ({attachments} attachments read)"
        )


if __name__ == "__main__":
    main()
