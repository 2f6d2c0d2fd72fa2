"""Skipped items are visible with their reasons (`inlet status`, JSON and prose); a skip by policy
leaves a run `ok`, an unreadable item makes it `partial`; a failed run counts its error."""

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import load_config
from inlet.index.store import Index
from inlet.status import sources_status
from inlet.sync.engine import Engine
from inlet.storage import SKIPS_KEPT
from inlet.storage.sqlite.state import SqliteState


def _setup(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "plan.md").write_text("# Plan\n\nThe launch is on Tuesday.\n")
    (folder / "huge.txt").write_text("budget " * 400)  # over max_file_bytes: skipped by policy
    config = tmp_path / "config.toml"
    config.write_text(
        '[index]\npath = "store"\n\n[[sources]]\nname = "handbook"\ntype = "files"\n'
        'path = "docs"\nmax_file_bytes = 1000\nevery = "1h"\n'
    )
    return folder, config


@contextmanager
def _engine(config, embedder) -> Iterator[Engine]:
    """An engine over the configured index, closed after."""
    settings = load_config(config)
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(settings.index.path / "state.db")
        try:
            yield Engine(settings, index, state, env={})
        finally:
            state.close()


def _status(config):
    result = CliRunner().invoke(cli, ["status", "handbook", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["sources"][0]["last_run"]


def test_a_skip_by_policy_is_ok_and_listed_an_unreadable_item_is_partial(tmp_path, embedder):
    folder, config = _setup(tmp_path)
    with _engine(config, embedder) as engine:
        settings, state = engine.settings, engine.state
        first = engine.run("handbook", "backfill")
        assert (first.outcome, first.skipped, first.errors) == ("ok", 1, 0)
        last = sources_status(settings, state)["sources"][0]["last_run"]
        assert last["skipped_items"] == [
            {"id": "handbook:huge.txt", "title": "huge.txt", "failed": False, "reason": "larger than 1000 bytes"}
        ]
        (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")  # cannot be read: an error
        second = engine.run("handbook", "sync")
        assert second.outcome == "partial" and second.errors == 1
        items = {i["id"]: i for i in sources_status(settings, state)["sources"][0]["last_run"]["skipped_items"]}
        assert items["handbook:broken.pdf"]["failed"] and "cannot read pdf" in items["handbook:broken.pdf"]["reason"]
        assert not items["handbook:huge.txt"]["failed"]
        (folder / "huge.txt").unlink()
        (folder / "broken.pdf").unlink()
        assert engine.run("handbook", "sync").skipped == 0
        report = sources_status(settings, state)["sources"][0]
        assert report["last_run"]["skipped_items"] == []  # the last run's own list: empty ...
        assert {i["id"] for i in report["recent_skips"]["items"]} == set(items)  # ... the skips stay in view
        prose = CliRunner().invoke(cli, ["status", "handbook", "--config", str(config)]).output
        # probe29e F12: "0 skipped, 1 errors" then "skipped items": the unreadable one is not a skip
        assert "items not indexed (the last run left no item out; the sync that ended" in prose, prose
        assert "broken.pdf" in prose and "unreadable: " in prose, prose
        shutil.rmtree(folder)
        failed = engine.run("handbook", "sync")
        assert failed.outcome == "failed" and failed.errors >= 1  # issue 28.4: not "0 errors"
        assert sources_status(settings, state)["sources"][0]["last_run"]["errors"] >= 1
        folder.mkdir()  # (the configuration names it)
        prose = CliRunner().invoke(cli, ["status", "handbook", "--config", str(config)]).output
        # review29 F10: a run that failed before reading anything indexed nothing, let alone every item
        assert "items not indexed (the last run ended failed; the sync that ended" in prose, prose


def test_status_source_prints_the_skipped_items_and_json_carries_them(tmp_path, embedder):
    folder, config = _setup(tmp_path)
    for n in range(SKIPS_KEPT + 5):
        (folder / f"big-{n:02}.txt").write_text("x" * 2000)
    with _engine(config, embedder) as engine:
        assert engine.run("handbook", "backfill").skipped == SKIPS_KEPT + 6
    last = _status(config)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", last["finished_at"])  # milliseconds at most
    assert last["skipped"] == SKIPS_KEPT + 6 and len(last["skipped_items"]) == SKIPS_KEPT
    prose = CliRunner().invoke(cli, ["status", "handbook", "--config", str(config)]).output
    assert "big-00.txt [handbook:big-00.txt] — skipped: larger than 1000 bytes" in prose, prose
    assert f"last run: backfill ok, {last['started_at']} to {last['finished_at']} — " in prose, prose
    overview = CliRunner().invoke(cli, ["status", "--config", str(config)]).output
    assert "`inlet status handbook` lists them" in overview and "big-00.txt" not in overview
    assert "(when a daemon runs: none runs this source now)" in overview  # no daemon: nothing will run it
    unknown = CliRunner().invoke(cli, ["status", "nope", "--config", str(config)])
    assert unknown.exit_code == 2 and "handbook" in unknown.output


def test_a_file_grown_over_max_file_bytes_leaves_search_in_an_incremental_sync(tmp_path, embedder):
    from inlet.index.search import SearchRequest, search

    folder, config = _setup(tmp_path)
    with _engine(config, embedder) as engine:
        engine.run("handbook", "backfill")
        index = engine.index
        found = lambda: [h.doc_id for h in search(index, SearchRequest(query="launch Tuesday", k=5))[0]]  # noqa: E731
        assert "handbook:plan.md" in found()
        (folder / "plan.md").write_text("# Plan\n\nThe launch is on Tuesday.\n" * 60)  # now over the cap
        result = engine.run("handbook", "sync")
        assert (result.outcome, result.deleted, result.skipped) == ("ok", 1, 2)
        assert "handbook:plan.md" not in found()
        assert index.catalog.source_doc_ids("handbook") == []
