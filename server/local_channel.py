"""The local channel: how `inlet search|sync|backfill|status|mcp` reach the process holding the index.

Embedded Chroma admits one process per index folder, so while `inlet daemon` (with or without
`--serve`), `inlet serve` or an `inlet mcp` that found no holder holds it, local commands ask that
process instead of opening the index themselves (docs/daemon.md: local commands beside a running daemon).

Who may use it: only the user who owns the holder. The channel is a Unix stream socket
`<index>/inlet.sock`, created with mode 0600 (umask 0o177 while binding, checked after), and both
ends check the other's uid with the kernel's peer credentials (`SO_PEERCRED`; `LOCAL_PEERCRED` on
macOS/BSD): a connection from any other uid is refused before its request is read, and a client
never talks to a socket someone else planted. That user can read the index files anyway, so a
request may name any `user` to act as (like `inlet search --user` run directly).

Protocol (version 1), one request per connection, UTF-8 JSON, one object per line:
- client → holder: `{"protocol": 1, "op": NAME, "args": {...}}`
- holder → client: exactly one line, `{"ok": true, "result": ...}` or
  `{"ok": false, "error": {"type": CLASS, "message": TEXT, "exit_code": N}}`, then it closes. Either
  also carries `"schema"`, the newest schema steps the holder's inlet knows and the stored format it
  writes (`folder_schema`), and `"config"`, the digest of the holder's settings
  (`Settings.fingerprint`). A client of another release (a holder's schema differs from its own, or
  is absent: a release before it was reported; one that reports no format is a release before the
  format was, whose stored formats differ even where its steps are the same) warns that the command
  ran with that release's code, naming both, and to stop the holder before upgrading; one of the
  same release whose own config differs (edited since the holder started, or another file) warns
  that the command ran with the holder's.
`type` names the `InletError` class the holder raised (`ConfigError`, `SourceBusyError`, ...); the
client re-raises it as a `ForwardedError` carrying the same message and exit code, so a forwarded
command fails exactly as it would have run directly. The ops and their arguments are defined by
the holder's handler table (`local_commands.py`, beside this module). A holder that closes the connection
without an answer (it died, or was stopped) gives `HolderGoneError` (exit 1).

`holder_for(settings)` is the client side's start: the holder of a config's index, if any.
A holder that took the index only as a fallback (an agent's `inlet mcp`) answers the op
`hand_over`: an `inlet daemon` or `inlet serve` that starts asks it to let go of the index, and
waits up to `HANDOVER_SECONDS` for the lock.
The socket is removed by the holder on shutdown, and a leftover one (a killed holder) is replaced
on start, only once the index lock is the starter's: only the lock holder owns the name.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from inlet.errors import IndexLockedError, InletError
from inlet.storage import folder_schema
from inlet.storage.lock import SERVING, FileLock, other_holder

if TYPE_CHECKING:
    from inlet.config import Settings

log = logging.getLogger(__name__)

PROTOCOL = 1
SOCKET_NAME = "inlet.sock"
MAX_REQUEST = 1 << 20  # bytes: a request is a query or a few names, never large
REQUEST_TIMEOUT = 30.0  # seconds a connected client has to send its request line
MAX_SOCKET_PATH = 100  # bytes; longer socket paths go through the folder's descriptor
HANDOVER_SECONDS = 30.0
"""How long a serving process waits for another to hand the index over or to start listening:
`inlet daemon`/`serve` for an `inlet mcp` holding it to let go, an `inlet mcp` for a serving holder
that is starting or stopping (`inlet.storage.lock.SERVING`)."""
HOLDER_POLL = 0.2  # seconds between two looks at the index lock or the socket while waiting so
Handler = Callable[[Mapping[str, Any]], Any]


class ChannelError(InletError):
    """The local channel cannot be used (refused peer, bad socket, protocol mismatch)."""


class PeerRefusedError(ChannelError):
    """The other end of the socket belongs to another user."""


class HolderGoneError(ChannelError):
    """The holder closed the connection before answering (it died or is stopping)."""


class ForwardedError(InletError):
    """An error the holder raised while running a forwarded command; same message and exit code."""

    def __init__(self, kind: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code


def socket_path(index_path: Path) -> Path:
    return Path(index_path) / SOCKET_NAME


# --- peer credentials ---------------------------------------------------------------------------
def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket, from the kernel."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", raw)[1])
    if hasattr(socket, "LOCAL_PEERCRED"):  # macOS/BSD: struct xucred {version, uid, ...}
        raw = sock.getsockopt(0, socket.LOCAL_PEERCRED, 76)
        return int(struct.unpack_from("=Ii", raw)[1])
    raise ChannelError("this platform cannot tell who is at the other end of a Unix socket")


def verify_peer(sock: socket.socket, owner_uid: int | None = None) -> None:
    """Refuse (PeerRefusedError) a peer whose uid is not `owner_uid` (default: this process's)."""
    expected = os.geteuid() if owner_uid is None else owner_uid
    uid = peer_uid(sock)
    if uid != expected:
        raise PeerRefusedError(f"refused: the other end of the local channel is uid {uid}, not {expected}")


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """`path` as a socket address. A Unix socket's path holds at most ~107 bytes; a deeper index
    folder is reached on Linux through an open descriptor of it (`/proc/self/fd/N/inlet.sock`)."""
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH or not Path("/proc/self/fd").is_dir():
        yield str(path)  # too long elsewhere: bind/connect fail with the OS's message
        return
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


# --- the holder's side --------------------------------------------------------------------------
class _Connection(socketserver.StreamRequestHandler):
    server: "_UnixServer"

    def handle(self) -> None:
        try:
            verify_peer(self.request, self.server.owner_uid)
        except PeerRefusedError as exc:
            log.warning("local channel: %s", exc)
            self._answer({"ok": False, "error": _error_body(exc)})
            return
        self.request.settimeout(REQUEST_TIMEOUT)
        try:
            line = self.rfile.readline(MAX_REQUEST)
        except OSError:
            return
        if not line.strip():
            return  # a probe (`LocalClient.find`) or a client that gave up
        self.request.settimeout(None)
        with self.server.tracker.active():
            self._answer(self.server.dispatch(line))

    def _answer(self, message: dict[str, Any]) -> None:
        try:
            self.wfile.write(json.dumps(message, default=str).encode() + b"\n")
            self.wfile.flush()
        except OSError:  # the client went away; nothing to tell it
            log.debug("local channel: client left before the answer")


class _Tracker:
    """Counts requests in progress, so closing can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = threading.Condition()

    @contextmanager
    def active(self) -> Iterator[None]:
        with self.idle:
            self.count += 1
        try:
            yield
        finally:
            with self.idle:
                self.count -= 1
                self.idle.notify_all()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.idle:
            while self.count and (left := deadline - time.monotonic()) > 0:
                self.idle.wait(left)
            return self.count == 0


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, handlers: Mapping[str, Handler], owner_uid: int, config_id: str | None) -> None:
        self.handlers = handlers
        self.owner_uid = owner_uid
        self.config_id = config_id
        self.tracker = _Tracker()
        self.path = path
        super().__init__(path, _Connection)

    def server_bind(self) -> None:
        previous = os.umask(0o177)  # the socket file is born 0600: no window with wider rights
        try:
            with _address(Path(self.path)) as address:
                self.socket.bind(address)
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)

    def dispatch(self, line: bytes) -> dict[str, Any]:
        answer = {**self._run(line), "schema": folder_schema()}
        return {**answer, "config": self.config_id} if self.config_id else answer

    def _run(self, line: bytes) -> dict[str, Any]:
        request: Any = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or request.get("protocol") != PROTOCOL:
                raise ChannelError(
                    f"unsupported request (this holder speaks local protocol {PROTOCOL}; "
                    "is the client the same inlet version?)"
                )
            handler = self.handlers.get(str(request.get("op")))
            if handler is None:
                raise ChannelError(f"unknown operation {request.get('op')!r}")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ChannelError("'args' must be an object")
            return {"ok": True, "result": handler(args)}
        except ValueError as exc:  # not JSON (json.JSONDecodeError is a ValueError)
            return {"ok": False, "error": _error_body(ChannelError(f"malformed request: {exc}"))}
        except InletError as exc:
            return {"ok": False, "error": _error_body(exc)}
        except Exception as exc:  # a bug must reach the client as an error, not a hang
            # Named by its operation and sources, never its line: `args.env` holds the secrets the
            # client forwarded, and the request its channel token.
            log.exception("local channel: %s failed", _described(request))
            return {
                "ok": False,
                "error": {"type": type(exc).__name__, "message": f"internal error: {exc}", "exit_code": 1},
            }


def _described(request: Any) -> str:
    """A request as a log line may show it: its operation and the sources it names."""
    if not isinstance(request, dict):
        return "a request"
    args = request.get("args")
    sources = (args.get("sources") or args.get("source")) if isinstance(args, dict) else None
    return f"{str(request.get('op'))[:40]!r}" + (f" of {str(sources)[:200]}" if sources else "")


def _error_body(exc: InletError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}


class LocalServer:
    """The channel in the holder: a socket in the index folder answered by threads.

    Start it only while holding the index lock (it replaces a leftover socket of a dead holder).
    """

    def __init__(
        self,
        index_path: Path,
        handlers: Mapping[str, Handler],
        *,
        owner_uid: int | None = None,
        config_id: str | None = None,
    ) -> None:
        self.path = socket_path(index_path)
        _remove_stale(self.path)
        self._server = _UnixServer(
            str(self.path), handlers, os.geteuid() if owner_uid is None else owner_uid, config_id
        )
        self._inode = self.path.stat().st_ino
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="inlet-local-channel", daemon=True
        )
        self._thread.start()
        log.info("local commands answered on %s", self.path)

    def close(self, grace: float = 10.0) -> bool:
        """Stop accepting, remove the socket, and wait up to `grace` s for requests in progress
        (their answers written); False if some still run then (the caller decides what to do)."""
        self._server.shutdown()
        self._server.server_close()
        try:
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
        return self._server.tracker.wait(grace)

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove_stale(path: Path) -> None:
    """Remove a socket left by a holder that died; refuse to touch anything else at that name."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ChannelError(f"{path} exists and is not a socket; remove it so inlet can listen there")
    log.info("removing the socket left by an earlier holder: %s", path)
    path.unlink()


# --- the client's side --------------------------------------------------------------------------
class LocalClient:
    """Calls the holder of an index folder; found with `LocalClient.find`."""

    def __init__(self, path: Path, config_id: str | None = None) -> None:
        self.path = path
        self.config_id = config_id  # the client's own settings' digest: warn when the holder's differs
        self._warned = False

    @classmethod
    def find(cls, index_path: Path, config_id: str | None = None) -> "LocalClient | None":
        """A client if a holder answers at this index folder's socket, else None (run directly)."""
        path = socket_path(index_path)
        try:
            if not stat.S_ISSOCK(path.lstat().st_mode):
                return None
        except OSError:
            return None
        try:
            with cls._connect(path):
                return cls(path, config_id)
        except (ConnectionRefusedError, FileNotFoundError):
            return None  # a socket left by a dead holder: nobody listens

    @staticmethod
    def _connect(path: Path) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _address(path) as address:
                sock.connect(address)
            verify_peer(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def call(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run `op` in the holder; its result, or the holder's error re-raised as `ForwardedError`."""
        request = json.dumps({"protocol": PROTOCOL, "op": op, "args": dict(args or {})}, default=str)
        if len(request) >= MAX_REQUEST:  # the holder would read a cut line
            raise ChannelError(
                f"{op!r} is {len(request)} bytes long; the local channel takes requests under {MAX_REQUEST}"
            )
        try:
            with self._connect(self.path) as sock:
                try:
                    sock.sendall(request.encode() + b"\n")
                except BrokenPipeError:
                    pass  # it answered (a refusal) and closed before reading: read why
                with sock.makefile("rb") as reader:
                    line = reader.readline()
        except (ConnectionRefusedError, FileNotFoundError):
            raise HolderGoneError(
                f"the process holding the index stopped listening on {self.path}; run the command again"
            ) from None
        except OSError as exc:
            raise HolderGoneError(f"the local channel at {self.path} failed: {exc}") from None
        if not line:
            raise HolderGoneError(
                f"the process holding the index closed {self.path} without answering "
                f"{op!r} (did it stop or crash? see its log); run the command again"
            )
        try:
            answer = json.loads(line)
        except ValueError:
            raise ChannelError(f"unreadable answer on {self.path}: {line[:200]!r}") from None
        self._compare(answer.get("schema"), answer.get("config"))
        if answer.get("ok"):
            return answer.get("result")
        error = answer.get("error") or {}
        raise ForwardedError(
            str(error.get("type", "InletError")), str(error.get("message", "failed")), int(error.get("exit_code", 1))
        )

    def _compare(self, schema: Any, held: Any) -> None:
        """Warn once when the holder is another release, else when it runs another configuration."""
        if self._warned:
            return
        if schema != folder_schema():
            self._warned = True
            who = FileLock(self.path.parent / "index.lock").holder()
            log.warning(
                "the inlet process holding the index (%s, pid %s) is %s; this command's knows %s: it ran this "
                "command with its own code. Stop it and start it again with this inlet (which upgrades the index) "
                "before relying on what it writes",
                self.path.parent,
                who.get("pid", "?"),
                f"another release of inlet (schema {schema})"
                if schema
                else "an earlier release of inlet (one that does not report its schema)",
                folder_schema(),
            )
            return
        if not self.config_id or not held or held == self.config_id:
            return
        self._warned = True
        log.warning(
            "the inlet process holding the index (%s) runs with another configuration than this "
            "command's (the file changed since it started, or it is another file): it answered with "
            "its own; restart it to apply this one",
            self.path.parent,
        )


def holder_for(settings: Settings) -> LocalClient | None:
    """A client for the process holding this config's index, or None: run the command directly."""
    if settings.index.chroma_url:
        return None
    client = LocalClient.find(Path(settings.index.path), settings.fingerprint())
    if client is not None:
        log.info("the index is held by another inlet process: forwarding to it over %s", client.path)
    return client


T = TypeVar("T")


def starting_holder(settings: Settings) -> dict[str, Any] | None:
    """(Once the index lock was refused.) Its holder's record (`FileLock.holder`) when that is a
    serving process (`inlet daemon`, `serve`, `mcp`: `SERVING`) that answers no local commands yet
    or any more: starting (loading its model, upgrading the schema) or stopping. None otherwise:
    the holder answers (`holder_for`), or it is a one-shot command."""
    if settings.index.chroma_url:
        return None
    path = Path(settings.index.path)
    held = FileLock(path / "index.lock").holder()
    if held.get("role") not in SERVING:
        return None
    return held if LocalClient.find(path) is None else None


def log_waiting(held: Mapping[str, Any], why: str, seconds: float) -> None:
    """The one line saying that this process waits for `held` (a lock's record), and why."""
    log.info(
        "the index is held by pid %s (%s), which %s: waiting up to %.0fs for it",
        held.get("pid", "?"),
        held.get("command", "inlet"),
        why,
        seconds,
    )


def held_or_here(
    settings: Settings, ask: Callable[[LocalClient], T], here: Callable[[], T], *, patience: float = HANDOVER_SECONDS
) -> T:
    """`ask(client)` of the process holding this config's index when one answers, else `here()`,
    which opens the index in this process (the lock refusal, `IndexLockedError`, comes from there).
    An index locked by a serving process that does not answer yet (`starting_holder`) is waited
    for, up to `patience` seconds while it holds the lock: then that process is asked, or the index,
    free, is opened here. Any other holder (a one-shot command) is refused at once, as before."""
    deadline = time.monotonic() + patience
    told = freed = False
    while True:
        client = holder_for(settings)
        if client is not None:
            return ask(client)
        try:
            return here()
        except IndexLockedError:
            if time.monotonic() < deadline and LocalClient.find(Path(settings.index.path)) is not None:
                continue  # it began to answer between the first look and the refusal: ask it
            held = starting_holder(settings)
            if held is None and not freed and other_holder(Path(settings.index.path)) is None:
                freed = True  # let go between the refusal and this look: try once more
                continue
            if held is None or time.monotonic() >= deadline:
                raise
            if not told:
                log_waiting(held, "does not answer yet (starting or stopping)", patience)
                told = True
            time.sleep(HOLDER_POLL)


__all__ = [
    "ChannelError",
    "ForwardedError",
    "HANDOVER_SECONDS",
    "HOLDER_POLL",
    "HolderGoneError",
    "LocalClient",
    "LocalServer",
    "PeerRefusedError",
    "held_or_here",
    "holder_for",
    "log_waiting",
    "peer_uid",
    "socket_path",
    "starting_holder",
    "verify_peer",
]
