"""The composition root: the one place that builds a running inlet from its settings.

settings -> storage backend (`open_backend`) -> index -> engine -> daemon / HTTP server / local
commands. Every command that runs syncs or serves (`sync`, `backfill`, `daemon`, `serve`, `demo`,
the local channel of `inlet serve`) is assembled here, so the layers below never assemble one
another: sync knows no server, the server no daemon's wiring. SIGINT/SIGTERM are handled by one
handler (`inlet.process.stop_on_signals`): the first sets the stop event, a second exits at once.
`inlet daemon` and `inlet serve` take the index over from an agent's `inlet mcp` that holds it
(`serving_index`: it opened it only because no daemon or server ran), and wait (bounded) for a
one-shot command holding it to finish, rather than refusing to start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from inlet.config import Settings
from inlet.errors import IndexLockedError, InletError
from inlet.index.store import Index
from inlet.process import listen, stop_on_signals, wait
from inlet.server.listener import ServerThread, listening_text, local_url
from inlet.server.local_channel import HANDOVER_SECONDS, HOLDER_POLL, holder_for, log_waiting
from inlet.server.local_commands import ProgressBoard, Runner, start_local_commands
from inlet.storage import Leases, StateStore, open_backend
from inlet.storage.lock import other_holder
from inlet.sync.daemon import SHUTDOWN_DEADLINE, SHUTDOWN_GRACE, WATCHDOG_MARGIN, Daemon, overdue
from inlet.sync.engine import Engine, RunResult
from inlet.sync.forget import Forgotten, forget_source

if TYPE_CHECKING:
    from inlet.sync.engine import ProgressCallback

log = logging.getLogger(__name__)


@dataclass
class Assembly:
    """An open index, its sync state and leases, and an engine over them."""

    index: Index
    state: StateStore
    leases: Leases
    engine: Engine


def serving_index(settings: Settings, **lock_info: Any) -> Index:
    """The index for `inlet daemon` / `inlet serve` (locked, `lock_info` recorded). Held by an
    agent's `inlet mcp` (role `mcp`), which opened it only because no daemon or server ran, it is
    asked to hand it over (the local `hand_over` op); held by a process that answers no local
    commands (a one-shot `inlet search`, `sync`, `status`..., or a serving one starting or
    stopping), it is waited for. Either way its lock is waited for up to `HANDOVER_SECONDS` (that
    `inlet mcp` then forwards its tool calls here). A holder that answers and is not an `inlet mcp`
    (a running daemon or server), or one that does not let go in time, is the usual
    `IndexLockedError`. A Chroma server that cannot be reached is waited for as during an outage
    (`Index(wait_for_chroma=True)`): the process starts, its runs fail and its API answers 503 until
    the server answers, where a one-shot command exits naming `chroma_url`."""
    try:
        return Index(settings.index, configured=settings.source_names(), wait_for_chroma=True, **lock_info)
    except IndexLockedError as locked:
        held = other_holder(Path(settings.index.path)) or {}
        client = holder_for(settings)
        if client is not None and held.get("role") != "mcp":
            raise
        if client is not None:
            try:
                client.call("hand_over")
            except InletError as exc:  # an inlet of another release (no such op), or it stopped meanwhile
                log.info("the agent's inlet mcp holding the index did not hand it over: %s", exc)
                raise locked from None
            log.info("an agent's inlet mcp (pid %s) holds the index: it hands it over", held.get("pid", "?"))
        else:
            log_waiting(held, "answers no local commands (a one-shot command, or starting)", HANDOVER_SECONDS)
    deadline = time.monotonic() + HANDOVER_SECONDS
    while True:
        try:
            return Index(settings.index, configured=settings.source_names(), wait_for_chroma=True, **lock_info)
        except IndexLockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(HOLDER_POLL)


@contextmanager
def assembled(
    settings: Settings,
    stop: threading.Event,
    *,
    on_progress: ProgressCallback | None = None,
    take_over: bool = False,
    **lock_info: Any,
) -> Iterator[Assembly]:
    """The index (locked, `lock_info` recorded in the lock; `take_over`: from an agent's `inlet mcp`,
    `serving_index`), the backend's state and leases, and an engine whose runs end at their next
    checkpoint once `stop` is set; all closed on exit."""
    opened = (
        serving_index(settings, **lock_info)
        if take_over
        else Index(settings.index, configured=settings.source_names(), **lock_info)
    )
    with opened as index:
        backend = open_backend(settings)
        state = backend.state()
        leases = backend.leases()
        try:
            yield Assembly(
                index,
                state,
                leases,
                Engine(settings, index, state, env=os.environ, on_progress=on_progress, stop=stop, leases=leases),
            )
        finally:
            leases.close()
            state.close()


class ApiListener(Protocol):
    """The HTTP API a serving daemon runs (the server package's `ApiPlan`): bound before the index
    lock, which records its URL, and started once the daemon exists."""

    url: str
    api_file_name: str

    def start(self, settings: Settings, index: Any, state: Any, daemon: Daemon) -> Any: ...


def run_daemon(
    settings: Settings,
    api: ApiListener | None = None,
    *,
    grace: float = SHUTDOWN_GRACE,
    stop: threading.Event | None = None,
) -> int:
    """`inlet daemon`: run until SIGINT/SIGTERM/SIGHUP (`stop`: the event `stop_on_signals` gave before
    `api` was bound, so that a signal once its port accepts stops it cleanly); 0 once runs in
    flight saved their checkpoints (or `grace` ran out). With `api`, the API is served too (its
    `start(...)` returns something with a `stop()`)."""
    stop = stop if stop is not None else stop_on_signals()
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its INFO is one line per job fire
    lock_info: dict[str, Any] = {"role": "daemon"}
    if api:
        lock_info.update(api_url=api.url, api_file=str(Path(settings.index.path) / api.api_file_name))
    board = ProgressBoard()  # what a forwarded `inlet backfill` draws, as its own run would
    with assembled(settings, stop, on_progress=board.update, take_over=True, **lock_info) as parts:
        daemon = Daemon(settings, parts.engine, hooks=api is not None)  # webhooks are heard only with the API
        server = api.start(settings, parts.index, parts.state, daemon) if api else None
        local = start_local_commands(
            settings, parts.index, parts.state, daemon.run_for_client, board, unrecorded=parts.engine.unrecorded
        )
        try:
            daemon.start()
            log.info(
                "inlet daemon (pid %d): %d source(s) scheduled%s",
                os.getpid(),
                len(daemon.sources),
                f"; API at {api.url}" if api else "",
            )
            if not daemon.sources:
                log.warning("no source has a `schedule` or `every`: nothing will run until one does")
            for name in sorted({s.name for s in settings.sources} - {s.name for s in daemon.sources}):
                log.info("source %r has no `schedule` or `every`: it runs only when asked (inlet sync %s)", name, name)
            stopping(stop)
            finished = daemon.shutdown(grace)
        finally:
            if local:
                local.close(grace=2.0)  # forwarded runs were waited for above, with the scheduled ones
            if server:
                server.stop(timeout=2.0)
    if not finished:
        exit_leaving_runs(grace)
    log.info("inlet daemon stopped")
    if daemon.events is not None and daemon.events.abandoned:  # their threads hang on a stalled service:
        logging.shutdown()  # nothing is left to save, so do not wait
        os._exit(0)
    return 0


def stopping(stop: threading.Event) -> None:
    """Wait for the signal (`stop`), then say so and arm the watchdog: the one way `inlet daemon`
    and `inlet serve` start to stop."""
    wait(stop)
    log.info("stopping: finishing the batch in hand and saving checkpoints")
    overdue(SHUTDOWN_DEADLINE - WATCHDOG_MARGIN)


def exit_leaving_runs(grace: float) -> NoReturn:
    """Exit 0 now, runs still in flight `grace` s after the stop: they resume from their last
    checkpoint, and their threads, which may be inside a native call, are not waited for (an
    interpreter that exits around a running embedding or Chroma thread aborts: SIGABRT, exit 134)."""
    log.warning("runs still in flight after %.0fs; exiting anyway (they resume from their last checkpoint)", grace)
    logging.shutdown()
    os._exit(0)


def forget(settings: Settings, name: str) -> Forgotten:
    """`inlet forget NAME` where no process holds the index: the index (locked), the backend's
    state and leases, for `forget_source`."""
    with Index(settings.index, configured=settings.source_names(), role="forget") as index:
        backend = open_backend(settings)
        state = backend.state()
        leases = backend.leases()
        try:
            return forget_source(settings, index, state, leases, name)
        finally:
            leases.close()
            state.close()


def run_server(settings: Settings) -> None:
    """`inlet serve`: listen (a busy port is `PortInUseError`), open the index (taking it over from
    an agent's `inlet mcp`, `serving_index`; failing fast if another process holds it), serve until
    SIGINT/SIGTERM/SIGHUP, then stop as `inlet daemon` does: forwarded runs end at their next
    checkpoint (their commands get the `interrupted` run) while the API still answers, then the API
    stops; exit 0."""
    from inlet.index.embedding import serve_queries  # here: it loads the embedding runtime
    from inlet.server.app import create_app  # here: FastAPI and the MCP SDK cost every other command ~1 s

    log.setLevel(logging.INFO)  # "serving on ..." and "stopped" show at the default level, as the server's lines
    serve_queries()  # one batching worker embeds queries; the other cores serve BM25, Chroma and HTTP
    host, port = settings.server.host, settings.server.port
    stop = stop_on_signals()  # before the port accepts: a signal from then on stops the server cleanly
    sock = listen(host, port, "[server]")
    url = local_url(host, sock.getsockname()[1])
    with ExitStack() as stack:  # left in reverse: forwarded runs stopped, then the API, then the index
        index = stack.enter_context(serving_index(settings, role="serve", api_url=url))
        api = stack.enter_context(ExitStack())
        stack.enter_context(local_commands_of_server(settings, index, stop=stop))
        app = create_app(settings, index=index, listening=sock.getsockname())
        server = ServerThread(app, sock, settings.server)  # not the main thread: the signals stay here
        api.callback(server.stop)
        listening = listening_text(host, sock.getsockname()[1])
        log.info("serving the retrieval API on %s (MCP at /mcp); Ctrl-C to stop", listening)
        stopping(stop)
    log.info("stopped")


@contextmanager
def local_commands_of_server(
    settings: Settings,
    index: Index,
    *,
    stop: threading.Event | None = None,
    hand_over: Callable[[], None] | None = None,
    grace: float = SHUTDOWN_GRACE,
) -> Iterator[None]:
    """`inlet serve` (and a standalone `inlet mcp`, whose `hand_over` lets go of the index for a
    daemon or server that starts) answers local commands while inside: the backend's state, and
    runs on an engine made on first use. Setting `stop` (the process's signal event) ends them at
    their next checkpoint; leaving sets it and waits up to `grace` s for them (their commands get
    the `interrupted` run), then exits the process (`exit_leaving_runs`) if they still run."""
    stop = stop if stop is not None else threading.Event()
    state = open_backend(settings).state()
    board = ProgressBoard()
    runner = engine_runner(settings, index, state, stop, board)
    local = start_local_commands(settings, index, state, runner, board, hand_over=hand_over)
    try:
        yield
    finally:
        stop.set()
        if local and not local.close(grace):
            exit_leaving_runs(grace)
        state.close()


def engine_runner(
    settings: Settings, index: Index, state: StateStore, stop: threading.Event, board: ProgressBoard | None = None
) -> Runner:
    """Runs for a holder without a daemon (`inlet serve`): an engine made on first use, reporting
    its progress to `board`; setting `stop` ends its runs at their next checkpoint."""
    engines: list[Engine] = []
    made = threading.Lock()

    def run(
        name: str,
        kind: str,
        since: datetime | None,
        restart: bool,
        cancel: threading.Event | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        with made:
            if not engines:
                on_progress = board.update if board is not None else None
                engines.append(Engine(settings, index, state, env=os.environ, stop=stop, on_progress=on_progress))
        return engines[0].run(name, kind, since=since, restart=restart, cancel=cancel, env=env)

    return run


__all__ = [
    "ApiListener",
    "Assembly",
    "assembled",
    "engine_runner",
    "exit_leaving_runs",
    "forget",
    "local_commands_of_server",
    "run_daemon",
    "run_server",
    "serving_index",
    "stopping",
]
