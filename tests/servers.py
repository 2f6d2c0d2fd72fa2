"""Real servers for the tests, on loopback: `chroma run` from the installed chromadb, and PostgreSQL
from the distribution's own binaries (initdb into a temporary folder, no system service), else
from the `pgserver` wheel, which ships them (a machine with only Python and pip)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, check, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not start in {timeout:.0f}s"
        time.sleep(0.1)


@contextmanager
def chroma_server(folder: Path, timeout: float = 60, port: int | None = None) -> Iterator[str]:
    port = port or free_port()  # the `chroma` console script, run by this interpreter (venvs may lack the script)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from chromadb.cli.cli import app; app()",
            "run",
            "--path",
            str(folder),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until("chroma run", answers, proc, timeout)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


PG_BINARIES_ENV = "INLET_TEST_PG_BINARIES"  # "pgserver": the wheel's binaries; a folder: those; unset: found


def postgres_bin() -> Path:
    """The folder holding initdb and postgres: on PATH, the distribution's, else pgserver's wheel.
    INLET_TEST_PG_BINARIES=pgserver takes the wheel's even where PostgreSQL is installed, so the
    path a machine with only Python and pip takes can be exercised anywhere."""
    chosen = os.environ.get(PG_BINARIES_ENV, "")
    if chosen == "pgserver":
        return pgserver_bin()
    if chosen:
        return Path(chosen)
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        return Path(folder)
    return pgserver_bin()


def pgserver_bin() -> Path:
    """The test extra's fallback: PostgreSQL binaries shipped in the `pgserver` wheel. Found, not
    imported: importing pgserver reads platformdirs' runtime folder, which warns (an error under
    pytest) where XDG_RUNTIME_DIR is unset, as under root or in CI."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no PostgreSQL binaries found (initdb not on PATH, none in /usr/lib/postgresql) and "
            "the `pgserver` wheel is not installed: pip install -e '.[test]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _as_user(folder: Path) -> tuple[list[str], dict]:
    """initdb refuses to run as root: then run the server as an unprivileged user owning `folder`."""
    if os.geteuid() != 0:
        return [], {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
            break
        except KeyError:
            continue
    os.chown(folder, user.pw_uid, user.pw_gid)
    return [], {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextmanager
def postgres_server(folder: Path, settings: tuple[str, ...] = ()) -> Iterator[str]:
    """A PostgreSQL server in `folder` on a free loopback port; yields a URL (trust auth, user inlet).
    A folder that already holds a server's data is started, not initialised again. `settings` are
    more `name=value` server settings (benchmarks size the buffers)."""
    binaries = postgres_bin()
    folder.mkdir(parents=True, exist_ok=True)
    prefix, who = _as_user(folder)
    data = folder / "data"
    if not (data / "PG_VERSION").exists():  # a kept folder (a benchmark's --reuse) starts as it was left
        subprocess.run(
            [
                *prefix,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "inlet",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            **who,
        )
    port = free_port()
    proc = subprocess.Popen(
        [
            *prefix,
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(folder),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
            "-c",
            "synchronous_commit=off",
            *[arg for kv in settings for arg in ("-c", kv)],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **who,
    )
    url = f"postgresql://inlet@127.0.0.1:{port}/postgres"

    def answers() -> bool:
        import psycopg

        try:
            psycopg.connect(url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    try:
        wait_until("postgres", answers, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: does not wait for clients to leave
        proc.wait(timeout=30)


def new_database(server_url: str, name: str) -> str:
    """A fresh, empty database on the server (one per test: cheaper than a server per test)."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
