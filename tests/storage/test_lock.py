"""The index lock tells a refused command who holds the folder, by a readable command line, and
what to do: a command no holder runs for another (`reindex`, `migrate`, `restore`) beside a
daemon or server is told to stop it first, not to wait for it to finish."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.errors import IndexLockedError
from inlet.storage.lock import FileLock, lock_index


def holder_shown(tmp_path: Path, monkeypatch, argv: list[str], **info: str) -> str:
    """How a process refused the index names a holder started by `argv`."""
    monkeypatch.setattr(sys, "argv", argv)
    held = lock_index(tmp_path, **info)
    try:
        with pytest.raises(IndexLockedError) as refused:
            lock_index(tmp_path)
    finally:
        held.release()
    return refused.value.holder


def test_the_holder_is_named_by_its_subcommand_and_arguments(tmp_path: Path, monkeypatch) -> None:
    argv = ["/srv/inlet/.venv/bin/inlet", "serve", "--port", "41923"]
    shown = holder_shown(tmp_path, monkeypatch, argv, api_url="http://127.0.0.1:41923")
    assert shown == f"pid {os.getpid()} (inlet serve --port 41923)"


def test_a_long_command_is_cut_between_arguments_never_after_an_option(tmp_path: Path, monkeypatch) -> None:
    config = "/srv/" + "very-long-folder-name/" * 4 + "config.toml"
    argv = ["inlet", "daemon", "--serve", "--port", "8484", "--config", config, "-v"]
    shown = holder_shown(tmp_path, monkeypatch, argv, role="daemon")
    assert shown == f"pid {os.getpid()} (inlet daemon --serve --port 8484 …)"


@pytest.mark.parametrize("holder", [{"role": "daemon"}, {"api_url": "http://127.0.0.1:8484"}])
@pytest.mark.parametrize("command", [["reindex"], ["migrate", "--to", "copy.toml"]])
def test_reindex_and_migrate_beside_a_daemon_or_server_say_to_stop_it_first(
    tmp_path: Path, monkeypatch, holder: dict[str, str], command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.toml").write_text('[index]\npath = "index"\n')
    Path("copy.toml").write_text('[index]\npath = "copy"\n')
    held = FileLock(tmp_path / "index" / "index.lock")
    assert held.acquire(**holder)
    try:
        result = CliRunner().invoke(cli, [*command, "--config", "config.toml"])
    finally:
        held.release()
    assert result.exit_code == 1, result.output
    assert f"`inlet {command[0]}` cannot run while pid {os.getpid()} (" in result.output
    assert (
        f"Stop it first (Ctrl-C, `kill {os.getpid()}` or its service manager), run this command again" in result.output
    )
    assert "query the running server" not in result.output and "wait for it to finish" not in result.output


def test_reindex_beside_a_backfill_waits_for_it(tmp_path: Path, monkeypatch) -> None:
    """A one-shot command ends by itself: the refused command is run again after it."""
    monkeypatch.chdir(tmp_path)
    Path("config.toml").write_text('[index]\npath = "index"\n')
    held = FileLock(tmp_path / "index" / "index.lock")
    assert held.acquire()
    try:
        result = CliRunner().invoke(cli, ["reindex", "--config", "config.toml"])
    finally:
        held.release()
    assert result.exit_code == 1, result.output
    assert f"`inlet reindex`: the index at {tmp_path / 'index'} is in use by pid {os.getpid()}" in result.output
    assert "wait for it to finish (or stop it), then run this command again" in result.output
