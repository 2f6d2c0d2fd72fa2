"""Static type check is part of the test run, like lint (tests/test_lint.py), with the settings in pyproject.toml.

The top-level folders are sub-packages of `inlet` ([tool.setuptools.package-dir]), a layout mypy cannot follow through
the editable install. So the test lays the package out as it is installed, with symlinks, and checks that tree: every
`inlet.*` import then resolves to our own code instead of silently becoming Any.
"""

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def package_dirs() -> dict[str, Path]:
    """Dotted package name -> source folder, as pyproject.toml maps them."""
    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}


def lay_out(packages: dict[str, Path], dest: Path) -> list[str]:
    """Build the installed package tree under dest with symlinks; return the top-level package names."""
    for name in sorted(packages, key=lambda n: n.count(".")):
        target = dest.joinpath(*name.split("."))
        mapped = {n.split(".")[name.count(".") + 1] for n in packages if n.startswith(name + ".")}
        if not mapped:
            target.symlink_to(packages[name], target_is_directory=True)
            continue
        target.mkdir()  # a package with mapped sub-packages: link its own files, the sub-packages come next
        for entry in packages[name].iterdir():
            if entry.name not in mapped and entry.name != "__pycache__":
                (target / entry.name).symlink_to(entry)
    return [name for name in packages if "." not in name]


def test_mypy_finds_nothing(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: pip install -e '.[test]'")
    tops = lay_out(package_dirs(), tmp_path)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), "--cache-dir", str(tmp_path / ".mypy_cache")]
    for top in tops:
        cmd += ["-p", top]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
