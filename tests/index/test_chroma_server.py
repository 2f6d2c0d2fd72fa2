"""Scale-out: the same index code against a real `chroma run` server on loopback."""

import os

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from tests.servers import chroma_server

SIX = [Document(id=f"s:{n}", source="s", source_type="files", title=f"T{n}", text=f"text number {n}") for n in range(6)]


@pytest.fixture
def chroma_url(tmp_path):
    with chroma_server(tmp_path / "server") as url:
        yield url


def test_index_against_a_chroma_server(tmp_path, chroma_url, embedder):
    docs = [
        Document(
            id="s:1",
            source="s",
            source_type="files",
            title="Ops",
            text="Rotate the TLS certificates every ninety days.",
            acl=ACL(users=["ops@example.com"]),
        ),
        Document(
            id="s:2", source="s", source_type="files", title="Lunch", text="Tacos on Tuesday.", acl=ACL(public=True)
        ),
    ]
    config = IndexConfig(path=tmp_path / "catalog", chroma_url=chroma_url)
    with Index(config, embedder=embedder) as index:
        assert index.apply(docs).embedded_chunks == 2
        hits, _ = search(index, SearchRequest("certificate rotation", k=1, user="ops@example.com"))
        assert hits[0].doc_id == "s:1"
        hits, _ = search(index, SearchRequest("certificate rotation", k=5, user="dev@example.com"))
        assert [h.doc_id for h in hits] == ["s:2"]
    # A second process-like opener of the same server sees the vectors (no local lock with a server).
    with Index(config, embedder=embedder) as again:
        assert again.collection.count() == 2


def test_ef_search_is_stored_on_a_chroma_server(tmp_path, chroma_url, embedder):
    """`[index] ef_search` reaches a server's collection too (read back by a separate client)."""
    from urllib.parse import urlparse

    import chromadb

    config = IndexConfig(path=tmp_path / "catalog", chroma_url=chroma_url, ef_search=64)
    with Index(config, embedder=embedder) as index:
        name = index.record.collection
    parsed = urlparse(chroma_url)
    client = chromadb.HttpClient(
        host=parsed.hostname, port=parsed.port, settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    assert client.get_collection(name).configuration_json["hnsw"]["ef_search"] == 64


def test_a_chroma_server_that_stops_is_named_in_the_error_and_the_api_answers_503(tmp_path, embedder):
    """Writes, searches and a fresh open each say which server they cannot reach (not a traceback
    from the HTTP client); the API answers 503 with Retry-After, not 500."""
    from fastapi.testclient import TestClient

    from inlet.config import ApiKey, ServerConfig, Settings
    from inlet.errors import IndexUnavailable
    from inlet.server.app import create_app

    doc = Document(id="s:1", source="s", source_type="files", title="Ops", text="Rotate the certificates.")
    with chroma_server(tmp_path / "server") as url:
        config = IndexConfig(path=tmp_path / "catalog", chroma_url=url)
        index = Index(config, embedder=embedder)
        index.apply([doc])
    try:  # the server has stopped
        with pytest.raises(IndexUnavailable, match=f"Chroma server at {url}.*chroma_url"):
            index.apply([doc.model_copy(update={"id": "s:2"})])
        keys = [ApiKey(name="ops", key_env="OPS_KEY", admin=True)]
        settings = Settings(index=config, server=ServerConfig(api_keys=keys))
        app = create_app(settings, index=index, env={"OPS_KEY": "ops-key"})
        with TestClient(app) as client:
            assert app.state.retrieval.ready.wait(30)
            answer = client.post(
                "/v1/search", json={"query": "certificates"}, headers={"Authorization": "Bearer ops-key"}
            )
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "index_unavailable"
        assert answer.headers["Retry-After"] and url not in answer.text
    finally:
        index.close()
    with pytest.raises(IndexUnavailable, match="chroma_url"):
        Index(config, embedder=embedder)


def test_readyz_answers_503_while_the_chroma_server_is_down_and_200_when_it_is_back(tmp_path, embedder, monkeypatch):
    """A load balancer's readiness probe sees what a search would: the server stopping, and back."""
    from contextlib import ExitStack
    from urllib.parse import urlparse

    from fastapi.testclient import TestClient

    from inlet.config import ApiKey, ServerConfig, Settings
    from inlet.server import service
    from inlet.server.app import create_app

    monkeypatch.setattr(service, "READY_CHECK_EVERY", 0.0)  # each probe checks (not the answer of a second ago)
    with ExitStack() as running:
        url = running.enter_context(chroma_server(tmp_path / "server"))
        config = IndexConfig(path=tmp_path / "catalog", chroma_url=url)
        keys = [ApiKey(name="ops", key_env="OPS_KEY", admin=True)]
        settings = Settings(index=config, server=ServerConfig(api_keys=keys))
        app = create_app(settings, env={"OPS_KEY": "ops-key"})
        with TestClient(app) as client:
            assert app.state.retrieval.ready.wait(60)
            assert client.get("/readyz").status_code == 200
            running.close()  # the Chroma server stops
            down = client.get("/readyz")
            assert down.status_code == 503 and down.json()["error"]["code"] == "index_unavailable"
            assert down.headers["Retry-After"] and url not in down.text
            with chroma_server(tmp_path / "server", port=urlparse(url).port):
                assert client.get("/readyz").status_code == 200


def test_a_chroma_server_that_stops_answering_fails_a_search_in_bounded_time(tmp_path, embedder, monkeypatch):
    """A frozen server (or a network dropping packets) accepts the connection and never answers:
    the search fails as the server being unreachable once the client's time limit passes, instead
    of waiting forever."""
    import socket
    from contextlib import ExitStack
    from urllib.parse import urlparse

    from inlet.errors import IndexUnavailable
    from inlet.index import vectors

    monkeypatch.setattr(vectors, "SERVER_TIMEOUT", 2.0)
    doc = Document(id="s:1", source="s", source_type="files", title="Ops", text="Rotate the certificates.")
    with ExitStack() as running:
        url = running.enter_context(chroma_server(tmp_path / "server"))
        index = Index(IndexConfig(path=tmp_path / "catalog", chroma_url=url), embedder=embedder)
        index.apply([doc])
        running.close()  # the server stops; something else takes its port and never answers
        silent = socket.create_server(("127.0.0.1", urlparse(url).port), backlog=16)
    import threading

    outcome: list[BaseException | None] = []

    def ask() -> None:
        try:
            search(index, SearchRequest("certificates", k=1))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - what the search raised, checked below
            outcome.append(exc)

    asking = threading.Thread(target=ask, daemon=True)  # without a time limit it never returns
    try:
        asking.start()
        asking.join(60)
        assert outcome, "the search still waits for the silent server"
        assert isinstance(outcome[0], IndexUnavailable) and "chroma_url" in str(outcome[0])
    finally:
        silent.close()
        index.close()


def test_readiness_does_not_wait_on_a_silent_chroma_server(tmp_path, embedder, monkeypatch):
    """One check waits on the silent server; every other probe answers at once, and after
    READY_WAIT says that the server is not answering."""
    import socket
    import threading
    from contextlib import ExitStack
    from urllib.parse import urlparse

    from inlet.index import vectors
    from inlet.server import service
    from tests.sync.events_stack import wait_for

    monkeypatch.setattr(vectors, "SERVER_TIMEOUT", 30.0)
    monkeypatch.setattr(service, "READY_WAIT", 0.2)
    monkeypatch.setattr(service, "READY_CHECK_EVERY", 0.0)
    with ExitStack() as running:
        url = running.enter_context(chroma_server(tmp_path / "server"))
        index = Index(IndexConfig(path=tmp_path / "catalog", chroma_url=url), embedder=embedder)
        retrieval = service.Retrieval(index)
        retrieval.ready.set()
        assert retrieval.unreachable() is None
        running.close()
        silent = socket.create_server(("127.0.0.1", urlparse(url).port), backlog=16)
    try:
        threading.Thread(target=retrieval.unreachable, daemon=True).start()  # waits on the silent server
        wait_for(lambda: retrieval._checking is not None, what="a check in flight")
        reason = wait_for(lambda: retrieval.unreachable(), timeout=10, what="the server reported as not answering")
        assert "has not answered its heartbeat" in reason
    finally:
        silent.close()
        index.close()


def test_closing_an_index_closes_its_connections_to_the_chroma_server(tmp_path, chroma_url, embedder):
    config = IndexConfig(path=tmp_path / "catalog", chroma_url=chroma_url)

    def open_and_close() -> None:
        with Index(config, embedder=embedder) as index:
            index.apply([Document(id="s:1", source="s", source_type="files", title="T", text="text")])

    open_and_close()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        open_and_close()
    assert len(os.listdir("/proc/self/fd")) == before


def _filled(tmp_path, database_url, embedder) -> tuple[IndexConfig, Index]:
    """An index of `SIX` on PostgreSQL and a Chroma server stopped since (its config names it), open."""
    with chroma_server(tmp_path / "server") as url:
        config = IndexConfig(database_url=database_url, chroma_url=url)
        index = Index(config, embedder=embedder)
        index.apply(SIX)
    return config, index


def test_a_chroma_server_that_comes_back_empty_is_refused_until_a_reindex_restores_it(
    tmp_path, database_url, text_hash_embedder
):
    """Its data folder lost (a new server at the same address): a running index's writes and a new
    open are each refused naming `chroma_url` and `inlet reindex`, never an empty collection made
    silently; `inlet reindex` embeds the catalog's chunks again, and the running index goes on."""
    from urllib.parse import urlparse

    from inlet.errors import VectorsLost
    from inlet.index.reindex import run_reindex

    docs = SIX
    config, running = _filled(tmp_path, database_url, text_hash_embedder)
    url = config.chroma_url
    try:
        with chroma_server(tmp_path / "empty", port=urlparse(url).port):
            changed = docs[0].model_copy(update={"text": "changed text"})
            with pytest.raises(VectorsLost, match=f"Chroma server at {url} .*chroma_url.*inlet reindex"):
                running.apply([changed])
            # 5: the chunk of the refused write's document is marked (`Index.repair` settles it)
            with pytest.raises(VectorsLost, match="has no collection inlet_chunks although the catalog holds 5 chunks"):
                Index(config, embedder=text_hash_embedder)
            import chromadb  # an older inlet's process made the collection anew and wrote one vector

            client = chromadb.HttpClient(host="127.0.0.1", port=urlparse(url).port)
            client.create_collection("inlet_chunks", embedding_function=None).add(
                ids=["s:0#0"], embeddings=[[1.0] * text_hash_embedder.dimension]
            )
            with pytest.raises(VectorsLost, match="holds only 1 vectors in the collection inlet_chunks although"):
                Index(config, embedder=text_hash_embedder)
            with Index(config, embedder=text_hash_embedder, reindexing=True) as index:
                result = run_reindex(index)
                assert result.switched and not result.remaining
            with Index(config, embedder=text_hash_embedder) as again:
                assert again.collection.count() == 6
            assert running.apply([changed]).upserted == 1  # the running index takes up the new collection
            assert running.collection.count() == 6
    finally:
        running.close()


def test_a_serving_process_started_while_the_chroma_server_is_down_rides_it_out(
    tmp_path, text_hash_embedder, monkeypatch
):
    """Opened for a daemon or `inlet serve` (`wait_for_chroma`) while the Chroma server is down (a
    host reboot, containers started in any order): the index opens; writes (a daemon's runs) fail
    naming `chroma_url`, `/readyz` and searches answer 503 `index_unavailable`; once the server
    answers, all of them work, without a restart. A one-shot command still exits naming it."""
    from fastapi.testclient import TestClient

    from inlet.config import ApiKey, ServerConfig, Settings
    from inlet.connectors import SourceConfig
    from inlet.errors import IndexUnavailable
    from inlet.server import service
    from inlet.server.app import create_app
    from inlet.storage.sqlite.state import SqliteState
    from tests.servers import free_port
    from tests.sync.test_engine import Script, ScriptEngine, doc

    from inlet.connectors.model import Checkpoint

    monkeypatch.setattr(service, "READY_CHECK_EVERY", 0.0)  # each probe checks
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = IndexConfig(path=tmp_path / "catalog", chroma_url=url)
    keys = [ApiKey(name="ops", key_env="OPS_KEY", admin=True)]
    settings = Settings(
        index=config, server=ServerConfig(api_keys=keys), sources=[SourceConfig(name="one", type="script")]
    )
    with pytest.raises(IndexUnavailable, match=f"Chroma server at {url} .*chroma_url"):
        Index(config, embedder=text_hash_embedder)  # a one-shot command
    index = Index(config, embedder=text_hash_embedder, wait_for_chroma=True)
    state = SqliteState(tmp_path / "state.db")
    engine = ScriptEngine(settings, index, state)
    bearer = {"Authorization": "Bearer ops-key"}
    try:
        Script.plan, Script.calls = [[doc(1, "Rotate the certificates every ninety days."), Checkpoint(state={})]], []
        failed = engine.run("one", "backfill")
        assert failed.outcome == "failed" and f"Chroma server at {url}" in failed.error, failed.error
        app = create_app(settings, index=index, env={"OPS_KEY": "ops-key"})
        with TestClient(app) as client:
            assert app.state.retrieval.ready.wait(60)
            down = client.get("/readyz")
            assert down.status_code == 503 and down.json()["error"]["code"] == "index_unavailable"
            asked = client.post("/v1/search", json={"query": "certificates"}, headers=bearer)
            assert asked.status_code == 503 and asked.json()["error"]["code"] == "index_unavailable"
            with chroma_server(tmp_path / "server", port=port):
                assert client.get("/readyz").status_code == 200
                Script.plan = [[doc(1, "Rotate the certificates every ninety days."), Checkpoint(state={})]]
                assert engine.run("one", "backfill").outcome == "ok"  # the daemon's next try
                found = client.post("/v1/search", json={"query": "certificates"}, headers=bearer)
                assert found.status_code == 200 and [h["doc_id"] for h in found.json()["results"]] == ["one:1"]
    finally:
        state.close()
        index.close()


def _serving(config, index, monkeypatch):
    """A `TestClient` context of the API over `index`, each `/readyz` checking the servers again."""
    from fastapi.testclient import TestClient

    from inlet.config import ApiKey, ServerConfig, Settings
    from inlet.server import service
    from inlet.server.app import create_app

    monkeypatch.setattr(service, "READY_CHECK_EVERY", 0.0)  # each probe checks
    keys = [ApiKey(name="ops", key_env="OPS_KEY", admin=True)]
    settings = Settings(index=config, server=ServerConfig(api_keys=keys))
    app = create_app(settings, index=index, env={"OPS_KEY": "ops-key"})
    return app, TestClient(app)


def _answers(client) -> tuple[int, int]:
    """The statuses of `/readyz` and of a search."""
    bearer = {"Authorization": "Bearer ops-key"}
    searched = client.post("/v1/search", json={"query": "text number 3"}, headers=bearer)
    return client.get("/readyz").status_code, searched.status_code


def _reindexed(config, embedder) -> None:
    """`inlet reindex`, run by another process: it switches the record to a new collection."""
    from inlet.index.reindex import run_reindex

    with Index(config, embedder=embedder, reindexing=True) as index:
        result = run_reindex(index)
        assert result.switched and not result.remaining
        assert index.record.collection != "inlet_chunks"


def test_a_replica_started_while_the_chroma_server_is_down_follows_a_reindex_once_it_answers(
    tmp_path, database_url, text_hash_embedder, monkeypatch
):
    """`inlet serve` started during the outage, the server back without its data, then `inlet
    reindex` (to a new collection): the replica opens the collection the record names now, with no
    restart, instead of the one it named when the replica started."""
    from urllib.parse import urlparse

    config, index = _filled(tmp_path, database_url, text_hash_embedder)
    index.close()
    url = config.chroma_url
    serving = Index(config, embedder=text_hash_embedder, wait_for_chroma=True)
    try:
        assert serving.keeper.waiting is not None
        app, client = _serving(config, serving, monkeypatch)
        with client, chroma_server(tmp_path / "empty", port=urlparse(url).port):
            assert app.state.retrieval.ready.wait(60)
            assert _answers(client) == (503, 503)  # the vectors are lost: nothing to answer with
            _reindexed(config, text_hash_embedder)
            assert _answers(client) == (200, 200)
            assert serving.collection.count() == 6
            changed = SIX[0].model_copy(update={"text": "changed text"})
            assert serving.apply([changed]).upserted == 1  # and writes land in the new collection
    finally:
        serving.close()


def test_readyz_answers_503_while_the_chroma_server_lost_the_vectors_as_searches_do(
    tmp_path, database_url, text_hash_embedder, monkeypatch
):
    """A replica whose Chroma server came back without the index's collection can answer no search:
    `/readyz` says so too (a load balancer routes around it), and answers 200 again with the
    searches once `inlet reindex` switched the index to a new collection."""
    from urllib.parse import urlparse

    config, serving = _filled(tmp_path, database_url, text_hash_embedder)
    url = config.chroma_url
    try:
        app, client = _serving(config, serving, monkeypatch)
        with client, chroma_server(tmp_path / "empty", port=urlparse(url).port):
            assert app.state.retrieval.ready.wait(60)
            assert _answers(client) == (503, 503)
            body = client.get("/readyz").json()
            assert body["error"]["code"] == "index_unavailable" and url not in body["error"]["message"]
            _reindexed(config, text_hash_embedder)
            assert _answers(client) == (200, 200)
    finally:
        serving.close()
