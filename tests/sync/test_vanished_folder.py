"""A folder source whose folder vanished: an error that names the folder, and nothing deleted."""

import shutil

import pytest

from inlet.config import IndexConfig, Settings
from inlet.connectors.files import FilesConfig
from inlet.connectors.mail import MailArchiveConfig
from inlet.index.store import Index
from inlet.sync.engine import Engine
from inlet.storage.sqlite.state import SqliteState


@pytest.mark.parametrize("config", [FilesConfig, MailArchiveConfig])
def test_prune_of_a_vanished_folder_deletes_nothing_and_names_it(tmp_path, embedder, config):
    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "1.").write_text("From: a@example.com\nSubject: budget\n\nThe budget is approved.\n")
    source = config(name="box", type="files" if config is FilesConfig else "mail_archive", path=folder)
    settings = Settings(index=IndexConfig(path=tmp_path / "store"), sources=[source])
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(tmp_path / "store" / "state.db")
        engine = Engine(settings, index, state, env={})
        assert engine.run("box", "backfill").upserted == 1
        shutil.rmtree(folder)
        result = engine.prune("box")
        assert result.outcome == "failed" and str(folder) in (result.error or "")
        assert "does not exist" in (result.error or "")
        assert len(index.catalog.source_doc_ids("box")) == 1
        run = engine.run("box", "sync")
        assert run.outcome == "failed" and str(folder) in (run.error or "")
        state.close()
