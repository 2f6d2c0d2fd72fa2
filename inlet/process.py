"""What every long-running command (`serve`, `daemon --serve`, `sandbox`, `demo`) does alike:
listen on its port or fail with one line, and stop cleanly on SIGINT or SIGTERM.

Servers run in threads and the main thread waits for a signal, so a signal never interrupts
uvicorn or a sync mid-way (uvicorn in the main thread re-raises the signal after its shutdown:
"Aborted!" and exit 1 on Ctrl-C, exit 143 on SIGTERM).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import threading
from typing import Any

from inlet.errors import PortInUseError


def listen(host: str, port: int, what: str) -> socket.socket:
    """A listening socket on host:port (bound now, so callers queue until the server runs), or
    `PortInUseError` naming `what` (e.g. "[server]") and the address."""
    try:
        return socket.create_server((host, port), reuse_port=False, backlog=128)
    except OSError as exc:
        reason = "another process is listening there" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise PortInUseError(f"{what} cannot listen on {host}:{port}: {reason}") from None


def stop_on_signals(message: str | None = None) -> threading.Event:
    """An event set by the first SIGINT/SIGTERM (printing `message` on stderr); a second one ends
    the process at once, as the signal does by default (exit 130 on Ctrl-C)."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        # The system's own default, not a Python handler: a handler would wait for the native call
        # under way (a Chroma write holds the interpreter for seconds); the user does not.
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, signal.SIG_DFL)
        stop.set()
        if message:
            print(message, file=sys.stderr, flush=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    return stop


def wait(stop: threading.Event) -> None:
    """Block the main thread until `stop` is set (a signal handler runs between the waits)."""
    while not stop.wait(1.0):
        pass


def alive(pid: int) -> bool:
    """Whether process `pid` exists (on this host): for rows left by a process that may have died."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
