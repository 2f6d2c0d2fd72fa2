"""The plug-in example of docs/writing-a-connector.md, installed and tested the way its author would.

The page's files (the blocks with a `title`) are written to a folder, registered like an installed
distribution (a `.dist-info` with the entry points of its pyproject.toml, which is what `pip install`
leaves and what `importlib.metadata` reads), and the example's own test, the conformance suite of
`inlet.connectors.testing`, runs in a separate pytest process against the installed inlet.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-a-connector.md"
BLOCK = re.compile(r'^```\w+ title="(?P<name>[^"]+)"\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL)


def install_example(root: Path) -> None:
    files = {m["name"]: m["body"] for m in BLOCK.finditer(DOC.read_text())}
    assert {"inlet_notes/__init__.py", "pyproject.toml", "tests/test_conformance.py"} <= set(files)
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    project = tomllib.loads(files["pyproject.toml"])["project"]
    dist = root / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for group, eps in project["entry-points"].items()
    )
    (dist / "entry_points.txt").write_text(points)


def test_the_documented_plugin_passes_the_conformance_suite(tmp_path: Path) -> None:
    install_example(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "tests/test_conformance.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b17 passed\b", summary) and "skipped" not in summary, summary
