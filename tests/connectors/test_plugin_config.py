"""A plug-in's `Config` reads a source's table as inlet reads every table, or the plug-in is refused.

A `Config` that is a plain pydantic `BaseModel` (not a `SourceConfig`) has no `name`, so every
command on a config using it crashed in the loader; a sub-table modelled as a plain `BaseModel`
ignored typos and read `true` as 1. Both are refused when the class is loaded, listed as BROKEN by
`inlet connectors` with what to subclass; a sub-table that is a `TypedConfig` is checked key by key.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.connectors import registry
from inlet.errors import ConfigError
from tests.connectors.test_registry import plug_in

PLUGIN = """
from typing import Literal

from pydantic import BaseModel, field_validator

from inlet.connectors import Checkpoint, Connector, SourceConfig, TypedConfig


class PlainConfig(BaseModel):
    base_url: str
    client_id: str


class Retry(BaseModel):
    attempts: int = 5


class TypedRetry(TypedConfig):
    attempts: int = 5
    mode: Literal["fixed", "backoff"] = "backoff"


class NestedConfig(SourceConfig):
    retry: Retry = Retry()


class DeepConfig(SourceConfig):
    retries: dict[str, TypedRetry] = {}
    also: list[Retry] | None = None


class TypedNestedConfig(SourceConfig):
    retry: TypedRetry = TypedRetry()


class Base(Connector):
    def load(self, checkpoint, *, since=None):
        yield Checkpoint(state={})


def _typed(type_name, config):
    return type(type_name, (Base,), {"type": type_name, "Config": config})


class UnluckyConfig(SourceConfig):
    per_page: int = 10

    @field_validator("per_page")
    @classmethod
    def lucky(cls, value: int) -> int:
        if value == 13:
            raise KeyError("unlucky")  # a plug-in bug: not the ValueError a refusal is
        return value


class CheckBug(Base):
    def check_local(self):
        raise ValueError("bad per_page in check_local")


BadCfg = _typed("quill_badcfg", PlainConfig)
Unlucky = _typed("quill_unlucky", UnluckyConfig)
Checking = type("quill_checkbug", (CheckBug,), {"type": "quill_checkbug", "Config": SourceConfig})
Nested = _typed("quill_nested", NestedConfig)
Deep = _typed("quill_deep", DeepConfig)
Typed = _typed("quill_typed", TypedNestedConfig)
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "quill_cfg.py").write_text(textwrap.dedent(PLUGIN))
    plug_in(
        tmp_path,
        "quill_cfg",
        "quill_badcfg = quill_cfg:BadCfg\nquill_nested = quill_cfg:Nested\n"
        "quill_deep = quill_cfg:Deep\nquill_typed = quill_cfg:Typed\nquill_unlucky = quill_cfg:Unlucky\n"
        "quill_checkbug = quill_cfg:Checking",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.available.cache_clear()
    registry.refused.cache_clear()
    yield tmp_path
    registry.available.cache_clear()
    registry.refused.cache_clear()
    sys.modules.pop("quill_cfg", None)


def sync(folder: Path, source: str) -> tuple[int, str]:
    config = folder / "inlet.toml"
    config.write_text(f'[index]\npath = "{folder / "idx"}"\n' + textwrap.dedent(source))
    result = CliRunner().invoke(cli, ["sync", "--config", str(config)])
    return result.exit_code, result.output


def test_a_config_that_is_a_plain_base_model_is_refused_naming_the_class(plugins: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        registry.connector_class("quill_badcfg")
    assert "plug-in quill_cfg:BadCfg (quill_cfg): its Config (PlainConfig) is a plain pydantic BaseModel" in str(
        caught.value
    )
    assert "subclass inlet.connectors.SourceConfig" in str(caught.value)
    code, output = sync(plugins, '[[sources]]\nname = "kb"\ntype = "quill_badcfg"\nbase_url = "x"\nclient_id = "y"\n')
    assert code == 2 and "source 'kb': key 'type': connector type 'quill_badcfg'" in output, output
    assert "Traceback" not in output and "AttributeError" not in output


def test_a_sub_table_that_is_a_plain_base_model_is_refused_and_listed_as_broken(plugins: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'retry' of its Config \(NestedConfig\) is a table read by Retry"):
        registry.connector_class("quill_nested")
    with pytest.raises(ConfigError, match=r"key 'also' of its Config \(DeepConfig\) is a table read by Retry"):
        registry.connector_class("quill_deep")  # inside `list[...] | None`, after a dict of typed ones
    shown = CliRunner().invoke(cli, ["connectors"]).output
    assert "quill_badcfg  (quill_cfg:BadCfg)  BROKEN: connector type 'quill_badcfg'" in shown, shown
    assert "quill_nested  (quill_cfg:Nested)  BROKEN: " in shown and "subclass inlet.connectors.TypedConfig" in shown
    assert "quill_typed  (quill_cfg:Typed)\n" in shown


def test_a_typed_sub_table_refuses_a_typo_and_a_value_of_the_wrong_kind(plugins: Path) -> None:
    source = '[[sources]]\nname = "kb"\ntype = "quill_typed"\n[sources.retry]\n'
    code, output = sync(plugins, source + "attemps = 9\n")
    assert code == 2 and "source 'kb': key 'retry.attemps': unknown key" in output, output
    code, output = sync(plugins, source + "attempts = true\n")
    assert code == 2 and "key 'retry.attempts': must be a whole number, not true" in output, output


def test_a_config_validator_raising_a_plain_exception_is_a_config_error_naming_the_source_and_plug_in(
    plugins: Path,
) -> None:
    """A `Config` validator raising what pydantic does not collect (here KeyError) is a bug in the
    plug-in: every command stops with exit 2 naming the file, the source, the type and the plug-in's
    module and the exception, not a traceback."""
    code, output = sync(plugins, '[[sources]]\nname = "kb"\ntype = "quill_unlucky"\nper_page = 13\n')
    assert code == 2, output
    assert (
        "inlet.toml: source 'kb': a bug in connector type 'quill_unlucky' (plug-in quill_cfg:Unlucky (quill_cfg))"
        in output
    ), output
    assert "KeyError: 'unlucky'" in output and "Traceback" not in output


def test_a_bug_in_check_local_fails_its_source_alone_named_and_shown_in_status(plugins: Path) -> None:
    """`check_local()` raising anything but ConfigError is a bug in the connector, no configuration
    problem: preflight stops nothing; the source's run fails on it (its error recorded for `inlet
    status`) while the other sources sync, and a daemon's preflight would start likewise."""
    import json

    from inlet.config import load_config, preflight

    source = '[[sources]]\nname = "bad"\ntype = "quill_checkbug"\n[[sources]]\nname = "good"\ntype = "quill_typed"\n'
    code, output = sync(plugins, source)
    assert code == 1 and "error: ValueError: bad per_page in check_local" in output, output
    config = plugins / "inlet.toml"
    preflight(load_config(config), ["bad", "good"], {})  # what the daemon checks before it starts: no stop
    status = CliRunner().invoke(cli, ["status", "--json", "--config", str(config)])
    shown = {s["name"]: s for s in json.loads(status.output)["sources"]}
    assert shown["good"]["last_run"]["outcome"] == "ok", status.output
    assert shown["bad"]["last_run"]["outcome"] == "failed" and shown["bad"]["failure_streak"] == 1
    assert shown["bad"]["last_run"]["error"] == "ValueError: bad per_page in check_local"
