"""`inlet sync` of the Microsoft 365 files and Teams sources with a secret Entra refuses: exit 3, each
run failed and named, on stderr and in --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from inlet.sandbox.server import Sandbox

from tests.test_sources_e2e import to_toml

SOURCES = {"sandbox-files", "sandbox-teams"}


def test_a_refused_secret_exits_3_and_names_each_source(tmp_path: Path) -> None:
    with Sandbox() as sb:
        text, env = sb.config(tmp_path / "index")
        raw = tomllib.loads(text)
        raw["sources"] = [s for s in raw["sources"] if s["name"] in SOURCES]
        config = tmp_path / "config.toml"
        config.write_text(to_toml(raw))
        wrong = {name: "not-the-secret" for name in env}
        proc = subprocess.run(
            [sys.executable, "-m", "inlet", "sync", "--json"],
            cwd=tmp_path,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **wrong, "INLET_CONFIG": str(config)},
        )
    assert proc.returncode == 3, proc.stderr[-3000:]
    runs = {r["source"]: r for r in json.loads(proc.stdout)["runs"]}
    assert set(runs) == SOURCES
    for name, run in runs.items():
        assert run["outcome"] == "failed" and name in run["error"] and "AADSTS7000215" in run["error"]
        assert name in proc.stderr
    assert "not-the-secret" not in proc.stdout + proc.stderr
