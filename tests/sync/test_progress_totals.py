"""Issue 14: Google Drive's and Outlook's totals reach the progress callback and `inlet status`.

The real engine runs the real connectors against the sandbox into a real index. Each progress
callback also reads `sources_status` from the index's files, as `inlet status` does from another
process, so what is asserted is what an operator sees while the backfill runs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import inlet.sync.engine as engine_module
from inlet.config import parse_config
from inlet.index.store import Index
from inlet.sandbox import drive_state as ds
from inlet.sandbox.server import Sandbox
from inlet.status import sources_status
from inlet.sync.engine import Engine, RunProgress
from inlet.storage import RunRecord
from inlet.storage.sqlite.state import SqliteState

DRIVE, MAIL = "sandbox-drive", "sandbox-mail"
MAILBOX = "robert.badeer@enron.com"
NARROW: dict[str, dict[str, Any]] = {
    DRIVE: {"backoff_seconds": 0.01, "max_requests_per_second": 0, "retries": 1, "page_size": 5},
    MAIL: {"mailboxes": [MAILBOX], "folders": ["inbox"], "page_size": 10},
}


@dataclass
class Seen:
    """Each progress callback: the engine's figures and what `inlet status` showed at that moment."""

    calls: list[tuple[int | None, int | None, str | None]] = field(default_factory=list)
    running: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def stack(tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Engine, Seen]]:
    monkeypatch.setattr(engine_module, "PROGRESS_EVERY", 0.0)  # every item, not every half second
    monkeypatch.setattr(engine_module, "PROGRESS_SAVE_EVERY", 0.0)
    seen = Seen()
    with Sandbox() as sb:
        text, env = sb.config(tmp_path / "index")
        raw = tomllib.loads(text)
        raw["sources"] = [s | NARROW[s["name"]] for s in raw["sources"] if s["name"] in NARROW]
        settings = parse_config(raw)

        def on_progress(run: RunRecord, progress: RunProgress) -> None:
            seen.calls.append((progress.done, progress.total, progress.unit))
            status = sources_status(settings)  # its own connection to the index's files
            running = next(s["running"] for s in status["sources"] if s["name"] == run.source)
            if running is not None:
                seen.running.append(running)

        with Index(settings.index, embedder=embedder) as index:
            state = SqliteState(tmp_path / "index" / "state.db")
            try:
                yield sb, Engine(settings, index, state, env=env, on_progress=on_progress), seen
            finally:
                state.close()


def drive_files(sb: Sandbox) -> int:
    """Files a crawl goes through, from the sandbox's own state."""
    return sum(1 for f in sb.ws.drive.files.values() if f.mime_type != ds.FOLDER and not f.trashed)


def inbox_messages(sb: Sandbox) -> int:
    """Messages in the mailbox's Inbox and the folders below it, from the sandbox's own state."""
    mail = sb.ws.mail
    user = sb.ws.user_by_email(MAILBOX)
    assert user is not None
    folders, count = [mail.folder(user.id, "inbox").id], 0
    while folders:
        fid = folders.pop()
        count += len(mail.in_folder(fid))
        folders += [child.id for child in mail.children(user.id, fid)]
    return count


@pytest.mark.parametrize("source, unit, expected", [(DRIVE, "files", drive_files), (MAIL, "messages", inbox_messages)])
def test_backfill_total_shows_in_status_and_done_ends_equal_to_it(
    stack: tuple[Sandbox, Engine, Seen], source: str, unit: str, expected: Any
) -> None:
    sb, engine, seen = stack
    total = expected(sb)
    result = engine.run(source, "backfill")
    assert result.outcome == "ok" and result.upserted + result.skipped == total  # every item was gone through
    assert seen.calls[-1] == (total, total, unit)
    midway = [r for r in seen.running if r["total"] == total and r["done"] is not None and r["done"] < total]
    assert midway and all(r["unit"] == unit for r in midway)
    assert any(r["eta_seconds"] is not None for r in midway)
    assert next(s for s in sources_status(engine.settings)["sources"] if s["name"] == source)["running"] is None

    seen.calls.clear()
    seen.running.clear()
    again = engine.run(source, "sync")  # incremental: the source knows no total
    assert again.outcome == "ok"
    assert all(t is None for _, t, _ in seen.calls) and all(r["total"] is None for r in seen.running)
