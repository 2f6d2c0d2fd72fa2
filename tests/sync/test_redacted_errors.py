"""A secret read from the environment never shows in what a run records (its error, its skipped
items: stdout, `--json`, `inlet status`, the state database that `/v1/sources` and the console
serve), as it never shows in the log (probe35b F2)."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.connectors import registry
from tests.connectors.test_registry import plug_in

SECRET = "hostile-SECRET-42abc"

PLUGIN = """
from inlet.connectors import Checkpoint, Connector, Skipped, SourceConfig
from inlet.errors import ConfigError, CredentialsError


class HostileConfig(SourceConfig):
    token_env: str = "HOSTILE_TOKEN"
    mode: str = "raise"


class Hostile(Connector):
    type = "hostile"
    Config = HostileConfig

    def check_local(self):
        if self.config.mode == "local":
            raise ConfigError(f"source {self.name!r}: no folder for {self.secret('token_env')}")

    def load(self, checkpoint, *, since=None):
        secret = self.secret("token_env")
        if self.config.mode == "skip":
            yield Skipped(id=self.doc_id("a"), reason=f"refused with token {secret}", title=f"item {secret}")
            yield Checkpoint(state={})
            return
        if self.config.mode == "refuse":
            raise CredentialsError(self.name, f"the service refused the token {secret}")
        raise RuntimeError(f"login failed with token {secret}")
"""


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "hostile_plugin.py").write_text(textwrap.dedent(PLUGIN))
    plug_in(tmp_path, "hostile_plugin", "hostile = hostile_plugin:Hostile")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.available.cache_clear()
    registry.refused.cache_clear()
    config = tmp_path / "h.toml"
    config.write_text(
        '[index]\npath = "store"\n\n[[sources]]\nname = "h"\ntype = "hostile"\n\n'
        '[[sources]]\nname = "k"\ntype = "hostile"\nmode = "skip"\n\n'
        '[[sources]]\nname = "r"\ntype = "hostile"\nmode = "refuse"\n\n'
        '[[sources]]\nname = "l"\ntype = "hostile"\nmode = "local"\n'
    )
    yield config
    registry.available.cache_clear()
    registry.refused.cache_clear()


def test_a_plug_ins_error_and_skip_holding_its_secret_are_recorded_and_printed_redacted(hostile: Path) -> None:
    runner = CliRunner()
    env = {"HOSTILE_TOKEN": SECRET}
    synced = runner.invoke(cli, ["sync", "h", "k", "--json", "--config", str(hostile)], env=env)
    assert synced.exit_code == 1, synced.output
    runs = {r["source"]: r for r in json.loads(synced.stdout)["runs"]}
    assert runs["h"]["error"] == "RuntimeError: login failed with token [redacted]"
    assert runs["k"]["outcome"] == "partial"
    prose = runner.invoke(cli, ["sync", "h", "--config", str(hostile)], env=env)
    assert "error: RuntimeError: login failed with token [redacted]" in prose.output, prose.output
    for args in (["status", "--json"], ["status", "h"], ["status", "k"], ["status", "k", "--json"]):
        shown = runner.invoke(cli, [*args, "--config", str(hostile)], env=env)
        assert shown.exit_code == 0, shown.output
        assert "[redacted]" in shown.output and SECRET not in shown.output, shown.output
    with sqlite3.connect(hostile.parent / "store" / "state.db") as db:  # what /v1/sources and the console read
        errors = [e for (e,) in db.execute("SELECT error FROM runs")]
        skips = [(t, r) for t, r in db.execute("SELECT title, reason FROM run_skips")]
    assert "RuntimeError: login failed with token [redacted]" in errors
    assert skips == [("item [redacted]", "refused with token [redacted]")]
    assert not any(SECRET in str(row) for row in [*errors, *skips])
    assert SECRET not in synced.output + prose.output
    refused = runner.invoke(cli, ["backfill", "r", "--config", str(hostile)], env=env)
    assert refused.exit_code == 3 and "the service refused the token [redacted]" in refused.output, refused.output
    assert SECRET not in refused.output
    stopped = runner.invoke(cli, ["backfill", "l", "--config", str(hostile)], env=env)  # the command's own error
    assert stopped.exit_code == 2 and "no folder for [redacted]" in stopped.output, stopped.output
    assert SECRET not in stopped.output
