"""The local commands a process holding the index answers (docs/daemon.md), both ends.

The holder (`inlet daemon`, with or without `--serve`, and `inlet serve`) calls
`start_local_commands` once its index is open; the CLI calls `local_channel.holder_for` first and, when a holder
answers, sends it the command instead of opening the index. The transport, its owner-only access
and the wire format are `inlet.server.local_channel`; this module holds the operations:

| op | args | result |
| --- | --- | --- |
| `search` | `query`, `k`, `sources`, `user` | the body of `POST /v1/search` (`inlet search --json`) |
| `status` | - | `inlet status --json` |
| `run` | `sources`, `kind` (`sync`/`backfill`), `since` (ISO), `restart`, `token`, `env` (3) | `{"runs": [...]}` (1) |
| `cancel` | `token` (of a `run` under way) | `{"cancelled": bool}` (2) |
| `progress` | `token` (of a `run`) | `{"runs": [{"run", "progress"}]}` (5) |
| `forget` | `source` (not configured) | `inlet forget --json` (4) |
| `mcp_search` | `query`, `user` | the MCP `search` tool's object |
| `mcp_fetch` | `id`, `user` | the MCP `fetch` tool's object |
| `hand_over` | - | `{"handing_over": true}` (6) |

(1) as `inlet sync --json`, each run also with `credentials_refused` (the CLI exits 3 on it).
(2) sent on a second connection when the command that asked for the run is interrupted (Ctrl-C,
SIGTERM): the run ends at its next checkpoint, as a direct run would, and the command prints its
`interrupted` result from the first connection.
(3) the values of the variables the sources' `*_env` keys name, as set where the command was typed:
the run reads its secrets there first, then in this process's environment, so a forwarded run
uses the same credentials as a direct one (a rotated secret included). Only the command's own runs
use them; the holder's scheduled runs keep its own environment.
(4) the holder refuses a source its own configuration names (`inlet.sync.forget`), saying that it must be
restarted (the command's configuration, checked before, no longer names it).
(5) the latest progress of each source the run `token` has started (`run`: its counts so far, as
`RunRecord`; `progress`: as the engine's `RunProgress`), kept by the holder's `ProgressBoard`
(its engine's `on_progress`), and still answered for a while after the run ended: the command
asks for it on a second connection while it waits for `run`, and once more after, and draws the
progress bar a direct run draws (`inlet.progress`).
(6) only an `inlet mcp` that opened the index itself (no daemon or server held it) answers it: it
lets go of the index, on a thread of its own once answered, for the `inlet daemon` or `inlet serve`
that asks while starting, and then forwards its tool calls to it. Other holders answer
"unknown operation".

A run asked for while the same source runs (on its schedule, or for another command) is refused
as when the command runs directly: a backfill with the `SourceBusyError`, and a source of a sync
with a failed result saying so, the other sources synced (`engine.synced_unless_busy`); runs happen
in the holder, and the client waits for the answer, drawing their progress on a terminal.

The CLI imports this module for `runs_from` alone, so the handlers import what they use (search,
status, backup, the MCP tools) inside: a forwarded `inlet sync` stays as quick to start as the rest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Any

from inlet.config import Settings
from inlet.errors import ConfigError, InletError
from inlet.storage import RunRecord
from inlet.sync.engine import RunProgress, RunResult, synced_unless_busy
from inlet.server.local_channel import Handler, LocalServer

from .auth import Caller
from .errors import ApiError

log = logging.getLogger(__name__)
FINISHED_KEPT = 64  # forwarded runs whose last progress is still answered after they ended

# (source, kind, since, restart, cancel, env): `cancel` set ends the run at its next checkpoint; `env`
# holds the secrets the command brought, read before the holder's own environment
Runner = Callable[[str, str, "datetime | None", bool, "threading.Event | None", Mapping[str, str]], RunResult]


class ProgressBoard:
    """The latest progress of each source's run in the holder: give `update` to its engine as
    `on_progress` (every run reports there, scheduled ones too, at most twice a second)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[RunRecord, RunProgress]] = {}

    def update(self, run: RunRecord, progress: RunProgress) -> None:
        with self._lock:
            self._latest[run.source] = (run, progress)

    def since(self, source: str, started: float) -> dict[str, Any] | None:
        """The latest progress of `source`'s run if that run started at `started` or later (the
        wire form of the `progress` op); None before it reported anything."""
        with self._lock:
            latest = self._latest.get(source)
        if latest is None or latest[0].started_at < started:
            return None
        return {"run": latest[0].as_dict(), "progress": asdict(latest[1])}


class LocalCommands:
    """The holder's handlers, over its open index and state DB; `run` syncs one source."""

    def __init__(
        self, settings: Settings, index: Any, state: Any, run: Runner, board: ProgressBoard | None = None
    ) -> None:
        from .mcp import InletTools  # the MCP SDK alone costs ~1 s
        from .service import Retrieval

        self.settings = settings
        self.index = index
        self.state = state
        self.run_source = run
        self.board = board or ProgressBoard()  # without the engine's reports, no progress to answer
        self._lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}  # run token -> its cancel (a forwarded `run`)
        # run token -> (source, when the forwarded run of it started), for `progress`
        self._started: dict[str, list[tuple[str, float]]] = {}
        self._finished: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()  # token -> its last progress
        retrieval = Retrieval(index)
        retrieval.ready.set()  # the index is open; the model loads on the first query
        self.tools = InletTools(retrieval, settings.server.recency_half_life_days, _no_session)
        self.release: Callable[[], None] | None = None  # an `inlet mcp` holder's: lets go of the index
        self.unrecorded: Mapping[str, RunRecord] = {}  # the engine's runs not recorded yet (a full folder)

    def handlers(self) -> dict[str, Handler]:
        """The ops, each of which fails on a full, read-only or inaccessible index folder with the
        `StorageError` the command run alone gives (`inlet.index.disk`), not an internal error."""
        handing = {"hand_over": self.hand_over} if self.release is not None else {}
        table: dict[str, Handler] = {
            **handing,
            "search": self.search,
            "status": self.status,
            "run": self.run,
            "cancel": self.cancel,
            "progress": self.progress,
            "mcp_search": self.mcp_search,
            "mcp_fetch": self.mcp_fetch,
            "backup": self.backup,
            "forget": self.forget,
        }
        return {op: self._storage_explained(handler) for op, handler in table.items()}

    def _storage_explained(self, handler: Handler) -> Handler:
        from inlet.index.disk import storage_error

        def explained(args: Mapping[str, Any]) -> Any:
            try:
                return handler(args)
            except Exception as exc:
                error = storage_error(exc, self.index.path)
                if error is None:
                    raise
                log.error("%s", error)  # the command that forwarded it says so too, on its stderr
                raise error from exc

        return explained

    def hand_over(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """A daemon or server that starts asks for the index: let go of it (the callback returns at
        once; closing this channel waits for this answer)."""
        assert self.release is not None
        log.info("local command: an inlet daemon or server is starting and asks for the index")
        self.release()
        return {"handing_over": True}

    def forget(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """`inlet forget SOURCE` beside this process, which holds the index: checked against this
        process's configuration (a source it still names is refused as this process's: it must be
        restarted), with a lease of its own on the source."""
        from inlet.storage import open_backend
        from inlet.sync.forget import forget_source

        leases = open_backend(self.settings).leases()
        try:
            source = str(args["source"])
            return forget_source(self.settings, self.index, self.state, leases, source, held=True).as_json()
        finally:
            leases.close()

    def backup(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """`inlet backup DEST` beside this process: the copy is taken here, between two batches."""
        from inlet.index.backup import backup_index

        return backup_index(self.index, Path(str(args["dest"]))).as_json()

    def search(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from inlet.index.search import SearchRequest, answer

        sources = tuple(str(s) for s in args.get("sources") or ())
        for name in sources:
            self._configured(name)
        request = SearchRequest(
            query=str(args["query"]),
            k=int(args.get("k", 10)),
            sources=sources,
            user=args.get("user") or None,
            recency_half_life_days=self.settings.server.recency_half_life_days,
        )
        got = answer(self.index, request)
        return {
            "results": [h.as_dict() for h in got.hits],
            "match": got.match,
            "interpreted": got.interpreted,
            "took_ms": round(got.took_ms, 1),
        }

    def _configured(self, name: str) -> str:
        """`name`, a source of this process's configuration. The command that forwarded it found it
        in its own file, so a name unknown here was added after this process read that file."""
        if name not in self.settings.source_names():
            raise ConfigError(
                f"source {name!r} is not configured in the process holding the index (pid {os.getpid()}): it "
                f"read {self.settings.file} before the source was added (or another file): restart it to read "
                "the new configuration"
            )
        return name

    def status(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from inlet.status import sources_status

        return sources_status(self.settings, self.state, self.unrecorded)

    def run(self, args: Mapping[str, Any]) -> dict[str, Any]:
        kind = args.get("kind", "sync")
        if kind not in ("sync", "backfill"):
            raise InletError(f"unknown run kind {kind!r}")
        names = [self._configured(str(n)) for n in args.get("sources") or ()] or [s.name for s in self.settings.sources]
        since = datetime.fromisoformat(args["since"]) if args.get("since") else None
        log.info("local command: %s of %s", kind, ", ".join(names))
        env = {str(k): str(v) for k, v in (args.get("env") or {}).items()}
        token, cancel = str(args.get("token") or ""), threading.Event()
        started: list[tuple[str, float]] = []
        with self._lock:
            self._cancels[token] = cancel
            if token:
                self._started[token] = started
        results = []
        try:
            for name in names:
                if cancel.is_set():  # like a direct run: after Ctrl-C, no next source
                    break
                with self._lock:
                    started.append((name, time.time()))
                run = partial(self.run_source, name, kind, since, bool(args.get("restart")), cancel, env)
                results.append(synced_unless_busy(name, run) if kind == "sync" else run())
        finally:
            last = self._progress_of(started)
            with self._lock:
                self._cancels.pop(token, None)
                self._started.pop(token, None)
                if token:
                    self._finished[token] = last
                    while len(self._finished) > FINISHED_KEPT:
                        self._finished.popitem(last=False)
        return {"runs": [{**r.as_json(), "credentials_refused": r.credentials_refused} for r in results]}

    def progress(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The latest progress of each source forwarded run `token` started (empty before its first
        report, or for a token this holder does not know)."""
        token = str(args.get("token") or "")
        with self._lock:
            started = list(self._started.get(token, ())) if token else []
            finished = self._finished.get(token) if token and not started else None
        return {"runs": finished if finished is not None else self._progress_of(started)}

    def _progress_of(self, started: list[tuple[str, float]]) -> list[dict[str, Any]]:
        return [shown for name, at in list(started) if (shown := self.board.since(name, at)) is not None]

    def cancel(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The command that asked for run `token` was interrupted (Ctrl-C): end that run at its next
        checkpoint; the command still gets its (interrupted) result on its own connection."""
        with self._lock:
            found = self._cancels.get(str(args.get("token") or "")) if args.get("token") else None
        if found is not None:
            found.set()
        return {"cancelled": found is not None}

    def mcp_search(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from .mcp import SEARCH_K  # here: the MCP SDK costs every CLI command that looks for a holder ~1 s

        k = int(args.get("k") or SEARCH_K)
        return self._tool(lambda query, caller: self.tools.search(query, caller, k), str(args.get("query", "")), args)

    def mcp_fetch(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return self._tool(self.tools.fetch, str(args.get("id", "")), args)

    @staticmethod
    def _tool(tool: Callable[[str, Caller], Any], value: str, args: Mapping[str, Any]) -> dict[str, Any]:
        from .mcp import ToolError  # here: as above, the MCP SDK only in a holder

        user = str(args.get("user") or "").strip()
        if not user:
            raise InletError("MCP tools act as one user: 'user' is required")
        try:
            return tool(value, Caller(key_name="local", user=user, admin=False)).model_dump()
        except (ToolError, ApiError) as exc:
            raise InletError(str(exc)) from None


def _no_session(ctx: Any) -> Caller:
    """The tools are called directly here, never through an MCP session (which would name a caller)."""
    raise InletError("local MCP calls name their user in the request")


def start_local_commands(
    settings: Settings,
    index: Any,
    state: Any,
    run: Runner,
    board: ProgressBoard | None = None,
    *,
    hand_over: Callable[[], None] | None = None,
    unrecorded: Mapping[str, RunRecord] | None = None,
) -> LocalServer | None:
    """Answer local commands on `<index>/inlet.sock`; None when not needed or not possible.
    `board` is where the engine that `run` uses reports progress (its `on_progress`); `hand_over`
    (an `inlet mcp` holder's) lets go of the index for a daemon or server that starts;
    `unrecorded` the runs whose end the engine could not record yet (`Engine.unrecorded`), which
    `status` shows as they ended.

    Only for an embedded index (with `[index].chroma_url` every process opens the index itself).
    A channel that cannot start is logged and skipped: the holder's own work goes on.
    """
    if settings.index.chroma_url:
        return None
    commands = LocalCommands(settings, index, state, run, board)
    commands.release = hand_over
    commands.unrecorded = unrecorded if unrecorded is not None else {}
    try:
        return LocalServer(Path(settings.index.path), commands.handlers(), config_id=settings.fingerprint())
    except (InletError, OSError) as exc:
        log.warning("local commands (inlet search/sync/status/mcp beside this process) are unavailable: %s", exc)
        return None


def runs_from(payload: Mapping[str, Any]) -> list[RunResult]:
    """The `RunResult`s of a forwarded `run`, for the CLI's usual report."""
    fields = RunResult.__dataclass_fields__
    return [RunResult(**{k: v for k, v in run.items() if k in fields}) for run in payload["runs"]]


def progress_from(payload: Mapping[str, Any]) -> list[tuple[RunRecord, RunProgress]]:
    """The answer of `progress` as the engine's `on_progress` arguments, for the CLI's display."""
    shown = []
    for entry in payload.get("runs") or ():
        run, progress = entry["run"], entry["progress"]
        shown.append(
            (
                RunRecord(**{k: v for k, v in run.items() if k in RunRecord.__dataclass_fields__}),
                RunProgress(**{k: v for k, v in progress.items() if k in RunProgress.__dataclass_fields__}),
            )
        )
    return shown


__all__ = ["LocalCommands", "ProgressBoard", "Runner", "progress_from", "runs_from", "start_local_commands"]
