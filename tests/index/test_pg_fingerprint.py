"""The embedding record of a PostgreSQL index lives in the database (real servers, tests/servers.py):
a process with another model or backend is refused on open and, if it was open before a reindex
switched the index, on its next write; `run_reindex` switches the record in the database; a sync on
another process during a reindex sends its source back to the queue although both write the record."""

from __future__ import annotations

import psycopg
import pytest

from inlet.config import IndexConfig
from inlet.errors import EmbeddingMismatchError
from inlet.index.reindex import run_reindex
from inlet.index.store import Index
from tests.index.test_pg_storage import pg_config  # noqa: F401   (fixture: a fresh database and collection)
from tests.index.test_reindex import onnx_embedder, top, torch_embedder  # noqa: F401   (fixtures)
from tests.index.test_store import CORPUS, doc


def record_row(config: IndexConfig) -> tuple[str, int]:
    with psycopg.connect(config.database_url or "") as db:
        row = db.execute("SELECT record, version FROM embedding_record").fetchone()
    assert row is not None
    return row


def test_another_backend_is_refused_naming_both_the_database_and_the_fix(  # noqa: F811
    pg_config, torch_embedder, onnx_embedder
) -> None:  # noqa: F811
    with Index(pg_config, embedder=torch_embedder) as ix:
        ix.apply(CORPUS, generation=1)
    assert '"backend": "torch"' in record_row(pg_config)[0]
    with pytest.raises(EmbeddingMismatchError) as refused:
        Index(pg_config, embedder=onnx_embedder)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "the index database at 127.0.0.1:" in message and "'torch'" in message and "'onnx-int8'" in message
    assert "inlet reindex [SOURCE ...]" in message


def test_reindex_switches_the_database_record_and_fences_an_old_writer(  # noqa: F811
    pg_config, torch_embedder, onnx_embedder
) -> None:  # noqa: F811
    with Index(pg_config, embedder=torch_embedder) as ix:
        ix.apply(CORPUS, generation=1)
    old_writer = Index(pg_config, embedder=torch_embedder)  # a daemon on another host, still on torch
    old_replica = Index(pg_config, embedder=torch_embedder)  # an API replica, still on torch
    try:
        assert top(old_replica, "lunch at the cafeteria") == "wiki:1"
        with Index(pg_config, embedder=onnx_embedder, reindexing=True) as ix:
            first = run_reindex(ix, ["wiki"])
            assert first.remaining == ["exec"] and not first.switched
        old_writer.apply([doc(6, "Lunch moves to the atrium.")], generation=2)  # sends wiki back
        with Index(pg_config, embedder=onnx_embedder, reindexing=True) as ix:
            rest = run_reindex(ix)
            assert rest.embedded == {"exec": 2, "wiki": 4} and rest.switched
        assert '"backend": "onnx-int8"' in record_row(pg_config)[0]
        with pytest.raises(EmbeddingMismatchError, match="backend 'onnx-int8'"):  # no torch vectors now
            old_writer.apply([doc(7, "The badge office moved upstairs.")], generation=3)
        assert old_writer.catalog.document("wiki:7") is None
        with pytest.raises(EmbeddingMismatchError):  # its torch collection is gone: told why, not a 404
            top(old_replica, "lunch at the cafeteria")
    finally:
        old_writer.close()
        old_replica.close()
    with pytest.raises(EmbeddingMismatchError):
        Index(pg_config, embedder=torch_embedder)
    with Index(pg_config, embedder=onnx_embedder) as ix:
        assert top(ix, "lunch moved to the atrium") == "wiki:6"
        assert ix.collection.count() == 6 and run_reindex(ix).up_to_date


def test_a_sync_during_a_reindex_is_not_lost_to_its_next_write(  # noqa: F811
    pg_config, torch_embedder, onnx_embedder
) -> None:  # noqa: F811
    """The reindex holds a stale record after another host's sync sent wiki back: its next write is
    refused, it reads the record again and redoes wiki instead of marking it done over the change."""
    with Index(pg_config, embedder=torch_embedder) as ix:
        ix.apply(CORPUS, generation=1)
    with (
        Index(pg_config, embedder=onnx_embedder, reindexing=True) as reindexer,
        Index(pg_config, embedder=torch_embedder) as daemon,
    ):
        assert run_reindex(reindexer, ["wiki"]).remaining == ["exec"]
        version = record_row(pg_config)[1]
        daemon.apply([doc(2, "To reset your VPN password, call the help desk on 4357.")], generation=2)
        assert record_row(pg_config)[1] == version + 1  # the daemon's write of wiki back to the queue
        rest = run_reindex(reindexer)  # from its stale copy, which still says wiki is done
        assert rest.switched and rest.embedded["wiki"] == 3
    with Index(pg_config, embedder=onnx_embedder) as ix:
        assert top(ix, "call the help desk to reset the vpn") == "wiki:2"
        assert ix.collection.count() == 5
