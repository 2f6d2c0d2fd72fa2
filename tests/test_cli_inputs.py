"""What the CLI says about its inputs and its index before it searches: a --user that names nobody
is exit 2 on every command that takes one, and an empty index is named where it really is."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import load_config
from inlet.storage import open_backend


def config(tmp_path: Path, index: str = 'path = "store"') -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[index]\n{index}\n[server]\naudit_log = "{tmp_path / "audit.jsonl"}"\n')
    return path


@pytest.mark.parametrize("command", [["search", "budget"], ["audit"], ["mcp"]])
@pytest.mark.parametrize("user", ["", "  "])
def test_an_empty_user_is_exit_2_naming_the_option(tmp_path: Path, command: list[str], user: str) -> None:
    result = CliRunner().invoke(cli, [*command, "--user", user, "--config", str(config(tmp_path))])
    assert result.exit_code == 2, result.output
    assert "--user" in result.output and "the user is empty" in result.output
    assert not (tmp_path / "store").exists()  # nothing ran


def test_nothing_indexed_names_the_database_not_an_unused_folder(
    tmp_path: Path, database_url: str, chroma_server_url: str
) -> None:
    """On PostgreSQL + a Chroma server (real ones), the empty index is named as the database, its
    password (written into the URL instead of `database_password_env`) hidden."""
    user, rest = database_url.split("://", 1)[1].split("@", 1)
    with_password = f"postgresql://{user.split(':')[0]}:{SECRET}@{rest}"
    pg = config(tmp_path, f'database_url = "{database_url}"\nchroma_url = "{chroma_server_url}"')
    result = CliRunner().invoke(cli, ["search", "budget", "--config", str(pg)])
    assert result.exit_code == 0, result.output
    assert f"nothing is indexed yet (index in database {database_url.split('://')[0]}://" in result.stderr
    assert ".inlet" not in result.stderr and str(tmp_path) not in result.stderr
    shown = open_backend(load_config(pg).index.model_copy(update={"database_url": with_password})).location
    assert SECRET not in shown and "***" in shown
    folder = CliRunner().invoke(cli, ["search", "budget", "--config", str(config(tmp_path))])
    assert f"(index in folder {tmp_path / 'store'})" in folder.stderr


SECRET = "pa55-in-the-url"
