"""Recent first: a fresh backfill makes the recent window searchable before it goes further back.

A real folder (the files connector, mtimes set per file), a real index and state. The connector is
the real one, with a hook called where each pass starts: the test looks at the index and at
`inlet status` at the moment the full pass begins, the recent pass committed, without sleeps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from inlet.config import IndexConfig, Settings, parse_config
from inlet.connectors import Connector
from inlet.connectors.files import FilesConfig, FilesConnector
from inlet.connectors.model import Document
from inlet.errors import ConfigError
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.status import sources_status
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine

DAY = 86400.0
RECENT = {"standup.md": 1, "incident.md": 2, "release.md": 5}  # days old
OLD = {"kickoff.md": 30, "budget.md": 90, "offsite.md": 200, "hiring.md": 400, "charter.md": 700}


class Hooked(FilesConnector):
    """The files connector, calling `Hooked.at_start(since)` as each load starts and
    `Hooked.per_item(since, item)` before each item it yields."""

    calls: list[datetime | None] = []
    at_start: Callable[[datetime | None], None] = staticmethod(lambda since: None)
    per_item: Callable[[datetime | None, Any], None] = staticmethod(lambda since, item: None)

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Any]:
        Hooked.calls.append(since)
        Hooked.at_start(since)
        for item in super().load(checkpoint, since=since):
            Hooked.per_item(since, item)
            yield item


class HookedEngine(Engine):
    def connector(self, name: str, env: object = None) -> Connector:
        return Hooked(self.settings.source(name))


def write(folder: Path, name: str, days_old: float) -> None:
    path = folder / name
    path.write_text(f"# {name}\n\nNotes about {name.removesuffix('.md')} written {days_old} days ago.\n")
    stamp = time.time() - days_old * DAY
    os.utime(path, (stamp, stamp))


@pytest.fixture
def world(tmp_path, embedder):
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, age in {**RECENT, **OLD}.items():
        write(folder, name, age)
    Hooked.calls = []
    Hooked.at_start = staticmethod(lambda since: None)
    Hooked.per_item = staticmethod(lambda since, item: None)
    settings = Settings(
        index=IndexConfig(path=tmp_path / "index"),
        sources=[FilesConfig(name="notes", type="files", path=folder, checkpoint_every=1)],
    )
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(Path(index.path) / "state.db")
        yield HookedEngine(settings, index, state), folder
        state.close()


def indexed(engine: Engine) -> set[str]:
    return {d.removeprefix("notes:") for d in engine.index.catalog.source_doc_ids("notes")}


def found(engine: Engine, query: str) -> set[str]:
    hits, _ = search(engine.index, SearchRequest(query=query, k=20, per_document=1))
    return {h.doc_id.removeprefix("notes:") for h in hits}


def status_of(engine: Engine) -> dict[str, Any]:
    return sources_status(engine.settings, engine.state)["sources"][0]


def test_the_recent_window_is_searchable_and_reported_before_the_full_pass(world):
    engine, _ = world
    seen: dict[str, Any] = {}

    def at_start(since: datetime | None) -> None:
        if since is None:  # the full pass begins: the recent one is committed
            seen["indexed"] = indexed(engine)
            seen["found"] = found(engine, "notes about the incident")
            seen["status"] = status_of(engine)["indexed_since"]

    Hooked.at_start = staticmethod(at_start)
    started = datetime.now(timezone.utc)
    result = engine.run("notes", "backfill")
    assert result.outcome == "ok"
    assert len(Hooked.calls) == 2 and Hooked.calls[1] is None
    window = Hooked.calls[0]
    assert window is not None and abs((started - window) - timedelta(days=7)) < timedelta(minutes=1)
    assert seen["indexed"] == set(RECENT)  # only the last 7 days, all of them
    assert "incident.md" in seen["found"]
    assert seen["status"] is not None and seen["status"] != "all"
    assert abs(datetime.fromisoformat(seen["status"]) - window) < timedelta(seconds=1)
    assert indexed(engine) == set(RECENT) | set(OLD)
    assert status_of(engine)["indexed_since"] == "all"
    assert result.embedded == engine.index.collection.count()  # the recent documents were embedded once


def test_a_recent_document_deleted_before_the_full_pass_is_pruned(world):
    engine, folder = world

    def at_start(since: datetime | None) -> None:
        if since is None:
            (folder / "standup.md").unlink()

    Hooked.at_start = staticmethod(at_start)
    assert engine.run("notes", "backfill").outcome == "ok"
    assert indexed(engine) == (set(RECENT) | set(OLD)) - {"standup.md"}


def _fail_in(which: str) -> Callable[[datetime | None, Any], None]:
    """Fails the pass named `which` ("recent" or "full") at its second document, once."""
    documents: list[Any] = []

    def per_item(since: datetime | None, item: Any) -> None:
        if (since is None) == (which == "full") and isinstance(item, Document):
            documents.append(item)
            if len(documents) == 2:
                raise RuntimeError(f"network down in the {which} pass")

    return per_item


def test_a_run_that_fails_in_the_recent_pass_redoes_it_and_loses_nothing(world):
    engine, _ = world
    Hooked.per_item = staticmethod(_fail_in("recent"))
    first = engine.run("notes", "backfill")
    assert first.outcome == "failed" and "recent pass" in (first.error or "")
    source = engine.state.source("notes")
    assert source.phase == "backfill" and source.checkpoint is None and source.recent is None
    assert status_of(engine)["indexed_since"] is None
    Hooked.calls = []
    second = engine.run("notes", "sync")  # resumes the backfill: the recent pass again, then the full one
    assert second.outcome == "ok"
    assert len(Hooked.calls) == 2 and Hooked.calls[0] is not None and Hooked.calls[1] is None
    assert indexed(engine) == set(RECENT) | set(OLD)
    assert engine.index.collection.count() == sum(c for _, c in engine.index.catalog.counts().values())
    assert status_of(engine)["indexed_since"] == "all"


def test_a_run_that_fails_in_the_full_pass_resumes_it_from_its_checkpoint(world):
    engine, _ = world
    Hooked.per_item = staticmethod(_fail_in("full"))
    first = engine.run("notes", "backfill")
    assert first.outcome == "failed" and "full pass" in (first.error or "")
    source = engine.state.source("notes")
    assert source.phase == "backfill" and source.recent is not None
    assert source.checkpoint is not None  # the full pass's own, never the recent pass's
    assert status_of(engine)["indexed_since"] is not None
    Hooked.calls = []
    second = engine.run("notes", "sync")
    assert second.outcome == "ok"
    assert Hooked.calls == [None]  # no second recent pass: the full pass resumed
    assert indexed(engine) == set(RECENT) | set(OLD)
    assert engine.index.collection.count() == sum(c for _, c in engine.index.catalog.counts().values())
    assert status_of(engine)["indexed_since"] == "all"
    assert engine.state.source("notes").recent is None


def test_recent_first_0_turns_the_recent_pass_off_per_source(world):
    engine, folder = world
    engine.settings.sources[0] = FilesConfig(name="notes", type="files", path=folder, recent_first="0")
    assert engine.run("notes", "backfill").outcome == "ok"
    assert Hooked.calls == [None]


def test_an_item_skipped_in_the_window_is_counted_once(world):
    engine, folder = world
    (folder / "huge.md").write_text("x" * 5000)  # modified now: inside the window
    engine.settings.sources[0] = FilesConfig(name="notes", type="files", path=folder, max_file_bytes=4000)
    result = engine.run("notes", "backfill")
    assert len(Hooked.calls) == 2 and result.outcome == "ok"
    assert result.skipped == 1
    assert [item["id"] for item in status_of(engine)["last_run"]["skipped_items"]] == ["notes:huge.md"]


def test_a_since_inside_the_window_needs_no_recent_pass(world):
    engine, _ = world
    assert engine.run("notes", "backfill", since=datetime.now(timezone.utc) - timedelta(days=3)).outcome == "ok"
    assert len(Hooked.calls) == 1
    assert indexed(engine) == {"standup.md", "incident.md"}
    assert status_of(engine)["indexed_since"] not in (None, "all")


def test_a_bad_recent_first_names_the_key_and_the_source(tmp_path):
    with pytest.raises(ConfigError) as caught:
        parse_config({"index": {"recent_first": "a week"}}, tmp_path / "config.toml")
    assert "recent_first" in str(caught.value) and "[index]" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"sources": [{"name": "notes", "type": "files", "path": str(tmp_path), "recent_first": "soon"}]},
            tmp_path / "config.toml",
        )
    assert "recent_first" in str(caught.value) and "notes" in str(caught.value)


def test_slack_backfill_makes_the_last_week_of_threads_searchable_first(tmp_path, embedder):
    """The real Slack connector against the sandbox (a generated workspace whose history ends at a
    fixed date: the window is the one from now that covers that history's last 30 days)."""
    import random

    from inlet.connectors.slack import SlackConfig
    from inlet.sandbox import slack
    from inlet.sandbox.server import Sandbox
    from inlet.sandbox.workspace import Workspace

    ws = Workspace(rng=random.Random(7))
    slack.seed_generated(ws, channels=4, messages=300)
    start = 1_700_000_000 - 30 * DAY
    mine = [c for c in ws.slack.channels.values() if slack.BOT_USER in c.members]
    threads = {f"chat:{c.id}:{m.ts}" for c in mine for m in c.messages}
    recent = {t for t in threads if float(t.rsplit(":", 1)[1]) >= start}
    assert 0 < len(recent) < len(threads)
    at_recent: dict[str, Any] = {}
    with Sandbox(ws) as sb:
        source = SlackConfig(
            name="chat",
            type="slack",
            token_env="T",
            base_url=sb.ctx.http_url + "/api/",
            pace_scale=1e6,
            recent_first=f"{(time.time() - start) / DAY:.6f}d",
        )
        settings = Settings(index=IndexConfig(path=tmp_path), sources=[source])
        with Index(settings.index, embedder=embedder) as index:
            state = SqliteState(tmp_path / "state.db")

            def committed(name: str, since: datetime) -> None:  # the engine's event: recent pass in
                at_recent["ids"] = set(index.catalog.source_doc_ids(name))
                at_recent["status"] = sources_status(settings, state)["sources"][0]["indexed_since"]

            engine = Engine(settings, index, state, env={"T": slack.TOKEN}, on_recent=committed)
            result = engine.run("chat", "backfill")
            assert result.outcome == "ok"
            assert at_recent["ids"] == recent  # the window's threads, and only them
            assert at_recent["status"] not in (None, "all")
            assert abs(datetime.fromisoformat(at_recent["status"]).timestamp() - start) < 60
            assert {d for d in index.catalog.source_doc_ids("chat") if d.count(":") == 2} >= threads
            assert sources_status(settings, state)["sources"][0]["indexed_since"] == "all"
            state.close()


def test_an_outlook_backfill_reads_each_attachment_once(tmp_path, embedder):
    """The real Outlook connector against the sandbox's Graph: the recent pass reads the week's
    attachments, and the full pass after it reuses them for the messages unchanged since (each
    attachment is one GET on the emulator in the whole backfill)."""
    import tomllib
    from collections import Counter
    from urllib.parse import unquote

    from inlet.sandbox import graph
    from inlet.sandbox.server import Sandbox

    badeer = "robert.badeer@enron.com"
    with Sandbox() as sb:
        ours = set()
        for word in ("Osprey", "Gannet"):
            msg = graph.add_message(sb.ws, badeer, "inbox", f"{word} contract", f"{word} terms attached")
            data = f"{word} indemnity clause".encode()
            ours.add(graph.add_attachment(sb.ws, msg.id, f"{word}.txt", data, "text/plain").id)
        text, env = sb.config(tmp_path / "index")
        raw = tomllib.loads(text)
        raw["sources"] = [
            {**s, "mailboxes": [badeer], "folders": ["inbox"]} for s in raw["sources"] if s["name"] == "sandbox-mail"
        ]
        settings = parse_config(raw, tmp_path / "config.toml")
        with Index(settings.index, embedder=embedder) as index:
            state = SqliteState(Path(settings.index.path) / "state.db")
            passes: list[datetime] = []
            engine = Engine(settings, index, state, env=env, on_recent=lambda name, since: passes.append(since))
            sb.ctx.faults.reset_counts()
            result = engine.run("sandbox-mail", "backfill")
            fetched = Counter(unquote(path.rsplit("/", 1)[-1]) for path in sb.ctx.faults.targets("graph:attachment"))
            found, _ = search(index, SearchRequest(query="Gannet indemnity clause", k=5, per_document=1))
            state.close()
    assert result.outcome == "ok" and len(passes) == 1  # a recent pass, then the full pass
    assert any("Gannet indemnity clause" in hit.text for hit in found)
    assert {att: fetched[att] for att in ours} == {att: 1 for att in ours}  # read in the recent pass only
    assert set(fetched.values()) == {1}, fetched  # and every older attachment once, by the full pass
