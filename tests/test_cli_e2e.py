"""`inlet` as a user runs it: real processes, the real model, embedded Chroma, Enron mails on disk."""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "enron-mini" / "allen-p" / "inbox"
if not DATA.is_dir():  # the sample data folder beside the clone, when present; else the packaged copy
    DATA = None


def inlet(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "INLET_CONFIG": str(cwd / "config.toml")}
    proc = subprocess.run(
        [sys.executable, "-m", "inlet", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"inlet {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    if DATA is not None:
        shutil.copytree(DATA, corpus)
    else:
        import tarfile

        from inlet.sandbox.workspace import DATA_DIR

        with tarfile.open(DATA_DIR / "enron-mini.tar.gz") as tar:
            tar.extractall(tmp_path / "x", filter="data")
        shutil.copytree(tmp_path / "x" / "enron-mini" / "allen-p" / "inbox", corpus)
    (tmp_path / "config.toml").write_text(
        '[index]\npath = "store"\n\n[[sources]]\nname = "mail"\ntype = "files"\npath = "corpus"\n'
        'every = "1h"\ncheckpoint_every = 5\nusers = ["phillip.allen@enron.com"]\n'
    )
    return tmp_path


def runs(proc) -> dict:
    return json.loads(proc.stdout)["runs"][0]


def chroma_and_catalog_agree(workdir: Path) -> tuple[int, int]:
    db = sqlite3.connect(workdir / "store" / "catalog.db")
    docs, chunks = db.execute("SELECT COUNT(*), SUM(chunks) FROM documents").fetchone()
    ids = [r[0] for r in db.execute("SELECT chunk_id FROM chunks")]
    db.close()
    assert len(ids) == len(set(ids)) == chunks
    import chromadb

    client = chromadb.PersistentClient(path=str(workdir / "store" / "chroma"))
    collection = client.get_collection("inlet_chunks")
    stored = collection.get(include=[])["ids"]
    assert sorted(stored) == sorted(ids)
    return docs, chunks


def test_backfill_search_change_sync(workdir):
    files = sorted(p.name for p in (workdir / "corpus").iterdir())
    first = runs(inlet(workdir, "backfill", "mail", "--json"))
    assert first["outcome"] == "ok" and first["upserted"] == len(files)

    searched = inlet(workdir, "search", "did you attach the curve shift file", "--json", "--k", "3", "-v")
    found = json.loads(searched.stdout)
    assert found["results"][0]["doc_id"] == "mail:1."
    loads = re.findall(r"embedding model loaded in (\d+) ms", searched.stderr)
    assert len(loads) == 1, searched.stderr  # a fresh process: the model loaded once, in this search
    # took_ms is the search alone (the command loads the model first), which only a timing could
    # show: a loaded machine made the search alone take longer than the load (316 vs 286 ms)
    assert found["took_ms"] > 0
    assert "Curve Shift" in " ".join(r["text"] for r in found["results"] if r["doc_id"] == "mail:1.")
    hidden = json.loads(inlet(workdir, "search", "curve shift", "--user", "intruder@example.com", "--json").stdout)
    assert hidden["results"] == []

    again = runs(inlet(workdir, "sync", "--json"))
    assert (again["upserted"], again["deleted"], again["embedded"]) == (0, 0, 0)

    (workdir / "corpus" / files[1]).write_text("Subject: moved\n\nThe quarterly kayak offsite moved to Lake Tahoe.")
    (workdir / "corpus" / files[2]).unlink()
    (workdir / "corpus" / "new.txt").write_text("Brand new memo about the Zephyr pipeline expansion.")
    changed = runs(inlet(workdir, "sync", "mail", "--json"))
    assert (changed["upserted"], changed["deleted"]) == (2, 1)
    top = json.loads(inlet(workdir, "search", "kayak offsite location", "--json", "--k", "1").stdout)
    assert top["results"][0]["doc_id"] == f"mail:{files[1]}"
    docs, _ = chroma_and_catalog_agree(workdir)
    assert docs == len(files)

    status = json.loads(inlet(workdir, "status", "--json").stdout)["sources"][0]
    assert status["documents"] == len(files) and status["last_run"]["outcome"] == "ok"
    assert status["next_run"] is not None


def test_killed_backfill_resumes_with_every_document_exactly_once(workdir):
    # one pass, killed mid-way: the corpus is all new, so a recent-first pass would index it all
    # before the first checkpoint (kills inside a recent pass: tests/sync/test_recent_first.py)
    config = workdir / "config.toml"
    config.write_text(config.read_text().replace('path = "store"\n', 'path = "store"\nrecent_first = "0"\n', 1))
    env = {**os.environ, "INLET_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inlet", "backfill", "mail"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state = workdir / "store" / "state.db"
    deadline = time.monotonic() + 300
    checkpoint = None
    while checkpoint is None and proc.poll() is None and time.monotonic() < deadline:
        if state.exists():
            try:
                row = sqlite3.connect(state).execute("SELECT checkpoint FROM sources").fetchone()
                checkpoint = row[0] if row else None
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)  # polling for an observable event, not sleeping in place of one
    assert checkpoint is not None, proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(json.loads(checkpoint)["files"])
    assert done_before < len(list((workdir / "corpus").iterdir()))

    resumed = runs(inlet(workdir, "backfill", "mail", "--json"))
    assert resumed["outcome"] == "ok"
    docs, _ = chroma_and_catalog_agree(workdir)
    assert docs == len(list((workdir / "corpus").iterdir()))


def test_exit_codes_and_messages(workdir):
    bad = workdir / "bad.toml"
    bad.write_text('[[sources]]\nname = "x"\ntype = "files"\n')
    proc = inlet(workdir, "sync", "--config", str(bad), check=False)
    assert proc.returncode == 2 and "bad.toml" in proc.stderr and "'path'" in proc.stderr
    proc = inlet(workdir, "backfill", "nope", check=False)
    assert proc.returncode == 2 and "no source named 'nope'" in proc.stderr
    proc = inlet(workdir, "search", "x", "--k", "0", check=False)
    assert proc.returncode == 2
    listing = json.loads(inlet(workdir, "connectors", "--json").stdout)["connectors"]
    files = next(c for c in listing if c["type"] == "files")
    assert {"path", "include", "users"} <= {k["key"] for k in files["keys"]}


def test_ctrl_c_in_a_backfill_keeps_progress_and_says_how_to_resume(workdir):
    """SIGINT: the run ends at its next checkpoint (saved when the batches before it are written),
    is recorded `interrupted` with its counts, and the message says how to resume; the default
    checkpoint rhythm is used."""
    for extra in sorted((workdir / "corpus").iterdir())[60:]:
        extra.unlink()
    config = workdir / "config.toml"
    config.write_text(config.read_text().replace("checkpoint_every = 5\n", ""))
    env = {**os.environ, "INLET_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inlet", "backfill", "mail"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    catalog = workdir / "store" / "catalog.db"
    deadline = time.monotonic() + 300
    indexed = 0
    while not indexed and proc.poll() is None and time.monotonic() < deadline:
        try:
            indexed = sqlite3.connect(catalog).execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)  # polling for an observable event, not sleeping in place of one
    assert indexed, proc.stderr.read() if proc.poll() is not None else "nothing indexed"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Aborted" not in err and "Traceback" not in err and "stopping at the next checkpoint" in err
    assert "mail: interrupted" in out and "`inlet backfill mail` resumes" in out
    # The checkpoint the run reached is saved; on a loaded machine the stop may land while a batch
    # before the first checkpoint embeds, which it cuts: then none is (what is indexed stays).
    checkpoint = sqlite3.connect(workdir / "store" / "state.db").execute("SELECT checkpoint FROM sources").fetchone()
    assert checkpoint[0] is None or json.loads(checkpoint[0])["files"]

    last = json.loads(inlet(workdir, "status", "--json").stdout)["sources"][0]["last_run"]
    assert last["outcome"] == "interrupted" and last["upserted"] > 0  # resuming: the killed-backfill test


def test_search_on_an_empty_index_says_so_and_an_empty_query_is_exit_2(workdir):
    proc = inlet(workdir, "search", "curve shift", "--json")
    assert json.loads(proc.stdout)["results"] == [] and "nothing is indexed" in proc.stderr
    assert "inlet backfill" in proc.stderr
    blank = inlet(workdir, "search", "  ", check=False)
    assert blank.returncode == 2 and "query is empty" in blank.stderr
