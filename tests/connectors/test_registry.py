import sys
import textwrap
from pathlib import Path

import pytest

from inlet.connectors import registry
from inlet.errors import ConfigError


@pytest.fixture
def fresh_registry():
    registry.available.cache_clear()
    registry.refused.cache_clear()
    yield
    registry.available.cache_clear()
    registry.refused.cache_clear()


def plug_in(folder: Path, dist: str, entry_points: str) -> None:
    """An installed distribution `dist` (on sys.path once `folder` is) with these entry points."""
    info = folder / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[inlet.connectors]\n{entry_points}\n")


def test_builtins_register_through_the_entry_point_group(fresh_registry):
    names = set(registry.available())
    assert {"files", "slack", "slack_export", "google_drive", "outlook", "mail_archive"} <= names
    assert registry.connector_class("files").type == "files"


def test_a_plug_in_is_found_by_its_entry_point(tmp_path, monkeypatch, fresh_registry):
    (tmp_path / "wiki_plugin.py").write_text(
        textwrap.dedent("""
        from inlet.connectors import Connector, SourceConfig, Checkpoint

        class WikiConfig(SourceConfig):
            space: str

        class WikiConnector(Connector):
            type = "wiki"
            Config = WikiConfig

            def load(self, checkpoint, *, since=None):
                yield self.document("home", title="Home", text="Welcome to " + self.config.space)
                yield Checkpoint(state={"done": True})
    """)
    )
    dist = tmp_path / "wiki_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wiki-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[inlet.connectors]\nwiki = wiki_plugin:WikiConnector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = registry.connector_class("wiki")
    conn = cls(cls.Config(name="team-wiki", type="wiki", space="Eng"))
    first = next(iter(conn.load(None)))
    assert first.id == "team-wiki:home" and first.text == "Welcome to Eng" and first.source_type == "wiki"
    sys.modules.pop("wiki_plugin", None)


def test_unknown_type_lists_the_installed_ones(fresh_registry):
    with pytest.raises(ConfigError, match="unknown connector type 'ftp'.*files"):
        registry.connector_class("ftp")


def test_a_plug_in_that_fails_to_import_is_a_config_error_naming_source_key_file_and_cause(
    tmp_path, monkeypatch, fresh_registry
):
    from click.testing import CliRunner

    from inlet.cli import cli

    plug_in(tmp_path / "site", "broken_plugin", "broken = broken_plugin_nope:Broken")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    config = tmp_path / "inlet.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "idx"}"\n[[sources]]\nname = "b"\ntype = "broken"\n')
    result = CliRunner().invoke(cli, ["sync", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"{config}: source 'b': key 'type': connector type 'broken': plug-in broken_plugin_nope:Broken" in (
        result.output
    )
    assert "ModuleNotFoundError: No module named 'broken_plugin_nope'" in result.output
    assert "Traceback" not in result.output


def test_a_plug_in_claiming_a_built_in_name_is_refused_and_the_built_in_kept(tmp_path, monkeypatch, fresh_registry):
    from click.testing import CliRunner

    from inlet.cli import cli

    plug_in(tmp_path, "tickets_plugin", "files = tickets_plugin:Tickets")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.connector_class("files").__module__ == "inlet.connectors.files"
    (pair,) = registry.refused()["files"]
    assert pair[0].value == "tickets_plugin:Tickets" and "built-in" in pair[1] and "tickets_plugin" in pair[1]
    shown = CliRunner().invoke(cli, ["connectors"]).output
    assert "files  (tickets_plugin:Tickets)  REFUSED: the type name 'files' is inlet's built-in connector" in shown
    assert "files  (inlet.connectors.files:FilesConnector)\n" in shown


def test_a_name_two_plug_ins_claim_is_refused_for_both(tmp_path, monkeypatch, fresh_registry):
    plug_in(tmp_path, "wiki_one", "wiki = wiki_one:Wiki")
    plug_in(tmp_path, "wiki_two", "wiki = wiki_two:Wiki")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "wiki" not in registry.available() and len(registry.refused()["wiki"]) == 2
    with pytest.raises(
        ConfigError, match=r"connector type 'wiki' is ambiguous: .*wiki_one.* and wiki_two.*uninstall one"
    ):
        registry.connector_class("wiki")


def test_an_entry_point_named_otherwise_than_its_class_type_is_broken_naming_both(
    tmp_path, monkeypatch, fresh_registry
):
    """A renamed entry point (`quilldesk` for a class of type `quill`) would index documents whose
    source_type no config, status or search filter names: it is refused where the class is loaded."""
    from click.testing import CliRunner

    from inlet.cli import cli

    (tmp_path / "alias_plugin.py").write_text(
        "from inlet.connectors import Connector, SourceConfig\n\n"
        "class Quill(Connector):\n    type = 'quill'\n    Config = SourceConfig\n"
    )
    plug_in(tmp_path, "alias_plugin", "quilldesk = alias_plugin:Quill")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        registry.connector_class("quilldesk")
    assert "connector type 'quilldesk': plug-in alias_plugin:Quill (alias_plugin)" in str(caught.value)
    assert "is a connector of type 'quill'" in str(caught.value) and "rename one" in str(caught.value)
    shown = CliRunner().invoke(cli, ["connectors"]).output
    assert "quilldesk  (alias_plugin:Quill)  BROKEN: connector type 'quilldesk'" in shown
    sys.modules.pop("alias_plugin", None)
