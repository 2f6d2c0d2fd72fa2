"""The engine with scripted connectors (a real Connector subclass) and a real index."""

from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import threading

import httpx
import pytest

from inlet.config import IndexConfig, Settings
from inlet.connectors import ACL, AclUpdate, Checkpoint, Connector, Deletion, Skipped, SourceConfig, principals_for
from inlet.connectors.base import LivePrefix
from inlet.connectors.kit.transport import client as kit_client
from inlet.errors import CredentialsError, IncompleteListingError, SourceBusyError
from inlet.storage.lock import FileLock
from inlet.index.store import Index
from inlet.sync.engine import BATCH_DOCS, ORPHANED, Engine
from inlet.storage.sqlite.state import SqliteState


class Script(Connector):
    """Yields what the test puts in `script` (a list of callables/items per load)."""

    type = "script"
    Config = SourceConfig
    plan: list = []
    calls: list = []

    def load(self, checkpoint, *, since=None) -> Iterator:
        Script.calls.append((checkpoint, since))
        for step in Script.plan.pop(0):
            if isinstance(step, Exception):
                raise step
            yield step(self) if callable(step) else step


def doc(n: int, text: str = ""):
    return lambda c: c.document(str(n), title=f"Doc {n}", text=text or f"document number {n} about topic {n}")


class ScriptEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Script(self.settings.source(name))


@pytest.fixture
def engine(tmp_path, embedder):
    Script.plan, Script.calls = [], []
    settings = Settings(
        index=IndexConfig(path=tmp_path),
        sources=[SourceConfig(name="one", type="script"), SourceConfig(name="two", type="script")],
    )
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(tmp_path / "state.db")
        yield ScriptEngine(settings, index, state)
        state.close()


def indexed(engine, source="one"):
    return sorted(engine.index.catalog.source_doc_ids(source))


def test_checkpoint_saved_only_after_what_came_before_is_indexed(engine):
    Script.plan = [
        [doc(1), doc(2), Checkpoint(state={"at": 2}), doc(3), RuntimeError("network down")],
        [doc(3), doc(4), Checkpoint(state={"at": 4})],
    ]
    first = engine.run("one", "backfill")
    assert first.outcome == "failed" and "network down" in first.error
    assert engine.state.source("one").checkpoint == {"at": 2}
    assert indexed(engine) == ["one:1", "one:2"]  # doc 3 was never committed, nor its checkpoint
    second = engine.run("one", "sync")  # resumes the interrupted backfill
    assert Script.calls[-1][0] == {"at": 2}
    assert second.outcome == "ok"
    assert indexed(engine) == ["one:1", "one:2", "one:3", "one:4"]
    assert engine.state.source("one").phase == "incremental"
    chunks = sum(c for _, c in engine.index.catalog.counts().values())
    assert engine.index.collection.count() == chunks


def test_a_completed_full_pass_deletes_what_it_did_not_see(engine):
    Script.plan = [[doc(1), doc(2), doc(3), Checkpoint(state={})], [doc(1), doc(3), Checkpoint(state={})]]
    engine.run("one", "backfill")
    result = engine.run("one", "backfill")
    assert result.deleted == 1 and indexed(engine) == ["one:1", "one:3"]
    assert result.embedded == 0  # unchanged documents were not re-embedded


def test_a_full_pass_keeps_what_it_could_not_read_this_time(engine):
    """An unreadable item (a failed skip) is still at the source: its document stays. An item
    skipped by policy (now too large, say) is not indexable any more: its document goes."""
    Script.plan = [
        [doc(1), doc(2), doc(3), Checkpoint(state={})],
        [
            doc(1),
            Skipped(id="one:2", reason="cannot be read (permission denied)"),
            Skipped(id="one:3", reason="larger than the limit", failed=False),
            Checkpoint(state={}),
        ],
    ]
    engine.run("one", "backfill")
    result = engine.run("one", "backfill")
    assert (result.outcome, result.errors, result.skipped, result.deleted) == ("partial", 1, 1, 1)
    assert indexed(engine) == ["one:1", "one:2"]


def test_a_document_the_index_cannot_prepare_is_its_failed_skip_and_the_rest_of_the_batch_is_indexed(engine):
    """probe35b F1: an exception while one document is hashed or chunked (here a lone surrogate a
    connector slipped past the model's validation: `model_copy` does not validate) fails that
    item alone: a failed skip naming it and the error, its earlier version kept through the full
    pass's prune; the documents around it in the batch are indexed."""
    cut = lambda n: lambda c: doc(n)(c).model_copy(update={"text": "half an emoji \ud83d"})  # noqa: E731
    Script.plan = [
        [doc(1), doc(2), doc(3), Checkpoint(state={})],
        [doc(1, "changed one"), cut(2), doc(3, "changed three"), cut(4), doc(5), Checkpoint(state={})],
    ]
    engine.run("one", "backfill")
    before = engine.index.catalog.stored(["one:2"])["one:2"]
    result = engine.run("one", "backfill", restart=True)
    assert (result.outcome, result.errors, result.upserted, result.deleted) == ("partial", 2, 3, 0), result
    assert indexed(engine) == ["one:1", "one:2", "one:3", "one:5"]
    assert engine.index.catalog.stored(["one:2"])["one:2"].content_hash == before.content_hash  # kept as it was
    assert "changed three" in engine.index.document("one:3").text
    skips = engine.state.skipped_items(engine.state.last_run("one").id)
    assert [(s["id"], s["title"], s["failed"]) for s in skips] == [("one:2", "Doc 2", True), ("one:4", "Doc 4", True)]
    # the stored one is hashed first (UTF-8); the new one reaches the tokenizer
    assert skips[0]["reason"].startswith("could not be indexed: UnicodeEncodeError: 'utf-8' codec can't encode")
    assert skips[1]["reason"].startswith("could not be indexed: TypeError: TextEncodeInput must be")


def test_a_skip_deletes_nothing_by_itself_the_connector_yields_the_deletion(engine):
    """A skip's id names an item, not always a document (`doc#body`, an attachment, which a sender
    may name like another message): the engine deletes nothing for a skip in a sync. A connector
    whose item must leave the index (a file now over the cap) yields its `Deletion` too; a failed
    skip keeps the old version; the next full pass prunes what a policy skipped."""
    Script.plan = [
        [doc(1), doc(2), doc(3), doc(4), Checkpoint(state={})],
        [
            Skipped(id="one:1", reason="larger than the limit", failed=False),
            Deletion(id="one:1"),
            Skipped(id="one:2", reason="cannot be read (HTTP 500)"),
            doc(3, "document three, edited"),
            Skipped(id="one:3#body", reason="body truncated", failed=False),
            Skipped(id="one:4", reason="out of scope: private", failed=False),
            Checkpoint(state={}),
        ],
    ]
    engine.run("one", "backfill")
    result = engine.run("one", "sync")
    assert (result.outcome, result.deleted, result.skipped, result.errors) == ("partial", 1, 3, 1)
    assert indexed(engine) == ["one:2", "one:3", "one:4"]
    assert engine.index.catalog.document("one:3").text == "document three, edited"
    chunks = sum(c for _, c in engine.index.catalog.counts().values())
    assert engine.index.collection.count() == chunks  # the deleted one's vectors went with it


def test_a_full_pass_keeps_the_documents_under_a_folder_it_could_not_list(engine):
    """A fresh pass (`backfill --restart`) knows none of a locked folder's files: the folder's skip
    keeps every document under it, and only those."""
    folder = lambda c: c.document(f"locked/{c.name}", title="Locked", text="in the locked folder")  # noqa: E731
    Script.plan = [
        [doc(1), folder, doc(2), Checkpoint(state={})],
        [doc(1), Skipped(id="one:locked/", reason="folder cannot be listed", folder=True), Checkpoint(state={})],
    ]
    engine.run("one", "backfill")
    result = engine.run("one", "backfill", restart=True)
    assert (result.outcome, result.deleted) == ("partial", 1)
    assert indexed(engine) == ["one:1", "one:locked/one"]


def test_a_run_closes_what_a_killed_process_left_running(engine):
    """A `kill -9`'d backfill leaves its run unfinished; whoever holds the source's lease next (a
    command as well as a daemon) closes it, so status stops showing it as running."""
    Script.plan = [[doc(1), Checkpoint(state={})]]
    engine.state.start_run("one", "backfill")  # what the killed process left
    assert engine.state.sources_with_unfinished_runs() == ["one"]
    assert engine.run("one", "backfill").outcome == "ok"
    assert engine.state.sources_with_unfinished_runs() == []
    latest, killed = engine.state.recent_runs("one", 2)
    assert latest.outcome == "ok" and (killed.outcome, killed.error) == ("failed", ORPHANED)


def test_a_run_counts_the_chunks_its_repair_of_a_killed_write_embedded(engine):
    """A write killed between Chroma and the catalog is settled by the next run, which counts the
    chunks that took (and only those: most of the document's vectors are kept)."""
    paragraphs = [f"Paragraph {i} of the long memo about the harbour works." for i in range(200)]
    Script.plan = [[doc(1, " ".join(paragraphs)), Checkpoint(state={})], [Checkpoint(state={})]]
    assert engine.run("one", "backfill").outcome == "ok"
    stored = engine.index.catalog.document("one:1")
    edited = stored.model_copy(update={"text": " ".join(paragraphs[:100] + ["A new paragraph."] + paragraphs[101:])})
    real = engine.index.catalog.commit
    engine.index.catalog.commit = lambda batch: real(batch) if batch.marked else _kill()
    with pytest.raises(KeyboardInterrupt):
        engine.index.apply([edited])
    engine.index.catalog.commit = real
    changed = sum(a != b for a, b in zip(engine.index.chunk(stored), engine.index.chunk(edited)))
    result = engine.run("one")
    assert result.outcome == "ok" and result.embedded == changed and 0 < changed < len(engine.index.chunk(stored))
    assert engine.state.recent_runs("one", 1)[0].embedded == changed


def _kill() -> None:
    raise KeyboardInterrupt  # the process dies here


def test_a_failed_read_that_knew_the_permissions_narrows_the_kept_version(engine):
    """The content could not be read but the permissions could: the version kept takes the new
    ACL (no re-embedding), so a user removed from the sharing does not keep it."""
    shared = lambda c: c.document("1", title="Plan", text="the walrus plan", acl=ACL(users=["a@x.org", "b@x.org"]))  # noqa: E731
    Script.plan = [
        [shared, Checkpoint(state={})],
        [Skipped(id="one:1", reason="download refused", acl=ACL(users=["a@x.org"])), Checkpoint(state={})],
    ]
    engine.run("one", "backfill")
    result = engine.run("one", "sync")
    assert (result.outcome, result.errors, result.embedded) == ("partial", 1, 0)
    assert engine.index.document("one:1").acl.users == ["a@x.org"]
    as_b = tuple(principals_for("b@x.org") or ())
    assert engine.index.document("one:1", as_b) is None and engine.index.document("one:1").text == "the walrus plan"


def test_an_acl_update_rewrites_the_acl_and_re_embeds_nothing(engine):
    """A connector that read new permissions without the content (a shared drive's members
    changed): the stored document takes the ACL, keeps its text and vectors, and the run is ok."""
    shared = lambda c: c.document("1", title="Plan", text="the walrus plan", acl=ACL(users=["a@x.org", "b@x.org"]))  # noqa: E731
    Script.plan = [
        [shared, Checkpoint(state={})],
        [AclUpdate(id="one:1", acl=ACL(users=["a@x.org"])), AclUpdate(id="one:2", acl=ACL()), Checkpoint(state={})],
    ]
    engine.run("one", "backfill")
    result = engine.run("one", "sync")
    assert (result.outcome, result.errors, result.embedded) == ("ok", 0, 0)
    assert engine.index.document("one:1").acl.users == ["a@x.org"] and indexed(engine) == ["one:1"]
    as_b = tuple(principals_for("b@x.org") or ())
    assert engine.index.document("one:1", as_b) is None and engine.index.document("one:1").text == "the walrus plan"


def test_the_same_failed_item_twice_in_a_run_does_not_stall_it(engine):
    """A connector that reads its failed items again first (kit.retries) may meet one again in
    its listing: the second batch naming it must not wait for the first one forever."""
    Script.plan = [
        [doc(1), Checkpoint(state={})],
        [
            Skipped(id="one:1", reason="HTTP 500"),
            Checkpoint(state={"replayed": True}),
            Skipped(id="one:1", reason="HTTP 500"),
            Checkpoint(state={"listed": True}),
        ],
    ]
    engine.run("one", "backfill")
    results: list = []
    worker = threading.Thread(target=lambda: results.append(engine.run("one", "sync")), daemon=True)
    worker.start()
    worker.join(120)  # bounded: a stalled run fails the test instead of hanging it
    assert not worker.is_alive() and (results[0].outcome, results[0].errors) == ("partial", 2)
    assert indexed(engine) == ["one:1"]


def test_since_limited_backfill_never_prunes(engine):
    Script.plan = [[doc(1), doc(2), Checkpoint(state={})], [doc(2), Checkpoint(state={})]]
    engine.run("one", "backfill")
    since = datetime(2024, 1, 1, tzinfo=timezone.utc)
    engine.run("one", "backfill", since=since)
    assert Script.calls[-1] == (None, since)
    assert indexed(engine) == ["one:1", "one:2"]


def test_a_later_since_backfill_never_narrows_what_earlier_passes_covered(engine):
    """Probe 23a F6: a `--since` backfill after a full one deletes nothing, so the source stays
    searchable all the way back ("all"), during that pass and after it; `--since` passes alone
    cover back to the earliest of their dates, and a full pass covers everything again."""
    during: list = []

    def looked(n: int):  # the coverage `inlet status` reports while the pass runs
        return lambda c: (during.append(engine.state.source("one").indexed_since()), doc(n)(c))[1]

    def pass_(since: datetime | None) -> str | None:
        engine.run("one", "backfill", since=since)
        return engine.state.source("one").indexed_since()

    Script.plan = [[looked(n), Checkpoint(state={})] for n in (1, 2, 3, 4, 5)]
    assert pass_(datetime(2024, 6, 1, tzinfo=timezone.utc)) == "2024-06-01T00:00:00+00:00"
    assert pass_(datetime(2025, 1, 1, tzinfo=timezone.utc)) == "2024-06-01T00:00:00+00:00"  # not narrowed
    assert pass_(datetime(2023, 1, 1, tzinfo=timezone.utc)) == "2023-01-01T00:00:00+00:00"  # extended back
    assert pass_(None) == "all"
    assert pass_(datetime(2024, 1, 1, tzinfo=timezone.utc)) == "all"
    assert during == [
        None,
        "2024-06-01T00:00:00+00:00",
        "2024-06-01T00:00:00+00:00",
        "2023-01-01T00:00:00+00:00",
        "all",
    ]
    assert indexed(engine) == ["one:4", "one:5"]  # the full pass pruned what it did not see; the last kept all


def test_incremental_sync_applies_deletions_and_counts_skips(engine):
    Script.plan = [
        [doc(1), doc(2), Checkpoint(state={"v": 1})],
        [
            Deletion(id="one:1"),
            Skipped(id="one:9", reason="corrupt"),
            Skipped(id="one:8", reason="image", failed=False),
            doc(2, "edited text"),
            Checkpoint(state={"v": 2}),
        ],
    ]
    engine.run("one", "backfill")
    result = engine.run("one", "sync")
    assert Script.calls[-1][0] == {"v": 1}
    assert (result.outcome, result.deleted, result.errors, result.skipped, result.upserted) == ("partial", 1, 1, 1, 1)
    assert indexed(engine) == ["one:2"]
    assert engine.state.last_run("one").outcome == "partial"


def test_refused_credentials_fail_the_source_only(engine):
    Script.plan = [[CredentialsError("one", "token_revoked")], [doc(1), Checkpoint(state={})]]
    bad = engine.run("one", "sync")
    good = engine.run("two", "sync")
    assert bad.credentials_refused and bad.outcome == "failed" and "token_revoked" in bad.error
    assert good.outcome == "ok" and indexed(engine, "two") == ["two:1"]
    assert engine.state.failure_streak("one") == 1


def test_one_source_never_runs_twice_at_once(engine):
    held = FileLock(engine.index.path / "locks" / "one.lock")
    assert held.acquire()
    try:
        with pytest.raises(SourceBusyError, match="already being synced"):
            engine.run("one", "sync")
    finally:
        held.release()


def status_of(engine, name: str = "one") -> dict:
    """What `inlet status` shows of the source."""
    from inlet.status import sources_status

    return next(s for s in sources_status(engine.settings, engine.state)["sources"] if s["name"] == name)


def as_if_killed(state_db) -> None:
    """The process a run's progress names is gone (a `kill -9`)."""
    import sqlite3
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db = sqlite3.connect(state_db)
    db.execute("UPDATE run_progress SET pid = ?", (dead.pid,))
    db.commit()
    db.close()


def test_status_shows_a_killed_run_as_the_next_run_will_record_it(engine, tmp_path):
    """Between a `kill -9` and the next run, `inlet status` shows the run as failed (interrupted),
    with what it had done, not as "never run"; a run just starting (no progress saved) is not judged."""
    run = engine.state.start_run("one", "backfill")
    assert status_of(engine)["last_run"] is None and status_of(engine)["running"] is None  # starting: nothing saved
    run.upserted = 7
    engine.state.save_progress(run, 7, 7, 20, "files")
    assert status_of(engine)["running"]["upserted"] == 7 and status_of(engine)["last_run"] is None
    as_if_killed(tmp_path / "state.db")
    shown = status_of(engine)
    assert shown["running"] is None
    last = shown["last_run"]
    assert (last["outcome"], last["error"], last["upserted"], last["kind"]) == ("failed", ORPHANED, 7, "backfill")
    assert last["finished_at"] is not None


def test_a_run_killed_before_its_connector_yields_shows_as_the_last_run(engine, tmp_path):
    """A run whose first call waits (a retry's wait, a slow listing) is shown running at once, and
    once killed there, as the last run: failed, interrupted, not the run before it."""
    seen: list = []

    def killed_while_waiting(c):
        seen.append(status_of(engine)["running"])
        raise KeyboardInterrupt  # stands for the kill: nothing of the engine runs after it

    Script.plan = [[doc(1), Checkpoint(state={})], [killed_while_waiting]]
    assert engine.run("one", "backfill").outcome == "ok"
    with pytest.raises(KeyboardInterrupt):
        engine.run("one", "sync")
    assert seen[0] is not None and seen[0]["kind"] == "sync"
    as_if_killed(tmp_path / "state.db")
    last = status_of(engine)["last_run"]
    assert (last["kind"], last["outcome"], last["error"]) == ("sync", "failed", ORPHANED)


def test_a_killed_run_shows_the_counts_of_every_batch_it_committed(engine, tmp_path):
    """The counts a killed run is recorded with are saved with each written batch, not only every
    few seconds: a run killed right after a commit does not read `0 upserted`."""
    written = threading.Event()

    class Signalling(ScriptEngine):
        def _written(self, *args, **kwargs):
            super()._written(*args, **kwargs)
            written.set()

    def killed_after_the_write(c):
        assert written.wait(60)
        raise KeyboardInterrupt  # stands for the kill: nothing of the engine runs after it

    Script.plan = [[doc(1), doc(2), doc(3), Checkpoint(state={}), killed_after_the_write]]
    with pytest.raises(KeyboardInterrupt):
        Signalling(engine.settings, engine.index, engine.state).run("one", "backfill")
    as_if_killed(tmp_path / "state.db")
    last = status_of(engine)["last_run"]
    assert (last["outcome"], last["upserted"]) == ("failed", 3) and indexed(engine) == ["one:1", "one:2", "one:3"]


def test_an_httpx_error_a_connector_lets_out_fails_the_run_naming_the_request_without_traceback(engine, caplog):
    """A plug-in's call that still fails after the kit's retries (refused, or a last 503 it passes to
    `raise_for_status`) is logged once, as the built-ins' errors are: the source, the method and
    the URL, never its query (a token may be in it), and no traceback."""
    import logging

    import httpx

    request = httpx.Request("GET", "https://tickets.test/api/tickets?page=3&token=s3cret")
    refused = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    answer = httpx.Response(503, request=request)
    unavailable = httpx.HTTPStatusError("Server error '503 Service Unavailable'", request=request, response=answer)
    Script.plan = [[doc(1), refused], [unavailable]]
    with caplog.at_level(logging.ERROR, logger="inlet.sync.engine"):
        first = engine.run("one", "backfill")
        second = engine.run("one", "backfill")
    assert first.outcome == "failed" and first.error == (
        "source 'one': GET https://tickets.test/api/tickets failed: ConnectError: [Errno 111] Connection refused"
    )
    assert second.error == "source 'one': GET https://tickets.test/api/tickets answered HTTP 503, after the retries"
    assert len(caplog.records) == 2 and not any(r.exc_info for r in caplog.records)
    assert "s3cret" not in caplog.text and "https://tickets.test/api/tickets" in caplog.text


def test_stop_ends_the_run_at_the_next_checkpoint(engine):
    def stop_now(c):
        engine.stop.set()
        return c.document("2", title="Doc 2", text="two")

    Script.plan = [[doc(1), stop_now, Checkpoint(state={"at": 2}), doc(3), Checkpoint(state={"at": 3})]]
    result = engine.run("one", "backfill")
    assert result.outcome == "interrupted" and "resumes" in result.error
    assert engine.state.source("one").checkpoint == {"at": 2}
    assert indexed(engine) == ["one:1", "one:2"]


def test_the_backfill_asked_decides_what_is_read_after_an_interrupted_one(engine, caplog):
    """Probe 31e F5: a plain backfill after an interrupted `--since` one reads the full history
    (the narrower pass is not silently finished in its place); a `--since` backfill after an
    interrupted full one resumes that pass, which reads all it asks, and says so; a run's result
    names the `--since` date of the pass it read."""
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)

    def stop_now(c):
        engine.stop.set()
        return c.document("2", title="Doc 2", text="two")

    Script.plan = [
        [doc(1), stop_now, Checkpoint(state={"at": 2}), doc(3), Checkpoint(state={"at": 3})],
        [doc(1), doc(2), doc(3), doc(4), Checkpoint(state={"at": 4})],
    ]
    first = engine.run("one", "backfill", since=since)
    assert first.outcome == "interrupted"
    engine.stop.clear()
    with caplog.at_level("WARNING", logger="inlet.sync.engine"):
        full = engine.run("one", "backfill")
    assert Script.calls[-1] == (None, None)  # the full pass, from its start
    assert (first.since, full.outcome, full.since) == (since.isoformat(), "ok", None)
    assert "read only items modified since 2025-01-01T00:00:00+00:00" in caplog.text and "full history" in caplog.text
    assert engine.state.source("one").indexed_since() == "all"
    assert indexed(engine) == ["one:1", "one:2", "one:3", "one:4"]

    caplog.clear()
    Script.plan = [
        [doc(1), stop_now, Checkpoint(state={"at": 2}), doc(3)],
        [doc(3), Checkpoint(state={"at": 3})],
    ]
    assert engine.run("one", "backfill", restart=True).outcome == "interrupted"
    engine.stop.clear()
    with caplog.at_level("WARNING", logger="inlet.sync.engine"):
        resumed = engine.run("one", "backfill", since=since)
    assert Script.calls[-1] == ({"at": 2}, None)  # the full pass resumed: it reads all --since asks
    assert (resumed.outcome, resumed.since) == ("ok", None)
    assert "resuming the interrupted backfill of the full history" in caplog.text


def test_a_stop_while_the_last_batch_embeds_cuts_it_short_and_the_backfill_stays_unfinished(engine, monkeypatch):
    """The connector is done and its one huge document is embedding when the stop comes: the
    embedding ends after the turn under way, not after every turn of the file, and the run
    is interrupted: neither the document nor the checkpoint behind it is committed."""
    text = "\n\n".join(f"Section {i}: the ledger of shipment {i} was reconciled." * 6 for i in range(2000))
    Script.plan = [[doc(1, text), Checkpoint(state={"at": 1})]]
    stopped_at_start: list[bool] = []  # per turn of the model: was the stop set when it began
    turn = engine.index.embedder._encode_bulk
    monkeypatch.setattr(
        engine.index.embedder,
        "_encode_bulk",
        lambda texts: (stopped_at_start.append(engine.stop.is_set()), turn(texts))[1],
    )
    engine.on_progress = lambda run, progress: progress.embedding and engine.stop.set()
    engine.stop_work = 0.0
    result = engine.run("one", "backfill")
    assert result.outcome == "interrupted"
    assert stopped_at_start.count(True) == 1 and stopped_at_start[0] is False  # the turn under way, of many
    assert engine.state.source("one").checkpoint is None and indexed(engine) == []


def test_stop_ends_a_long_wait_between_tries_and_the_run_resumes_from_its_checkpoint(engine):
    """A call waiting out a two-minute Retry-After gives up when the run is stopped (not two minutes
    later); the run is interrupted, not failed, and keeps what came before its last checkpoint."""
    import time

    from inlet.connectors.kit.retry import RetryPolicy
    from inlet.errors import RetriableError

    waiting = threading.Event()

    def throttled(c):
        waiting.set()
        if not RetryPolicy().start("one", "items.list").retry("429 Too Many Requests", retry_after=120.0):
            raise RetriableError("one: items.list still throttled")
        return c.document("3", title="Doc 3", text="three")

    Script.plan = [[doc(1), Checkpoint(state={"at": 1}), throttled, Checkpoint(state={"at": 3})]]
    stopper = threading.Thread(target=lambda: waiting.wait(60) and engine.stop.set())
    stopper.start()
    started = time.monotonic()
    result = engine.run("one", "backfill")
    stopper.join()
    assert time.monotonic() - started < 30
    assert result.outcome == "interrupted" and "resumes" in result.error
    assert engine.state.source("one").checkpoint == {"at": 1}
    assert indexed(engine) == ["one:1"]


class Remembering(Script):
    """Finds deletions by what its checkpoint remembers (as files, mail archives and Slack do)."""

    deletions_from_checkpoint = True
    live: list[str] = []

    def live_ids(self):
        if isinstance(Remembering.live, Exception):
            raise Remembering.live
        return Remembering.live


class RememberingEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Remembering(self.settings.source(name))


def unfinished_sync(engine, later_syncs: int, kind: type[Engine] = RememberingEngine) -> Engine:
    """A backfill of one:1, then a sync that commits a full batch past its last checkpoint and
    fails; `later_syncs` more loads each yield only that checkpoint."""
    engine = kind(engine.settings, engine.index, engine.state)
    past = [doc(n) for n in range(2, 2 + BATCH_DOCS)]  # one full batch: written before any checkpoint
    Script.plan = [
        [doc(1), Checkpoint(state={"at": 1})],
        [*past, RuntimeError("network down")],
        *([Checkpoint(state={"at": 1})] for _ in range(later_syncs)),
    ]
    engine.run("one", "backfill")
    assert engine.run("one", "sync").outcome == "failed"
    return engine


def test_a_sync_after_an_unfinished_one_deletes_what_it_committed_past_its_checkpoint(engine):
    """A failing sync commits a full batch after its last checkpoint; the source deletes those
    documents before the next sync, whose checkpoint never knew them: only asking the source
    (`live_ids`) settles it."""
    Remembering.live = ["one:1"]
    engine = unfinished_sync(engine, later_syncs=2)
    assert len(indexed(engine)) == 1 + BATCH_DOCS and engine.state.source("one").checkpoint == {"at": 1}
    assert engine.run("one", "sync").deleted == BATCH_DOCS
    assert indexed(engine) == ["one:1"]
    Remembering.live = []  # after a clean run the source is not asked again
    assert engine.run("one", "sync").deleted == 0 and indexed(engine) == ["one:1"]


class Vouching(Remembering):
    """Lists only what an unfinished run can have written past the checkpoint it is told of, and
    vouches for the rest (as Slack does for the channels the run had finished)."""

    asked: list[object] = []

    def live_ids_after(self, checkpoint):
        Vouching.asked.append(checkpoint)
        return [LivePrefix("one:1"), "one:2"]  # one:1 (and one:10...) vouched for, one:2 listed


class VouchingEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Vouching(self.settings.source(name))


def test_the_listing_after_a_resumed_run_is_told_the_checkpoint_it_resumed_from(engine):
    """The reconciling asks `live_ids_after(checkpoint)`, the checkpoint the resumed run started
    from: what it vouches for stays, what it neither lists nor vouches for goes."""
    Vouching.asked = []
    Remembering.live = []  # the whole listing would say nothing exists
    engine = unfinished_sync(engine, later_syncs=1, kind=VouchingEngine)
    assert engine.run("one", "sync").outcome == "ok"
    assert Vouching.asked == [{"at": 1}]
    kept = ["one:1", "one:2", *(f"one:{n}" for n in range(10, 2 + BATCH_DOCS) if str(n).startswith("1"))]
    assert indexed(engine) == sorted(kept)


class Feeding(Script):
    """A change-feed connector (as Gmail, Outlook, Drive): no memory of deletions in its checkpoint."""

    live: list[str] = []

    def live_ids(self):
        return Feeding.live


class FeedingEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Feeding(self.settings.source(name))


def test_a_backfill_resumed_without_any_checkpoint_asks_the_source_what_exists(engine):
    """The killed backfill saved no checkpoint (its feed position was lost with it); a document it
    committed is deleted before the resume, whose new feed starts after that deletion."""
    engine = FeedingEngine(engine.settings, engine.index, engine.state)
    first = [doc(n) for n in range(1, 1 + BATCH_DOCS)]  # one full batch: written before any checkpoint
    Script.plan = [
        [*first, RuntimeError("killed")],
        [doc(n) for n in range(2, 1 + BATCH_DOCS)] + [Checkpoint(state={})],
    ]
    assert engine.run("one", "backfill").outcome == "failed" and "one:1" in indexed(engine)
    Feeding.live = [f"one:{n}" for n in range(2, 1 + BATCH_DOCS)]  # one:1 deleted at the source meanwhile
    assert engine.run("one", "backfill").outcome == "ok"
    assert "one:1" not in indexed(engine) and len(indexed(engine)) == BATCH_DOCS - 1


def test_what_a_source_cannot_list_is_neither_reconciled_nor_pruned_away(engine, caplog):
    """A folder the source may not list: its documents are not known to be gone, so the sync
    after an unfinished one deletes nothing and says why, and a prune fails, deleting nothing."""
    Remembering.live = IncompleteListingError("source 'one': cannot list data/locked/ (permission denied)")
    engine = unfinished_sync(engine, later_syncs=1)
    result = engine.run("one", "sync")
    assert (result.outcome, result.deleted) == ("ok", 0) and len(indexed(engine)) == 1 + BATCH_DOCS
    assert "deletions not reconciled: source 'one': cannot list data/locked/" in caplog.text
    pruned = engine.prune("one")
    assert pruned.outcome == "failed" and "data/locked/" in pruned.error and len(indexed(engine)) == 1 + BATCH_DOCS


def test_a_live_prefix_keeps_every_document_it_starts_from_the_prune_and_the_reconciling(engine):
    """A source that can no longer list a container's documents one by one (an archived Slack
    channel) vouches for them all with a `LivePrefix`: neither a prune nor the reconciling after an
    unfinished sync deletes them; what no entry names or starts still goes."""
    Remembering.live = [LivePrefix("one:")]
    engine = unfinished_sync(engine, later_syncs=1)
    assert engine.run("one", "sync").deleted == 0 and len(indexed(engine)) == 1 + BATCH_DOCS
    Remembering.live = [LivePrefix("one:1"), "one:2"]  # one:1 and one:10...: the prefix; one:2 by name
    kept = {d for d in indexed(engine) if d.startswith("one:1") or d == "one:2"}
    assert engine.prune("one").deleted == 1 + BATCH_DOCS - len(kept) and set(indexed(engine)) == kept


def test_order_within_a_batch_is_kept(engine):
    Script.plan = [
        [doc(1), doc(2), Checkpoint(state={})],
        [doc(3), Deletion(id="one:3"), Deletion(id="one:1"), doc(1, "back again"), Checkpoint(state={})],
    ]
    engine.run("one", "backfill")
    engine.run("one", "sync")
    assert indexed(engine) == ["one:1", "one:2"]
    assert engine.index.document("one:1").text == "back again"


class CountingState(SqliteState):
    writes = 0

    def save_source(self, state) -> None:
        CountingState.writes += 1
        super().save_source(state)


def test_checkpoint_writes_take_a_bounded_share_of_the_run(engine, tmp_path):
    """A large checkpoint offered back to back is written once, then again only at the end."""
    original, engine.state = engine.state, CountingState(tmp_path / "counting.db")
    CountingState.writes = 0
    big = {"known": [f"file-{n:06d}-" + "x" * 30 for n in range(100_000)]}
    Script.plan = [
        [doc(1), Checkpoint(state={**big, "at": 1})]
        + [Checkpoint(state={**big, "at": n}) for n in range(2, 200)]
        + [doc(2), Checkpoint(state={**big, "at": 200})]
    ]
    try:
        result = engine.run("one", "backfill")
        assert result.outcome == "ok" and indexed(engine) == ["one:1", "one:2"]
        assert engine.state.source("one").checkpoint["at"] == 200  # the last one always lands
        assert CountingState.writes < 20  # not 200 writes of ~4 MB
    finally:
        engine.state.close()
        engine.state = original


def test_a_failed_run_resumes_from_the_last_written_checkpoint(engine):
    Script.plan = [
        [
            doc(1),
            Checkpoint(state={"at": 1}),
            doc(2),
            Checkpoint(state={"at": 2}),
            doc(3),
            RuntimeError("network down"),
        ],
        [doc(3), Checkpoint(state={"at": 3})],
    ]
    assert engine.run("one", "backfill").outcome == "failed"
    written = engine.state.source("one").checkpoint
    assert written in ({"at": 1}, {"at": 2})
    engine.run("one", "sync")
    assert Script.calls[-1][0] == written
    assert indexed(engine) == ["one:1", "one:2", "one:3"]


def test_each_finished_run_logs_one_info_line_with_its_counts(engine, caplog):
    Script.plan = [[doc(1), doc(2), Checkpoint(state={})]]
    with caplog.at_level("INFO", logger="inlet.sync.engine"):
        engine.run("one", "backfill")
    lines = [r for r in caplog.records if r.name == "inlet.sync.engine"]
    assert len(lines) == 1 and lines[0].levelname == "INFO"
    assert "backfill of 'one' ok: 2 upserted, 0 deleted" in lines[0].getMessage()


def test_progress_has_totals_moves_while_one_document_embeds_and_shows_in_status(engine, monkeypatch):
    """Issue 14: one large file must not freeze the bar; a total and time left where the source knows it."""
    import inlet.index.priority as priority
    import inlet.sync.engine as engine_module
    from inlet.connectors import Progress
    from inlet.status import sources_status

    monkeypatch.setattr(priority, "BULK_TURN", 4)
    monkeypatch.setattr(engine_module, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(engine_module, "PROGRESS_SAVE_EVERY", 0.0)
    seen: list[tuple[int, int | None, int | None]] = []
    moved = threading.Event()

    def on_progress(run, progress):
        seen.append((run.embedded, progress.done, progress.total))
        if run.embedded:
            moved.set()

    engine.on_progress = on_progress
    statuses = []

    def look(c):  # the connector runs ahead of the embedding thread: wait until doc 1's chunks move
        assert moved.wait(60)
        statuses.append(sources_status(engine.settings, engine.state)["sources"][0]["running"])
        return c.document("2", title="Doc 2", text="small")

    big = " ".join(f"Sentence {n} about the harbour lantern and meadow." for n in range(300))
    Script.plan = [
        [
            Progress(total=2, unit="files"),
            Progress(done=0),
            doc(1, big),
            Checkpoint(state={}),
            Progress(done=1),
            look,
            Progress(done=2),
            Checkpoint(state={}),
        ]
    ]
    result = engine.run("one", "backfill")
    assert result.outcome == "ok" and result.embedded > 8
    during = [e for e, _done, _total in seen if 0 < e < result.embedded]
    assert len(set(during)) >= 2, seen  # chunks counted as they were embedded, not at the end
    assert seen[-1] == (result.embedded, 2, 2)
    running = statuses[0]
    assert running is not None and running["total"] == 2 and running["done"] == 1 and running["unit"] == "files"
    assert running["embedded"] > 0 and running["eta_seconds"] is not None
    assert sources_status(engine.settings, engine.state)["sources"][0]["running"] is None  # finished


class ScopedScript(Script):
    """A Script whose scoped runs are recorded too."""

    def load_scope(self, checkpoint, scope) -> Iterator:
        Script.calls.append((checkpoint, scope))
        for step in Script.plan.pop(0):
            yield step(self) if callable(step) else step


class ScopedEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return ScopedScript(self.settings.source(name))


def test_a_scoped_run_reads_its_scope_prunes_nothing_and_is_no_scheduled_sync(engine):
    scoped = ScopedEngine(engine.settings, engine.index, engine.state)
    Script.plan = [[doc(1), Checkpoint(state={"a": 0, "b": 0})]]
    assert scoped.run("one", "sync", scope=frozenset({"a"})).outcome == "ok"  # new source: its backfill
    assert Script.calls[-1] == (None, None)
    Script.plan = [[doc(2), Checkpoint(state={"a": 1, "b": 0})]]
    result = scoped.run("one", "sync", scope=frozenset({"a"}))
    assert result.outcome == "ok" and Script.calls[-1] == ({"a": 0, "b": 0}, frozenset({"a"}))
    assert indexed(engine) == ["one:1", "one:2"]  # doc 1 was not seen again, and is kept
    assert engine.state.source("one").checkpoint == {"a": 1, "b": 0}
    assert engine.state.last_run("one").kind == "event"
    assert engine.state.last_run("one", kinds=("sync", "backfill")).kind == "backfill"


def test_without_load_scope_a_scoped_run_is_the_whole_incremental_sync(engine):
    Script.plan = [[doc(1), Checkpoint(state={"at": 1})], [doc(2), Checkpoint(state={"at": 2})]]
    engine.run("one", "backfill")
    assert engine.run("one", "sync", scope=frozenset({"x"})).outcome == "ok"
    assert Script.calls[-1] == ({"at": 1}, None)  # Connector.load_scope's default: load()
    assert indexed(engine) == ["one:1", "one:2"]


def _doc_of_two(c):
    """A Document source `one`'s connector yields with source `two`'s id (a connector bug)."""
    from inlet.connectors import Document

    return Document(id="two:1", source="one", source_type="script", text="hijacked", acl=ACL(users=["zed@x.test"]))


def test_items_naming_another_source_are_refused_and_listed_as_connector_bugs(engine):
    """A run of `one` may change only `one`'s documents: a Deletion, Document, AclUpdate or Skipped
    whose id is another source's (or no source's: the native id without `doc_id`) is not applied;
    each is a failed skip naming the id and the source, so the run is `partial`, not `ok`."""
    Script.plan = [[doc(1), Checkpoint(state={})], [doc(1), Checkpoint(state={"at": 1})]]
    engine.run("two", "backfill")
    engine.run("one", "backfill")
    before = engine.index.catalog.stored(["two:1"])["two:1"]
    wrong_source = lambda c: c.document("2", text="says it is two's").model_copy(update={"source": "two"})  # noqa: E731
    Script.plan = [
        [
            Deletion(id="two:1"),
            Deletion(id="1"),  # forgot doc_id: must not silently do nothing
            _doc_of_two,
            AclUpdate(id="two:1", acl=ACL(users=["zed@x.test"])),
            Skipped(id="two:1", reason="unreadable", acl=ACL(users=["zed@x.test"])),
            wrong_source,
            doc(3),
            Checkpoint(state={"at": 3}),
        ]
    ]
    result = engine.run("one", "sync")
    assert (result.outcome, result.errors, result.deleted) == ("partial", 6, 0)
    assert indexed(engine, "two") == ["two:1"] and indexed(engine) == ["one:1", "one:3"]
    after = engine.index.catalog.stored(["two:1"])["two:1"]
    assert (after.source, after.content_hash, after.meta_hash) == (before.source, before.content_hash, before.meta_hash)
    skips = engine.state.skipped_items(engine.state.last_run("one").id)
    assert [s["id"] for s in skips] == ["two:1", "1", "two:1", "two:1", "two:1", "one:2"]
    assert all(s["failed"] and "connector bug" in s["reason"] and "'one'" in s["reason"] for s in skips)
    assert "a Deletion whose id '1' is not of source 'one'" in skips[1]["reason"]
    assert "says its source is 'two'" in skips[5]["reason"]


def test_a_checkpoint_that_is_not_json_fails_the_run_as_a_connector_bug_saying_where(engine, caplog):
    """Where the engine takes a checkpoint it checks it is JSON: the run fails naming the source and
    where in the state (not a TypeError from the storage, later, in another thread); the last good
    checkpoint stays saved and what came before the bad one is indexed."""
    Script.plan = [[doc(1), Checkpoint(state={"at": 1}), doc(2), Checkpoint(state={"at": 2, "seen": {7}})]]
    result = engine.run("one", "backfill")
    assert result.outcome == "failed"
    assert (
        result.error
        == "connector bug: source 'one' yielded a checkpoint that is not JSON: state['seen'] is a set ({7})"
    )
    assert engine.state.source("one").checkpoint == {"at": 1}
    assert engine.state.last_run("one").error == result.error  # what `inlet status` shows
    assert not [r for r in caplog.records if r.exc_info], "logged once, without a traceback"
    Script.plan = [[RuntimeError("network down")], [doc(3), Checkpoint(state={"at": (3, 4)})]]
    assert engine.run("one", "sync").outcome == "failed"  # resumes from {"at": 1}
    assert engine.run("one", "sync").outcome == "ok"  # a tuple is stored as a list: JSON enough to run
    assert engine.state.source("one").checkpoint == {"at": [3, 4]}


def test_a_failed_skip_read_later_in_the_same_run_is_neither_an_error_nor_listed(engine):
    """A connector replays an item whose read failed before (a stale failed skip), then its change
    feed reports it and it is read: the run that read it is `ok` and lists nothing as unreadable."""
    stale = Skipped(id="one:1", reason="HTTP 403 (not read again after 5 failed reads)")  # replayed, given up
    failing = Skipped(id="one:2", reason="HTTP 500")  # not read in this run: still an error
    by_policy = Skipped(id="one:9", reason="too large", failed=False)
    read_after_all = doc(1, "read after all")  # the change feed reports one:1, and it is read
    Script.plan = [[doc(1), doc(2), Checkpoint(state={"at": 2})]]
    Script.plan.append([stale, failing, by_policy, read_after_all, Checkpoint(state={"at": 3})])
    engine.run("one", "backfill")
    result = engine.run("one", "sync")
    assert (result.outcome, result.errors, result.skipped, result.upserted) == ("partial", 1, 1, 1)
    skips = engine.state.skipped_items(engine.state.last_run("one").id)
    assert [(s["id"], s["failed"]) for s in skips] == [("one:2", True), ("one:9", False)]
    Script.plan = [[Skipped(id="one:2", reason="HTTP 500"), doc(2, "read at last"), Checkpoint(state={"at": 4})]]
    assert engine.run("one", "sync").outcome == "ok"
    assert engine.state.skipped_items(engine.state.last_run("one").id) == []


class Throttled(Script):
    """Lists its ids through the kit's client; the service answers as `answer` says."""

    answer: Callable[[httpx.Request], httpx.Response] = staticmethod(lambda r: httpx.Response(200, json=[]))

    def live_ids(self):
        with kit_client(source=self.name, transport=httpx.MockTransport(Throttled.answer)) as client:
            response = client.get("https://tickets.test/api/ids")
            response.raise_for_status()
            return [self.doc_id(i) for i in response.json()]


class ThrottledEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Throttled(self.settings.source(name))


def test_a_prune_whose_listing_fails_over_http_fails_naming_the_source_and_deletes_nothing(engine, caplog):
    """httpx's errors from `live_ids` in a prune are inlet's typed errors naming the source, as in a
    run (a 401 a refused credential), logged without a traceback; nothing is deleted."""
    engine = ThrottledEngine(engine.settings, engine.index, engine.state)
    Script.plan = [[doc(1), Checkpoint(state={})]]
    engine.run("one", "backfill")
    for status, expected in ((404, "answered HTTP 404"), (401, "refused its credentials")):
        Throttled.answer = staticmethod(lambda r, status=status: httpx.Response(status))
        result = engine.prune("one")
        assert result.outcome == "failed" and "'one'" in result.error and expected in result.error, result.error
        assert "tickets.test/api/ids" in result.error and result.credentials_refused == (status == 401)
    assert indexed(engine) == ["one:1"] and not any(r.exc_info for r in caplog.records)
    Throttled.answer = staticmethod(lambda r: httpx.Response(200, json=[]))
    assert engine.prune("one").deleted == 1


@pytest.mark.timeout(60)
def test_a_stop_ends_a_prune_waiting_out_a_retry_after(engine):
    """A prune's listing answered 429 with a two-minute Retry-After: a stop (SIGTERM) ends the
    wait at once, and the prune is interrupted, deleting nothing."""
    engine = ThrottledEngine(engine.settings, engine.index, engine.state)
    Script.plan = [[doc(1), Checkpoint(state={})]]
    engine.run("one", "backfill")
    Throttled.answer = staticmethod(lambda r: httpx.Response(429, headers={"Retry-After": "120"}))
    engine.stop.set()
    result = engine.prune("one")
    assert result.outcome == "interrupted" and indexed(engine) == ["one:1"]


def test_a_run_ended_by_the_engine_closes_the_connectors_generator_and_its_threads(engine, monkeypatch):
    """A failure on the engine's side (here the progress callback; in the wild a commit the lease's
    fence refused) ends the connector's generator at once: its `finally` runs and the worker threads
    of a fan-in stop, instead of spinning on, and holding the daemon's exit, for as long as the
    failure's traceback kept the generator alive."""
    from inlet.connectors.fan_in import merged

    closed, engine_fails = threading.Event(), threading.Event()

    def endless(start: int) -> Callable[[], Iterator[int]]:
        def numbers() -> Iterator[int]:
            n = start
            while True:
                n += 1
                yield n

        return numbers

    def load(self, checkpoint, *, since=None):
        try:
            for n in merged([endless(0), endless(10**6)], 2, name="test-fan-in"):
                yield self.document(str(n), title=f"Doc {n}", text=f"document number {n}")
                if n == 5:
                    engine_fails.set()
        finally:
            closed.set()

    def on_progress(*_args, **_kwargs) -> None:
        if engine_fails.is_set():
            raise RuntimeError("the engine's side failed")

    monkeypatch.setattr(Script, "load", load)
    engine.on_progress = on_progress
    result = engine.run("one", "backfill")
    assert result.outcome == "failed" and "the engine's side failed" in result.error
    assert closed.is_set()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("test-fan-in")]


def _generator_for_yield_from(c):
    """`yield c._read(...)` where `yield from` was meant: a generator object, not its items."""
    return (d for d in [doc(9)(c)])


@pytest.mark.parametrize(
    ("slip", "named"),
    [
        (_generator_for_yield_from, "yielded generator (<generator object"),
        (lambda c: c.load, "yielded method (<bound method"),  # `state.checkpoint` not called
        ({"at": 9}, "yielded dict ({'at': 9})"),  # the state without `Checkpoint(state=...)`
    ],
    ids=["generator", "method", "dict"],
)
def test_anything_yielded_that_is_not_an_item_fails_the_run_and_a_full_pass_deletes_nothing(
    engine, caplog, slip, named
):
    """A connector updated with a one-word slip yields, for every item, something the engine has no
    use for: the run fails naming the source and what it yielded, and a `backfill --restart` (a
    full pass, whose end would prune everything it did not see) deletes nothing."""
    Script.plan = [[doc(1), doc(2), Checkpoint(state={"at": 2})]]
    engine.run("one", "backfill")
    Script.plan = [[doc(1), slip, slip, Checkpoint(state={"at": 3})]]
    result = engine.run("one", "backfill", restart=True)
    assert (result.outcome, result.deleted) == ("failed", 0), result
    assert result.error.startswith("connector bug: source 'one' " + named), result.error
    assert "expected Document, Deletion, Skipped, Checkpoint, Progress, AclUpdate" in result.error
    assert indexed(engine) == ["one:1", "one:2"]
    assert engine.state.source("one").phase == "backfill"  # the pass did not end: the next run resumes it
    assert not any(r.exc_info for r in caplog.records)  # one line naming it, no traceback


class ListingNative(Script):
    """`live_ids()` yields the service's own ids, without `doc_id` (a connector bug)."""

    def live_ids(self):
        return ["1", "2", "one:2"]


class ListingNativeEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return ListingNative(self.settings.source(name))


def test_a_prune_whose_listing_names_ids_of_no_document_of_the_source_deletes_nothing(engine, caplog):
    """Not one id the listing gave is the source's: taken as is, every document would be gone. The
    prune fails naming the ids (a connector bug) and deletes nothing."""
    engine = ListingNativeEngine(engine.settings, engine.index, engine.state)
    Script.plan = [[doc(1), doc(2), Checkpoint(state={})]]
    engine.run("one", "backfill")
    result = engine.prune("one")
    assert (result.outcome, result.deleted) == ("failed", 0)
    assert "connector bug: live_ids() of source 'one' listed 2 id(s) not of this source ('1', '2'" in result.error
    assert indexed(engine) == ["one:1", "one:2"]


def test_a_reconciling_listing_of_ids_of_no_document_of_the_source_fails_the_run_and_deletes_nothing(engine):
    """The sync after an unfinished one asks the source what exists: a listing of native ids fails
    that run as a connector bug instead of deleting every document."""
    Remembering.live = ["1"]
    engine = unfinished_sync(engine, later_syncs=1)
    result = engine.run("one", "sync")
    assert (result.outcome, result.deleted) == ("failed", 0) and "live_ids() of source 'one'" in result.error
    assert len(indexed(engine)) == 1 + BATCH_DOCS


class Listing(Script):
    """A scripted source whose `live_ids` lists `live`, or raises it (an exception)."""

    live: object = []

    def live_ids(self):
        if isinstance(Listing.live, Exception):
            yield "one:1"  # part-way through its listing
            raise Listing.live
        yield from Listing.live


class ListingEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Listing(self.settings.source(name))


def test_a_prune_that_succeeds_leaves_a_source_whose_syncs_fail_failing(engine):
    """A prune is no sync: its success neither ends the failure streak nor counts as the last
    success (no lag reset); `inlet status` shows the failing sync as the last run and the prune
    beside it, and the metrics read the same."""
    engine = ListingEngine(engine.settings, engine.index, engine.state)
    Listing.live = ["one:1"]
    Script.plan = [[doc(1), Checkpoint(state={})], [RuntimeError("plug-in bug reading 25")]]
    engine.run("one", "backfill")
    ok_at = status_of(engine)["last_success"]
    assert engine.run("one", "sync").outcome == "failed"
    assert engine.prune("one").outcome == "ok"
    status = status_of(engine)
    assert status["failure_streak"] == 1 and engine.state.failure_streak("one") == 1
    assert (status["last_run"]["kind"], status["last_run"]["outcome"]) == ("sync", "failed")
    assert "plug-in bug reading 25" in status["last_run"]["error"] and status["last_success"] == ok_at
    assert status["last_prune"]["outcome"] == "ok"
    from prometheus_client import CollectorRegistry, generate_latest

    from inlet.status import SourcesCollector

    registry = CollectorRegistry()
    registry.register(SourcesCollector(engine.settings, engine.state))
    text = generate_latest(registry).decode()
    assert 'inlet_source_failure_streak{source="one"} 1.0' in text
    assert 'inlet_source_last_run_ok{source="one"} 0.0' in text


def test_a_bug_in_live_ids_fails_the_prune_naming_the_source_recorded_for_status(engine, caplog):
    """`live_ids` raising a plain exception part-way (a plug-in bug) is handled as one in `load`:
    logged with its traceback naming the source, nothing deleted, a failed prune recorded with the
    exception's type and message (shown by `inlet status`); no sync's failure streak grows."""
    engine = ListingEngine(engine.settings, engine.index, engine.state)
    Script.plan = [[doc(1), doc(2), Checkpoint(state={})]]
    engine.run("one", "backfill")
    Listing.live = KeyError("owner")
    result = engine.prune("one")
    assert (result.outcome, result.deleted, result.error) == ("failed", 0, "KeyError: 'owner'")
    assert indexed(engine) == ["one:1", "one:2"]
    logged = [r for r in caplog.records if r.exc_info and "'one'" in r.getMessage()]
    assert logged and logged[0].exc_info[0] is KeyError
    status = status_of(engine)
    assert status["last_prune"] == {
        "finished_at": status["last_prune"]["finished_at"],
        "outcome": "failed",
        "deleted": 0,
        "error": "KeyError: 'owner'",
    }
    assert status["failure_streak"] == 0 and status["last_run"]["outcome"] == "ok"


def test_status_counts_the_items_a_failed_run_skipped_not_its_own_error(engine):
    """A run skips two items, then fails: `recent_skips.total` is 2 (the items listed), not 3
    (the error that ended the run is `last_run.error`, no item)."""
    Script.plan = [
        [
            doc(1),
            Skipped(id="one:7", reason="cannot be read (HTTP 500)"),
            Skipped(id="one:13", reason="cannot be read (HTTP 403)"),
            RuntimeError("plug-in bug reading 20"),
        ]
    ]
    assert engine.run("one", "backfill").outcome == "failed"
    skips = status_of(engine)["recent_skips"]
    assert len(skips["items"]) == 2 and skips["total"] == 2


def test_a_prune_whose_deletions_cannot_reach_the_chroma_server_is_recorded_failed_with_that_error(
    tmp_path, text_hash_embedder, caplog
):
    """The Chroma server stops between a prune's listing and its deletions: the prune's run is
    recorded as ended then, failed with the error naming `chroma_url`, as a failed sync is; it is not
    left open for the next run to close as one a stopped process left (no false "taking over")."""
    from tests.servers import chroma_server

    Script.plan, Script.calls = [[doc(1), doc(2), Checkpoint(state={})]], []
    state = SqliteState(tmp_path / "state.db")
    with chroma_server(tmp_path / "server") as url:
        settings = Settings(
            index=IndexConfig(path=tmp_path / "index", chroma_url=url),
            sources=[SourceConfig(name="one", type="script")],
        )
        index = Index(settings.index, embedder=text_hash_embedder)
        engine = ListingEngine(settings, index, state)
        assert engine.run("one", "backfill").outcome == "ok"
    try:  # the Chroma server has stopped
        Listing.live = ["one:1"]  # one:2 is gone at the source: its vectors are to be deleted
        result = engine.prune("one")
        assert result.outcome == "failed" and f"Chroma server at {url}" in result.error, result.error
        assert state.sources_with_unfinished_runs() == []
        [last] = state.recent_runs("one", 1)
        assert (last.kind, last.outcome, last.error) == ("prune", "failed", result.error)
        assert last.finished_at is not None
        caplog.clear()
        Script.plan = [[Checkpoint(state={})]]
        engine.run("one", "sync")
        assert not [r for r in caplog.records if "taking over" in r.getMessage()]
        assert state.recent_runs("one", 2)[1].error == result.error  # not closed as interrupted
    finally:
        index.close()
        state.close()


class Rechecking(Listing):
    """A scripted source whose listing passes over documents that `recheck` finds still there
    (the ids in `there`, yielded again as documents)."""

    there: set = set()
    asked: list = []

    def recheck(self, checkpoint, ids):
        Rechecking.asked.append(sorted(ids))
        for doc_id in ids:
            if doc_id in Rechecking.there:
                yield doc(int(doc_id.split(":")[1]))(self)
        yield Checkpoint(state={"rechecked": len(ids)})


class RecheckingEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Rechecking(self.settings.source(name))


def test_a_full_pass_and_a_prune_delete_only_what_the_connectors_recheck_does_not_find(engine):
    """A listing paged by position passes over items when ones before them are deleted mid-pass:
    before deleting what a full pass or a prune's `live_ids` did not meet, the engine asks the
    connector's `recheck`; what it yields as a document stays (a full pass applies it, its checkpoint
    saved), the rest goes. Nothing is asked when the listing met every indexed document."""
    engine = RecheckingEngine(engine.settings, engine.index, engine.state)
    Rechecking.asked, Rechecking.there = [], {"one:2"}
    Script.plan = [[doc(1), doc(2), doc(3), doc(4), Checkpoint(state={"n": 1})]]
    assert engine.run("one", "backfill").outcome == "ok" and Rechecking.asked == []
    Script.plan = [[doc(1), doc(4), Checkpoint(state={"n": 2})]]  # 2 and 3 passed over; 3 is gone
    result = engine.run("one", "backfill")
    assert (result.outcome, result.deleted) == ("ok", 1) and Rechecking.asked == [["one:2", "one:3"]]
    assert indexed(engine) == ["one:1", "one:2", "one:4"]
    assert engine.state.source("one").checkpoint == {"rechecked": 2}
    Listing.live, Rechecking.there = ["one:1"], {"one:4"}  # the prune's listing passes over 2 and 4
    assert engine.prune("one").deleted == 1
    assert Rechecking.asked[-1] == ["one:2", "one:4"] and indexed(engine) == ["one:1", "one:4"]
