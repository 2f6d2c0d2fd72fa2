"""The three sandbox sources end to end: connector -> Engine -> real index (real model) -> search.

The sandbox workspace is the shipped sample; the sources are narrowed to keep embedding quick
(Slack: the private channel plus a small public channel each test adds, Outlook and Gmail: one
mailbox's Inbox, Drive: all of it). Changes are made the way a user's colleagues make them: through the
sandbox's control API or its Python state API.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from inlet.connectors.base import Connector
from inlet.connectors.model import Checkpoint, Document
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.sandbox import drive_state as ds
from inlet.sandbox.documents import make_pdf
from inlet.sandbox import graph
from inlet.sandbox import slack as sandbox_slack
from inlet.sandbox.server import Sandbox
from inlet.sync.engine import Engine
from inlet.storage.sqlite.state import SqliteState

from inlet.config import Settings, parse_config

SLACK, DRIVE, MAIL, GMAIL = "sandbox-slack", "sandbox-drive", "sandbox-mail", "sandbox-gmail"
OPS, LAUNCH = "G0PRIVOPS1", "C0LAUNCH01"
BADEER = "robert.badeer@enron.com"
NARROW: dict[str, dict[str, Any]] = {
    SLACK: {"channels": ["launch", "private-ops"], "pace_scale": 1e6, "retry_backoff": 0.01, "max_retries": 1},
    DRIVE: {"backoff_seconds": 0.01, "max_requests_per_second": 0, "retries": 1},
    MAIL: {"mailboxes": [BADEER], "folders": ["inbox"]},
    GMAIL: {"mailboxes": [BADEER], "labels": ["INBOX"], "backoff_seconds": 0.01},
}


def narrowed_config(
    sb: Sandbox, index_path: Path, m365: bool = False, **extra: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`Sandbox.config` as a dict, each source narrowed (NARROW, then `extra` by source name); the
    Microsoft 365 files and Teams sources only with `m365` (they have end-to-end tests of their own)."""
    text, env = sb.config(index_path)
    raw = tomllib.loads(text)
    raw["sources"] = [s for s in raw["sources"] if m365 or s["name"] in NARROW]
    for source in raw["sources"]:
        source.update(NARROW.get(source["name"], {}))
        source.update(extra.get(source["name"].replace("sandbox-", ""), {}))
    return raw, env


def to_toml(raw: dict[str, Any]) -> str:
    """Enough TOML for a config: JSON scalars and string lists are valid TOML values."""
    lines = [f"[index]\npath = {json.dumps(str(raw['index']['path']))}\n"]
    for source in raw["sources"]:
        lines.append("[[sources]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in source.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass
class Stack:
    sb: Sandbox
    settings: Settings
    env: dict[str, str]
    index: Index
    engine: Engine

    def found(self, query: str, user: str | None, source: str) -> list[str]:
        """Doc ids of the top results `user` gets for `query` within `source`."""
        hits, _ = search(
            self.index, SearchRequest(query=query, k=5, user=user, sources=(source,), recency_half_life_days=0)
        )
        return [h.doc_id for h in hits]

    def stored(self, source: str) -> list[str]:
        return sorted(self.index.catalog.source_doc_ids(source))

    def expected(self, source: str) -> set[str]:
        """What a plain full pass of the connector yields right now."""
        conn = self.settings.connector(source, self.env)
        return {i.id for i in conn.load(None) if isinstance(i, Document)}

    def chroma_agrees_with_catalog(self) -> int:
        db = sqlite3.connect(f"file:{self.index.path / 'catalog.db'}?mode=ro", uri=True)
        try:
            catalog = sorted(r[0] for r in db.execute("SELECT chunk_id FROM chunks"))
            total = db.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents").fetchone()[0]
        finally:
            db.close()
        chroma = sorted(self.index.collection.get(include=[])["ids"])
        assert chroma == catalog and len(catalog) == len(set(catalog)) == total
        return len(catalog)


class WatchedEngine(Engine):
    """The real engine; `after_checkpoints(n)` is called as the n-th checkpoint passes by, untouched."""

    after_checkpoints: Any = None

    def connector(self, name: str, env: object = None) -> Connector:
        conn = super().connector(name)
        load = conn.load

        def watched(checkpoint: dict[str, Any] | None, *, since: Any = None) -> Iterator[Any]:
            seen = 0
            for item in load(checkpoint, since=since):
                yield item
                if isinstance(item, Checkpoint) and self.after_checkpoints:
                    seen += 1
                    self.after_checkpoints(seen)

        conn.load = watched  # type: ignore[method-assign]
        return conn


def add_launch_channel(sb: Sandbox, messages: int = 0) -> str:
    """A small public channel with a thread of three (and `messages` more one-message threads)."""
    ws = sb.ws
    hamza, harry = email_id(sb, "hamza@example.com"), email_id(sb, "abilinski@example.com")
    sandbox_slack.add_channel(
        ws, "launch", [hamza, harry, sandbox_slack.BOT_USER], channel_id=LAUNCH, created=1459000000
    )
    ts = sandbox_slack.post_message(
        ws, LAUNCH, "Launch checklist for the Kestrel release: freeze on Friday", hamza, ts="1459400000.000100"
    )
    sandbox_slack.post_message(
        ws,
        LAUNCH,
        "Load tests of Kestrel pass at 2000 requests per second",
        harry,
        thread_ts=ts,
        ts="1459400060.000100",
    )
    sandbox_slack.post_message(
        ws, LAUNCH, "Kestrel release notes are drafted", hamza, thread_ts=ts, ts="1459400120.000100"
    )
    topics = [
        "billing",
        "caching",
        "logging",
        "metrics",
        "alerts",
        "backups",
        "quotas",
        "tracing",
        "search",
        "mobile",
        "pricing",
        "docs",
        "hiring",
        "security",
        "storage",
        "payments",
    ]
    for n in range(messages):
        sandbox_slack.post_message(
            ws,
            LAUNCH,
            f"Status of the {topics[n % len(topics)]} workstream: item {n} is on track",
            harry,
            ts=f"{1459410000 + 60 * n}.000100",
        )
    return ts


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture
def stack(sb: Sandbox, tmp_path: Path, embedder: Any) -> Iterator[Stack]:
    yield from make_stack(sb, tmp_path, embedder)


def make_stack(sb: Sandbox, tmp_path: Path, embedder: Any, **extra: dict[str, Any]) -> Iterator[Stack]:
    raw, env = narrowed_config(sb, tmp_path / "index", **extra)
    settings = parse_config(raw)
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(tmp_path / "index" / "state.db")
        try:
            yield Stack(sb, settings, env, index, WatchedEngine(settings, index, state, env=env))
        finally:
            state.close()


def admin(sb: Sandbox, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{sb.ctx.http_url}/_admin/{path}", json=body, timeout=10)
    assert response.status_code == 200 and response.json()["ok"], response.text


def email_id(sb: Sandbox, email: str) -> str:
    user = sb.ws.user_by_email(email)
    assert user is not None
    return user.id


# --- Slack -------------------------------------------------------------------------------------


def test_slack_threads_follow_channel_membership(stack: Stack) -> None:
    public = f"{SLACK}:{LAUNCH}:{add_launch_channel(stack.sb)}"  # a thread of three
    private = f"{SLACK}:{OPS}:1459300000.000100"  # "Credentials rotation plan", a thread with a reply
    first = stack.engine.run(SLACK, "backfill")
    assert first.outcome == "ok" and first.upserted == 4 and first.embedded >= first.upserted
    assert set(stack.stored(SLACK)) == stack.expected(SLACK) >= {public, private}

    ask_private = "credentials rotation plan for the mesos cluster"
    assert private in stack.found(ask_private, "doubledeez@example.com", SLACK)  # a member
    assert private in stack.found(ask_private, "hamza@example.com", SLACK)  # a member
    assert private in stack.found(ask_private, None, SLACK)  # the operator
    for outsider in ("abilinski@example.com", "newcomer@example.com", "mallory@elsewhere.org"):
        assert private not in stack.found(ask_private, outsider, SLACK)
    ask_public = "kestrel launch checklist and load tests"
    for anyone in ("newcomer@example.com", "doubledeez@example.com"):  # not members of #launch
        assert public in stack.found(ask_public, anyone, SLACK)

    admin(stack.sb, "slack/leave", {"channel": OPS, "user": email_id(stack.sb, "doubledeez@example.com")})
    after = stack.engine.run(SLACK, "sync")
    assert after.outcome == "ok" and after.upserted >= 1 and after.deleted == 0
    assert after.embedded == 0, "a membership change updates ACLs in place, it never re-embeds"
    assert private not in stack.found(ask_private, "doubledeez@example.com", SLACK)
    assert private in stack.found(ask_private, "hamza@example.com", SLACK)
    stack.chroma_agrees_with_catalog()


# --- Google Drive --------------------------------------------------------------------------------


def test_drive_reshare_moves_a_file_between_users_without_reembedding(stack: Stack) -> None:
    first = stack.engine.run(DRIVE, "backfill")
    assert first.outcome in ("ok", "partial") and first.upserted == len(stack.expected(DRIVE)) > 10
    postmortem = next(f for f in stack.sb.ws.drive.files.values() if f.name.startswith("Incident postmortem"))
    doc_id = f"{DRIVE}:{postmortem.id}"
    ask = "incident postmortem: the primary database ran out of disk space"
    assert doc_id in stack.found(ask, "abilinski@example.com", DRIVE)  # shared with A
    assert doc_id not in stack.found(ask, "heroeshannibal@example.com", DRIVE)  # not with B

    ds.set_permissions(stack.sb.ws, postmortem.id, [ds.user_permission(stack.sb.ws, "heroeshannibal@example.com")])
    after = stack.engine.run(DRIVE, "sync")
    assert after.outcome in ("ok", "partial") and after.upserted == 1 and after.deleted == 0
    assert after.embedded == 0, "a sharing change updates ACLs in place, it never re-embeds"
    assert doc_id not in stack.found(ask, "abilinski@example.com", DRIVE)
    assert doc_id not in stack.found(ask, "hamza@example.com", DRIVE)
    assert doc_id in stack.found(ask, "heroeshannibal@example.com", DRIVE)
    assert doc_id in stack.found(ask, "doubledeez@example.com", DRIVE)  # the owner keeps it
    stack.chroma_agrees_with_catalog()


# --- Outlook -------------------------------------------------------------------------------------


def test_outlook_deleted_mail_goes_and_moved_mail_stays_once(stack: Stack) -> None:
    ws = stack.sb.ws
    follow_up = graph.add_folder(ws, BADEER, "Follow-up", parent="inbox")  # a child of Inbox: synced too
    state = ws.mail
    box = next(b for b in state.mailboxes.values() if b.email == BADEER)
    inbox = next(f.id for f in box.folders.values() if f.well_known == "inbox")
    mails = sorted((m for m in state.messages.values() if m.folder_id == inbox), key=lambda m: m.id)
    assert len(mails) >= 3
    first = stack.engine.run(MAIL, "backfill")
    assert first.outcome == "ok" and stack.stored(MAIL) == sorted(f"{MAIL}:{m.id}" for m in mails)
    gone, moved = mails[0], mails[1]
    ask_gone, ask_moved = gone.subject or "", moved.subject or ""
    assert f"{MAIL}:{gone.id}" in stack.found(ask_gone, BADEER, MAIL)
    assert f"{MAIL}:{gone.id}" not in stack.found(ask_gone, "phillip.allen@enron.com", MAIL)  # not his mailbox

    graph.delete_message(ws, gone.id)
    graph.move_message(ws, moved.id, follow_up)
    after = stack.engine.run(MAIL, "sync")
    assert after.outcome == "ok" and after.deleted == 1
    assert after.embedded == 0, "a move changes the folder, not the content"
    assert f"{MAIL}:{gone.id}" not in stack.found(ask_gone, BADEER, MAIL)
    assert f"{MAIL}:{gone.id}" not in stack.stored(MAIL)
    assert stack.stored(MAIL).count(f"{MAIL}:{moved.id}") == 1 and len(stack.stored(MAIL)) == len(mails) - 1
    assert "Follow-up" in str(stack.index.catalog.document(f"{MAIL}:{moved.id}").metadata.get("folder"))
    hits = stack.found(ask_moved, BADEER, MAIL)
    assert f"{MAIL}:{moved.id}" in hits
    stack.chroma_agrees_with_catalog()


def test_gmail_mail_is_found_by_its_owner_only_and_goes_when_trashed(stack: Stack) -> None:
    from inlet.sandbox import gmail

    ws = stack.sb.ws
    memo = gmail.add_message(
        ws,
        BADEER,
        "Kestrel pipeline tariff",
        "The Kestrel tariff filing is due on the 14th.",
        attachments=[("tariff.pdf", "application/pdf", make_pdf("Kestrel tariff", ["Firm transport at 31 cents."]))],
    )
    first = stack.engine.run(GMAIL, "backfill")
    assert first.outcome == "ok" and stack.stored(GMAIL) == sorted(stack.expected(GMAIL))
    doc_id = f"{GMAIL}:{BADEER}/{memo.id}"
    assert doc_id in stack.found("Kestrel tariff filing", BADEER, GMAIL)
    assert doc_id in stack.found("firm transport 31 cents", BADEER, GMAIL)  # the PDF's text
    assert doc_id not in stack.found("Kestrel tariff filing", "phillip.allen@enron.com", GMAIL)
    gmail.relabel(ws, BADEER, memo.id, add=["STARRED"])  # nothing indexed changes
    quiet = stack.engine.run(GMAIL, "sync")
    assert quiet.outcome == "ok" and quiet.upserted == quiet.deleted == 0
    gmail.trash(ws, BADEER, memo.id)
    after = stack.engine.run(GMAIL, "sync")
    assert after.outcome == "ok" and after.deleted == 1 and doc_id not in stack.stored(GMAIL)
    assert doc_id not in stack.found("Kestrel tariff filing", BADEER, GMAIL)
    stack.chroma_agrees_with_catalog()


# --- crash and resume ----------------------------------------------------------------------------


def test_a_failed_backfill_resumes_with_every_document_exactly_once(sb: Sandbox, tmp_path: Path, embedder: Any) -> None:
    add_launch_channel(sb, messages=14)
    stacks = make_stack(sb, tmp_path, embedder, slack={"channels": ["launch"], "page_size": 2})
    stack = next(stacks)
    try:
        sb.faults.reset_counts()
        expected = stack.expected(SLACK)
        assert len(expected) == 15
        full_pass_pages = sb.faults.count("slack:conversations.history")

        def outage(checkpoints: int) -> None:  # Slack starts failing for good mid-backfill
            if checkpoints == 4:
                sb.faults.fail("slack", "*", 500, times=10**6, reason="internal_error")

        stack.engine.after_checkpoints = outage
        broken = stack.engine.run(SLACK, "backfill")
        assert broken.outcome == "failed" and sb.faults.rejected
        saved = stack.engine.state.source(SLACK)
        assert saved.phase == "backfill" and saved.checkpoint is not None
        before = len(stack.stored(SLACK))
        assert 0 < before < len(expected)
        stack.chroma_agrees_with_catalog()

        sb.faults.clear()
        sb.faults.reset_counts()
        stack.engine.after_checkpoints = None
        resumed = stack.engine.run(SLACK, "sync")  # resumes the interrupted backfill
        assert resumed.outcome == "ok"
        assert stack.engine.state.last_run(SLACK).kind == "backfill"
        # after an unfinished run, the source's listing (`live_ids`) reads every page once more
        listing = full_pass_pages
        assert sb.faults.count("slack:conversations.history") - listing < full_pass_pages, "it resumed, not restarted"
        assert resumed.upserted == len(expected) - before
        assert sorted(stack.stored(SLACK)) == sorted(expected)
        chunks = stack.chroma_agrees_with_catalog()
        assert stack.index.catalog.counts()[SLACK] == (len(expected), chunks)
    finally:
        stacks.close()


# --- the command line ----------------------------------------------------------------------------


def test_revoked_slack_token_exits_3_and_the_other_sources_still_sync(sb: Sandbox, tmp_path: Path) -> None:
    raw, env = narrowed_config(sb, tmp_path / "index")
    config = tmp_path / "config.toml"
    config.write_text(to_toml(raw))
    admin(sb, "slack/revoke", {})
    proc = subprocess.run(
        [sys.executable, "-m", "inlet", "sync", "--json"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env, "INLET_CONFIG": str(config)},
    )
    assert proc.returncode == 3, proc.stderr
    runs = {r["source"]: r for r in json.loads(proc.stdout)["runs"]}
    assert set(runs) == {SLACK, DRIVE, MAIL, GMAIL}
    assert runs[SLACK]["outcome"] == "failed" and SLACK in runs[SLACK]["error"]
    assert "credentials" in runs[SLACK]["error"]
    assert SLACK in proc.stderr, "the operator reading stderr learns which source refused"
    assert runs[DRIVE]["outcome"] in ("ok", "partial") and runs[DRIVE]["upserted"] > 10
    assert runs[MAIL]["outcome"] == "ok" and runs[MAIL]["upserted"] >= 3
    assert runs[GMAIL]["outcome"] == "ok" and runs[GMAIL]["upserted"] >= 3


# --- secrets never reach logs, errors or --json --------------------------------------------------
def sandbox_secrets(sb: Sandbox, env: dict[str, str]) -> set[str]:
    """Every secret of a sandbox run: the configured ones, the Drive key and grants, and every
    access token the emulated identity services issued during the run."""
    from inlet.sandbox import drive_auth

    drive = drive_auth.auth(sb.ws)
    key_lines = {line for line in drive.private_pem.splitlines() if len(line) > 40}
    found = {
        *env.values(),
        drive.client_secret,
        drive.refresh_token,
        *drive.tokens,
        *key_lines,
        *graph.mail_state(sb.ws).tokens,
        sandbox_slack.TOKEN,
    }
    return {s for s in found if len(s) >= 8}


def test_no_secret_in_logs_errors_or_json_at_debug_even_when_runs_fail(sb: Sandbox, tmp_path: Path) -> None:
    raw, env = narrowed_config(sb, tmp_path / "index")
    config = tmp_path / "config.toml"
    config.write_text(to_toml(raw))

    def sync(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inlet", "sync", "--json", "-vv"],
            cwd=tmp_path,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **env, **extra_env, "INLET_CONFIG": str(config)},
        )

    ok = sync({})
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert " DEBUG " in ok.stderr  # debug logging was on
    sb.faults.fail("graph", "*", 500, times=50)  # a source fails mid-run ...
    admin(sb, "slack/revoke", {})  # ... and one refuses its credentials
    wrong = "xoxb-wrong-" + "9" * 24
    failed = sync({"INLET_SANDBOX_SLACK_TOKEN": wrong})
    assert failed.returncode in (1, 3), failed.stderr[-3000:]
    outcomes = {r["source"]: r["outcome"] for r in json.loads(failed.stdout)["runs"]}
    assert outcomes[SLACK] == "failed" and outcomes[MAIL] in ("failed", "partial")
    secrets = sandbox_secrets(sb, {**env, "wrong": wrong})
    assert len(secrets) >= 6
    for name, output in (("stdout", ok.stdout + failed.stdout), ("stderr", ok.stderr + failed.stderr)):
        leaked = sorted(s[:6] + "..." for s in secrets if s in output)
        assert not leaked, f"secrets in {name}: {leaked}"


# --- faults: 10% noise on every service ends in the same index as a quiet run --------------------
def index_state(stack: Stack) -> list[tuple[Any, ...]]:
    stack.chroma_agrees_with_catalog()
    query = stack.index.catalog._query
    docs = query("SELECT doc_id, content_hash, meta_hash, chunks FROM documents ORDER BY doc_id")
    acl = query("SELECT doc_id, principal FROM acl ORDER BY doc_id, principal")
    return [*docs, *acl]


def run_all(stack: Stack) -> dict[str, str]:
    return {name: stack.engine.run(name, "backfill").outcome for name in (SLACK, DRIVE, MAIL, GMAIL)}


def test_every_connector_under_10pct_faults_ends_like_a_fault_free_run(
    sb: Sandbox, tmp_path: Path, embedder: Any
) -> None:
    """429s with and without Retry-After, 5xx, connections reset (RST) halfway through an answer,
    answers that stall past the client's timeout, and access tokens expired mid-run."""
    from inlet.sandbox import drive_auth
    from inlet.sandbox.faults import Fault

    timeout = 2.0  # the clients' read timeout; a stalled answer stalls three times as long
    patient = {
        "slack": {"max_retries": 8, "retry_backoff": 0.01, "timeout": timeout},
        "drive": {"retries": 8, "timeout": timeout},
        "mail": {"timeout": timeout},
        "gmail": {"retries": 8, "timeout": timeout},
    }
    quiet = make_stack(sb, tmp_path / "quiet", embedder, **patient)
    stack = next(quiet)
    try:
        assert set(run_all(stack).values()) == {"ok"}
        expected = index_state(stack)
    finally:
        quiet.close()
    network = [Fault.reset(), Fault.stalled(3 * timeout)]
    throttled = [Fault(429, "ratelimited", retry_after=0.01), Fault(429, "ratelimited"), *network]
    sb.faults.flaky(
        "slack", "*", 0.1, [*throttled, Fault(500, "internal_error"), Fault(503, "service_unavailable")], seed=1
    )
    sb.faults.flaky("drive", "*", 0.1, [*throttled, Fault(500, "backendError"), Fault(503, "backendError")], seed=2)
    sb.faults.flaky(
        "graph", "*", 0.1, [*throttled, Fault(500, "InternalServerError"), Fault(503, "ServiceUnavailable")], seed=3
    )
    sb.faults.flaky(
        "gmail",
        "*",
        0.1,
        [
            *throttled,
            Fault(429, "userRateLimitExceeded", retry_after=0.01),
            Fault(500, "backendError"),
            Fault(503, "backendError"),
        ],
        seed=4,
    )
    for service, reset_route, stall_route in (
        ("slack", "conversations.*", "users.*"),
        ("drive", "files.list", "changes.*"),
        ("graph", "mailFolders", "messages.delta"),
        ("gmail", "messages.list", "batch"),
    ):
        sb.faults.break_next(service, reset_route, Fault.reset())  # and each service surely meets both
        sb.faults.break_next(service, stall_route, Fault.stalled(3 * timeout))
    sb.faults.break_next("drive", "token", Fault.reset())
    sb.faults.reset_counts()
    noisy = make_stack(sb, tmp_path / "noisy", embedder, **patient)
    stack = next(noisy)
    try:

        def expire(checkpoints: int) -> None:  # access tokens expire mid-run: the clients must refresh
            if checkpoints == 1:
                drive_auth.expire_tokens(sb.ws)
                graph.expire_tokens(sb.ws)

        stack.engine.after_checkpoints = expire
        assert set(run_all(stack).values()) == {"ok"}
        assert index_state(stack) == expected
        hit = {key.partition(":")[0] for key in sb.faults.rejected}
        assert hit == {"slack", "drive", "graph", "gmail"}, sb.faults.rejected  # every service was disturbed
        broken = {f.network: n for f, n in sb.faults.injected.items() if f.network}
        assert set(broken) == {"reset", "stall"}, sb.faults.injected  # both network faults were met
        print(
            f"faults injected: {sum(sb.faults.rejected.values())} of {sb.faults.count()} calls "
            f"({broken['reset']} resets, {broken['stall']} stalls)"
        )
    finally:
        noisy.close()
        sb.faults.clear()
