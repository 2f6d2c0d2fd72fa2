"""A cold `inlet search` (no daemon: the process opens the index and loads the model) against the
floor of the same work, and the CLI's commands that load no model (issue 29).

The floor is a bare Python process that imports onnxruntime, tokenizers and chromadb, loads the
cached int8 export, embeds the query, queries Chroma and reads the hits' texts from SQLite: what
any search process must do, without inlet. Each round runs every command once, one after the
other (the machine is shared: alternating spreads its noise over all of them); the figures are
medians of the rounds' wall times of whole processes, and of their CPU time (user + system, all
threads: less sensitive to other processes on the machine than wall time).

    python benchmarks/bench_cold.py [--runs 7] [--docs 50] [--before PYTHON]

`--before` adds, in the same rounds, `inlet search` run by another interpreter (an install of an
older commit, say) on the same index and export cache: a before/after figure from one run.

Target: cold `inlet search` at most 1.5x the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = "who relights the harbour lantern"

FLOOR = r"""
import json, sqlite3, sys
from pathlib import Path

import chromadb
import numpy as np
import onnxruntime as ort
from chromadb.config import Settings
from tokenizers import Tokenizer

index, model, tokenizer, max_length, query = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
tok = Tokenizer.from_file(tokenizer)
tok.no_padding()
tok.enable_truncation(max_length)
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
ids = np.array([tok.encode(query).ids], dtype=np.int64)
feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
vector = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0][0]
name = json.loads((index / "embedding.json").read_text())["collection"]
client = chromadb.PersistentClient(path=str(index / "chroma"), settings=Settings(anonymized_telemetry=False))
hits = client.get_collection(name).query(query_embeddings=[vector.tolist()], n_results=10)["ids"][0]
db = sqlite3.connect(index / "catalog.db")
rows = db.execute(f"select chunk_id, text from chunks where chunk_id in ({','.join('?' * len(hits))})", hits)
assert len(rows.fetchall()) == len(hits) > 0
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--before", help="a Python with another inlet installed: its `inlet search` too")
    opts = parser.parse_args()
    from inlet.index.backends import onnx_export
    from inlet.index.embedding import resolve_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        for n in range(opts.docs):
            (root / "docs" / f"note-{n}.md").write_text(f"Note {n}: the harbour lantern, entry {n}.")
        (root / "config.toml").write_text(
            '[index]\npath = "index"\n[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
        )
        env = {**os.environ, "INLET_CONFIG": str(root / "config.toml")}
        inlet = [sys.executable, "-m", "inlet"]
        subprocess.run([*inlet, "backfill", "notes"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        backend = json.loads((root / "index" / "embedding.json").read_text())["backend"]
        # the export the backfill made (or found): the floor loads the int8 graph the default backend runs
        export = onnx_export(
            resolve_model("all-MiniLM-L6-v2"),
            quantized=True,
            load_model=lambda: sys.exit("no cached export: run `inlet backfill` first"),
        )
        commands = {
            "floor (onnxruntime + tokenizers + chromadb + sqlite)": [
                sys.executable,
                "-c",
                FLOOR,
                str(root / "index"),
                str(export.model),
                str(export.tokenizer),
                str(export.max_length),
                QUERY,
            ],
            f"inlet search (cold, {backend})": [*inlet, "search", QUERY],
            **(
                {f"inlet search (cold, {opts.before})": [opts.before, "-m", "inlet", "search", QUERY]}
                if opts.before
                else {}
            ),
            "inlet --help": [*inlet, "--help"],
            "inlet status": [*inlet, "status"],
            "inlet connectors": [*inlet, "connectors"],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(opts.runs):
            for name, cmd in commands.items():
                wall, used = timed(cmd, root, env)
                times[name].append(wall)
                cpu[name].append(used)
    medians = {name: statistics.median(t) for name, t in times.items()}
    cpus = {name: statistics.median(t) for name, t in cpu.items()}
    first = next(iter(commands))
    print(f"cold processes, {opts.docs} docs, median of {opts.runs} alternating rounds (whole processes):")
    print(f"  {'':<55} {'wall':>7} {'vs floor':>8}  {'CPU':>7} {'vs floor':>8}  wall of each round")
    for name, t in times.items():
        print(
            f"  {name:<55} {medians[name]:5.2f} s {medians[name] / medians[first]:7.2f}x  {cpus[name]:5.2f} s "
            f"{cpus[name] / cpus[first]:7.2f}x  {[round(x, 2) for x in t]}"
        )


if __name__ == "__main__":
    main()
