import sys
import textwrap

import pytest

from inlet.connectors import registry
from inlet.errors import ConfigError


@pytest.fixture
def fresh_registry():
    registry.available.cache_clear()
    yield
    registry.available.cache_clear()


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
