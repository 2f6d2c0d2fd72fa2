"""The store contract: the same assertions on both backends (the index folder and a real PostgreSQL),
for the catalog, the state, the leases and the event status, each opened through `open_backend`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from inlet.config import IndexConfig, parse_config
from inlet.connectors.model import ACL, Document, principals_for
from inlet.errors import SourceBusyError
from inlet.storage import Backend, CatalogStore, Commit, Filters, SourceState, StateStore, chunk_id, open_backend
from inlet.storage.reads import COUNTS, newest_sql

ANN = tuple(principals_for("ann@example.com") or ())
BOB = tuple(principals_for("bob@other.org") or ())


@pytest.fixture(params=["folder", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    index: dict[str, object] = {"path": str(tmp_path / "ix")}
    if request.param == "postgresql":
        index.update(database_url=request.getfixturevalue("database_url"), chroma_url="http://127.0.0.1:1")
    settings = parse_config(
        {"index": index, "daemon": {"lease": "30s"}, "sources": [{"name": "s", "type": "files", "path": str(tmp_path)}]}
    )
    return open_backend(settings)


@pytest.fixture
def state(backend: Backend) -> Iterator[StateStore]:
    store = backend.state()
    yield store
    store.close()


def doc(n: int, source: str = "s", text: str = "", **acl: object) -> Document:
    return Document(
        id=f"{source}:{n}",
        source=source,
        source_type="files",
        title=f"Note {n}",
        text=text or f"note {n} about the harbour lantern",
        acl=ACL(**acl) if acl else ACL(public=True),
    )


def test_catalog_commits_and_reads_alike(backend: Backend) -> None:
    catalog = backend.catalog()
    try:
        private = doc(2, text="the kestrel migration budget", users=["ann@example.com"])
        private.author, private.metadata = "Ann@Example.com", {"participants": ["bob@other.org", "ann@example.com"]}
        catalog.commit(
            Commit(
                1,
                [(doc(1), ["first part", "second part"]), (private, [private.text]), (doc(3, "t"), ["other source"])],
                keys=[(chunk_id("s:1", 0), "k1")],
            )
        )
        assert catalog.counts() == {"s": (2, 3), "t": (1, 1)}
        if not catalog.dialect.any_array:  # SQLite: the counts come from an index, not every row
            assert "COVERING INDEX documents_source_chunks" in str(catalog._query("EXPLAIN QUERY PLAN " + COUNTS))
        assert catalog.people() == {"ann@example.com": 1, "bob@other.org": 1} and catalog.source_types() == ["files"]
        everyone = ["ann@example.com", "bob@other.org", "nobody@example.com"]
        assert catalog.people(everyone, None) == {"ann@example.com": 1, "bob@other.org": 1}
        assert catalog.people(everyone, ANN) == {"ann@example.com": 1, "bob@other.org": 1}
        assert catalog.people(everyone, BOB) == {}  # named only in a document Bob may not see
        assert catalog.people([], ANN) == {} and catalog.people(None, BOB) == {}
        assert catalog.visible_documents(ANN) == 3 and catalog.visible_documents(BOB) == 2
        assert catalog.visible_sources(None) == catalog.visible_sources(BOB) == {"s", "t"}
        assert catalog.visible_sources(tuple(p for p in ANN if p != "*")) == {"s"}  # s:2, Ann's own
        assert catalog.visible_sources(tuple(p for p in BOB if p != "*")) == set()
        stored = catalog.stored(["s:1", "s:2", "nope"])
        assert set(stored) == {"s:1", "s:2"} and stored["s:1"].chunks == 2 and stored["s:1"].source == "s"
        assert catalog.document("s:1") == doc(1) and catalog.document("nope") is None
        assert set(catalog.documents(["s:1", "t:3"])) == {"s:1", "t:3"}
        assert catalog.chunk_texts([chunk_id("s:1", 1)]) == {"s:1#1": "second part"}
        assert catalog.source_doc_ids("s") == ["s:1", "s:2"]
        assert catalog.keyed_chunks(["k1", "k2"]) == {"k1": "s:1#0"}
        # the ACL, on its own and with other filters
        assert catalog.visible("s:2", ANN) and not catalog.visible("s:2", BOB)
        assert catalog.visible("s:2", None)
        ids = ["s:1#0", "s:2#0", "t:3#0"]
        assert catalog.passing(ids, Filters(principals=BOB)) == {"s:1#0", "t:3#0"}
        assert catalog.passing(ids, Filters(sources=("s",), principals=ANN)) == {"s:1#0", "s:2#0"}
        assert catalog.passing(ids, Filters(source_types=("mail",))) == set()
        # BM25 and exact matches, filtered like the dense search
        assert catalog.lexical("kestrel budget", Filters(), 5)[0][0] == "s:2#0"
        assert catalog.lexical("kestrel budget", Filters(principals=BOB), 5) == []
        assert catalog.exact_matches('"kestrel migration"', Filters()) == {"s:2#0": 1}
        # a mark before the vectors are written, settled by the commit after them
        catalog.commit(Commit(marked=[("s:1", "s", 2)]))
        assert catalog.unsettled("s") == [("s:1", 2)] and catalog.keyed_chunks(["k1"]) == {}
        catalog.commit(Commit(2, seen=["s:1"], gone=["s:2"], settled=["s:1"]))
        assert catalog.unsettled("s") == [] and catalog.unseen("s", 2) == [] and catalog.counts()["s"] == (1, 2)
        assert catalog.lexical("kestrel", Filters(), 5) == []
        assert catalog.people() == {}  # its one document with people is gone
        relabelled = doc(1).model_copy(update={"author": "cid@example.com"})
        catalog.commit(Commit(3, relabelled=[relabelled]))
        assert catalog.people() == {"cid@example.com": 1} and catalog.identities() == {}
        # a member named three ways (a Slack thread): each name is linked to their address
        member = {"participants": ["cid"], "participant_full_names": ["Cid Moreau"], "participant_emails": ["c@x.org"]}
        catalog.commit(Commit(4, relabelled=[relabelled.model_copy(update={"metadata": member})]))
        one = {"c@x.org"}
        assert catalog.identities() == {"cid": one, "cid moreau": one, "c@x.org": one}
        # only a served source's documents link names: another source no longer served takes none away
        assert catalog.identities(("t",)) == catalog.identities() and catalog.identities(("s",)) == {}
    finally:
        catalog.close()


def test_the_newest_documents_are_read_within_the_filters_the_acl_and_the_people(backend: Backend) -> None:
    """`newest`: documents passing the filters, ACL included, of the people named, newest first."""
    catalog = backend.catalog()
    try:
        day = 86400.0

        def dated(n: int, source: str, days: float, author: str = "", **acl: object) -> Document:
            when = datetime.fromtimestamp(1_000_000_000 + days * day, timezone.utc)
            return doc(n, source, **acl).model_copy(update={"updated_at": when, "author": author})

        docs = [
            dated(1, "s", 1, "ann@example.com"),
            dated(2, "s", 3, "bob@other.org"),
            dated(3, "s", 5, users=["ann@example.com"]),  # the newest, Ann's alone
            dated(4, "t", 4, "ann@example.com"),
            doc(5),  # no time: never among the newest
        ]
        catalog.commit(Commit(1, [(d, [d.text]) for d in docs]))
        assert catalog.newest(Filters(), (), 10) == [
            (f"{s}", 1_000_000_000 + n * day) for s, n in [("s:3", 5), ("t:4", 4), ("s:2", 3), ("s:1", 1)]
        ]
        assert [d for d, _ in catalog.newest(Filters(principals=BOB), (), 10)] == ["t:4", "s:2", "s:1"]
        assert [d for d, _ in catalog.newest(Filters(principals=BOB), (), 2)] == ["t:4", "s:2"]
        assert [d for d, _ in catalog.newest(Filters(sources=("s",), principals=BOB), (), 10)] == ["s:2", "s:1"]
        assert [d for d, _ in catalog.newest(Filters(unserved=("t",)), (), 10)] == ["s:3", "s:2", "s:1"]
        window = Filters(after=1_000_000_000 + 2 * day, before=1_000_000_000 + 4.5 * day)
        assert [d for d, _ in catalog.newest(window, (), 10)] == ["t:4", "s:2"]
        assert [d for d, _ in catalog.newest(Filters(principals=BOB), ("ann@example.com",), 10)] == ["t:4", "s:1"]
        assert catalog.newest(Filters(source_types=("mail",)), (), 10) == []
        for filters in (Filters(source_types=("files",), principals=BOB), Filters(sources=("s",), principals=BOB)):
            sql, params = newest_sql(catalog.dialect, filters, ())
            if not catalog.dialect.any_array:  # SQLite: the index from its end, no row read, no sort
                plan = str(catalog._query("EXPLAIN QUERY PLAN " + sql, [*params, 10]))
                assert "COVERING INDEX documents_newest" in plan and "B-TREE" not in plan, plan
            else:  # PostgreSQL: the index serves the order (a table this small is sorted unless told not to)
                import psycopg

                with psycopg.connect(catalog.url) as db:
                    db.execute("SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off")
                    rows = db.execute("EXPLAIN " + catalog.dialect.sql(sql), [*params, 10]).fetchall()
                plan = "\n".join(r[0] for r in rows)
                assert "Index Only Scan Backward using documents_newest" in plan and "Sort" not in plan, plan
    finally:
        catalog.close()


def test_the_embedding_record_is_kept_where_the_catalog_is(backend: Backend) -> None:
    from inlet.storage.records import Record

    catalog = backend.catalog()
    try:
        records = catalog.records()
        assert records.read() is None
        records.write(Record(model="m", backend="torch"))
        assert records.read() == Record(model="m", backend="torch") and records.changed() is None
    finally:
        catalog.close()


def test_state_keeps_checkpoints_runs_schedule_and_pauses(state: StateStore) -> None:
    source = state.source("s")
    assert source.phase == "new" and source.checkpoint is None
    source.checkpoint, source.phase, source.generation = None, "backfill", 3
    source.recent = "2026-11-28T09:00:00+00:00"  # a backfill's committed recent window
    state.save_source(source)
    assert state.source("s") == source and state.source("s").indexed_since() == source.recent
    source.checkpoint, source.phase, source.recent = {"cursor": "abc"}, "incremental", None
    source.scope = {"channels": "0123456789abcdef", "include_dms": "fedcba9876543210"}  # what it reads
    state.save_source(source)
    assert state.source("s") == source and state.source("s").indexed_since() == "all"
    assert state.source("s").scope == source.scope
    failed = state.start_run("s", "sync")
    failed.outcome, failed.error, failed.retry_at = "failed", "boom", 4_000_000_000.5  # a service's Retry-After
    state.finish_run(failed)
    assert state.last_run("s").retry_at == 4_000_000_000.5  # type: ignore[union-attr]  # every daemon waits for it
    run = state.start_run("s", "backfill")
    run.upserted = 4
    state.save_progress(run, seen=5, done=2, total=10, unit="files")
    running = state.running("s")
    assert running is not None and (running["kind"], running["seen"], running["total"], running["upserted"]) == (
        "backfill",
        5,
        10,
        4,
    )
    assert state.failure_streak("s") == 1 and state.last_run("s").error == "boom"  # type: ignore[union-attr]
    assert state.last_run("s", successful=True) is None
    assert state.sources_with_unfinished_runs() == ["s"]
    assert state.close_orphan_runs("s", "the process died") == 1
    assert state.failure_streak("s") == 2 and state.running("s") is None
    run.outcome, run.error = "failed", "woke after losing the lease"
    state.finish_run(run)  # a frozen process waking up: the run stays as its successor closed it
    assert state.last_run("s").error == "the process died"  # type: ignore[union-attr]
    assert state.sources_with_unfinished_runs() == []
    assert [r.kind for r in state.recent_runs("s")] == ["backfill", "sync"]
    assert [r.kind for r in state.runs("s")] == ["sync", "backfill"]
    copied = state.runs("s")[0]
    copied.source = "t"
    state.add_run(copied)
    assert state.last_run("t", kinds=("sync",)).error == "boom"  # type: ignore[union-attr]
    assert state.last_run("t", kinds=("sync",)).retry_at == 4_000_000_000.5  # type: ignore[union-attr]
    assert state.last_run("t", kinds=("backfill",)) is None
    state.set_next_runs(4242, {"s": 100.0, "t": None})
    assert state.daemon_next_runs() == {"s": (100.0, 4242), "t": (None, 4242)}
    state.clear_next_runs(4242)
    assert state.daemon_next_runs() == {}
    state.set_paused("s", True)
    state.set_paused("s", True)  # pausing again keeps the first time
    assert set(state.paused()) == {"s"}
    state.set_paused("s", False)
    assert state.paused() == {}


def test_a_prune_is_no_sync_to_the_failure_streak_and_the_last_success(state: StateStore) -> None:
    """A prune that succeeds after a failed sync neither ends the sync's failure streak nor is its
    last success; one that fails does not lengthen it."""
    from inlet.storage import SYNC_KINDS

    for kind, outcome in (
        ("backfill", "ok"),
        ("sync", "failed"),
        ("prune", "failed"),
        ("sync", "failed"),
        ("prune", "ok"),
    ):
        run = state.start_run("s", kind)
        run.outcome = outcome
        state.finish_run(run)
    assert state.failure_streak("s") == 2
    assert state.last_run("s", successful=True, kinds=SYNC_KINDS).kind == "backfill"  # type: ignore[union-attr]


def test_the_run_history_is_trimmed_as_runs_end_and_what_status_reads_stays(state: StateStore) -> None:
    """Each run's end keeps its source's newest `runs_kept` finished runs of its kind (and the
    newest successful one) and drops the rest with their progress and skipped items; the last run
    of each kind, the last success, the failure streak and the last 20 read as before."""
    from inlet.storage import RUNS_KEPT, SYNC_KINDS

    assert state.runs_kept == RUNS_KEPT == 1000  # type: ignore[attr-defined]
    state.runs_kept = 3  # type: ignore[attr-defined]  # the window, small enough to overflow here

    def ran(kind: str, outcome: str, source: str = "s") -> int:
        run = state.start_run(source, kind)
        state.save_progress(run, seen=1, done=1, total=1, unit="items")
        state.add_skip(run.id, 1, "item", None, "too big", False)  # type: ignore[arg-type]
        run.outcome = outcome
        state.finish_run(run)
        assert run.id is not None
        return run.id

    ok_sync = ran("sync", "ok")
    for _ in range(6):
        ran("sync", "failed")
    ran("backfill", "ok")
    prunes = [ran("prune", "ok") for _ in range(5)]
    events = [ran("event", "ok") for _ in range(8)]
    other = [ran("sync", "ok", "t") for _ in range(4)]
    unfinished = state.start_run("s", "sync")  # a run in flight is never trimmed
    kept = state.runs("s")
    by_kind = {kind: [r.id for r in kept if r.kind == kind] for kind in ("sync", "backfill", "prune", "event")}
    assert len(by_kind["sync"]) == 1 + 3 + 1 and by_kind["sync"][0] == ok_sync  # the newest success stays
    assert by_kind["backfill"] != [] and by_kind["prune"] == prunes[-3:] and by_kind["event"] == events[-3:]
    assert by_kind["sync"][-1] == unfinished.id and [r.id for r in state.runs("t")] == other[-3:]
    assert state.last_run("s", successful=True, kinds=("sync",)).id == ok_sync  # type: ignore[union-attr]
    assert state.last_run("s", successful=True, kinds=SYNC_KINDS).id == events[-1]  # type: ignore[union-attr]
    assert state.last_run("s", kinds=("prune",)).id == prunes[-1]  # type: ignore[union-attr]
    assert state.failure_streak("s") == 0 and [r.id for r in state.recent_runs("s", 4)][1:] == events[:-4:-1]
    assert [state.skipped_items(i) != [] for i in (prunes[0], prunes[-1])] == [False, True]
    state.save_progress(unfinished, seen=1, done=None, total=None, unit=None)
    assert state.running("s") is not None and state.sources_with_unfinished_runs() == ["s"]
    with state._connection() as db:  # type: ignore[attr-defined]
        progress = db.execute("SELECT run_id FROM run_progress").fetchall()
    assert progress == [(unfinished.id,)]  # the finished runs' progress went as each ended


def test_a_source_is_held_by_one_run_at_a_time(backend: Backend) -> None:
    leases, other = backend.leases(), backend.leases()
    try:
        with leases.hold("s") as fence:
            with pytest.raises(SourceBusyError, match="'s'"):
                with other.hold("s"):
                    pass
            with other.hold("t"):  # another source is free
                pass
            if backend.shared:
                assert fence is not None and fence.source == "s" and "s" in leases.holders()
        with other.hold("s") as second:  # released: free again, with a newer fence where fences exist
            assert (second is None) == (fence is None) and (fence is None or second.number > fence.number)
    finally:
        leases.close()
        other.close()


def test_event_status_shows_a_live_daemon_s_report_until_it_clears(backend: Backend, state: StateStore) -> None:
    writer = backend.event_writer()
    try:
        writer.save("s", {"live": True, "last_event_at": time.time(), "latency_seconds": 0.5})
        assert backend.event_status()["s"]["live"] is True
        writer.clear()
        assert backend.event_status() == {}
    finally:
        writer.close()


def exited_pid() -> int:
    """The pid of a child that has ended and been reaped: no process has it (a number picked at
    random may belong to a live process on the host running the tests)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_overview_counts_documents_and_chunks_per_source(backend: Backend, state: StateStore) -> None:
    catalog = backend.catalog()
    try:
        catalog.commit(Commit(1, [(doc(1), ["a", "b"]), (doc(2, "t"), ["c"])]))
    finally:
        catalog.close()
    state.set_next_runs(exited_pid(), {"s": 100.0})
    overview = backend.overview(state)
    assert overview.counts == {"s": (1, 2), "t": (1, 1)}
    assert overview.planned == ({"s": 100.0} if backend.shared else {})  # the folder's: live pids only


def check_visible_sources(catalog: CatalogStore) -> None:
    """Which sources a caller sees, from ids that share a prefix with another source's name ("hr",
    "hr-docs", "hra"): a document id is `source:...`, and only a source's own ids are its range."""
    catalog.commit(
        Commit(
            1,
            [
                (doc(1, "hr", text="salary review", users=["hr@example.com"]), ["salary review"]),
                (doc(2, "hr-docs", text="holiday rota"), ["holiday rota"]),
                (doc(3, "hra", text="audit plan", domains=["other.org"]), ["audit plan"]),
                (doc(4, "hr", text="pension note", users=["hr@example.com"]), ["pension note"]),
            ],
        )
    )
    hr = tuple(principals_for("hr@example.com") or ())
    assert catalog.visible_sources(None) == {"hr", "hr-docs", "hra"}
    assert catalog.visible_sources(BOB) == {"hr-docs", "hra"} and catalog.visible_sources(ANN) == {"hr-docs"}
    assert catalog.visible_sources(hr) == {"hr", "hr-docs"}
    assert catalog.visible_sources(("u:hr@example.com",)) == {"hr"}
    assert catalog.visible_sources(("d:other.org",)) == {"hra"} and catalog.visible_sources(("u:x",)) == set()


def test_which_sources_a_caller_sees_is_each_source_s_own_range_of_ids(backend: Backend) -> None:
    catalog = backend.catalog()
    try:
        check_visible_sources(catalog)
        if not catalog.dialect.any_array:  # SQLite: one probe of the ACL's key per source and principal
            plan = str(catalog._query("EXPLAIN QUERY PLAN " + visible_sources_sql(catalog, BOB)))
            assert "SEARCH a USING PRIMARY KEY (principal=? AND doc_id>? AND doc_id<?)" in plan, plan
    finally:
        catalog.close()


def visible_sources_sql(catalog: CatalogStore, principals: tuple[str, ...]) -> str:
    """The statement `visible_sources` runs, with its parameters written in (for a query plan)."""
    from inlet.storage.reads import SOURCES

    cond = "a.principal IN (" + ",".join(f"'{p}'" for p in principals) + ")"
    doc_id = catalog.dialect.bytewise("a.doc_id")
    return (
        f"{SOURCES} AND EXISTS (SELECT 1 FROM acl a "
        f"WHERE {cond} AND {doc_id} >= s.source || ':' AND {doc_id} < s.source || ';')"
    )


def test_which_sources_a_caller_sees_whatever_the_database_collation(postgres_url: str, tmp_path: Path) -> None:
    """On a database whose text sorts by ICU's rules (';' before ':', punctuation after letters'
    base), ids still fall in their own source's range: the ACL's key compares them byte-wise, and
    the probe is an index scan of that key."""
    import psycopg

    name = "t_icu_collation"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        try:
            db.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'")
        except psycopg.Error as exc:  # a server built without ICU
            pytest.skip(f"no ICU collation on this PostgreSQL: {exc}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    settings = parse_config(
        {
            "index": {"path": str(tmp_path / "ix"), "database_url": url, "chroma_url": "http://127.0.0.1:1"},
            "sources": [{"name": "s", "type": "files", "path": str(tmp_path)}],
        }
    )
    catalog = open_backend(settings).catalog()
    try:
        check_visible_sources(catalog)
        with psycopg.connect(url) as db:
            assert db.execute("SELECT 'hr-docs:2' < 'hr;' AND 'hr;' < 'hr:'").fetchone() == (True,)  # not bytes
            db.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + visible_sources_sql(catalog, BOB)))
            assert "acl_principal_doc" in plan, plan
    finally:
        catalog.close()


def test_a_source_no_longer_configured_is_filtered_out_and_its_state_forgotten(
    backend: Backend, state: StateStore
) -> None:
    """`Filters.unserved` keeps a source's chunks out of every filtered read; `StateStore.forget`
    drops its checkpoint, runs, skips, pause and schedule, and nothing of another source."""
    catalog = backend.catalog()
    try:
        catalog.commit(Commit(1, [(doc(1, text="kestrel budget"), ["kestrel budget"]), (doc(2, "t"), ["kestrel"])]))
        assert catalog.sources() == ["s", "t"]
        hidden = Filters(unserved=("t",))
        assert catalog.passing(["s:1#0", "t:2#0"], hidden) == {"s:1#0"}
        assert catalog.passing(["s:1#0", "t:2#0"], Filters(principals=ANN, unserved=("t",))) == {"s:1#0"}
        assert [c for c, _ in catalog.lexical("kestrel", hidden, 5)] == ["s:1#0"]
        assert catalog.exact_matches('"kestrel"', hidden) == {"s:1#0": 1}
        # nor does a source, a person or a term of its documents answer (the sources filter, the
        # people a question is about, the relevance's term counts)
        tess = doc(3, "t", text="zebrafish").model_copy(update={"author": "tess@example.com"})
        catalog.commit(Commit(2, [(tess, ["zebrafish"])]))
        assert catalog.visible_sources(BOB) == {"s", "t"} and catalog.visible_sources(BOB, ("t",)) == {"s"}
        assert catalog.visible_sources(None, ("t",)) == {"s"}
        assert catalog.people(["tess@example.com"], BOB) == {"tess@example.com": 1}
        assert catalog.people(["tess@example.com"], BOB, ("t",)) == {}
        assert catalog.people(["tess@example.com"], None, ("t",)) == {}
        assert "tess@example.com" in catalog.people() and "tess@example.com" not in catalog.people(unserved=("t",))
        assert catalog.visible_documents(BOB) == 3 and catalog.visible_documents(BOB, ("t",)) == 1
        assert catalog.held_visibly("zebrafish", BOB) and not catalog.held_visibly("zebrafish", BOB, ("t",))
        assert catalog.held_visibly("kestrel", BOB, ("t",))
    finally:
        catalog.close()
    for name in ("s", "t"):
        state.save_source(SourceState(name, {"at": 1}, "incremental", 2))
        run = state.start_run(name, "backfill")
        state.save_progress(run, seen=1, done=None, total=None, unit=None)
        state.add_skip(run.id or 0, 1, f"{name}:x", None, "too big", False)
        run.outcome = "ok"
        state.finish_run(run)
        state.set_paused(name, True)
    state.set_next_runs(exited_pid(), {"t": 100.0})
    assert state.forget("t") is True and state.forget("t") is False
    assert state.source("t").phase == "new" and state.recent_runs("t") == [] and set(state.paused()) == {"s"}
    assert "t" not in state.daemon_next_runs()
    kept = state.last_run("s")
    assert state.source("s").checkpoint == {"at": 1} and kept is not None and kept.id is not None
    assert state.skipped_items(kept.id)[0]["id"] == "s:x"


def test_a_word_only_hidden_chunks_hold_is_chosen_and_ranked_as_a_made_up_word(backend: Backend) -> None:
    """Which of a user's query words the keyword search ranks on depends on no chunk hidden from
    them: "lighthouse quimby", Quimby only in mail Bob may not read (or of a source no longer
    served), gets the answer "lighthouse quimbo" gets. Before, Quimby counted as a common word (5
    of 7 chunks), so both words were kept and Bob's own notes came back with keyword scores where a
    made-up word made "lighthouse" the common word dropped and nothing matched."""
    catalog = backend.catalog()
    try:
        mine = [doc(n, text=f"lighthouse project note {n}") for n in (1, 2)]
        hidden = [
            doc(n, "h", text="lighthouse severance terms for Zed Quimby", users=["hr@corp.com"]) for n in range(5)
        ]
        catalog.commit(Commit(1, [(d, [d.text]) for d in [*mine, *hidden]]))
        assert catalog.frequency("quimby") == 5 and catalog.frequency("quimby", BOB) == 0
        assert catalog.frequency("lighthouse", BOB) == 7 and catalog.frequency("quimbo", BOB) == 0
        for filters in (Filters(principals=BOB), Filters(principals=BOB, unserved=("h",))):
            for held, made_up in (("quimby", "quimbo"), ("severance", "sevxrance")):
                got = catalog.lexical(f"lighthouse {held}", filters, 10)
                assert got == catalog.lexical(f"lighthouse {made_up}", filters, 10) == [], (held, filters)
                assert catalog.lexical(f"lighthouse {held} INC-1", filters, 10) == catalog.lexical(
                    f"lighthouse {made_up} INC-1", filters, 10
                )
        hr = tuple(principals_for("hr@corp.com") or ())  # who may read the mail finds it
        assert {c for c, _ in catalog.lexical("lighthouse quimby", Filters(principals=hr), 10)} == {
            chunk_id(d.id, 0) for d in [*mine, *hidden]
        }
    finally:
        catalog.close()


def test_the_config_picks_the_backend() -> None:
    assert open_backend(IndexConfig(path=Path("x"))).shared is False
    assert (
        open_backend(IndexConfig(path=Path("x"), database_url="postgresql://h/db", chroma_url="http://h:8000")).shared
        is True
    )


def test_connections_the_database_dropped_are_replaced_not_handed_out(database_url: str, tmp_path: Path) -> None:
    """A restarted PostgreSQL leaves the pool's idle connections dead; the next use gets a new one
    (a daemon's next run once failed on its first statement, with a bare traceback)."""
    import psycopg

    settings = parse_config(
        {
            "index": {"path": str(tmp_path / "ix"), "database_url": database_url, "chroma_url": "http://127.0.0.1:1"},
            "sources": [{"name": "s", "type": "files", "path": str(tmp_path)}],
        }
    )
    state = open_backend(settings).state()
    try:
        state.set_paused("s", True)
        with psycopg.connect(database_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert row is not None and row[0] >= 1
        assert set(state.paused()) == {"s"}
    finally:
        state.close()


def _refuse_deleting_runs(state: StateStore) -> None:
    """A trigger that fails every deletion of a run, as a full disk would: the trim cannot run."""
    with state._connection() as db:  # type: ignore[attr-defined]
        if state.dialect.name == "postgresql":  # type: ignore[attr-defined]
            db.execute(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
                "LANGUAGE plpgsql"
            )
            db.execute("CREATE TRIGGER refuse BEFORE DELETE ON runs FOR EACH ROW EXECUTE FUNCTION refuse()")
        else:
            db.execute("CREATE TRIGGER refuse BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'disk full'); END")


def test_a_long_run_history_converges_in_bounded_steps_and_a_failed_trim_keeps_the_runs_end(
    state: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A history far beyond `runs_kept` (the first run after an upgrade) loses at most `trim_step`
    runs per run's end until it fits; a trim that fails is logged and the run's end stays recorded."""
    state.runs_kept = 100  # type: ignore[attr-defined]  # the history, written before the bound
    for _ in range(10):
        run = state.start_run("s", "event")
        run.outcome = "failed"
        state.finish_run(run)
    state.runs_kept, state.trim_step = 3, 2  # type: ignore[attr-defined]
    sizes = []
    for _ in range(5):
        run = state.start_run("s", "event")
        run.outcome = "failed"
        state.finish_run(run)
        sizes.append(len(state.runs("s")))
    assert sizes == [9, 8, 7, 6, 5]  # 2 fewer per run, each run adding 1
    _refuse_deleting_runs(state)
    run = state.start_run("s", "event")
    run.outcome, run.upserted = "ok", 7
    state.finish_run(run)
    last = state.last_run("s", kinds=("event",))
    assert last is not None and (last.id, last.outcome, last.upserted) == (run.id, "ok", 7)
    assert last.finished_at is not None and state.sources_with_unfinished_runs() == []
    assert len(state.runs("s")) == 6 and "could not trim the run history of 's'" in caplog.text
