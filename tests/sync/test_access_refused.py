"""Graph refuses a Microsoft source every target after a good sync (the app's consent withdrawn):
through the real engine, the run fails rather than ending `partial`, so `inlet status` and the
metrics say the source is failing (failure streak, `last_run_ok` 0, the last success not moved),
and every document stays indexed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from inlet.config import parse_config
from inlet.index.store import Index
from inlet.sandbox import graph_files
from inlet.sandbox.server import Sandbox
from inlet.status import SourcesCollector, sources_status
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine


def test_every_drive_refused_is_a_failed_run_that_keeps_the_documents(tmp_path: Path, text_hash_embedder: Any) -> None:
    with Sandbox() as sb:
        block, env = graph_files.source(sb.ctx, sb.ctx.workdir)
        source = tomllib.loads(block)["sources"][0]
        settings = parse_config({"index": {"path": str(tmp_path / "store")}, "sources": [source]})
        with Index(settings.index, embedder=text_hash_embedder) as index:
            state = SqliteState(settings.index.path / "state.db")
            engine = Engine(settings, index, state, env=env)
            assert engine.run("sandbox-files", "backfill").outcome == "ok"
            indexed = set(index.catalog.source_doc_ids("sandbox-files"))
            good = sources_status(settings, state)["sources"][0]["last_success"]
            for route in ("sites", "drive"):
                sb.faults.fail("graph", route, 403, times=1000, reason="Authorization_RequestDenied")
            for streak in (1, 2):
                result = engine.run("sandbox-files")
                assert result.outcome == "failed" and not result.credentials_refused
                assert result.error is not None and result.error.startswith("source 'sandbox-files': no drive")
                assert set(index.catalog.source_doc_ids("sandbox-files")) == indexed
                [status] = sources_status(settings, state)["sources"]
                assert status["failure_streak"] == streak and status["last_success"] == good
                assert status["last_run"]["error"] == result.error
            metrics = {m.name: m.samples[0].value for m in SourcesCollector(settings, state).collect() if m.samples}
            assert metrics["inlet_source_last_run_ok"] == 0 and metrics["inlet_source_failure_streak"] == 2
