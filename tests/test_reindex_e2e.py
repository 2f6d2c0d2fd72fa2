"""`inlet reindex` as a user meets it: a backend change refused with exit 2, then a reindex that is
killed (SIGKILL) part way and resumed, after which search works with the new backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_cli_e2e import inlet

TOPICS = ["gas pipeline capacity", "west desk budget", "curve shift file", "kayak offsite", "badge reader"]


def write_config(workdir: Path, backend: str) -> None:
    (workdir / "config.toml").write_text(
        f'[index]\npath = "store"\nbackend = "{backend}"\n\n'
        '[[sources]]\nname = "notes"\ntype = "files"\npath = "notes"\n'
    )


def test_backend_change_is_refused_then_a_killed_reindex_resumes(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for n in range(120):
        (notes / f"note{n:03}.txt").write_text(
            f"Note {n} on the {TOPICS[n % 5]}, item {n}: see the attached figures for week {n}.\n"
        )
    write_config(tmp_path, "torch")
    inlet(tmp_path, "backfill", "notes", "--json")
    write_config(tmp_path, "onnx-int8")

    refused = inlet(tmp_path, "search", "kayak", check=False)
    assert refused.returncode == 2
    assert "'torch'" in refused.stderr and "'onnx-int8'" in refused.stderr and "inlet reindex" in refused.stderr

    record = tmp_path / "store" / "embedding.json"
    env = {**os.environ, "INLET_CONFIG": str(tmp_path / "config.toml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inlet", "reindex"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    cursor = None
    while cursor is None and proc.poll() is None and time.monotonic() < deadline:
        pending = json.loads(record.read_text()).get("pending") if record.exists() else None
        cursor = pending and pending["cursor"]
        time.sleep(0.02)  # polling for an observable event (the first saved batch), not a fixed wait
    assert cursor is not None, proc.stderr.read().decode() if proc.poll() is not None else "no batch saved"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(record.read_text())["backend"] == "torch"  # the old vectors still serve

    resumed = json.loads(inlet(tmp_path, "reindex", "--json").stdout)
    assert resumed["switched"] and 0 < resumed["embedded"]["notes"] < 120  # only what was left
    assert json.loads(record.read_text())["backend"] == "onnx-int8"

    found = json.loads(inlet(tmp_path, "search", "kayak offsite item 3", "--json", "--k", "5").stdout)
    assert any("kayak" in hit["text"] for hit in found["results"])
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp_path / "store" / "chroma"))
    names = sorted(c if isinstance(c, str) else c.name for c in client.list_collections())
    assert names == [json.loads(record.read_text())["collection"]]  # the old vectors are gone
    assert client.get_collection(names[0]).count() == 120

    again = inlet(tmp_path, "reindex").stdout  # nothing to do: says so, and only so
    assert again.strip() == "the index already holds vectors of the configured model and backend", again
