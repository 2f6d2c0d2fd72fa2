"""CLI commands that load no model import none of the heavy packages (each costs a process
between a tenth of a second, chromadb, and seconds, torch): a CLI starts in a fraction of a second."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = {
    "torch",
    "sentence_transformers",
    "transformers",
    "chromadb",
    "onnxruntime",
    "tokenizers",
    "mcp",
    "uvicorn",
    "starlette",
}


def imported(args: list[str], cwd: Path) -> set[str]:
    """The top-level packages `inlet ARGS` imported (from `python -X importtime`)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "inlet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INLET_CONFIG": str(cwd / "config.toml")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("args", [["--help"], ["status"], ["connectors"]])
def test_commands_without_a_model_import_no_heavy_package(tmp_path, args):
    (tmp_path / "docs").mkdir()
    (tmp_path / "config.toml").write_text(
        '[index]\npath = "index"\n[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
    )
    packages = imported(args, tmp_path)
    assert "inlet" in packages  # the probe sees the imports at all
    assert packages & HEAVY == set()
