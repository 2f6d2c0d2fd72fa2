"""The `inlet` command (docs/reference/cli.md).

Exit codes: 0 success, 1 the work failed, 2 bad usage or configuration, 3 a source refused its
credentials, 4 a server's port is in use. Heavy modules (torch, chromadb, the SDKs) are imported
inside the commands that use them, so `inlet --help` stays instant; inlet's own modules too, since
each pulls in some of them (tests/test_cli_imports.py holds the light commands to it). What a
command runs is assembled by `inlet.compose`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

from inlet.errors import ConfigError, InletError
from inlet.logs import redact
from inlet.terminal import one_line

log = logging.getLogger("inlet")
T = TypeVar("T")


def _verbose(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-v", "--verbose", count=True, help="more log output (-vv: debug)")(func)


def _output(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--json", "as_json", is_flag=True, help="print one JSON document on stdout")(func)
    return _verbose(func)


def _config(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="config file (default: $INLET_CONFIG, else ./config.toml)",
    )(func)


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    return _output(_config(func))


def _serving(func: Callable[..., Any]) -> Callable[..., Any]:
    """`_common` without --json: a server (serve, daemon, mcp) runs until stopped and prints no result."""
    return _verbose(_config(func))


def _setup_logging(verbose: int) -> None:
    from inlet.logs import configure

    configure(verbose)


def _settings(config_path: str | None) -> Any:
    """The configuration, with every configured path and the index's database secret checked
    (exit 2 naming the file, key, source and path)."""
    from inlet.config import check_index_secret, find_config, load_config

    settings = load_config(find_config(config_path), check_paths=True)
    _LOADED[:] = [settings.file, settings.index.path]
    check_index_secret(settings, os.environ)
    return settings


_LOADED: list[Any] = []  # the configuration file this command read and its index folder, for errors found after


def _preflight(settings: Any, names: list[str]) -> None:
    """Configuration problems that need no network (unset secrets, missing folders), before any run."""
    from inlet.config import preflight

    preflight(settings, names, os.environ)


def _emit(as_json: bool, payload: Any, prose: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        prose()


def _fail(exc: InletError) -> None:
    """The error on stderr and its exit code; a configuration error found after the file was read
    (when the server or the audit log opens) names the file too."""
    message = str(exc)
    if isinstance(exc, ConfigError) and _LOADED and _LOADED[0] and not message.startswith(str(_LOADED[0])):
        message = f"{_LOADED[0]}: {message}"
    click.echo(f"inlet: {redact(message)}", err=True)
    sys.exit(exc.exit_code)


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-01-31 or 2024-01-31T12:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _named_user(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --user that is given names someone: an empty one (an unset shell variable) is exit 2, not
    a search as a user who sees only public items, nor every line of the audit log."""
    if value is not None and not value.strip():
        raise click.BadParameter("the user is empty (an unset shell variable?): name one, an email", param=param)
    if value is not None:
        from inlet.connectors.model import well_formed_user

        if not well_formed_user(value.strip()):  # the API's rule: `Alice <a@x>` or `a@x, b@x` names nobody
            raise click.BadParameter(f"{value.strip()!r} is not one well-formed email address: name one user")
    return value.strip() if value is not None else None


class _Inlet(click.Group):
    """The commands, each of which ends a failure its index folder explains (read-only, full, another
    account's: `inlet.index.disk`) in one line naming `[index] path`, the folder and the cause, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        _LOADED.clear()  # what an earlier command in this process (a test's) read is not this one's
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if len(_LOADED) < 2:  # no configuration read yet: no index folder to blame
                raise
            from inlet.index.disk import storage_error

            error = storage_error(exc, _LOADED[1])
            if error is None:
                raise
            log.debug("the index folder failed", exc_info=True)
            _fail(error)


@click.group(cls=_Inlet, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="inlet")
def cli() -> None:
    """inlet: workplace data (Slack, Google Drive, Microsoft 365, Gmail, folders) as permission-aware agent context."""
    from inlet.terminal import make_visible

    make_visible()  # synced text never reaches the terminal as control sequences (inlet/terminal.py)


STOPPING = (
    "inlet: stopping at the next checkpoint (at most {grace:.0f}s; Ctrl-C again quits at once); what is indexed is kept"
)

UPGRADE_PENDING = (
    "index written by an earlier inlet: the next command that opens it, to read or to write (search, mcp, sync, "
    "backfill, backup, daemon, serve, ...: all but status and audit), upgrades its schema ({steps} step(s)), after "
    "which the earlier inlet refuses it; status reads it as it is"
)


@contextmanager
def _engine(settings: Any, progress: bool) -> Iterator[Any]:
    """An engine whose runs SIGINT/SIGTERM end at their next checkpoint (recorded `interrupted`)."""
    from inlet.compose import assembled
    from inlet.process import stop_on_signals
    from inlet.progress import progress_display
    from inlet.sync.engine import STOP_GRACE

    with progress_display(progress) as on_progress:
        stop = stop_on_signals(STOPPING.format(grace=STOP_GRACE), bound=STOP_GRACE)
        with assembled(settings, stop, on_progress=on_progress) as parts:
            yield parts.engine


def _report_runs(results: list[Any], as_json: bool, resume: str = "sync", config_path: str | None = None) -> None:
    """Each run's outcome; a backfill pass that read only items modified since a date says so; an
    interrupted one with the command that resumes it, on the same configuration (`--config` as
    given: without it the command would read another index) and its `--since` (a backfill without
    it starts the full pass instead)."""
    import shlex

    config = f" --config {shlex.quote(config_path)}" if config_path else ""

    def prose() -> None:
        for r in results:
            line = (
                f"{r.source}: {r.outcome} — {r.upserted} upserted, {r.deleted} deleted, "
                f"{r.skipped} skipped, {r.errors} errors in {r.seconds:.1f}s"
            )
            if r.since:
                line += f"\n  a backfill of the items modified since {r.since} only"
            if r.outcome == "interrupted":
                since = f" --since {shlex.quote(r.since)}" if r.since and resume == "backfill" else ""
                again = f"inlet {resume} {shlex.quote(r.source)}{since}{config}"
                line += f"\n  progress is kept: `{again}` resumes from the last checkpoint"
            elif r.error:
                line += f"\n  error: {r.error}"
            click.echo(line)

    _emit(as_json, {"runs": [r.as_json() for r in results]}, prose)
    if any(r.credentials_refused for r in results):
        sys.exit(3)
    if any(r.outcome in ("failed", "interrupted") for r in results):
        sys.exit(1)


@cli.command()
@click.argument("source")
@click.option("--since", help="only items modified on or after this date or time (2024-01-31, 2024-01-31T12:00:00Z)")
@click.option("--restart", is_flag=True, help="start over instead of resuming an interrupted backfill")
@_common
def backfill(
    source: str, since: str | None, restart: bool, config_path: str | None, as_json: bool, verbose: int
) -> None:
    """Full historical sync of SOURCE (resumes an interrupted one unless --restart)."""
    _setup_logging(verbose)
    try:
        settings = _settings(config_path)
        settings.source(source)

        def here() -> list[Any]:
            with _engine(settings, progress=not as_json) as engine:
                _preflight(settings, [source])
                return [engine.run(source, "backfill", since=_date(since), restart=restart)]

        results = _held_or_here(
            settings,
            lambda holder: _runs_in_holder(
                holder, settings, [source], "backfill", since=_date(since), restart=restart, progress=not as_json
            ),
            here,
        )
    except InletError as exc:
        _fail(exc)
    _report_runs(results, as_json, resume="backfill", config_path=config_path)


@cli.command()
@click.argument("sources", nargs=-1)
@_common
def sync(sources: tuple[str, ...], config_path: str | None, as_json: bool, verbose: int) -> None:
    """One incremental sync of the named sources (default: all).

    A source another process is syncing (a daemon, on this host or another) is not synced here:
    its entry is failed, naming the holder, the others are synced, and the exit is 1."""
    _setup_logging(verbose)
    from inlet.sync.engine import synced_unless_busy

    try:
        settings = _settings(config_path)
        names = [settings.source(s).name for s in sources] or [s.name for s in settings.sources]

        def here() -> list[Any]:
            with _engine(settings, progress=not as_json) as engine:
                _preflight(settings, names)
                return [
                    synced_unless_busy(name, partial(engine.run, name, "sync"))
                    for name in names
                    if not engine.stop.is_set()
                ]

        results = _held_or_here(
            settings, lambda holder: _runs_in_holder(holder, settings, names, "sync", progress=not as_json), here
        )
    except InletError as exc:
        _fail(exc)
    _report_runs(results, as_json, config_path=config_path)


@cli.command()
@click.argument("sources", nargs=-1)
@_common
def reindex(sources: tuple[str, ...], config_path: str | None, as_json: bool, verbose: int) -> None:
    """Re-embed the stored texts of SOURCES (default: all) with the configured model and backend.

    No source is read again. Resumable; the old vectors stay until every source is done. On the
    folder index, stop the daemon or server first: nothing answers searches meanwhile."""
    _setup_logging(verbose)
    try:
        settings = _settings(config_path)
        names = [settings.source(s).name for s in sources]
        from inlet.index.reindex import run_reindex
        from inlet.index.store import Index
        from inlet.progress import count_display

        with (
            Index(settings.index, reindexing=True, role="reindex") as index,
            count_display(not as_json, "chunks") as bar,
        ):
            result = run_reindex(
                index, names, None if bar is None else lambda done, total: bar("re-embedding", done, total)
            )
    except InletError as exc:
        _fail(exc)

    def prose() -> None:
        if result.up_to_date:
            click.echo("the index already holds vectors of the configured model and backend")
            return
        for name, chunks in result.embedded.items():
            click.echo(f"{name}: {chunks} chunks re-embedded")
        click.echo(
            "switched to the configured model and backend"
            if result.switched
            else f"still to reindex: {', '.join(result.remaining)} (searches use the old vectors until then)"
        )

    _emit(as_json, result.as_json(), prose)


@cli.command()
@click.argument("source")
@_common
def forget(source: str, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Delete every document, vector and the sync state of SOURCE, a source no longer in the config.

    Refused for a configured source (remove it from the config first) and for one a running daemon
    schedules. Interrupted, it is run again."""
    _setup_logging(verbose)
    try:
        from inlet.sync.forget import refuse_configured

        settings = _settings(config_path)
        refuse_configured(settings, source)
        report = _held_or_here(
            settings, lambda holder: holder.call("forget", {"source": source}), lambda: _forget_here(settings, source)
        )
    except InletError as exc:
        _fail(exc)
    _emit(
        as_json,
        report,
        lambda: click.echo(
            f"{source}: {report['documents']} documents and {report['chunks']} chunks deleted with their vectors"
            + (", and its checkpoint and run history" if report["state"] else "")
        ),
    )


@cli.command()
@click.argument("query")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100), help="number of results")
@click.option("--source", "sources", multiple=True, help="only these sources (repeatable)")
@click.option("--user", help="search as this user (default: operator, sees everything)", callback=_named_user)
@_common
def search(
    query: str, k: int, sources: tuple[str, ...], user: str | None, config_path: str | None, as_json: bool, verbose: int
) -> None:
    """Search the index as the API does."""
    _setup_logging(verbose)
    if not query.strip():
        raise click.BadParameter("the query is empty: say what to look for", param_hint="QUERY")
    try:
        settings = _settings(config_path)
        for name in sources:
            settings.source(name)
        args = {"query": query, "k": k, "sources": list(sources), "user": user}
        payload = _held_or_here(
            settings,
            lambda holder: holder.call("search", args),
            lambda: _search_here(settings, query, k, sources, user),
        )
    except InletError as exc:
        _fail(exc)

    def prose() -> None:
        if not payload["results"]:
            click.echo("no results")
        for n, hit in enumerate(payload["results"], 1):
            when = hit["updated_at"] or ""
            click.echo(f"[{n}] {hit['title']} — {hit['source']} — {when} — {hit['url']}")
            text = hit["text"]
            click.echo("    " + text[:300].replace("\n", " ") + ("…" if len(text) > 300 else ""))

    _emit(as_json, payload, prose)


def _search_here(settings: Any, query: str, k: int, sources: tuple[str, ...], user: str | None) -> dict[str, Any]:
    """The search run in this process, which opens the index (nobody else holds it)."""
    from inlet.index.embedding import serve_queries
    from inlet.index.search import SearchRequest, answer
    from inlet.index.store import Index
    from inlet.storage import open_backend

    request = SearchRequest(
        query=query, k=k, sources=sources, user=user, recency_half_life_days=settings.server.recency_half_life_days
    )
    hits: list[Any] = []
    took = 0.0
    extra: dict[str, Any] = {"match": "none", "interpreted": {}}
    with Index(settings.index, configured=settings.source_names()) as index:
        if _indexed(index, sources):
            serve_queries()
            index.embedder.encode_query("warm up")  # the model loads here: took_ms is the search alone
            got = answer(index, request)
            hits, took, extra = got.hits, got.took_ms, {"match": got.match, "interpreted": got.interpreted}
        else:
            click.echo(
                f"inlet: nothing is indexed{' in ' + ', '.join(sources) if sources else ''} "
                f"yet (index in {open_backend(settings.index).location}): run `inlet backfill SOURCE` first",
                err=True,
            )
    return {"results": [h.as_dict() for h in hits], **extra, "took_ms": round(took, 1)}


def _indexed(index: Any, sources: tuple[str, ...]) -> int:
    """Documents in the index (of `sources` when given)."""
    counts = index.catalog.counts()
    return sum(docs for name, (docs, _chunks) in counts.items() if not sources or name in sources)


def _held_or_here(settings: Any, ask: Callable[[Any], T], here: Callable[[], T]) -> T:
    """`ask(holder)` of the process holding the index when one answers, else `here()`, which opens
    the index in this process; a daemon or server that holds it but does not answer yet (starting)
    is waited for (`inlet.server.local_channel.held_or_here`)."""
    from inlet.server.local_channel import held_or_here

    return held_or_here(settings, ask, here)


def _forget_here(settings: Any, source: str) -> dict[str, Any]:
    from inlet.compose import forget

    return forget(settings, source).as_json()


def _backup_here(settings: Any, target: Path) -> dict[str, Any]:
    from inlet.index.backup import backup_index
    from inlet.index.store import Index

    with Index(settings.index) as index:
        return backup_index(index, target).as_json()


def _holder(settings: Any) -> Any:
    """The process holding the index (a daemon or server), to forward the command to; else None."""
    from inlet.server.local_channel import holder_for

    return holder_for(settings)


def _runs_in_holder(
    holder: Any,
    settings: Any,
    names: list[str],
    kind: str,
    since: datetime | None = None,
    restart: bool = False,
    progress: bool = False,
) -> list[Any]:
    """The runs, made by the process holding the index, with the secrets of this shell (the
    variables the sources' `*_env` keys name, checked here first as for a direct run). Ctrl-C (or
    SIGTERM) asks it to end them at their next checkpoint, and the command reports them
    `interrupted`, as a direct run would; a second Ctrl-C quits at once (the holder's run then
    ends at its next checkpoint on its own). With `progress`, a terminal shows the progress bar a
    direct run shows, drawn from what the holder reports (`_drawn_from`)."""
    import uuid

    from inlet.config import source_secrets

    _preflight(settings, names)
    from inlet.process import stop_on_signals
    from inlet.progress import progress_display
    from inlet.server.local_commands import runs_from
    from inlet.sync.engine import STOP_GRACE

    log.info("asking the process holding the index to %s %s", kind, ", ".join(names))
    token = uuid.uuid4().hex
    stop = stop_on_signals(STOPPING.format(grace=STOP_GRACE), bound=STOP_GRACE)

    def cancel_when_stopped() -> None:
        stop.wait()
        try:
            holder.call("cancel", {"token": token})
        except InletError as exc:  # the holder went away: the run's own answer says what happened
            log.warning("could not ask the process holding the index to stop: %s", exc)

    threading.Thread(target=cancel_when_stopped, daemon=True, name="inlet-cancel").start()
    args = {
        "sources": names,
        "kind": kind,
        "restart": restart,
        "since": since.isoformat() if since else None,
        "env": source_secrets(settings, names, os.environ),
    }
    with progress_display(progress) as on_progress, _drawn_from(holder, token, on_progress):
        results = runs_from(holder.call("run", {**args, "token": token}))
    for run in results:  # the holder logged a failure in its own log; this shell's stderr says it too
        if run.outcome == "failed":
            log.error("%s" if run.credentials_refused else f"source {run.source!r} failed: %s", run.error)
    return results


@contextmanager
def _drawn_from(holder: Any, token: str, on_progress: Any) -> Iterator[None]:
    """While inside, ask the holder every PROGRESS_EVERY seconds (on a connection of its own) for
    the progress of forwarded run `token` and give it to `on_progress` (None: nothing is drawn);
    once more at the end, so the bar ends where the run did. A holder that cannot say (an older
    inlet, or gone: the run's own answer says so) leaves the display as it is."""
    if on_progress is None:
        yield
        return
    from inlet.server.local_commands import progress_from
    from inlet.sync.engine import PROGRESS_EVERY

    ended = threading.Event()

    def draw() -> bool:
        try:
            shown = progress_from(holder.call("progress", {"token": token}))
        except InletError as exc:
            log.debug("no progress from the process holding the index: %s", exc)
            return False
        for run, progress in shown:
            on_progress(run, progress)
        return True

    def watch() -> None:
        while not ended.wait(PROGRESS_EVERY) and draw():
            pass

    watcher = threading.Thread(target=watch, daemon=True, name="inlet-progress")
    watcher.start()
    try:
        yield
    finally:
        ended.set()
        watcher.join()
    draw()


@cli.command()
@click.argument("source", required=False)
@_common
def status(source: str | None, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Each source (or SOURCE alone, with the items its last run skipped): documents, chunks, last
    run, next run."""
    _setup_logging(verbose)
    try:
        from inlet.status import sources_status

        settings = _settings(config_path)
        if source is not None:
            settings.source(source)  # an unknown name is exit 2, naming the configured ones
        _refuse_other_vectors(settings)
        holder = _holder(settings)
        payload = holder.call("status") if holder is not None else sources_status(settings)
        if source is not None and source not in {s["name"] for s in payload["sources"]}:
            raise ConfigError(
                f"source {source!r} is configured in {settings.file} but the running daemon does not know it "
                "(it read the configuration before the source was added): restart it to read the new one"
            )
    except InletError as exc:
        _fail(exc)
    if source is not None:
        payload = {**payload, "sources": [s for s in payload["sources"] if s["name"] == source]}

    def prose() -> None:
        if payload.get("upgrade"):
            click.echo(UPGRADE_PENDING.format(steps=len(payload["upgrade"])))
        if not payload["sources"]:
            click.echo("no sources configured: add [[sources]] to the config (config.example.toml documents each type)")
        for s in payload["sources"]:
            _print_source(s, detail=source is not None)
        if source is None:
            _print_unconfigured(payload.get("unconfigured") or [])

    _emit(as_json, payload, prose)


def _print_unconfigured(sources: list[dict[str, Any]]) -> None:
    """The sources the index holds that the config does not name, with the command removing each."""
    for s in sources:
        if s.get("state_only"):
            click.echo(
                f"not configured: {s['name']}, no documents left, but its sync state (checkpoint, runs) is: "
                f"an interrupted `inlet forget`?\n  `{s['remove']}` finishes deleting it"
            )
            continue
        click.echo(
            f"not configured: {s['name']}, {s['documents']} documents, {s['chunks']} chunks (not served; "
            f"removed or renamed in the config?)\n  `{s['remove']}` deletes them; put the source back in the "
            "config to keep them"
        )


@cli.command()
@click.option("--user", help="only the lines acting for this user (email)", callback=_named_user)
@click.option("--since", help="only the lines from this date or time on (2024-01-31, 2024-01-31T12:00:00Z)")
@_common
def audit(user: str | None, since: str | None, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Who asked what: the lines of [server] audit_log (rotated files too), oldest first."""
    _setup_logging(verbose)

    try:
        settings = _settings(config_path)
        target = settings.server.audit_log
        if not target or target == "-":
            raise ConfigError(
                '[server] audit_log names no file: set it to a path ("-" writes to the log '
                "stream, which inlet cannot read back)"
            )
    except InletError as exc:
        _fail(exc)
    from inlet.server.audit import acted_for, read_audit, spelt

    lines = list(read_audit(Path(target).expanduser(), user, _date(since)))

    def prose() -> None:  # what a request or token named is `spelt`: one line per request, no look-alike
        for line in lines:
            who = spelt(str(line.get("subject") or line.get("key")))
            what = spelt(str(line.get("route") or line.get("tool") or "tools/call (no tool named)"))
            digest = line.get("query_sha256") or line.get("requested_id_sha256")
            asked = line.get("query") or line.get("requested_id") or (f"sha256:{digest[:12]}" if digest else "")
            click.echo(
                f"{line.get('time')}  {who}  for {acted_for(line)}  {what}  "
                f"{line.get('status')}  {line.get('ms')} ms  {asked!r}  {len(line.get('doc_ids') or [])} doc(s)"
            )

    _emit(as_json, {"lines": lines}, prose)


@cli.command()
@click.argument("dest", type=click.Path(file_okay=False))
@_common
def backup(dest: str, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Copy the folder index to DEST (new or empty), consistent even while a daemon writes (it
    pauses its writes between two batches for the copy)."""
    _setup_logging(verbose)
    try:
        from inlet.index.backup import folder_index

        settings = _settings(config_path)
        folder_index(settings.index, "backup")  # before a database or Chroma server is reached
        target = Path(os.path.abspath(dest))  # "../bk" written as the folder it names
        report = _held_or_here(
            settings,
            lambda holder: holder.call("backup", {"dest": str(target)}),
            lambda: _backup_here(settings, target),
        )
    except InletError as exc:
        _fail(exc)
    _emit(
        as_json,
        report,
        lambda: click.echo(
            f"backup written to {report['dest']}: {report['files']} files, {report['bytes'] / 1e6:.1f} MB in "
            f"{report['seconds']:.1f} s (writes paused {report['paused_seconds']:.1f} s)"
        ),
    )


@cli.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "to", type=click.Path(file_okay=False), help="restore here (default: [index] path)")
@click.option("--replace", is_flag=True, help="move an index already there aside (PATH.replaced-TIME)")
@_common
def restore(src: str, to: str | None, replace: bool, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Put the backup SRC back as the folder index; the next sync continues from its checkpoints."""
    _setup_logging(verbose)
    try:
        from inlet.index.backup import folder_index, restore_index

        target = Path(to) if to else folder_index(_settings(config_path).index, "restore")
        aside = restore_index(Path(src), target, replace)
    except InletError as exc:
        _fail(exc)
    payload = {"restored": str(target), "replaced": str(aside) if aside else None}
    _emit(
        as_json,
        payload,
        lambda: click.echo(
            f"restored {src} to {target}" + (f"; the index that was there is now {aside}" if aside else "")
        ),
    )


def _refuse_other_vectors(settings: Any) -> None:
    """`inlet status` of an index whose vectors came from another model or backend than [index]
    asks for is refused, naming both and `inlet reindex`, as every command that opens the vectors
    refuses it (a reindex to the configured ones under way is not refused: status shows it)."""
    from inlet.index.fingerprint import check
    from inlet.storage import open_backend

    record, where = open_backend(settings).read_record()  # the folder's catalog is not opened: not upgraded
    wanted = {"model": settings.index.model, "backend": settings.index.backend}
    pending = record.pending if record is not None else None
    if record is not None and not (pending and {"model": pending.model, "backend": pending.backend} == wanted):
        check(where, record, wanted)
        _refuse_lost_vectors(settings)


def _refuse_lost_vectors(settings: Any) -> None:
    """`inlet status` of an index folder whose `chroma/` lacks the vectors of the catalog's chunks
    (lost, or left out of a backup) is refused naming `inlet reindex`, as every command that opens
    the vectors refuses it (a reindex restoring them is under way: not refused, as above)."""
    from inlet.errors import VectorsLost
    from inlet.index.backup import lacking_vectors
    from inlet.index.vectors import folder_lost_words

    if settings.index.database_url or settings.index.chroma_url:
        return
    folder = Path(settings.index.path)
    lacking = lacking_vectors(folder, copy=False)
    if lacking is not None:
        raise VectorsLost(folder_lost_words(folder / "chroma", lacking[1], lacking[0]))


def _print_source(s: dict[str, Any], detail: bool) -> None:
    """One source's status in prose; `detail` adds the items its last run skipped, with reasons."""
    last = s["last_run"]
    click.echo(f"{s['name']} ({s['type']}): {s['documents']} documents, {s['chunks']} chunks")
    back = s.get("indexed_since")
    if back is not None:
        click.echo(
            "  indexed: "
            + (
                "everything"
                if back == "all"
                else f"back to {back}" + (" (the backfill goes further back)" if s.get("running") else "")
            )
        )
    if last:
        click.echo(
            f"  last run: {last['kind']} {last['outcome']}, {last['started_at']} to {last['finished_at']} — "
            f"{last['upserted']} upserted, {last['deleted']} deleted, {last['skipped']} skipped, "
            f"{last['errors']} errors" + (f"\n  error: {one_line(last['error'])}" if last["error"] else "")
        )
        skips: dict[str, Any] = s.get("recent_skips") or {"items": []}
        items = skips["items"]
        if items and detail:
            # the last run left none out when it ended ok; a failed or interrupted one may have read nothing
            did = "left no item out" if last["outcome"] == "ok" else f"ended {last['outcome']}"
            when = (
                "the last run"
                if skips["finished_at"] == last["finished_at"]
                else f"the last run {did}; the {skips['kind']} that ended {skips['finished_at']}"
            )  # skipped by policy or unreadable (its errors): each item says which
            click.echo(f"  items not indexed ({when}; {len(items)} of {skips['total']} listed):")
            for item in items:
                mark = "unreadable" if item.get("failed") else "skipped"
                title, item_id, reason = (one_line(str(item[key])) for key in ("title", "id", "reason"))
                click.echo(f"    {title} [{item_id}] — {mark}: {reason}")
        elif items:
            click.echo(
                f"  {skips['total']} item(s) not indexed by the {skips['kind']} that ended "
                f"{skips['finished_at']}: `inlet status {s['name']}` lists them with reasons"
            )
    else:
        click.echo("  never run")
    if s.get("running"):
        click.echo("  " + _running_line(s["running"]))
    if s.get("failure_streak"):
        click.echo(f"  failing: {s['failure_streak']} failed run(s) in a row")
    prune = s.get("last_prune")
    if prune:  # beside the syncs: a prune's outcome is no sync's (its success leaves a failing source failing)
        click.echo(
            f"  last prune: {prune['outcome']}, ended {prune['finished_at']} — {prune['deleted']} deleted"
            + (f"; error: {one_line(prune['error'])}" if prune["error"] else "")
        )
    lag = s.get("lag_seconds")
    click.echo(
        f"  last success: {s.get('last_success') or 'never'}" + (f" (lag {_duration(lag)})" if lag is not None else "")
    )
    unscheduled = s["next_run"] and s.get("scheduled") is False and not s.get("paused")
    click.echo(
        f"  next run: {s['next_run'] or 'on demand'}"
        + (" (schedule paused by an operator)" if s.get("paused") else "")
        + (" (when a daemon runs: none runs this source now)" if unscheduled else "")
    )
    if s.get("recorded_ahead_seconds"):
        click.echo(
            f"  clock: its last run is recorded {_duration(s['recorded_ahead_seconds'])} in this host's future "
            "(a host's clock is wrong, or this one was set back): the schedule counts from now"
        )
    if s.get("retry_not_before"):
        click.echo(
            f"  its service asked for no call before {s['retry_not_before']} (Retry-After): "
            "the daemon's next run waits for it"
        )
    if s.get("holder"):  # PostgreSQL: the daemon syncing it now, on any host
        click.echo(f"  held by {s['holder']['holder']} (lease until {s['holder']['lease_expires']})")
    if s.get("events"):
        ev = s["events"]
        click.echo(
            f"  change events: {'live' if ev['live'] else 'down'}"
            + (f" ({ev['reason']})" if not ev["live"] and ev.get("reason") else "")
            + "; last event "
            f"{ev['last_event_at'] or 'none yet'}"
            + (f"; event to searchable {ev['latency_seconds']:.1f}s" if ev.get("latency_seconds") is not None else "")
        )


def _running_line(run: dict[str, Any]) -> str:
    """'running: backfill since ... — 120 of 600 files, 118 indexed, 1204 chunks embedded, about 4.0m left'."""
    parts = [f"{run['done'] or 0} of {run['total']} {run['unit'] or 'items'}"] if run["total"] is not None else []
    parts += [f"{run['items']} items", f"{run['upserted']} indexed", f"{run['embedded']} chunks embedded"]
    left = f", about {_duration(run['eta_seconds'])} left" if run["eta_seconds"] is not None else ""
    return f"running: {run['kind']} since {run['started_at']} — {', '.join(parts)}{left}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@cli.command()
@_common
def connectors(config_path: str | None, as_json: bool, verbose: int) -> None:
    """The installed connector types and their config keys."""
    _setup_logging(verbose)
    from inlet.connectors.registry import available, connector_class, refused

    out: list[dict[str, Any]] = [
        {"type": name, "module": ep.value, "error": why, "refused": True, "keys": []}
        for name, pairs in refused().items()
        for ep, why in pairs
    ]
    for name, ep in sorted(available().items()):
        try:
            cls = connector_class(name)
        except Exception as exc:  # a broken plug-in must not hide the others
            out.append({"type": name, "module": ep.value, "error": str(exc), "keys": []})
            continue
        keys = [
            {"key": key, "required": field.is_required(), "description": field.description or ""}
            for key, field in cls.Config.model_fields.items()
            if key not in ("type",)
        ]
        out.append({"type": name, "module": ep.value, "keys": keys})
    out.sort(key=lambda c: c["type"])

    def prose() -> None:
        for c in out:
            state = "REFUSED" if c.get("refused") else "BROKEN"
            click.echo(f"{c['type']}  ({c['module']})" + (f"  {state}: {c['error']}" if c.get("error") else ""))
            for key in c["keys"]:
                click.echo(f"    {key['key']}{' (required)' if key['required'] else ''}  {key['description']}")

    _emit(as_json, {"connectors": out}, prose)


@cli.command()
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65534),
    help="HTTP port (HTTPS uses the next one); default: any free",
)
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False),
    help="write the config here instead of printing "
    "(an existing file only if the sandbox wrote it and it is unchanged, unless --force)",
)
@click.option("--force", is_flag=True, help="with --write-config: overwrite the file even if it was edited")
@click.option("-v", "--verbose", count=True)
def sandbox(port: int, write_config: str | None, force: bool, verbose: int) -> None:
    """Serve the emulated Slack, Google Drive, Microsoft Graph and Gmail services until Ctrl-C."""
    _setup_logging(verbose)
    from inlet.process import stop_on_signals, wait
    from inlet.sandbox.server import Sandbox

    from inlet.sandbox.config_file import check_overwrite, stamped

    target = Path(write_config) if write_config else None
    try:
        if target is not None and not force:
            check_overwrite(target)  # before the sandbox starts: exit 2, nothing served
    except InletError as exc:
        _fail(exc)
    keep = (target.absolute().parent if target else Path.cwd()) / ".inlet"  # the config's index folder
    stop = stop_on_signals()
    try:  # its credentials and CA files stay there, so the config stays valid when the sandbox stops
        sb = Sandbox(port=port, workdir=keep / "sandbox").start()
    except InletError as exc:
        _fail(exc)
    try:
        from inlet.sandbox.idp import server_oauth_toml

        text, env = sb.config(index_path=".inlet")
        text, env = _with_admin_key(text, env, keep)
        text += "\n" + server_oauth_toml(sb.ctx)  # no resource_url: the address inlet listens on
        if target is not None:
            target.write_text(stamped(text))
            click.echo(f"# config written to {write_config}")
        else:
            click.echo(text)
        for name, value in env.items():
            click.echo(f"export {name}={value}")
        click.echo(f"# sandbox serving on {sb.ctx.http_url} and {sb.ctx.https_url}; Ctrl-C to stop", err=True)
        click.echo(
            "# OAuth: with `inlet serve` running, add http://127.0.0.1:8484/mcp to an MCP client; it signs "
            f"in at the sandbox provider {sb.ctx.http_url}/idp as a sandbox user you pick",
            err=True,
        )
        wait(stop)
    finally:
        sb.stop()


SANDBOX_KEY_ENV = "INLET_SANDBOX_KEY"


def _with_admin_key(toml: str, env: dict[str, str], keep_in: Path | None = None) -> tuple[str, dict[str, str]]:
    """The sandbox config plus an admin API key (and its value), so `inlet serve` on it answers the
    documentation's examples instead of 401 to everything. With `keep_in` (the config's index folder) the
    key is kept there and reused, so an exported key keeps working when the sandbox restarts."""
    import secrets

    from inlet.sandbox.config_file import kept_key

    block = f'\n[[server.api_keys]]\nname = "sandbox-admin"\nkey_env = "{SANDBOX_KEY_ENV}"\nadmin = true\n'
    key = kept_key(keep_in) if keep_in is not None else secrets.token_urlsafe(24)
    return toml.rstrip() + "\n" + block, {**env, SANDBOX_KEY_ENV: key}


@cli.command()
@click.option(
    "--to",
    "to_config",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="the configuration naming the storage to copy the index into",
)
@_common
def migrate(to_config: str, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Copy the index (documents, vectors, ACLs, checkpoints, runs) into another storage, without
    re-embedding; run it again to resume an interrupted copy."""
    _setup_logging(verbose)
    try:
        from inlet.config import load_config
        from inlet.migrate import migrate as copy_index
        from inlet.progress import count_display

        settings, target = _settings(config_path), load_config(to_config)
        with count_display(not as_json, "documents") as progress:
            report = copy_index(settings, target, progress)
    except InletError as exc:
        _fail(exc)
    _emit(
        as_json,
        report.as_json(),
        lambda: click.echo(
            f"copied {report.copied} documents ({report.chunks} chunks, no re-embedding), {report.skipped} "
            f"already there; counts match in {len(report.counts)} source(s)"
        ),
    )


def _listen_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--port", type=click.IntRange(0, 65535), help="listen on this port (overrides [server] port)")(
        func
    )
    return click.option("--host", help="listen on this address (overrides [server] host)")(func)


def _listening(settings: Any, host: str | None, port: int | None) -> Any:
    """`settings` with `--host` / `--port` in place of [server] host / port."""
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return settings.model_copy(update={"server": settings.server.model_copy(update=update)}) if update else settings


@cli.command()
@_listen_options
@_serving
def serve(host: str | None, port: int | None, config_path: str | None, verbose: int) -> None:
    """The retrieval API (and MCP over HTTP at /mcp)."""
    _setup_logging(verbose)
    try:
        from inlet.compose import run_server

        run_server(_listening(_settings(config_path), host, port))
    except InletError as exc:
        _fail(exc)


@cli.command()
@click.option("--user", envvar="INLET_USER", help="act as this user (default: $INLET_USER)", callback=_named_user)
@_serving
def mcp(user: str | None, config_path: str | None, verbose: int) -> None:
    """The MCP server on stdio."""
    _setup_logging(verbose)
    try:
        from inlet.compose import local_commands_of_server
        from inlet.server.mcp import run_stdio

        settings = _settings(config_path)
        run_stdio(
            settings, user, holding=lambda index, release: local_commands_of_server(settings, index, hand_over=release)
        )
    except InletError as exc:
        _fail(exc)


@cli.command()
@click.option("--serve", "with_api", is_flag=True, help="also run the retrieval API in this process")
@_listen_options
@_serving
def daemon(with_api: bool, host: str | None, port: int | None, config_path: str | None, verbose: int) -> None:
    """Run every source on its schedule until SIGINT/SIGTERM."""
    _setup_logging(max(verbose, 1))
    try:
        from inlet.compose import run_daemon

        if not with_api and (host is not None or port is not None):
            raise click.BadParameter("--host and --port need --serve", param_hint="--host/--port")
        settings = _listening(_settings(config_path), host, port)
        _preflight(settings, [s.name for s in settings.sources])
        from inlet.process import stop_on_signals

        stop = stop_on_signals()  # before the port accepts: a signal from then on stops the daemon cleanly
        api = None
        if with_api:
            from inlet.server.daemon_api import ApiPlan

            api = ApiPlan.bind(settings)  # before the index lock, which records the API's URL
        sys.exit(run_daemon(settings, api, stop=stop))
    except InletError as exc:
        _fail(exc)


@cli.command()
@click.option("--once", is_flag=True, help="print answers to sample queries and exit instead of serving")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="the API's port (exit 4 when taken; default: 8484, or a free port when 8484 is taken)",
)
@_output  # no --config: the demo writes its own
def demo(once: bool, port: int | None, as_json: bool, verbose: int) -> None:
    """Sandbox + temporary config + backfill of all sources + the API, offline."""
    _setup_logging(verbose)
    if once and port is not None:
        raise click.BadParameter("--once serves nothing: leave --port out", param_hint="--port")
    try:
        from inlet.demo import run_demo

        sys.exit(run_demo(once=once, as_json=as_json, port=port))
    except InletError as exc:
        _fail(exc)


def main() -> None:
    cli(prog_name="inlet")
