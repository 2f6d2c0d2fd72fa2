"""The test servers' PostgreSQL fallback: the `pgserver` wheel's binaries, what a machine with only
Python and pip has, start a server the PostgreSQL storage works on (this machine has the
distribution's binaries too, so the fallback is chosen here with INLET_TEST_PG_BINARIES)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import psycopg
import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.storage import Filters
from inlet.storage.postgres.catalog import PgCatalog
from inlet.storage import Commit
from tests.servers import PG_BINARIES_ENV, postgres_bin, postgres_server

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pgserver") is None, reason="the pgserver wheel (test extra, Linux) is not installed"
)


def test_the_pgserver_wheel_runs_the_postgres_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PG_BINARIES_ENV, "pgserver")
    binaries = postgres_bin()
    assert "pgserver" in binaries.parts and (binaries / "initdb").exists()
    with tempfile.TemporaryDirectory(prefix="inlet-pg-") as folder, postgres_server(Path(folder)) as url:
        with psycopg.connect(url) as db:
            ((location,),) = db.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'").fetchall()
        assert Path(location) == Path(folder) / "data"  # this server, not some other one on the machine
        catalog = PgCatalog(IndexConfig(database_url=url, chroma_url="http://unused"))
        try:
            doc = Document(
                id="s:1",
                source="s",
                source_type="files",
                title="Runbook",
                text="rotate the gateway certificate",
                acl=ACL(public=True),
            )
            catalog.commit(Commit(1, [(doc, [doc.text])]))
            assert [c for c, _ in catalog.lexical("certificate", Filters(), 5)] == ["s:1#0"]
        finally:
            catalog.close()
