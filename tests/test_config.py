from pathlib import Path

import pytest

from inlet.config import load_config
from inlet.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


GOOD = """
[index]
path = "store"

[[sources]]
name = "handbook"
type = "files"
path = "docs"
every = "1h"
users = ["Alice@example.com"]
"""


def test_good_config_resolves_paths_relative_to_the_file(tmp_path):
    settings = load_config(write(tmp_path, GOOD))
    assert settings.index.path == (tmp_path / "store").resolve()
    source = settings.source("handbook")
    assert source.path == tmp_path / "docs"
    assert source.acl().users == ["alice@example.com"] and not source.acl().public


@pytest.mark.parametrize("text, expected", [
    (GOOD + "colour = 'blue'\n", ["config.toml", "'handbook'", "'colour'", "unknown key"]),
    (GOOD.replace('path = "docs"\n', ""), ["config.toml", "'handbook'", "'path'", "required"]),
    (GOOD.replace('every = "1h"', 'every = "soon"'), ["'handbook'", "'every'"]),
    (GOOD.replace('every = "1h"', 'schedule = "61 * * * *"'), ["'handbook'", "'schedule'"]),
    (GOOD.replace('type = "files"', 'type = "ftp"'), ["'handbook'", "'type'", "ftp", "files"]),
    (GOOD.replace('name = "handbook"', 'name = "Hand Book"'), ["'name'", "[a-z0-9-]+"]),
    (GOOD + GOOD.split("[index]")[1].replace('path = "store"', ""), ["'handbook'", "twice"]),
    (GOOD.replace("[index]", "[index]\nbatch_size = 'big'"), ["[index]", "'batch_size'"]),
    ("[serverr]\n", ["'serverr'"]),
    ("[index\n", ["not valid TOML"]),
])
def test_bad_config_names_file_source_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for fragment in expected:
        assert fragment in str(info.value)


def test_api_key_needs_exactly_one_role(tmp_path):
    text = '[[server.api_keys]]\nname = "k"\nkey_env = "K"\nadmin = true\nuser = "a@b.c"\n'
    with pytest.raises(ConfigError, match=r"\[server\].*exactly one"):
        load_config(write(tmp_path, text))


def test_example_config_is_valid():
    example = Path(__file__).parent.parent / "config.example.toml"
    settings = load_config(example)
    assert {s.type for s in settings.sources} >= {"files", "slack", "google_drive", "outlook"}
