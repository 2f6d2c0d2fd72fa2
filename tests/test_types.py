"""Static type check is part of the test run, like lint (tests/test_lint.py), with the settings in pyproject.toml.

The top-level folders are sub-packages of `inlet` ([tool.setuptools.package-dir]), a layout mypy cannot follow through
the editable install. So the test lays the package out as it is installed, with symlinks, and checks that tree: every
`inlet.*` import then resolves to our own code instead of silently becoming Any.

mypy takes most of a minute on a fresh clone, nearly all of it on one core, so when this test is collected the check
starts as soon as collection ends (`start_early`, called from conftest.py), niced, beside the rest of the suite, and
the test collects its verdict.
"""

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
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


_EARLY: list[tuple[subprocess.Popen[str], Path]] = []


def start_mypy(dest: Path) -> subprocess.Popen[str]:
    """mypy over the installed layout of the package, laid out under dest, running at lower priority."""
    tops = lay_out(package_dirs(), dest)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), "--cache-dir", str(dest / ".mypy_cache")]
    for top in tops:
        cmd += ["-p", top]
    proc = subprocess.Popen(cmd, cwd=dest, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.setpriority(os.PRIO_PROCESS, proc.pid, 10)
    return proc


def start_early() -> None:
    """Start the check now; the test below waits for it (killed at exit if the test never ran)."""
    if importlib.util.find_spec("mypy") is not None and not _EARLY:
        dest = Path(tempfile.mkdtemp(prefix="inlet-mypy-"))
        proc = start_mypy(dest)
        _EARLY.append((proc, dest))
        atexit.register(proc.kill)
        atexit.register(shutil.rmtree, dest, True)


def test_mypy_finds_nothing(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: pip install -e '.[test]'")
    proc = _EARLY[0][0] if _EARLY else start_mypy(tmp_path)
    output, _ = proc.communicate()
    assert proc.returncode == 0, output
