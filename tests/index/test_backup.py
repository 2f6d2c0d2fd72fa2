"""Backups of a folder index: a copy taken in the middle of a backfill, restored, finishes the
backfill and equals an index that never stopped (documents, chunks, vectors, ACLs); `inlet backup`
asks a running holder to take the copy between two batches; `inlet restore` puts it back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import IndexConfig, Settings
from inlet.connectors.files import FilesConfig
from inlet.errors import InletError
from inlet.index.embedding import Embedder
from inlet.index.backup import MANIFEST, backup_index, restore_index
from inlet.index.store import Index, Prepared
from inlet.server.local_commands import start_local_commands
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine

FILES = 12
# fp32: a text's vector does not depend on the batch it was embedded in (the int8 model quantizes
# activations per batch), so a restored index and a clean one can be compared vector by vector.
BACKEND = "onnx"


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(backend=BACKEND)


class PausingIndex(Index):
    """Stops the writer after its second batch, committed, until the test lets it go on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0
        self.reached = threading.Event()
        self.go = threading.Event()

    def write(self, batch: Prepared) -> Any:
        stats = super().write(batch)
        self.writes += 1
        if self.writes == 2:
            self.reached.set()
            assert self.go.wait(120)
        return stats


def make_settings(tmp_path: Path, folder: Path, index: str) -> Settings:
    source = FilesConfig(name="docs", type="files", path=folder, checkpoint_every=3, users=["alice@example.com"])
    return Settings(index=IndexConfig(path=tmp_path / index, batch_size=8, backend=BACKEND), sources=[source])


def snapshot(index: Index) -> dict[str, Any]:
    """Documents with their ACLs and chunks, and the vectors by chunk id."""
    ids = sorted(index.catalog.source_doc_ids("docs"))
    stored = index.catalog.stored(ids)
    docs = index.catalog.documents(stored)
    vectors = index.collection.get(include=["embeddings"])
    return {
        "docs": {i: (docs[i].text, docs[i].title, docs[i].acl.model_dump(), stored[i].chunks) for i in ids},
        "vectors": dict(zip(vectors["ids"], (np.asarray(v) for v in vectors["embeddings"]), strict=True)),
    }


def assert_same(one: dict[str, Any], two: dict[str, Any]) -> None:
    assert one["docs"] == two["docs"] and len(one["docs"]) == FILES
    assert one["vectors"].keys() == two["vectors"].keys()
    differ = [key for key, vector in one["vectors"].items() if not np.allclose(vector, two["vectors"][key], atol=1e-5)]
    assert differ == []


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    box = tmp_path / "box"
    box.mkdir()
    for n in range(FILES):
        (box / f"note-{n:02}.md").write_text(
            f"# Note {n}\n\nThe pipeline number {n} carries {n * 7} units of gas "
            f"to the western storage site, reviewed by team {n % 3}.\n"
        )
    return box


def test_a_backup_taken_mid_backfill_restores_and_finishes_like_a_clean_one(
    tmp_path: Path, folder: Path, fp32: Embedder
) -> None:
    clean_settings = make_settings(tmp_path, folder, "clean")
    with Index(clean_settings.index, embedder=fp32) as clean:
        state = SqliteState(clean.path / "state.db")
        assert Engine(clean_settings, clean, state, env={}).run("docs", "backfill").outcome == "ok"
        state.close()
        expected = snapshot(clean)

    live_settings = make_settings(tmp_path, folder, "live")
    with PausingIndex(live_settings.index, embedder=fp32) as live:
        state = SqliteState(live.path / "state.db")
        engine = Engine(live_settings, live, state, env={})
        run = threading.Thread(target=engine.run, args=("docs", "backfill"))
        run.start()
        try:
            assert live.reached.wait(120)
            report = backup_index(live, tmp_path / "backup")  # the writer is between two batches
        finally:
            live.go.set()
            run.join(120)
        state.close()
    assert report.files >= 3 and (tmp_path / "backup" / MANIFEST).is_file()
    assert not (tmp_path / "backup" / "index.lock").exists()

    restored = tmp_path / "restored"
    assert restore_index(tmp_path / "backup", restored) is None
    settings = make_settings(tmp_path, folder, "restored")
    with Index(settings.index, embedder=fp32) as index:
        halfway = len(index.catalog.source_doc_ids("docs"))
        assert 0 < halfway < FILES  # the copy is of the middle of the backfill
        state = SqliteState(index.path / "state.db")
        result = Engine(settings, index, state, env={}).run("docs", "sync")
        state.close()
        assert result.outcome == "ok" and result.upserted <= FILES - 3  # from the copy's checkpoint on
        assert_same(snapshot(index), expected)


def test_inlet_backup_asks_the_holder_and_restore_refuses_to_overwrite(
    tmp_path: Path, folder: Path, fp32: Embedder
) -> None:
    settings = make_settings(tmp_path, folder, "held")
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{settings.index.path}"\n')
    with Index(settings.index, embedder=fp32) as index:
        state = SqliteState(index.path / "state.db")
        Engine(settings, index, state, env={}).run("docs", "backfill")
        expected = snapshot(index)
        local = start_local_commands(settings, index, state, lambda *a: None)  # type: ignore[arg-type,return-value]
        assert local is not None
        try:
            done = CliRunner().invoke(cli, ["backup", str(tmp_path / "copy"), "--json", "--config", str(config)])
            assert done.exit_code == 0, done.output
            again = CliRunner().invoke(cli, ["backup", str(tmp_path / "copy"), "--config", str(config)])
            assert again.exit_code != 0 and "not an empty folder" in again.output
            busy = CliRunner().invoke(cli, ["restore", str(tmp_path / "copy"), "--replace", "--config", str(config)])
            assert busy.exit_code != 0 and "in use" in busy.output  # never under a running holder
        finally:
            local.close()
            state.close()
    refused = CliRunner().invoke(cli, ["restore", str(tmp_path / "copy"), "--config", str(config)])
    assert refused.exit_code != 0 and "--replace" in refused.output
    done = CliRunner().invoke(cli, ["restore", str(tmp_path / "copy"), "--replace", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert len(list(tmp_path.glob("held.replaced-*"))) == 1
    with Index(settings.index, embedder=fp32) as index:
        assert_same(snapshot(index), expected)
    with pytest.raises(InletError, match="not an inlet backup"):
        restore_index(folder, tmp_path / "elsewhere")
