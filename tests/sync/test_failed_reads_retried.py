"""An item whose read failed once is read again by the next sync (`kit.retries`), through the engine
and a real index: the change feed (delta link, history id) has moved past it, yet a new item reaches
the index and a user removed from its sharing stops finding it."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inlet.config import parse_config
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.sandbox import gmail, graph_files, graph_teams
from inlet.sandbox.graph_files_seed import perm
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine, RunResult

CAROL = "carol@example.com"


@dataclass
class Indexed:
    engine: Engine
    index: Index
    source: str

    def run(self, kind: str = "sync") -> RunResult:
        return self.engine.run(self.source, kind)

    def found(self, query: str, user: str) -> list[str]:
        """The document ids `user` finds for `query` (what `inlet search --user` returns)."""
        request = SearchRequest(query=query, k=10, user=user, sources=(self.source,), recency_half_life_days=0)
        return [hit.doc_id for hit in search(self.index, request)[0]]


@contextmanager
def indexed(sb: Sandbox, tmp_path: Path, embedder: Any, source: str, **overrides: Any) -> Iterator[Indexed]:
    """The engine over a real index, with only `source` of the sandbox configured."""
    text, env = sb.config(tmp_path / "index")
    raw = tomllib.loads(text)
    raw["sources"] = [s | overrides for s in raw["sources"] if s["name"] == source]
    settings = parse_config(raw)
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(Path(settings.index.path) / "state.db")
        try:
            yield Indexed(Engine(settings, index, state, env=env), index, source)
        finally:
            state.close()


@contextmanager
def slack_backfilled(tmp_path: Path, embedder: Any) -> Iterator[tuple[Sandbox, Indexed, str]]:
    """The sandbox's Slack backfilled (quick retries, no pacing), and hamza's user id."""
    with (
        Sandbox() as sb,
        indexed(sb, tmp_path, embedder, "sandbox-slack", max_retries=1, retry_backoff=0, pace_scale=1e6) as ix,
    ):
        assert outcome(ix.run("backfill")) == ("ok", 0)
        yield sb, ix, next(u.id for u in sb.ws.users.values() if u.name == "hamza")


def outcome(result: RunResult) -> tuple[str, int]:
    return result.outcome, result.errors


def test_files_a_refused_download_is_read_again_with_the_share_removed_since(tmp_path: Path, embedder: Any) -> None:
    query, bob = "quarterly search quality review", "bob@example.com"
    with Sandbox() as sb, indexed(sb, tmp_path, embedder, "sandbox-files", sites=[]) as ix:
        files = graph_files.files_state(sb.ws)
        notes = next(i for i in files.items.values() if i.name == "Notes.txt")
        share = perm(user=bob)
        with sb.ws.lock:
            files.share(notes.id, share)
        assert outcome(ix.run("backfill")) == ("ok", 0)
        doc_id = f"sandbox-files:{notes.id}"
        assert doc_id in ix.found(query, bob)
        with sb.ws.lock:
            files.share(notes.id, remove=share.id)
        sb.faults.fail("graph", "content", 403, times=1)
        assert outcome(ix.run()) == ("partial", 1)
        owner = files.effective(notes)[0][0].user
        assert owner and doc_id in ix.found(query, owner)  # a failed read keeps the version indexed before,
        assert doc_id not in ix.found(query, bob)  # with the permissions that were read
        sb.faults.fail("graph", "item", 403, times=1)  # the read again is refused too: kept, read next sync
        assert outcome(ix.run()) == ("partial", 1)
        assert doc_id not in ix.found(query, bob) and doc_id in ix.found(query, owner)
        assert outcome(ix.run()) == ("ok", 0)
        assert doc_id not in ix.found(query, bob) and doc_id in ix.found(query, owner)


def test_files_a_new_file_whose_permissions_were_refused_is_indexed_next_sync(tmp_path: Path, embedder: Any) -> None:
    with Sandbox() as sb, indexed(sb, tmp_path, embedder, "sandbox-files", sites=[]) as ix:
        files = graph_files.files_state(sb.ws)
        assert outcome(ix.run("backfill")) == ("ok", 0)
        notes = next(i for i in files.items.values() if i.name == "Notes.txt")
        with sb.ws.lock:
            okapi = files.add_item(
                notes.drive_id, None, "Okapi.txt", b"An okapi was seen near the river.", "text/plain"
            )
        owner = files.effective(okapi)[0][0].user
        assert owner
        sb.faults.fail("graph", "permissions", 403, times=1)
        assert outcome(ix.run()) == ("partial", 1)
        assert outcome(ix.run()) == ("ok", 0)
        assert f"sandbox-files:{okapi.id}" in ix.found("okapi seen near the river", owner)


def test_files_a_file_deleted_after_a_failed_read_leaves_the_index(tmp_path: Path, embedder: Any) -> None:
    """The version a failed read kept is deleted with the file."""
    with Sandbox() as sb, indexed(sb, tmp_path, embedder, "sandbox-files", sites=[]) as ix:
        files = graph_files.files_state(sb.ws)
        assert outcome(ix.run("backfill")) == ("ok", 0)
        notes = next(i for i in files.items.values() if i.name == "Notes.txt")
        owner, doc_id = files.effective(notes)[0][0].user, f"sandbox-files:{notes.id}"
        assert owner and doc_id in ix.found("quarterly search quality review", owner)
        with sb.ws.lock:
            files.edit_item(notes.id, b"Personal notes: the quarterly search quality review moved to May.")
        sb.faults.fail("graph", "content", 403, times=1)
        assert outcome(ix.run()) == ("partial", 1)
        with sb.ws.lock:
            files.delete_item(notes.id)
        assert outcome(ix.run()) == ("ok", 0)
        assert doc_id not in ix.found("quarterly search quality review", owner)


def test_teams_a_thread_whose_replies_failed_gets_the_new_members_and_a_new_one_is_indexed(
    tmp_path: Path, embedder: Any
) -> None:
    leaver = "doubledeez@example.com"
    # the Support team only: the faults below are for its channel, not the replies other teams' syncs read
    with Sandbox() as sb, indexed(sb, tmp_path, embedder, "sandbox-teams", teams=["Support"]) as ix:
        teams = graph_teams.teams_state(sb.ws)
        assert outcome(ix.run("backfill")) == ("ok", 0)
        support = next(t for t in teams.teams.values() if t.name == "Support")
        desk = next(c for c in teams.channels.values() if c.team_id == support.id)
        slow = next(m for m in teams.roots(desk.id) if m.subject == "Slow exports")
        slow_id = f"sandbox-teams:{desk.id}:{slow.id}"
        assert slow_id in ix.found("slow exports billing page", leaver)
        with sb.ws.lock:
            support.members.remove(leaver)
            bison = teams.post(desk.id, "heroeshannibal@example.com", "<p>Bison rollout starts Monday.</p>")
            teams.post(desk.id, "heroeshannibal@example.com", "<p>Bison canary is green.</p>", bison.id)
        sb.faults.fail("graph", "replies", 403, times=2)  # both threads of the channel
        # the new thread, read again at once in the same run, is indexed: only the kept one is an error
        assert outcome(ix.run()) == ("partial", 1)
        assert slow_id not in ix.found("slow exports billing page", leaver)  # kept, with the members just read
        assert slow_id in ix.found("slow exports billing page", "heroeshannibal@example.com")
        assert outcome(ix.run()) == ("ok", 0)
        assert slow_id not in ix.found("slow exports billing page", leaver)
        assert slow_id in ix.found("slow exports billing page", "heroeshannibal@example.com")
        assert f"sandbox-teams:{desk.id}:{bison.id}" in ix.found("bison rollout canary", "heroeshannibal@example.com")


def test_gmail_a_message_whose_fetch_was_refused_is_indexed_next_sync(tmp_path: Path, embedder: Any) -> None:
    ws = Workspace()
    gmail.add_mailbox(ws, CAROL, "Carol Example")
    gmail.add_message(ws, CAROL, "Menu", "Pizza on Friday.")
    with Sandbox(ws=ws) as sb, indexed(sb, tmp_path, embedder, "sandbox-gmail") as ix:
        assert outcome(ix.run("backfill")) == ("ok", 0)
        okapi = gmail.add_message(ws, CAROL, "Okapi sighting", "An okapi was seen near the river.")
        sb.faults.fail("gmail", "messages.get", 403, times=1)
        assert outcome(ix.run()) == ("partial", 1)
        assert outcome(ix.run()) == ("ok", 0)
        assert f"sandbox-gmail:{CAROL}/{okapi.id}" in ix.found("okapi sighting river", CAROL)


def test_drive_a_refused_read_is_read_again_with_the_share_removed_since(tmp_path: Path, embedder: Any) -> None:
    from inlet.sandbox import drive_state

    hamza, query = "hamza@example.com", "incident postmortem"
    with Sandbox() as sb, indexed(sb, tmp_path, embedder, "sandbox-drive") as ix:
        assert outcome(ix.run("backfill")) == ("ok", 0)
        postmortem = next(
            f for f in drive_state.state(sb.ws).files.values() if f.name.startswith("Incident postmortem")
        )
        doc_id = f"sandbox-drive:{postmortem.id}"
        assert doc_id in ix.found(query, hamza)
        drive_state.set_permissions(sb.ws, postmortem.id, [p for p in postmortem.permissions if p.email != hamza])
        sb.faults.fail("drive", "files.get", 403, times=1, reason="insufficientFilePermissions")
        assert outcome(ix.run()) == ("partial", 1)
        assert doc_id not in ix.found(query, hamza)  # the kept version takes the sharing just read
        owner = next(p.email for p in postmortem.permissions if p.role == "owner")
        assert owner and doc_id in ix.found(query, owner)  # still there for who may read it
        assert outcome(ix.run()) == ("ok", 0)
        assert doc_id not in ix.found(query, hamza)


def test_slack_a_thread_whose_file_failed_is_read_again_with_the_file(tmp_path: Path, embedder: Any) -> None:
    from inlet.sandbox import slack

    with slack_backfilled(tmp_path, embedder) as (sb, ix, hamza):
        ws = sb.ws
        notes = slack.add_file(
            ws, "zebra-notes.txt", b"The quokka migration uses seventeen pelicans.\n", "text/plain", hamza
        )
        ts = slack.post_message(ws, "C0JGLMMNX", "Notes for the team attached", hamza, files=[notes.id])
        sb.faults.fail("slack", "files.download", 503, times=5)  # past every retry of this sync
        result = ix.run()
        assert result.outcome == "partial" and result.errors >= 1
        doc_id = f"sandbox-slack:C0JGLMMNX:{ts}"
        public = "anyone@example.com"
        assert doc_id in ix.found("notes for the team attached", public)  # indexed without the file's text
        assert doc_id not in ix.found("quokka migration seventeen pelicans", public)
        sb.faults.clear()
        assert outcome(ix.run()) == ("ok", 0)
        assert doc_id in ix.found("quokka migration seventeen pelicans", public)


def test_slack_a_file_given_up_on_is_no_longer_reported_once_its_message_is_deleted(
    tmp_path: Path, embedder: Any
) -> None:
    from inlet.connectors.kit.retries import GIVE_UP_AFTER
    from inlet.sandbox import slack

    with slack_backfilled(tmp_path, embedder) as (sb, ix, hamza):
        ws = sb.ws
        spec = slack.add_file(ws, "spec.txt", b"The walrus protocol.\n", "text/plain", hamza)
        ts = slack.post_message(ws, "C0JGLMMNX", "Spec attached", hamza, files=[spec.id])
        sb.faults.fail("slack", "files.download", 503, times=10_000)
        for _ in range(GIVE_UP_AFTER + 1):  # read, then replayed until given up (still reported)
            result = ix.run()
            assert result.outcome == "partial" and result.errors == 1, (_, result)
        slack.delete_message(ws, "C0JGLMMNX", ts)
        result = ix.run()
        assert outcome(result) == ("ok", 0) and result.deleted == 1  # gone, and its failure with it
        assert f"sandbox-slack:C0JGLMMNX:{ts}" not in ix.found("spec attached", "anyone@example.com")


def test_drive_a_backfill_whose_listing_is_incomplete_narrows_it_and_deletes_nothing(
    tmp_path: Path, embedder: Any
) -> None:
    """Drive leaves shared drives' files out of an all-drives listing (`incompleteSearch`): the
    backfill lists My Drive and each shared drive apart, as Drive advises, and so prunes nothing
    that is still there."""
    from inlet.sandbox import drive_state

    with Sandbox() as sb, indexed(sb, tmp_path, embedder, "sandbox-drive") as ix:
        assert outcome(ix.run("backfill")) == ("ok", 0)
        before = set(ix.index.catalog.source_doc_ids("sandbox-drive"))
        drive_state.set_incomplete_search(sb.ws)  # shared drives' files left out of allDrives listings
        again = ix.run("backfill")
        assert outcome(again) == ("ok", 0) and again.deleted == 0
        assert set(ix.index.catalog.source_doc_ids("sandbox-drive")) == before


def test_files_an_event_s_scoped_run_leaves_failed_reads_to_the_next_whole_run(
    tmp_path: Path, text_hash_embedder: Any
) -> None:
    """A change event's scoped run (`load_scope`) reads the change it announces and not the
    remembered failed reads, whose retries would hold it up (each file its own tries and backoff);
    the next whole run reads them again."""
    with Sandbox() as sb, indexed(sb, tmp_path, text_hash_embedder, "sandbox-files", sites=[]) as ix:
        files = graph_files.files_state(sb.ws)
        assert outcome(ix.run("backfill")) == ("ok", 0)
        notes = next(i for i in files.items.values() if i.name == "Notes.txt")
        with sb.ws.lock:
            files.edit_item(notes.id, b"Personal notes: the quarterly search quality review moved to May.")
        sb.faults.fail("graph", "content", 403, times=1)
        assert outcome(ix.run()) == ("partial", 1)  # remembered, the old version kept
        with sb.ws.lock:
            okapi = files.add_item(
                notes.drive_id, None, "Okapi.txt", b"An okapi was seen near the river.", "text/plain"
            )
        sb.faults.fail("graph", "item", 403, times=1)  # what reading Notes.txt again would meet
        scoped = ix.engine.run(ix.source, "sync", scope=frozenset({notes.drive_id}))
        assert (scoped.outcome, scoped.errors, scoped.upserted) == ("ok", 0, 1), scoped  # Okapi only
        assert ix.engine.state.last_run(ix.source).kind == "event"
        assert f"sandbox-files:{okapi.id}" in ix.index.catalog.source_doc_ids(ix.source)
        assert outcome(ix.run()) == ("partial", 1)  # the whole run reads Notes.txt again: refused
        assert outcome(ix.run()) == ("ok", 0)
        assert "moved to May" in ix.index.document(f"sandbox-files:{notes.id}").text


def test_teams_an_event_s_scoped_run_leaves_failed_reads_to_the_next_whole_run(
    tmp_path: Path, text_hash_embedder: Any
) -> None:
    """A channel's scoped run (a change notification) does not read its failed threads again; the
    next whole run does."""
    with Sandbox() as sb, indexed(sb, tmp_path, text_hash_embedder, "sandbox-teams", teams=["Support"]) as ix:
        teams = graph_teams.teams_state(sb.ws)
        assert outcome(ix.run("backfill")) == ("ok", 0)
        support = next(t for t in teams.teams.values() if t.name == "Support")
        desk = next(c for c in teams.channels.values() if c.team_id == support.id)
        with sb.ws.lock:
            bison = teams.post(desk.id, "heroeshannibal@example.com", "<p>Bison rollout starts Monday.</p>")
            teams.post(desk.id, "heroeshannibal@example.com", "<p>Bison canary is green.</p>", bison.id)
        sb.faults.fail("graph", "replies", 403, times=2)  # the new thread, and its read again in the same run
        assert outcome(ix.run()) == ("partial", 1)  # remembered
        sb.faults.fail("graph", "replies", 403, times=1)  # what reading it again would meet
        scoped = ix.engine.run(ix.source, "sync", scope=frozenset({desk.id}))
        assert (scoped.outcome, scoped.errors) == ("ok", 0), scoped
        assert outcome(ix.run()) == ("partial", 1)  # the whole run reads it again: refused
        assert outcome(ix.run()) == ("ok", 0)
        assert f"sandbox-teams:{desk.id}:{bison.id}" in ix.index.catalog.source_doc_ids(ix.source)
