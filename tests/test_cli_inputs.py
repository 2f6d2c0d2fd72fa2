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


@pytest.mark.parametrize("command", [["search", "budget"], ["audit"], ["mcp"]])
@pytest.mark.parametrize("user", ["Alice <alice@example.com>", "alice@example.com, bob@example.com"])
def test_a_user_that_is_not_one_address_is_exit_2(tmp_path: Path, command: list[str], user: str) -> None:
    result = CliRunner().invoke(cli, [*command, "--user", user, "--config", str(config(tmp_path))])
    assert result.exit_code == 2, result.output
    assert "not one well-formed email address" in result.output
    assert not (tmp_path / "store").exists()  # nothing ran


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = config(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_config(path).index.path == tmp_path / "store"


def test_an_error_found_after_the_config_was_read_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[index]\npath = "store"\n')  # no audit_log: `inlet audit` has nothing to read
    result = CliRunner().invoke(cli, ["audit", "--config", str(path)])
    assert result.exit_code == 2 and f"inlet: {path}: " in result.stderr, result.output


@pytest.mark.parametrize(
    "args", [["sandbox", "--port", "65535"], ["sandbox", "--port", "-1"], ["demo", "--config", "x"]]
)
def test_options_out_of_range_or_not_offered_are_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("command", ["serve", "daemon", "mcp"])
def test_servers_offer_no_json_output_they_never_print(command: str) -> None:
    # they run until stopped and print no result: --json would print nothing (or corrupt MCP's stdout)
    assert "--json" not in CliRunner().invoke(cli, [command, "--help"]).output
    result = CliRunner().invoke(cli, [command, "--json"])
    assert result.exit_code == 2 and "No such option '--json'" in result.output, result.output


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
