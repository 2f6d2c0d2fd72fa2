"""Every listener has the same bounds: `inlet daemon --serve` closes idle and half-sent-header
connections within the header deadline, and a flood of idle connections neither takes every file
descriptor of the process nor keeps it from serving for longer than that deadline."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inlet.server.listener import max_connections
from inlet.server.timeouts import HEADER_TIMEOUT as DEFAULT_HEADER_TIMEOUT

FD_LIMIT = 256
# The daemon's `[server] header_timeout`: shorter than the default, so that these tests do not wait
# out 10 s twice; the connections must then close by this deadline, not by the default one.
HEADER_TIMEOUT = 3.0
SLACK = 5.0  # seconds beyond the deadline for a loaded two-core machine
assert HEADER_TIMEOUT + SLACK < DEFAULT_HEADER_TIMEOUT  # a daemon ignoring the setting fails these tests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    def __init__(self, popen: subprocess.Popen[bytes], api_url: str, err: Path) -> None:
        self.popen, self.api_url, self.err = popen, api_url, err

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.api_url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.popen.pid}/fd"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """`inlet daemon --serve --port N` (the config says port 0) with at most FD_LIMIT descriptors."""
    home = tmp_path_factory.mktemp("daemon")
    (home / "docs").mkdir()
    (home / "docs" / "note.md").write_text("# Note\n\nthe harbour lantern\n")
    config = home / "config.toml"
    config.write_text(
        f'[index]\npath = "index"\n[daemon]\njitter = "0s"\n[server]\nport = 0\nheader_timeout = {HEADER_TIMEOUT}\n'
        '[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "INLET_CONFIG"}
    err = home / "daemon.err"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    with open(err, "w") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "inlet", "daemon", "--serve", "--port", str(port), "--config", str(config)],
            cwd=home,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=limit,
        )
    api_file = home / "index" / "daemon-api.json"
    deadline = time.monotonic() + 120
    while not api_file.exists():
        if popen.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the daemon did not start:\n{err.read_text()[-3000:]}")
        time.sleep(0.1)
    served = Daemon(popen, json.loads(api_file.read_text())["api_url"], err)
    try:
        yield served
    finally:
        popen.terminate()
        popen.wait(60)


def test_the_port_option_overrides_the_config(daemon: Daemon) -> None:
    assert daemon.address[1] != 0
    assert httpx.get(daemon.api_url + "/healthz", timeout=30).status_code == 200


def closed_within(conns: list[socket.socket], seconds: float) -> list[float]:
    """When (seconds from now) the server closed each connection; fails on one still open at `seconds`."""
    started = time.monotonic()
    closed: list[float] = []
    for conn in conns:
        conn.settimeout(max(0.01, started + seconds - time.monotonic()))
        try:
            while conn.recv(4096):
                pass
        except TimeoutError:
            pytest.fail(f"a connection was still open after {seconds:.0f} s")
        except OSError:
            pass  # reset: closed as well
        closed.append(time.monotonic() - started)
        conn.close()
    return closed


def test_idle_and_half_sent_header_connections_are_closed_within_the_deadline(daemon: Daemon) -> None:
    idle = [socket.create_connection(daemon.address, timeout=10) for _ in range(20)]
    half = [socket.create_connection(daemon.address, timeout=10) for _ in range(20)]
    for conn in half:
        conn.sendall(b"GET /v1/sources HTTP/1.1\r\nHost: x\r\nAuthorization: Bea")
    closed = closed_within(idle + half, HEADER_TIMEOUT + SLACK)
    assert max(closed) <= HEADER_TIMEOUT + SLACK


def test_a_flood_of_idle_connections_leaves_descriptors_and_is_over_within_the_deadline(daemon: Daemon) -> None:
    before = daemon.descriptors()
    flood: list[socket.socket] = []
    started = time.monotonic()
    for _ in range(300):
        try:
            flood.append(socket.create_connection(daemon.address, timeout=2))
        except OSError:
            pass  # refused or not accepted: the server is protecting itself
    peak = daemon.descriptors()
    assert peak <= before + max_connections(FD_LIMIT) + 16 < FD_LIMIT - 32  # descriptors left for the rest
    # within the deadline every idle connection is gone and the API answers again
    closed_within(flood, HEADER_TIMEOUT + SLACK)
    deadline = started + HEADER_TIMEOUT + 2 * SLACK
    while True:
        try:
            if httpx.get(daemon.api_url + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the API did not answer again within the deadline"
        time.sleep(0.2)
    while daemon.descriptors() > before + 8:  # the last aborted connections are being released
        assert time.monotonic() < deadline, f"descriptors not released: {daemon.descriptors()} (before: {before})"
        time.sleep(0.2)
    assert daemon.popen.poll() is None


def test_a_listener_other_hosts_reach_says_so_and_warns_of_plain_http(caplog: pytest.LogCaptureFixture) -> None:
    """probe29e F13: `--host 0.0.0.0` was announced as http://127.0.0.1:PORT, with no word that
    keys then cross the network unencrypted."""
    from inlet.config import ServerConfig
    from inlet.server.listener import ServerThread, listening_text

    assert listening_text("0.0.0.0", 8484) == "every address (0.0.0.0), e.g. http://127.0.0.1:8484"
    assert listening_text("127.0.0.1", 8484) == "http://127.0.0.1:8484"

    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    for host, warned in [("127.0.0.1", False), ("0.0.0.0", True)]:
        caplog.clear()
        sock = socket.socket()
        sock.bind((host, 0))
        sock.listen()
        with caplog.at_level("WARNING", logger="inlet.server.listener"):
            ServerThread(app, sock, ServerConfig()).stop(timeout=10)
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert bool(said) is warned, said
        if warned:
            assert "plain HTTP" in said[0] and "every address (0.0.0.0)" in said[0]
