"""The PostgreSQL storage against a real server (tests/servers.py): BM25 that ranks like the SQLite
index, ACL filters, fencing of a replaced lease holder, and two replicas answering alike."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from inlet.config import IndexConfig, parse_config
from inlet.connectors.model import ACL, Document, principals_for
from inlet.errors import LeaseLostError, SourceBusyError
from inlet.storage import Filters
from inlet.storage.sqlite.catalog import SqliteCatalog as Catalog
from inlet.storage.postgres.catalog import PgCatalog
from inlet.index.search import SearchRequest, search
from inlet.storage import Commit
from inlet.index.store import Index
from inlet.storage.postgres.leases import PgLeases
from inlet.storage.postgres.state import PgState

TOPICS = [
    "certificate rotation for the TLS gateway",
    "quarterly revenue forecast and budget",
    "incident postmortem database failover",
    "lunch menu tacos and salad",
    "onboarding laptop setup guide",
    "kubernetes cluster upgrade runbook",
    "customer churn analysis by region",
    "holiday schedule and rota",
]

VOCABULARY = (
    "harbour lantern meadow orchard quarry river summit tundra valley willow anchor beacon canyon "
    "delta ember fjord glacier hollow island jetty kestrel lagoon marsh nebula oasis prairie"
).split()


def corpus() -> list[Document]:
    docs = []
    for n in range(40):
        topic = TOPICS[n % len(TOPICS)]
        extra = TOPICS[(n * 3 + 1) % len(TOPICS)]
        filler = " ".join(random.Random(n).sample(VOCABULARY, 12))  # distinct texts: no near-duplicates
        text = f"{topic}. " * (1 + n % 3) + f"See also {extra}. {filler}. Note number {n} of the archive."
        acl = ACL(public=True) if n % 2 else ACL(users=[f"user{n % 4}@example.com"])
        docs.append(
            Document(
                id=f"s:{n}",
                source="s" if n < 30 else "t",
                source_type="files",
                title=topic.split()[0].title(),
                text=text,
                acl=acl,
            )
        )
    return docs


def commit(catalog: Catalog | PgCatalog, docs: list[Document]) -> None:
    catalog.commit(Commit(1, [(d, [d.text]) for d in docs]))


@pytest.fixture
def pg_config(database_url: str, chroma_server_url: str) -> IndexConfig:
    import chromadb

    from inlet.index.vectors import COLLECTION

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server_url.rsplit(":", 1)[1]))
    if COLLECTION in [c.name for c in client.list_collections()]:
        client.delete_collection(COLLECTION)  # one Chroma server per session: start each test empty
    return IndexConfig(database_url=database_url, chroma_url=chroma_server_url)


QUERIES = [
    "certificate rotation",
    "budget forecast",
    "database failover incident",
    "tacos",
    "kubernetes upgrade",
    "churn region",
    "archive note",
    "laptop",
    "the archive note on kubernetes",
    "see the laptop setup guide",
]  # common words among rare ones


@contextmanager
def both_catalogs(docs: list[Document], tmp_path: Path, database_url: str) -> Iterator[tuple[Catalog, PgCatalog]]:
    """A SQLite and a PostgreSQL catalog holding `docs`."""
    sqlite = Catalog(tmp_path / "catalog.db")
    pg = PgCatalog(IndexConfig(database_url=database_url, chroma_url="http://unused"))
    try:
        commit(sqlite, docs)
        commit(pg, docs)
        yield sqlite, pg
    finally:
        sqlite.close()
        pg.close()


def test_bm25_ranks_like_the_sqlite_index(tmp_path: Path, database_url: str) -> None:
    with both_catalogs(corpus(), tmp_path, database_url) as (sqlite, pg):
        for query in QUERIES:
            for filters in (Filters(), Filters(principals=("user1@example.com",)), Filters(sources=("t",))):
                want = sqlite.lexical(query, filters, 10)
                got = pg.lexical(query, filters, 10)
                assert [c for c, _ in got] == [c for c, _ in want], (query, filters)
                assert [round(s, 4) for _, s in got] == pytest.approx([round(s, 4) for _, s in want], rel=1e-3)
        assert pg.counts() == sqlite.counts()


def tickets() -> list[Document]:
    """Look-alike tickets naming hosts and channels, a few phrases (one in a title), stopwords."""
    docs = [
        Document(
            id=f"t:{n}",
            source="t",
            source_type="files",
            title=f"ticket {n}",
            text=f"INC-{20900 + n} on db-fra-{100 + n}.prod.example.com, see #ops-general. " + "note " * (n % 5),
            acl=ACL(public=True) if n % 3 else ACL(users=["ann@example.com"]),
        )
        for n in range(30)
    ]
    texts = {
        "p:1": ("Legal", "The launch was blocked by the legal review until May."),
        "p:2": ("Launch", "Legal review of the launch: nobody blocked it, and the review is done."),
        "p:3": ("Blocked by the legal review", "Status of the vendor contract, error 0x8007A2B6 twice."),
        "p:4": ("Apart", "INC 20931 was mentioned apart, and so was db fra 131; what is it, and who has it?"),
        "p:5": ("Usage", "Let us use the spare laptop: users used it before us, as it was meant to be used."),
    }
    docs += [
        Document(id=key, source="p", source_type="files", title=title, text=text, acl=ACL(public=True))
        for key, (title, text) in texts.items()
    ]
    return docs


PHRASE_QUERIES = [
    "who owns db-fra-117.prod.example.com",
    "INC-20917",
    "INC-20931 status",
    '"blocked by the legal review"',
    '"legal review" launch',
    "what is it",
    "#ops-general",
    "error 0x8007A2B6",
    "db fra 131",
    '"review the legal"',
    "use the laptop",
    "us",
]


def test_identifiers_and_phrases_rank_like_the_sqlite_index(tmp_path: Path, database_url: str) -> None:
    """parse_query's phrases (identifiers, quoted phrases) score on PostgreSQL as FTS5 scores them:
    parts adjacent and in order, in the title counting double, stopwords inside a phrase matched."""
    with both_catalogs(tickets(), tmp_path, database_url) as (sqlite, pg):
        for query in PHRASE_QUERIES:
            for filters in (Filters(), Filters(principals=("ann@example.com",)), Filters(principals=("bob@x.org",))):
                want = sorted((round(-s, 4), c) for c, s in sqlite.lexical(query, filters, 50))
                got = sorted((round(-s, 4), c) for c, s in pg.lexical(query, filters, 50))
                assert [c for _, c in got] == [c for _, c in want], (query, filters)
                assert [s for s, _ in got] == pytest.approx([s for s, _ in want], rel=1e-3), (query, filters)
                assert pg.exact_matches(query, filters) == sqlite.exact_matches(query, filters), (query, filters)
        assert pg.lexical("who owns db-fra-117.prod.example.com", Filters(), 5)[0][0] == "t:17#0"
        assert pg.exact_matches('"blocked by the legal review"', Filters()) == {"p:1#0": 1, "p:3#0": 1}
        assert pg.exact_matches("INC-20931", Filters()) == {"p:4#0": 1}


WORLD_TEXTS = {
    "zh": ("会议纪要", "会议纪要：数据库迁移计划在星期五完成。負責人是王小明。"),
    "zh2": ("仓库", "特别说明：熊猫仓库的钥匙由李建国保管。数据库的备份每天完成。"),
    "ja": ("データベース", "データベースの移行は金曜日に完了します。ガスの点検も。"),
    "ko": ("이전", "데이터베이스를 금요일에 이전합니다."),
    "lig": ("Oﬃce", "The ﬁnance team ﬂagged order ＡＢＣ１２３."),
    "nfd": ("Re\u0301sume\u0301", "Le re\u0301sume\u0301 de la re\u0301union a\u0300 Gene\u0300ve."),
    "shy": ("Reset", "Reset the pass\u00adword of the flamingo\u200bledger."),
    "en": ("Plain", "The finance office flagged the password reset; the résumé of the réunion."),
}
WORLD_QUERIES = [
    "王小明",
    "数据库",
    "熊猫仓库的钥匙",
    '"熊猫仓库"',
    "データベース",
    "이전",
    "finance office",
    "ABC123",
    "résumé réunion Genève",
    "password",
    "flamingoledger",
]


def test_cjk_text_and_folded_forms_rank_like_the_sqlite_index(tmp_path: Path, database_url: str) -> None:
    """Chinese, Japanese and Korean bigrams, compatibility forms, NFD accents and invisible
    characters are indexed and ranked alike by both catalogs (`lexical.words` on both sides)."""
    docs = [
        Document(id=f"w:{key}", source="w", source_type="files", title=title, text=text, acl=ACL(public=True))
        for key, (title, text) in WORLD_TEXTS.items()
    ]
    with both_catalogs(docs, tmp_path, database_url) as (sqlite, pg):
        for query in WORLD_QUERIES:
            want = sorted((round(-s, 4), c) for c, s in sqlite.lexical(query, Filters(), 50))
            got = sorted((round(-s, 4), c) for c, s in pg.lexical(query, Filters(), 50))
            assert want, query
            assert [c for _, c in got] == [c for _, c in want], query
            assert [s for s, _ in got] == pytest.approx([s for s, _ in want], rel=1e-3), query
            assert pg.exact_matches(query, Filters()) == sqlite.exact_matches(query, Filters()), query
            for term in ("王小", "finance", "password"):
                assert pg._frequency(term) == sqlite._frequency(term), term
        assert pg.lexical("李建国", Filters(), 5)[0][0] == "w:zh2#0"
        assert pg.exact_matches('"熊猫仓库"', Filters()) == {"w:zh2#0": 1}


def test_rewrites_and_deletions_keep_the_statistics_exact(database_url: str, tmp_path: Path) -> None:
    docs = corpus()
    sqlite = Catalog(tmp_path / "catalog.db")
    pg = PgCatalog(IndexConfig(database_url=database_url, chroma_url="http://unused"))
    try:
        for catalog in (sqlite, pg):
            commit(catalog, docs)
            changed = docs[3].model_copy(update={"text": "tacos tacos tacos and a certificate"})
            catalog.commit(
                Commit(2, [(changed, [changed.text, "second chunk about budget"])], gone=["s:5", "s:6"], seen=["s:7"])
            )
        for query in QUERIES:
            want = sqlite.lexical(query, Filters(), 10)
            assert [c for c, _ in pg.lexical(query, Filters(), 10)] == [c for c, _ in want]
        assert pg.stored(["s:5", "s:3"]) == sqlite.stored(["s:5", "s:3"])
        assert sorted(pg.unseen("s", 2)) == sorted(sqlite.unseen("s", 2))
        with pg.pool.connection() as db:
            stats = db.execute("SELECT chunks, length FROM corpus").fetchone()
            actual = db.execute("SELECT count(*), sum(length) FROM chunks").fetchone()
            kept = db.execute("SELECT term, df FROM terms WHERE df > 0 ORDER BY term").fetchall()
            counted = db.execute("SELECT term, count(*) FROM postings GROUP BY term ORDER BY term").fetchall()
        assert stats == actual
        assert kept == counted and kept  # each term's chunk count (IDF) follows rewrites and deletions
    finally:
        sqlite.close()
        pg.close()


def test_a_replaced_lease_holder_cannot_commit(database_url: str) -> None:
    config = IndexConfig(database_url=database_url, chroma_url="http://unused")
    paused, successor = PgLeases(config, 1.0), PgLeases(config, 30.0)
    catalog, state = PgCatalog(config), PgState(config)
    try:
        old = paused.acquire("s")
        paused.close()  # stops renewing, as a SIGSTOPped daemon would
        with pytest.raises(SourceBusyError):
            successor.acquire("s")
        deadline = time.monotonic() + 20
        while True:  # the lease runs out on the database's clock
            try:
                new = successor.acquire("s")
                break
            except SourceBusyError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert new.number > old.number
        doc = corpus()[0]
        with pytest.raises(LeaseLostError):
            catalog.commit(Commit(1, [(doc, [doc.text])], fence=old))
        source = state.source("s")
        source.checkpoint, source.fence = {"cursor": "stale"}, old
        with pytest.raises(LeaseLostError):
            state.save_source(source)
        catalog.commit(Commit(1, [(doc, [doc.text])], fence=new))  # the successor's commits go through
        source.checkpoint, source.fence = {"cursor": "new"}, new
        state.save_source(source)
        assert state.source("s").checkpoint == {"cursor": "new"} and catalog.counts() == {"s": (1, 1)}
        assert successor.holders()["s"]["holder"] == successor.holder
    finally:
        successor.close()
        catalog.close()
        state.close()


def test_a_lease_left_by_a_killed_process_of_this_host_says_so_and_until_when(database_url: str) -> None:
    import socket
    import subprocess
    import sys

    import psycopg

    config = IndexConfig(database_url=database_url, chroma_url="http://unused")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}:{ended.stdout.strip()}"
    leases = PgLeases(config, 30.0)
    try:
        with psycopg.connect(database_url, autocommit=True) as db:  # what `inlet backfill` killed by -9 leaves
            db.execute(
                "INSERT INTO leases (source, holder, fence, expires) VALUES ('k', %s, 7, now() + interval '60 s')",
                (dead,),
            )
        with pytest.raises(SourceBusyError) as busy:
            leases.acquire("k")
        message = str(busy.value)
        assert f"still leased to {dead}, a process of this host that has ended" in message
        assert re.search(r"until \d\d:\d\d:\d\d UTC: run again after that", message), message
        with pytest.raises(SourceBusyError, match=r"already being synced \(by .+, lease until \d\d:\d\d:\d\d UTC\)"):
            _held_by_live(database_url, leases)
    finally:
        leases.close()


def _held_by_live(database_url: str, leases: PgLeases) -> None:
    """`leases` asks for a source this live process holds through another lease object."""
    other = PgLeases(IndexConfig(database_url=database_url, chroma_url="http://unused"), 30.0)
    try:
        other.acquire("live")
        leases.acquire("live")
    finally:
        other.close()


def test_a_holder_frozen_inside_a_commit_is_cut_off_when_its_lease_runs_out(database_url: str) -> None:
    import psycopg

    from inlet.storage.postgres.pool import session_name
    from inlet.storage.postgres.leases import check_fence

    config = IndexConfig(database_url=database_url, chroma_url="http://unused")
    frozen, successor = PgLeases(config, 1.0), PgLeases(config, 30.0)
    frozen.holder = "elsewhere:4242"  # another daemon's, whose sessions carry its name
    old = frozen.acquire("s")
    frozen.close()  # stops renewing, as a SIGSTOPped daemon would
    # Its commit, frozen mid-COPY: the lease row share-locked, the server waiting for data (not idle,
    # so idle_in_transaction_session_timeout never ends it).
    stuck = psycopg.connect(database_url, application_name=session_name(frozen.holder))
    waiter = ThreadPoolExecutor(1)  # a successor that would wait forever fails the test, not hangs it
    try:
        stuck.execute("BEGIN")
        check_fence(stuck, old)
        cursor = stuck.cursor()
        copying = cursor.copy("COPY acl (principal, doc_id) FROM STDIN")
        copying.__enter__()  # and never left: the server waits for the rows
        deadline = time.monotonic() + 20
        while True:
            try:
                new = waiter.submit(successor.acquire, "s").result(timeout=30)
                break
            except SourceBusyError:  # until the lease runs out on the database's clock
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert new.number == old.number + 1
        with psycopg.connect(database_url, autocommit=True) as db:  # its session ended, its work rolled back
            while db.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (session_name(frozen.holder),)
            ).fetchall():
                assert time.monotonic() < deadline + 10
                time.sleep(0.1)
    finally:
        stuck.close()
        waiter.shutdown()
        successor.close()


@pytest.mark.parametrize("change", ["text shrinks", "deletion"])
def test_repair_on_postgresql_settles_a_write_killed_before_its_commit(
    pg_config: IndexConfig, embedder, change: str
) -> None:
    """As tests/index/test_apply_crash.py on the folder: the write's marks commit, its vectors go to
    Chroma, its catalog commit never happens, and the batch is never applied again."""
    from inlet.storage import chunk_id
    from tests.index.test_apply_crash import BEFORE, CHANGES, Crash

    docs, deletions = CHANGES[change]
    with Index(pg_config, embedder=embedder) as index:
        index.apply(BEFORE)
        real = index.catalog.commit
        index.catalog.commit = lambda batch: real(batch) if batch.marked else _raise(Crash())  # type: ignore[method-assign]
        with pytest.raises(Crash):
            index.apply(docs, deletions)
    with Index(pg_config, embedder=embedder) as index:
        assert index.repair("w").documents == len(docs) + len(deletions)
        stored = index.catalog.stored([d.id for d in BEFORE])
        catalog_chunks = {chunk_id(d, n) for d, s in stored.items() for n in range(s.chunks)}
        assert set(index.collection.get()["ids"]) == catalog_chunks
        assert index.repair("w").documents == 0


def _raise(exc: Exception) -> None:
    raise exc


def test_two_replicas_on_one_database_answer_alike(pg_config: IndexConfig, embedder) -> None:
    docs = corpus()
    with Index(pg_config, embedder=embedder) as writer:
        writer.apply(docs, generation=1)
    with Index(pg_config, embedder=embedder) as one, Index(pg_config, embedder=embedder) as two:
        for query in [*QUERIES[:4], '"budget forecast"']:  # a quoted phrase: the exact-match check, ACL'd
            for user in (None, "user1@example.com"):
                request = SearchRequest(query, k=5, user=user, recency_half_life_days=0)
                a = [(h.chunk_id, round(h.score, 6)) for h in search(one, request)[0]]
                b = [(h.chunk_id, round(h.score, 6)) for h in search(two, request)[0]]
                assert a == b and a, query
        assert one.document("s:0", tuple(principals_for("user2@example.com") or ())) is None
        assert one.document("s:0", tuple(principals_for("user0@example.com") or ())) is not None


def test_database_connections_give_up_on_a_silent_network(database_url: str) -> None:
    """libpq's connect timeout, keepalives and TCP user timeout are set on the pool's connections,
    so a partitioned network fails a query in about a minute instead of the kernel's many."""
    from inlet.storage.postgres.pool import NETWORK, connect, disconnect

    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:9")
    pool = connect(config)
    try:
        with pool.connection() as db:
            given = db.info.get_parameters()
            assert {k: given.get(k) for k in NETWORK} == {k: str(v) for k, v in NETWORK.items()}
            assert db.execute("SELECT 1").fetchone() == (1,)
    finally:
        disconnect(pool)


def test_database_url_needs_a_chroma_server() -> None:
    from inlet.errors import ConfigError

    with pytest.raises(ConfigError, match="chroma_url"):
        parse_config({"index": {"database_url": "postgresql://inlet@localhost/inlet"}})


def test_status_names_the_holder_of_each_source(database_url: str, tmp_path: Path) -> None:
    from inlet.status import sources_status

    (tmp_path / "docs").mkdir()
    settings = parse_config(
        {
            "index": {"database_url": database_url, "chroma_url": "http://unused"},
            "sources": [
                {"name": "notes", "type": "files", "path": str(tmp_path / "docs")},
                {"name": "idle", "type": "files", "path": str(tmp_path / "docs")},
            ],
        }
    )
    leases = PgLeases(settings.index, 30.0)
    state = PgState(settings.index)
    try:
        with leases.hold("notes"):
            run = state.start_run("notes", "backfill")  # left unfinished: as a `kill -9` leaves it
            state.save_progress(run, seen=3, done=1, total=10, unit="files")
            rows = {r["name"]: r for r in sources_status(settings)["sources"]}
            assert rows["notes"]["holder"]["holder"] == leases.holder
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rows["notes"]["holder"]["lease_expires"])
            assert rows["notes"]["running"] is not None and rows["idle"]["holder"] is None
        (notes, _) = sources_status(settings)["sources"]
        assert notes["holder"] is None and notes["running"] is None  # released: nobody runs it
    finally:
        state.close()
        leases.close()


def test_a_refusal_no_retry_mends_is_reported_with_its_cause(postgres_url: str) -> None:
    """An unknown database is said at once, with the server's reason, instead of the pool's
    retries ending in a bare timeout."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from inlet.errors import DatabaseError
    from inlet.storage.postgres.pool import connect

    wrong = make_conninfo(**{**conninfo_to_dict(postgres_url), "dbname": "inlet_no_such_database"})
    with pytest.raises(DatabaseError, match="inlet_no_such_database.*does not exist"):
        connect(IndexConfig(database_url=wrong, chroma_url="http://127.0.0.1:1"))


def test_a_database_not_answering_at_start_is_reported_with_the_servers_words_and_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database nobody answers at (nothing listens on its port) ends the open with the reason of
    the last attempt and the key to check, not only the pool's "initialization incomplete"."""
    import socket

    from inlet.errors import DatabaseError
    from inlet.storage.postgres import pool

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setattr(pool, "OPEN_TIMEOUT", 1.0)
    url = f"postgresql://inlet@127.0.0.1:{port}/inlet"
    with pytest.raises(DatabaseError) as refused:
        pool.connect(IndexConfig(database_url=url, chroma_url="http://127.0.0.1:1"))
    assert "[index] database_url" in str(refused.value)
    assert "refused" in str(refused.value).lower() and "initialization incomplete" not in str(refused.value)


def test_repair_on_postgresql_embeds_only_the_chunks_the_killed_write_changed(
    pg_config: IndexConfig, text_hash_embedder
) -> None:
    """As tests/index/test_apply_crash.py on the folder: the other chunks keep their vectors."""
    from tests.index.test_apply_crash import check_repair_embeds_only_changed_chunks

    check_repair_embeds_only_changed_chunks(pg_config, text_hash_embedder)


def accepting(database_url: str, accepting: bool) -> None:
    """The database takes new sessions, or refuses them and its sessions are ended (as a server
    that stopped refuses connections)."""
    import psycopg

    server, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        db.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(accepting).lower()}')
        if not accepting:
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


def test_a_replica_answers_503_at_once_while_its_database_refuses_connections(
    pg_config: IndexConfig, database_url: str, text_hash_embedder, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Rate limited or not, a request is answered 503 `index_unavailable` with `Retry-After` (not a
    500), saying in the log what the server answered, without waiting out the connection pool's
    timeout (set long here: a request that waited for it would log only that it timed out); /readyz
    says so too, and once the database takes connections again requests are served."""
    from fastapi.testclient import TestClient

    from inlet.config import ApiKey, ServerConfig, Settings
    from inlet.server import service
    from inlet.server.app import create_app

    monkeypatch.setattr(service, "READY_CHECK_EVERY", 0.0)  # each probe checks
    keys = [
        ApiKey(name="limited", key_env="LIMITED_KEY", admin=True, rate_limit="1000/s"),
        ApiKey(name="free", key_env="FREE_KEY", admin=True),
    ]
    settings = Settings(index=pg_config, server=ServerConfig(api_keys=keys))
    env = {"LIMITED_KEY": "limited-key", "FREE_KEY": "free-key"}
    with Index(pg_config, embedder=text_hash_embedder) as index:
        index.apply(corpus()[:4])
        index.catalog.pool.timeout = 60.0  # type: ignore[attr-defined]  # how long a run waits for a connection
        app = create_app(settings, index=index, env=env)
        with TestClient(app) as client:
            assert app.state.retrieval.ready.wait(30)

            def search(key: str) -> object:
                return client.post("/v1/search", json={"query": "tacos"}, headers={"Authorization": f"Bearer {key}"})

            assert search("limited-key").status_code == search("free-key").status_code == 200
            assert client.get("/readyz").status_code == 200
            accepting(database_url, False)
            try:
                caplog.clear()
                answers = [search("limited-key"), search("free-key"), client.get("/readyz")]
                for answer in answers:
                    assert answer.status_code == 503, answer.text  # type: ignore[attr-defined]
                    assert answer.json()["error"]["code"] == "index_unavailable"  # type: ignore[attr-defined]
                    assert answer.headers["Retry-After"] == "5"  # type: ignore[attr-defined]
                logged = [r.getMessage() for r in caplog.records if "database_url" in r.getMessage()]
                assert len(logged) >= 3 and all("is not currently accepting connections" in m for m in logged)
            finally:
                accepting(database_url, True)
            deadline = time.monotonic() + 60
            while search("free-key").status_code != 200:  # refused at once for a moment after a failed try
                assert time.monotonic() < deadline, "requests still refused after the database came back"
            assert search("limited-key").status_code == 200 and client.get("/readyz").status_code == 200


def test_a_database_that_stops_answering_fails_the_statement_naming_database_url(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server process of a connection frozen (SIGSTOP: the kernel still acknowledges, so no TCP
    setting ends the wait): the statement fails once it has waited the answer timeout (shortened
    here), naming `database_url`, and the pool's next connection works."""
    import os
    import signal

    from inlet.errors import IndexUnavailable
    from inlet.storage.postgres import pool as pools

    monkeypatch.setattr(pools, "ANSWER_TIMEOUT", 1.0)
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:9")
    pool = pools.connect(config)
    waiter = ThreadPoolExecutor(1)  # a statement that would wait forever fails the test, not hangs it

    frozen: list[int] = []

    def frozen_statement() -> None:
        with pool.connection() as db:
            frozen.append(db.info.backend_pid)
            os.kill(frozen[0], signal.SIGSTOP)
            db.execute("SELECT 1")

    try:
        try:
            with pytest.raises(IndexUnavailable, match=r"database_url\) cannot be reached.*did not answer within 1 s"):
                waiter.submit(frozen_statement).result(timeout=30)
        finally:
            for backend in frozen:
                os.kill(backend, signal.SIGCONT)
            waiter.shutdown()
        with pool.connection() as db:
            assert db.execute("SELECT 1").fetchone() == (1,)
    finally:
        pools.disconnect(pool)


def test_the_pool_keeps_trying_to_reconnect_every_few_seconds_through_an_outage(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg_pool's back-off doubles between attempts (1, 2, 4 ... 128 s): after a two-minute
    outage a process stayed cut off about two minutes more. Here its attempts start over after
    `RECONNECT_TIMEOUT` (shortened), so they keep coming, and the pool connects once the database
    takes connections again."""
    from inlet.storage.postgres import pool as pools

    monkeypatch.setattr(pools, "RECONNECT_TIMEOUT", 0.5)
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:9")
    pool = pools.connect(config)
    try:
        accepting(database_url, False)  # its connection ended, new ones refused
        try:
            pool.check()  # the pool finds its connection gone and tries to replace it
            deadline = (
                time.monotonic() + 30
            )  # the default back-off (each chain of attempts 1, 2, 4 ... s apart): minutes
            while pool.reach.failures < 24:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, f"{pool.reach.failures} attempts to connect"  # type: ignore[attr-defined]
                time.sleep(0.05)
        finally:
            accepting(database_url, True)
        with pool.connection(timeout=30) as db:
            assert db.execute("SELECT 1").fetchone() == (1,)
    finally:
        pools.disconnect(pool)
