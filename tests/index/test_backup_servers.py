"""PostgreSQL + a Chroma server, backed up in the documented order: `pg_dump` first (taken in the
middle of a backfill), the Chroma server's persist folder after (by then the backfill finished and
a document changed). Restored, the next sync repairs what the vectors hold beyond the catalog and
the index equals a clean one (documents, ACLs, chunks, vectors)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from inlet.config import IndexConfig, Settings
from inlet.connectors.files import FilesConfig
from inlet.index.embedding import Embedder
from inlet.index.store import Index
from inlet.storage import open_backend
from inlet.sync.engine import Engine

from .test_backup import BACKEND, FILES, PausingIndex, assert_same, snapshot

pytestmark = pytest.mark.skipif(
    shutil.which("pg_dump") is None or shutil.which("pg_restore") is None, reason="pg_dump and pg_restore are needed"
)


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(backend=BACKEND)


def settings_for(folder: Path, path: Path, database_url: str | None = None, chroma_url: str | None = None) -> Settings:
    source = FilesConfig(name="docs", type="files", path=folder, checkpoint_every=3, users=["alice@example.com"])
    return Settings(
        index=IndexConfig(path=path, database_url=database_url, chroma_url=chroma_url, backend=BACKEND),
        sources=[source],
    )


def run(settings: Settings, index: Index, kind: str) -> Any:
    state = open_backend(settings).state()
    try:
        return Engine(settings, index, state, env={}).run("docs", kind)
    finally:
        state.close()


def test_catalog_first_then_vectors_restores_to_a_clean_index(
    tmp_path: Path, database_url: str, postgres_url: str, fp32: Embedder
) -> None:
    from tests.servers import chroma_server, new_database

    folder = tmp_path / "box"
    folder.mkdir()
    for n in range(FILES):
        (folder / f"note-{n:02}.md").write_text(
            f"# Note {n}\n\nPipeline {n} carries {n * 7} units of gas to the "
            f"western storage site, reviewed by team {n % 3}.\n"
        )
    dump = tmp_path / "inlet.dump"
    with chroma_server(tmp_path / "chroma") as chroma_url:
        settings = settings_for(folder, tmp_path / "live", database_url, chroma_url)
        with PausingIndex(settings.index, embedder=fp32) as live:
            backfill = threading.Thread(target=run, args=(settings, live, "backfill"))
            backfill.start()
            try:
                assert live.reached.wait(120)
                # 1. the catalog, in the middle of the backfill
                subprocess.run(["pg_dump", "-Fc", "-f", str(dump), database_url], check=True)
            finally:
                live.go.set()
                backfill.join(120)
            (folder / "note-00.md").write_text("# Note 0\n\nRewritten after the dump: the gas now goes east.\n")
            assert run(settings, live, "sync").outcome == "ok"
    # 2. the vectors, after: the server is stopped, its folder copied
    shutil.copytree(tmp_path / "chroma", tmp_path / "chroma-backup")

    restored_db = new_database(postgres_url, "t_restored_catalog_first")
    # the documented command (docs/operations/backups.md) into a new, empty database: exit 0
    subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "-d", restored_db, str(dump)], check=True)
    with chroma_server(tmp_path / "chroma-backup") as chroma_url:
        settings = settings_for(folder, tmp_path / "restored", restored_db, chroma_url)
        with Index(settings.index, embedder=fp32) as index:
            assert 0 < len(index.catalog.source_doc_ids("docs")) < FILES  # the dump's half of the backfill
            assert run(settings, index, "sync").outcome == "ok"
            restored = snapshot(index)
    clean_settings = settings_for(folder, tmp_path / "clean")
    with Index(clean_settings.index, embedder=fp32) as clean:
        assert run(clean_settings, clean, "backfill").outcome == "ok"
        assert_same(restored, snapshot(clean))
