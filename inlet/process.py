"""What every long-running command (`serve`, `daemon --serve`, `sandbox`, `demo`) does alike:
listen on its port or fail with one line, and stop cleanly on SIGINT, SIGTERM or SIGHUP.

Servers run in threads and the main thread waits for a signal, so a signal never interrupts
uvicorn or a sync mid-way (uvicorn in the main thread re-raises the signal after its shutdown:
"Aborted!" and exit 1 on Ctrl-C, exit 143 on SIGTERM). SIGHUP stops as SIGTERM does: no command
reloads its configuration, and dying of it (exit 129) would skip the checkpoint and the cleanup.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from inlet.errors import ConfigError, PortInUseError

log = logging.getLogger(__name__)


def listen(host: str, port: int, what: str) -> socket.socket:
    """A listening socket on host:port (bound now, so callers queue until the server runs), IPv4
    or IPv6 as `host` resolves ("::" listens on both where the system allows). `PortInUseError`
    naming `what` (e.g. "[server]") and the address when another process holds the port; a host
    this machine cannot listen on (a name that does not resolve, an address it does not have) is a
    `ConfigError` naming both."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        dualstack = family == socket.AF_INET6 and host in ("::", "") and socket.has_dualstack_ipv6()
        return socket.create_server(
            (host, port), family=family, reuse_port=False, backlog=128, dualstack_ipv6=dualstack
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"{what} cannot listen on {where}: another process is listening there") from None
        reason = exc.strerror if isinstance(exc, socket.gaierror) or not exc.errno else os.strerror(exc.errno)
        raise ConfigError(f"{what} cannot listen on {where}: {reason} (check the host)") from None


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals(message: str | None = None, bound: float | None = None) -> threading.Event:
    """An event set by the first SIGINT, SIGTERM or SIGHUP (printing `message` on stderr); a second
    one ends the process at once, as the signal does by default (exit 130 on Ctrl-C). With `bound`,
    the process also ends (exit 1) that many seconds after the first, whatever holds it then (a
    connector stuck in a system call): what a command promises to take at most.

    SIGHUP (a closed terminal or ssh session, a `kill -HUP` meant as "reload") stops cleanly as
    SIGTERM does: inlet reloads no configuration (a changed one needs a restart). A SIGHUP this
    process was started ignoring (`nohup`) stays ignored."""
    stop = threading.Event()
    handled = [s for s in STOP_SIGNALS if s != signal.SIGHUP or signal.getsignal(s) != signal.SIG_IGN]

    def handler(signum: int, _frame: Any) -> None:
        # The system's own default, not a Python handler: a handler would wait for the native call
        # under way (a Chroma write holds the interpreter for seconds); the user does not.
        for each in handled:
            signal.signal(each, signal.SIG_DFL)
        stop.set()
        if signum == signal.SIGHUP:
            log.info("SIGHUP: stopping (inlet reloads no configuration; start it again to apply a changed one)")
        if message:
            try:
                print(message, file=sys.stderr, flush=True)
            except OSError:  # the terminal is gone (the SIGHUP of a closed session)
                pass
        if bound is not None:
            overdue(bound, code=1)

    for signum in handled:
        signal.signal(signum, handler)
    return stop


def overdue(seconds: float, code: int = 0) -> threading.Timer:
    """Exit the process (`code`) `seconds` from now if it has not exited by then: the bound on
    stopping holds whatever a connector's cleanup or a stalled service does (runs resume from
    checkpoints, subscriptions left behind expire by themselves)."""

    def expire() -> None:
        log.warning("still stopping after %.0f s: exiting now (runs resume from their last checkpoint)", seconds)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


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


def ended_here(holder: str) -> bool:
    """Whether `holder` ("host:pid", as leases name a process) is a process of this host that has
    ended: killed before it could release what it held. A process of another host cannot be asked."""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not alive(int(pid))
