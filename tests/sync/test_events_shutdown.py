"""Stopping is bounded whatever the services do: with Graph's subscription deletions or Drive's
`channels.stop` stalling (the sandbox holds each answer longer than the client's timeout), the
daemon's shutdown still ends within 20 s; the subscription left behind expires by itself."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from inlet.sandbox.drive_channels import channels
from inlet.sandbox.faults import Fault
from inlet.sandbox.graph_subscriptions import subscriptions
from inlet.sandbox.server import Sandbox
from inlet.sync.daemon import SHUTDOWN_DEADLINE

from .events_stack import event_stack, wait_for

CASES = {
    "outlook": (
        "sandbox-mail",
        "notifications_url",
        {"mailboxes": ["robert.badeer@enron.com"], "folders": ["*"]},
        ("graph", "subscriptions"),
        lambda sb: subscriptions(sb.ctx).subs,
    ),
    "google_drive": (
        "sandbox-drive",
        "push_url",
        {"max_requests_per_second": 0},
        ("drive", "channels.stop"),
        lambda sb: channels(sb.ctx).open,
    ),
}


def timed_shutdown(daemon: Any) -> float:
    """Seconds `daemon.shutdown()` took; fails (without waiting for it) past twice the bound."""
    started = time.monotonic()
    worker = threading.Thread(target=daemon.shutdown, daemon=True)
    worker.start()
    worker.join(2 * SHUTDOWN_DEADLINE)
    assert not worker.is_alive(), f"shutdown still running after {2 * SHUTDOWN_DEADLINE:.0f} s"
    return time.monotonic() - started


@pytest.mark.parametrize("service", list(CASES))
def test_shutdown_is_bounded_while_the_service_stalls(tmp_path: Any, embedder: Any, service: str) -> None:
    source, hook_key, extra, (fault_service, route), live = CASES[service]
    with Sandbox() as sb, event_stack(sb, tmp_path, embedder, source, extra, hook_key=hook_key) as stack:
        wait_for(lambda: stack.report()["live"] and live(sb), timeout=30, what="subscribed")
        sb.faults.break_next(fault_service, route, Fault.stalled(90), times=1000)
        seconds = timed_shutdown(stack.daemon)
        sb.faults.clear()
        assert seconds <= SHUTDOWN_DEADLINE, f"shutdown took {seconds:.1f} s"
        assert live(sb), "the stalled removal cannot have removed it: it is left to expire"


def test_the_watchdog_ends_a_process_whatever_holds_it() -> None:
    """What `inlet daemon` starts at SIGTERM: past its bound the process exits 0, even with a
    non-daemon thread stuck (as in a service call that never answers)."""
    import subprocess
    import sys

    program = (
        "import threading, time\nfrom inlet.sync.daemon import overdue\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()\noverdue(0.5)\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and time.monotonic() - started < 30
    assert "still stopping after" in proc.stderr


def test_a_command_s_stop_bound_ends_it_whatever_holds_it() -> None:
    """What `inlet backfill` and `inlet sync` promise on their first SIGINT/SIGTERM ("at most 15s"):
    past the bound the process exits 1 even while its run is stuck in a system call (a read of a
    pipe nobody writes to once held one for ever, one SIGTERM notwithstanding)."""
    import subprocess
    import sys

    program = (
        "import os, signal, threading, time\nfrom inlet.process import stop_on_signals\n"
        "stop = stop_on_signals('stopping', bound=0.5)\n"
        "stuck = threading.Thread(target=time.sleep, args=(600,))\nstuck.start()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\nstuck.join()\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and time.monotonic() - started < 30, proc.stderr
    assert proc.stderr.startswith("stopping\n") and "still stopping after" in proc.stderr
