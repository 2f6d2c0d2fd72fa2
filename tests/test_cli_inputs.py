"""What the CLI says about its inputs and its index before it searches: a --user that names nobody
is exit 2 on every command that takes one, and an empty index is named where it really is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inlet.cli import cli


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


class EmptyIndex:
    """An index with nothing in it, wherever it lives (no database is reached)."""

    def __init__(self, _config: Any) -> None:
        self.catalog = self

    def __enter__(self) -> EmptyIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def counts(self) -> dict[str, tuple[int, int]]:
        return {}


def test_nothing_indexed_names_the_database_not_an_unused_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inlet.index.store.Index", EmptyIndex)
    url = "postgresql://inlet@db.internal:5432/inlet"
    pg = config(tmp_path, f'database_url = "{url}"\nchroma_url = "http://chroma.internal:8000"')
    result = CliRunner().invoke(cli, ["search", "budget", "--config", str(pg)])
    assert result.exit_code == 0, result.output
    assert f"nothing is indexed yet (index in database {url})" in result.stderr
    assert ".inlet" not in result.stderr and str(tmp_path) not in result.stderr
    folder = CliRunner().invoke(cli, ["search", "budget", "--config", str(config(tmp_path))])
    assert f"(index in folder {tmp_path / 'store'})" in folder.stderr
