"""The documentation site builds strictly (broken links, missing pages and nav entries fail), its
generated references cover the code they are generated from, and the README stays short."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    return out


def test_the_configuration_reference_has_every_key_of_every_registered_connector(site: Path) -> None:
    from inlet.config import SECTIONS, OAuthConfig
    from inlet.connectors.registry import available, connector_class

    page = (site / "reference" / "configuration" / "index.html").read_text()
    models = [m for m in SECTIONS.values() if m is not None] + [OAuthConfig]
    models += [connector_class(name).Config for name in available()]
    for model in models:
        for key in model.model_fields:
            if key not in ("type", "file", "api_keys", "oauth"):
                assert f"<code>{key}</code>" in page, (model.__name__, key)
    for name in available():
        assert f"type <code>{name}</code>" in page, name


def test_every_key_of_the_configuration_reference_says_what_it_is_for(site: Path) -> None:
    page = (site / "reference" / "configuration" / "index.html").read_text()
    rows = re.findall(r"<tr>\s*<td><code>(\w+)</code></td>(.*?)</tr>", page, re.DOTALL)
    assert len(rows) > 100
    blank = sorted({key for key, cells in rows if re.search(r"<td>\s*</td>\s*$", cells)})
    assert not blank, f"keys without a description: {blank}"


def test_the_cli_reference_has_every_command_and_option(site: Path) -> None:
    import click

    from inlet.cli import cli

    page = (site / "reference" / "cli" / "index.html").read_text()
    ctx = click.Context(cli, info_name="inlet")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and f"inlet {name}" in page
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in page, (name, opt)


def test_the_mcp_reference_has_both_tools(site: Path) -> None:
    page = (site / "reference" / "mcp" / "index.html").read_text()
    assert "<code>search</code>" in page and "<code>fetch</code>" in page and "inputSchema" not in page


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 200
    blocks = [line for line in readme[:25] if line.startswith("python3.11 -m venv")]
    assert blocks[0].endswith(".venv/bin/inlet demo") and blocks[1].endswith(".venv/bin/pytest"), blocks
    text = "\n".join(readme)
    assert "docs/" in text and "mkdocs" in text


def test_no_docstring_or_test_cites_the_private_design_documents() -> None:
    cited = []
    for folder in ("inlet", "connectors", "index", "sync", "server", "sandbox", "tests", "docs"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "contract " + "section" in text or "STYLE" + ".md" in text or "CONTRACT" + ".md" in text:
                cited.append(str(path.relative_to(ROOT)))
    assert not cited, cited
