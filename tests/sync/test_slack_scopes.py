"""A Slack token without the scope for one kind of conversation: through the real engine, the rest is
indexed and the run ends `partial`, its skip naming the scope and the setting (`inlet status`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inlet.config import Settings, parse_config
from inlet.index.store import Index
from inlet.sandbox import slack
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.status import sources_status
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.engine import Engine

OPS, DM = "G0PRIVOPS1", "D0DMHARRY1"
SCOPES = {
    "channels:read",
    "channels:history",
    "groups:read",
    "groups:history",
    "users:read",
    "users:read.email",
    "files:read",
}


@contextmanager
def slack_engine(
    sb: Sandbox, tmp_path: Path, embedder: Any, channels: list[str]
) -> Iterator[tuple[Settings, Index, SqliteState, Engine]]:
    """An engine over a fresh index and one Slack source `team-slack` reading `channels` of `sb`."""
    source = {
        "name": "team-slack",
        "type": "slack",
        "token_env": "SLACK_TOKEN",
        "base_url": sb.ctx.http_url + "/api/",
        "channels": channels,
        "pace_scale": 1e6,
    }
    settings = parse_config({"index": {"path": str(tmp_path / "store")}, "sources": [source]})
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(settings.index.path / "state.db")
        try:
            yield settings, index, state, Engine(settings, index, state, env={"SLACK_TOKEN": slack.TOKEN})
        finally:
            state.close()


def test_a_token_without_im_read_indexes_the_rest_and_ends_partial(tmp_path: Path, embedder: Any) -> None:
    ws = Workspace()
    slack.seed_sample(ws)
    slack.set_scopes(ws, SCOPES | {"im:history", "mpim:read", "mpim:history"})  # no im:read
    with (
        Sandbox(ws) as sb,
        slack_engine(sb, tmp_path, embedder, ["private-ops", "d0*"]) as (settings, index, state, engine),
    ):
        result = engine.run("team-slack", "backfill")
        assert (result.outcome, result.errors) == ("partial", 1)
        ids = index.catalog.source_doc_ids("team-slack")
        assert any(f":{OPS}:" in i for i in ids) and not any(f":{DM}:" in i for i in ids)
        [skip] = sources_status(settings, state)["sources"][0]["last_run"]["skipped_items"]
        assert skip["id"] == "team-slack:im" and skip["failed"]
        assert "im:read" in skip["reason"] and "include_dms = false" in skip["reason"]
