"""MkDocs hooks: the reference pages generated from the code, so they cannot drift from it.

A page containing one of these markers gets it replaced at build time:

- `<!-- generated: configuration -->`: every section of the configuration file and every
  registered connector type's `[[sources]]` keys, from their pydantic models (type, default,
  description, required);
- `<!-- generated: cli -->`: every `inlet` command's `--help`, from the click command tree;
- `<!-- generated: mcp-tools -->`: the MCP tools' names, descriptions and JSON schemas, as served;
- `<!-- generated: include PATH -->`: a file of the repository (the benchmark report).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_INCLUDE = re.compile(r"<!-- generated: include (\S+) -->")


def on_page_markdown(markdown: str, **_: Any) -> str:
    if "<!-- generated: configuration -->" in markdown:
        markdown = markdown.replace("<!-- generated: configuration -->", configuration_reference())
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", cli_reference())
    if "<!-- generated: mcp-tools -->" in markdown:
        markdown = markdown.replace("<!-- generated: mcp-tools -->", mcp_tools())
    return _INCLUDE.sub(lambda m: _included(m[1]), markdown)


def mcp_tools() -> str:
    import json

    from inlet.server.mcp import TOOLS

    parts = []
    for tool in TOOLS:
        parts.append(
            f"### `{tool.name}`: {tool.title}\n\n{tool.description}\n\n"
            f"Input:\n\n```json\n{json.dumps(tool.input_schema, indent=2)}\n```\n\n"
            f"Output (`structuredContent`; the same JSON is the text content):\n\n"
            f"```json\n{json.dumps(tool.output_schema, indent=2)}\n```"
        )
    return "\n\n".join(parts)


def _included(path: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.sub(r"^#", "##", text, flags=re.MULTILINE)  # its headings under the page's own title


def configuration_reference() -> str:
    from inlet.config import SECTIONS, ApiKey, OAuthConfig
    from inlet.connectors.registry import available, connector_class

    parts = []
    for section, model in SECTIONS.items():
        if model is not None:
            parts.append(f"## `[{section}]`\n\n{_doc(model)}{_table(model, skip={'api_keys', 'oauth'})}")
    parts.append(f"## `[[server.api_keys]]`\n\n{_doc(ApiKey)}{_table(ApiKey)}")
    parts.append(f"## `[server.oauth]`\n\n{_doc(OAuthConfig)}{_table(OAuthConfig)}")
    for name in sorted(available()):
        cls = connector_class(name)
        parts.append(f"## `[[sources]]` type `{name}`\n\n{_doc(cls)}{_table(cls.Config, skip={'type'})}")
    return "\n\n".join(parts)


def _doc(obj: Any) -> str:
    text = (obj.__doc__ or "").strip()
    first = text.split("\n\n")[0].replace("\n", " ") if text else ""
    return f"{first}\n\n" if first and not first.startswith(("Usage docs", "!!!")) else ""


def _table(model: Any, skip: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    from pydantic_core import PydanticUndefined

    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, field in model.model_fields.items():
        if key in skip or key == "file":
            continue
        if field.is_required():
            default = "**required**"
        elif field.default_factory is not None:
            default = f"`{field.default_factory()!r}`"
        elif field.default is PydanticUndefined or field.default is None:
            default = ""
        else:
            default = f"`{_toml(field.default)}`"
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{key}` | {_type(field.annotation)} | {default} | {description} |")
    return "\n".join(rows)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    return repr(value)


def _type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"typing\.|pathlib\.|inlet\.[\w.]+\.|<class '([^']+)'>", lambda m: m[1] or "", text)
    text = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", text)
    return text.replace("|", "\\|").replace("NoneType", "None")


def cli_reference() -> str:
    import click

    from inlet.cli import cli

    root = click.Context(cli, info_name="inlet")
    parts = [f"## `inlet`\n\n```text\n{cli.get_help(root)}\n```"]
    for name in sorted(cli.list_commands(root)):
        command = cli.get_command(root, name)
        if command is None or command.hidden:
            continue
        ctx = click.Context(command, info_name=name, parent=root)
        parts.append(f"## `inlet {name}`\n\n```text\n{command.get_help(ctx)}\n```")
    return "\n\n".join(parts)
