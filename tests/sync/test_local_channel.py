"""The local channel's transport: owner-only socket, peer-uid checks, typed errors, stale sockets,
and a holder that dies mid-request. Real Unix sockets; a real second process where one must die or
belong to another user."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inlet.config import parse_config
from inlet.errors import ConfigError, InletError
from inlet.server.local_channel import (
    ChannelError,
    ForwardedError,
    HolderGoneError,
    LocalClient,
    LocalServer,
    PeerRefusedError,
    peer_uid,
    socket_path,
    verify_peer,
)

NOBODY = 65534


def echo(args: Any) -> Any:
    return {"echo": args}


def refuse(args: Any) -> Any:
    raise ConfigError("config.toml: no source named 'x'")


def crash(args: Any) -> Any:
    raise sqlite3.OperationalError("database or disk is full")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(tmp_path, {"echo": echo, "refuse": refuse, "crash": crash}) as srv:
        yield srv


def test_socket_is_owner_only_and_answers_its_owner(server: LocalServer, tmp_path: Path) -> None:
    mode = server.path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    client = LocalClient.find(tmp_path)
    assert client is not None
    assert client.call("echo", {"q": "ünïcode"}) == {"echo": {"q": "ünïcode"}}


def test_errors_come_back_typed_with_their_exit_code(server: LocalServer, tmp_path: Path) -> None:
    client = LocalClient(server.path)
    with pytest.raises(ForwardedError) as refused:
        client.call("refuse")
    assert (refused.value.kind, refused.value.exit_code) == ("ConfigError", 2)
    assert "no source named 'x'" in str(refused.value)
    with pytest.raises(ForwardedError, match="unknown operation 'nope'") as unknown:
        client.call("nope")
    assert unknown.value.exit_code == 1


def test_a_request_that_fails_unexpectedly_is_logged_by_its_operation_never_its_forwarded_secrets(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Q8q~forwarded.graph-client-secret"
    with caplog.at_level(logging.ERROR, logger="inlet.server.local_channel"):
        with pytest.raises(ForwardedError, match="internal error: database or disk is full"):
            LocalClient(server.path).call("crash", {"sources": ["mail"], "env": {"GRAPH_SECRET": secret}})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "'crash' of ['mail'] failed" in logged
    assert secret not in logged and "GRAPH_SECRET" not in logged


def test_a_request_over_the_channels_limit_is_refused_by_the_client_by_its_size(server: LocalServer) -> None:
    """Not cut by the holder's line limit and answered as a malformed request."""
    from inlet.server.local_channel import MAX_REQUEST

    client = LocalClient(server.path)
    with pytest.raises(ChannelError, match="local channel takes requests under"):
        client.call("echo", {"id": "x" * MAX_REQUEST})
    assert client.call("echo", {"id": "x" * 1000}) == {"echo": {"id": "x" * 1000}}


def test_malformed_and_foreign_protocol_requests_get_an_error_line(server: LocalServer) -> None:
    for line in (b"{not json\n", b'{"protocol": 99, "op": "echo"}\n', b'{"protocol": 1, "op": "echo", "args": 3}\n'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(server.path))
            sock.sendall(line)
            answer = sock.makefile("rb").readline()
        assert b'"ok": false' in answer and b"ChannelError" in answer


def test_peer_uid_is_read_from_the_kernel() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_uid(left) == os.geteuid()
        verify_peer(left)  # our own uid passes
        with pytest.raises(PeerRefusedError, match=f"uid {os.geteuid()}, not {os.geteuid() + 1}"):
            verify_peer(left, owner_uid=os.geteuid() + 1)


def test_a_server_for_another_uid_refuses_us_before_reading_the_request(tmp_path: Path) -> None:
    calls: list[Any] = []
    with LocalServer(tmp_path, {"echo": calls.append}, owner_uid=os.geteuid() + 1) as srv:
        with pytest.raises(ForwardedError) as refused:
            LocalClient(srv.path).call("echo", {"x": 1})
    assert refused.value.kind == "PeerRefusedError" and calls == []


# Another user cannot run this venv's interpreter (it lives under a private home): a system one,
# with nothing but the standard library, plays the other user.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or SYSTEM_PYTHON is None, reason="needs root and a system python3 to act as another user"
)


def _as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEM_PYTHON is not None
    return subprocess.run(
        [SYSTEM_PYTHON, "-c", code, *args], user=NOBODY, group=NOBODY, capture_output=True, text=True, timeout=60
    )


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("permission denied"); sys.exit(0)
try:
    s.sendall(b'{"protocol": 1, "op": "echo", "args": {}}\\n')
except BrokenPipeError:
    pass  # refused before the request was read: the answer says why
print(s.makefile("rb").readline().decode().strip())
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can traverse (pytest's own temp root is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="inlet-local-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@as_root
def test_another_user_cannot_connect_nor_be_served_if_the_socket_is_widened(shared_dir: Path) -> None:
    calls: list[Any] = []
    with LocalServer(shared_dir, {"echo": calls.append}) as srv:
        denied = _as_nobody(CONNECT, str(srv.path))
        assert denied.stdout.strip() == "permission denied", denied.stderr  # mode 0600 stops it at connect
        srv.path.chmod(0o666)  # someone widened it: the uid check still refuses
        refused = _as_nobody(CONNECT, str(srv.path))
        assert "PeerRefusedError" in refused.stdout and f"uid {NOBODY}" in refused.stdout, refused.stderr
    assert calls == []


@as_root
def test_a_client_refuses_a_socket_planted_by_another_user(shared_dir: Path) -> None:
    plant = (
        "import socket, sys, os\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(1); print('ready', flush=True)\n"
        "c, _ = s.accept(); c.recv(10)\n"
    )
    assert SYSTEM_PYTHON is not None
    shared_dir.chmod(0o777)
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", plant, str(socket_path(shared_dir))],
        user=NOBODY,
        group=NOBODY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(PeerRefusedError, match=f"uid {NOBODY}"):
            LocalClient(socket_path(shared_dir)).call("echo")
    finally:
        proc.kill()
        proc.wait(30)


def _dead_socket(path: Path) -> None:
    """A socket file with nobody listening, as a killed holder leaves it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


def test_a_stale_socket_is_ignored_by_clients_and_replaced_by_the_next_holder(tmp_path: Path) -> None:
    _dead_socket(socket_path(tmp_path))
    assert LocalClient.find(tmp_path) is None  # nobody listens: commands run directly
    with LocalServer(tmp_path, {"echo": echo}) as srv:
        assert LocalClient(srv.path).call("echo", {}) == {"echo": {}}
    assert not socket_path(tmp_path).exists()  # removed on shutdown
    assert LocalClient.find(tmp_path) is None


def test_anything_but_a_socket_at_the_name_is_left_alone(tmp_path: Path) -> None:
    socket_path(tmp_path).write_text("not mine")
    with pytest.raises(ChannelError, match="not a socket"):
        LocalServer(tmp_path, {})
    assert socket_path(tmp_path).read_text() == "not mine"
    assert LocalClient.find(tmp_path) is None


HOLDER = """
import os, sys
from pathlib import Path
from inlet.server.local_channel import LocalServer
server = LocalServer(Path(sys.argv[1]), {"die": lambda args: os._exit(7), "search": lambda args: os._exit(7)})
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_holder_that_dies_mid_request_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        client = LocalClient.find(tmp_path)
        assert client is not None
        with pytest.raises(HolderGoneError, match="without answering 'die'") as gone:
            client.call("die")
        assert isinstance(gone.value, InletError) and gone.value.exit_code == 1
        assert proc.wait(30) == 7
        with pytest.raises(HolderGoneError, match="stopped listening"):
            client.call("die")  # its socket is left behind, nobody listens
    finally:
        proc.kill()
        proc.wait(30)


def test_an_index_folder_too_deep_for_a_socket_path_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(socket_path(deep))) > 108  # beyond what sun_path holds
    with LocalServer(deep, {"echo": echo}) as srv:
        assert stat.S_IMODE(srv.path.stat().st_mode) == 0o600
        client = LocalClient.find(deep)
        assert client is not None and client.call("echo", {"n": 1}) == {"echo": {"n": 1}}
    assert not socket_path(deep).exists()


def test_inlet_search_says_so_when_the_holder_dies_mid_request(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{index}"\n')
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(index)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = subprocess.run(
            [sys.executable, "-m", "inlet", "search", "anything", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait(30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("inlet: the process holding the index closed") and "Traceback" not in done.stderr


def test_a_client_whose_config_differs_from_the_holders_is_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = {
        "index": {"path": str(tmp_path / "index")},
        "sources": [{"type": "files", "name": "d", "path": str(tmp_path)}],
    }
    held = parse_config(base)
    edited = parse_config(
        {**base, "sources": [{"type": "files", "name": "d", "path": str(tmp_path), "include": ["*.md"]}]}
    )
    assert held.fingerprint() == parse_config(base, tmp_path / "other.toml").fingerprint()  # not the file's name
    assert held.fingerprint() != edited.fingerprint()
    with LocalServer(tmp_path, {"echo": echo}, config_id=held.fingerprint()) as srv:
        with caplog.at_level(logging.WARNING, logger="inlet.server.local_channel"):
            assert LocalClient(srv.path, held.fingerprint()).call("echo") == {"echo": {}}
            assert not caplog.records
            client = LocalClient(srv.path, edited.fingerprint())
            client.call("echo")
            client.call("echo")
        assert [r.getMessage() for r in caplog.records if "another configuration" in r.getMessage()] == [
            f"the inlet process holding the index ({tmp_path}) runs with another configuration than this "
            "command's (the file changed since it started, or it is another file): it answered with its own; "
            "restart it to apply this one"
        ]


def warnings_beside_an_earlier_holder(
    folder: Path, answer: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The warnings of two calls of one client to a holder of an earlier release (pid 4242 in the
    index lock) that gives every request `answer`, as that release's holder answered."""
    import json
    import socketserver
    import threading

    class Earlier(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(json.dumps(answer).encode() + b"\n")

    (folder / "index.lock").write_text(json.dumps({"pid": 4242, "command": "inlet daemon"}))
    earlier = socketserver.UnixStreamServer(str(socket_path(folder)), Earlier)
    threading.Thread(target=earlier.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with caplog.at_level(logging.WARNING, logger="inlet.server.local_channel"):
            client = LocalClient(socket_path(folder), "this-digest")
            assert client.call("echo") == {"echo": {}}
            client.call("echo")
    finally:
        earlier.shutdown()
        earlier.server_close()
    return [r.getMessage() for r in caplog.records]


def test_a_holder_of_an_earlier_release_is_named_as_such_not_as_another_configuration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A holder of a release before the schema was reported answers with its config digest alone
    (which differs: the settings' digest changed between releases): the warning names the release
    difference and the holder's pid, not a changed configuration file."""
    from inlet.storage import folder_schema

    answer = {"ok": True, "result": {"echo": {}}, "config": "an-older-digest"}
    messages = warnings_beside_an_earlier_holder(tmp_path, answer, caplog)
    assert len(messages) == 1 and "another configuration" not in messages[0]
    assert "pid 4242" in messages[0] and "an earlier release of inlet" in messages[0]
    assert folder_schema() in messages[0] and "Stop it" in messages[0]


def test_a_holder_with_this_schema_but_no_stored_format_is_another_release(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The release before the stored format was reported had this release's schema steps, but
    numbered mbox messages and read hard links its own way: a command it ran for this inlet's CLI
    ran with that code (positional mbox ids, hard-link twins kept), so the client warns, naming both."""
    from inlet.storage import folder_schema

    earlier = "catalog m007_newest_index, state m006_source_coverage"  # what that release's holder reported
    answer = {"ok": True, "result": {"echo": {}}, "schema": earlier, "config": "this-digest"}
    messages = warnings_beside_an_earlier_holder(tmp_path, answer, caplog)
    assert len(messages) == 1 and "another configuration" not in messages[0]
    assert f"another release of inlet (schema {earlier})" in messages[0] and folder_schema() in messages[0]
    assert "pid 4242" in messages[0] and "Stop it" in messages[0]
