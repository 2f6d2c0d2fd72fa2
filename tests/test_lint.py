"""Lint and formatting are part of the test run, with the rules in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    return found


def test_ruff_finds_nothing():
    proc = subprocess.run([ruff(), "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_tree_is_formatted():
    proc = subprocess.run([ruff(), "format", "--check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, "run `ruff format .`\n" + proc.stdout + proc.stderr
