"""The `inlet` command (contract section 3).

Exit codes: 0 success, 1 the work failed, 2 bad usage or configuration, 3 a source refused its
credentials, 4 a server's port is in use. Heavy modules (torch, chromadb, the SDKs) are imported
inside the commands that use them, so `inlet --help` stays instant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from inlet.errors import IndexLockedError, InletError

log = logging.getLogger("inlet")


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--json", "as_json", is_flag=True, help="print one JSON document on stdout")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="config file (default: $INLET_CONFIG, else ./config.toml)")(func)
    return click.option("-v", "--verbose", count=True, help="more log output (-vv: debug)")(func)


def _setup_logging(verbose: int) -> None:
    from inlet.logs import configure

    configure(verbose)


def _settings(config_path: str | None) -> Any:
    from inlet.config import find_config, load_config

    return load_config(find_config(config_path))


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
    click.echo(f"inlet: {exc}", err=True)
    sys.exit(exc.exit_code)


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-01-31 or 2024-01-31T12:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="inlet")
def cli() -> None:
    """inlet: workplace data (Slack, Google Drive, Outlook, folders) as permission-aware context for agents."""


STOPPING = ("inlet: stopping at the next checkpoint (at most {grace:.0f}s; Ctrl-C again quits at once); "
            "what is indexed is kept")


@contextmanager
def _engine(settings: Any, progress: bool) -> Iterator[Any]:
    """An engine whose runs SIGINT/SIGTERM end at their next checkpoint (recorded `interrupted`)."""
    from inlet.index.store import Index
    from inlet.process import stop_on_signals
    from inlet.progress import progress_display
    from inlet.sync.engine import STOP_GRACE, Engine
    from inlet.sync.state import StateDB

    path = Path(settings.index.path)
    with Index(settings.index) as index:
        state = StateDB(path / "state.db")
        try:
            with progress_display(progress) as on_progress:
                stop = stop_on_signals(STOPPING.format(grace=STOP_GRACE))
                yield Engine(settings, index, state, env=os.environ, on_progress=on_progress, stop=stop)
        finally:
            state.close()


def _report_runs(results: list[Any], as_json: bool, resume: str = "sync") -> None:
    def prose() -> None:
        for r in results:
            line = (f"{r.source}: {r.outcome} — {r.upserted} upserted, {r.deleted} deleted, "
                    f"{r.skipped} skipped, {r.errors} errors in {r.seconds:.1f}s")
            if r.outcome == "interrupted":
                line += (f"\n  progress is kept: `inlet {resume} {r.source}` resumes from the last checkpoint")
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
@click.option("--since", help="only items modified on or after this date (YYYY-MM-DD)")
@click.option("--restart", is_flag=True, help="start over instead of resuming an interrupted backfill")
@_common
def backfill(source: str, since: str | None, restart: bool, config_path: str | None, as_json: bool,
             verbose: int) -> None:
    """Full historical sync of SOURCE (resumes an interrupted one unless --restart)."""
    _setup_logging(verbose)
    try:
        settings = _settings(config_path)
        settings.source(source)
        with _engine(settings, progress=not as_json) as engine:
            _preflight(settings, [source])   # here: a daemon holding the index has its own environment
            results = [engine.run(source, "backfill", since=_date(since), restart=restart)]
    except InletError as exc:
        _fail(exc)
    _report_runs(results, as_json, resume="backfill")


@cli.command()
@click.argument("sources", nargs=-1)
@_common
def sync(sources: tuple[str, ...], config_path: str | None, as_json: bool, verbose: int) -> None:
    """One incremental sync of the named sources (default: all)."""
    _setup_logging(verbose)
    try:
        settings = _settings(config_path)
        names = [settings.source(s).name for s in sources] or [s.name for s in settings.sources]
        try:
            with _engine(settings, progress=not as_json) as engine:
                _preflight(settings, names)
                results = [engine.run(name, "sync") for name in names if not engine.stop.is_set()]
        except IndexLockedError:
            results = _sync_through_daemon(settings, names)
    except InletError as exc:
        _fail(exc)
    _report_runs(results, as_json)


@cli.command()
@click.argument("query")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100), help="number of results")
@click.option("--source", "sources", multiple=True, help="only these sources (repeatable)")
@click.option("--user", help="search as this user (default: operator, sees everything)")
@_common
def search(query: str, k: int, sources: tuple[str, ...], user: str | None, config_path: str | None,
           as_json: bool, verbose: int) -> None:
    """Search the index as the API does."""
    _setup_logging(verbose)
    if not query.strip():
        raise click.BadParameter("the query is empty: say what to look for", param_hint="QUERY")
    try:
        settings = _settings(config_path)
        for name in sources:
            settings.source(name)
        from inlet.index.search import SearchRequest, search as run_search
        from inlet.index.store import Index

        request = SearchRequest(query=query, k=k, sources=sources, user=user,
                                recency_half_life_days=settings.server.recency_half_life_days)
        try:
            with Index(settings.index) as index:
                from inlet.index.embedding import serve_queries

                hits: list[Any] = []
                took = 0.0
                if _indexed(index, sources):
                    serve_queries()
                    index.embedder.encode_query("warm up")   # the model loads here: took_ms is the search alone
                    hits, took = run_search(index, request)
                else:
                    click.echo(f"inlet: nothing is indexed{' in ' + ', '.join(sources) if sources else ''} "
                               f"yet (index {settings.index.path}): run `inlet backfill SOURCE` first", err=True)
            payload: dict[str, Any] = {"results": [h.as_dict() for h in hits], "took_ms": round(took, 1)}
        except IndexLockedError:
            payload = _search_through_daemon(settings, query, k, sources, user)
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


def _indexed(index: Any, sources: tuple[str, ...]) -> int:
    """Documents in the index (of `sources` when given)."""
    counts = index.catalog.counts()
    return sum(docs for name, (docs, _chunks) in counts.items() if not sources or name in sources)


def _search_through_daemon(settings: Any, query: str, k: int, sources: tuple[str, ...],
                           user: str | None) -> dict[str, Any]:
    """The index is held by another process: ask it, if it is a daemon serving the API."""
    from inlet.sync.daemon_api import daemon_api

    api = daemon_api(Path(settings.index.path))
    if api is None:
        raise   # the IndexLockedError being handled: it names the holder
    body: dict[str, Any] = {"query": query, "k": k}
    if sources:
        body["sources"] = list(sources)
    if user:
        body["user"] = user
    log.info("the daemon (pid %d) holds the index: searching through its API at %s", api.pid, api.url)
    return api.search(body)


def _sync_through_daemon(settings: Any, names: list[str]) -> list[Any]:
    """The index is held by another process: a serving daemon runs the sources; else say who holds it."""
    from inlet.sync.daemon_api import daemon_api, daemon_busy_error, daemon_holding

    path = Path(settings.index.path)
    api = daemon_api(path)
    if api is None:
        holder = daemon_holding(path)
        if holder is None:
            raise   # the IndexLockedError being handled: not a daemon, it names the holder
        raise daemon_busy_error(path, holder)
    log.info("the daemon (pid %d) holds the index: asking it to sync %s", api.pid, ", ".join(names))
    return api.sync(names)


@cli.command()
@_common
def status(config_path: str | None, as_json: bool, verbose: int) -> None:
    """Each source: documents, chunks, last run, next run."""
    _setup_logging(verbose)
    try:
        from inlet.status import sources_status

        payload = sources_status(_settings(config_path))
    except InletError as exc:
        _fail(exc)

    def prose() -> None:
        if not payload["sources"]:
            click.echo("no sources configured: add [[sources]] to the config (config.example.toml documents each type)")
        for s in payload["sources"]:
            last = s["last_run"]
            click.echo(f"{s['name']} ({s['type']}): {s['documents']} documents, {s['chunks']} chunks")
            if last:
                click.echo(f"  last run: {last['kind']} {last['outcome']} at {last['finished_at']} — "
                           f"{last['upserted']} upserted, {last['deleted']} deleted, {last['skipped']} skipped, "
                           f"{last['errors']} errors" + (f"\n  error: {last['error']}" if last["error"] else ""))
            else:
                click.echo("  never run")
            if s.get("running"):
                click.echo("  " + _running_line(s["running"]))
            if s.get("failure_streak"):
                click.echo(f"  failing: {s['failure_streak']} failed run(s) in a row")
            lag = s.get("lag_seconds")
            click.echo(f"  last success: {s.get('last_success') or 'never'}"
                       + (f" (lag {_duration(lag)})" if lag is not None else ""))
            click.echo(f"  next run: {s['next_run'] or 'on demand'}")
    _emit(as_json, payload, prose)


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
    from inlet.connectors.registry import available, connector_class

    out: list[dict[str, Any]] = []
    for name, ep in sorted(available().items()):
        try:
            cls = connector_class(name)
        except Exception as exc:  # a broken plug-in must not hide the others
            out.append({"type": name, "module": ep.value, "error": str(exc), "keys": []})
            continue
        keys = [{"key": key, "required": field.is_required(), "description": field.description or ""}
                for key, field in cls.Config.model_fields.items() if key not in ("type",)]
        out.append({"type": name, "module": ep.value, "keys": keys})

    def prose() -> None:
        for c in out:
            click.echo(f"{c['type']}  ({c['module']})" + (f"  BROKEN: {c['error']}" if c.get("error") else ""))
            for key in c["keys"]:
                click.echo(f"    {key['key']}{' (required)' if key['required'] else ''}  {key['description']}")
    _emit(as_json, {"connectors": out}, prose)


@cli.command()
@click.option("--port", default=0, type=int, help="HTTP port (HTTPS uses the next one); default: any free")
@click.option("--write-config", type=click.Path(dir_okay=False), help="write the config here instead of printing")
@click.option("-v", "--verbose", count=True)
def sandbox(port: int, write_config: str | None, verbose: int) -> None:
    """Serve the emulated Slack, Google Drive and Microsoft Graph services until Ctrl-C."""
    _setup_logging(verbose)
    from inlet.process import stop_on_signals, wait
    from inlet.sandbox.server import Sandbox

    stop = stop_on_signals()
    try:
        sb = Sandbox(port=port).start()
    except InletError as exc:
        _fail(exc)
    try:
        text, env = sb.config(index_path=".inlet")
        text, env = _with_admin_key(text, env)
        if write_config:
            Path(write_config).write_text(text)
            click.echo(f"# config written to {write_config}")
        else:
            click.echo(text)
        for name, value in env.items():
            click.echo(f"export {name}={value}")
        click.echo(f"# sandbox serving on {sb.ctx.http_url} and {sb.ctx.https_url}; Ctrl-C to stop", err=True)
        wait(stop)
    finally:
        sb.stop()


SANDBOX_KEY_ENV = "INLET_SANDBOX_KEY"


def _with_admin_key(toml: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The sandbox config plus an admin API key (and its generated value), so `inlet serve` on it
    answers the README's examples instead of 401 to everything."""
    import secrets

    block = f'\n[[server.api_keys]]\nname = "sandbox-admin"\nkey_env = "{SANDBOX_KEY_ENV}"\nadmin = true\n'
    return toml.rstrip() + "\n" + block, {**env, SANDBOX_KEY_ENV: secrets.token_urlsafe(24)}


@cli.command()
@_common
def serve(config_path: str | None, as_json: bool, verbose: int) -> None:
    """The retrieval API (and MCP over HTTP at /mcp)."""
    _setup_logging(verbose)
    try:
        from inlet.server.app import run_server

        run_server(_settings(config_path))
    except InletError as exc:
        _fail(exc)


@cli.command()
@click.option("--user", envvar="INLET_USER", help="act as this user (default: $INLET_USER)")
@_common
def mcp(user: str | None, config_path: str | None, as_json: bool, verbose: int) -> None:
    """The MCP server on stdio."""
    _setup_logging(verbose)
    try:
        from inlet.server.mcp import run_stdio

        run_stdio(_settings(config_path), user)
    except InletError as exc:
        _fail(exc)


@cli.command()
@click.option("--serve", "with_api", is_flag=True, help="also run the retrieval API in this process")
@_common
def daemon(with_api: bool, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Run every source on its schedule until SIGINT/SIGTERM."""
    _setup_logging(max(verbose, 1))
    try:
        from inlet.sync.daemon import run_daemon

        settings = _settings(config_path)
        _preflight(settings, [s.name for s in settings.sources])
        sys.exit(run_daemon(settings, serve=with_api))
    except InletError as exc:
        _fail(exc)


@cli.command()
@click.option("--once", is_flag=True, help="print answers to sample queries and exit instead of serving")
@_common
def demo(once: bool, config_path: str | None, as_json: bool, verbose: int) -> None:
    """Sandbox + temporary config + backfill of all sources + the API, offline."""
    _setup_logging(verbose)
    try:
        from inlet.demo import run_demo

        sys.exit(run_demo(once=once, as_json=as_json))
    except InletError as exc:
        _fail(exc)


def main() -> None:
    cli(prog_name="inlet")
