"""`inlet demo`: the whole product on a laptop, offline, in a few minutes.

Starts the sandbox (emulated Slack, Google Drive, Microsoft Graph and Gmail with the sample
workspace), writes a temporary config whose sources (Slack, Drive, Outlook, SharePoint/OneDrive
files, Teams, Gmail) point at it, backfills them into a temporary index, then serves the API with a
generated admin key (or, with `--once`, prints answers to a few sample queries with their citations
and exits). Nothing is left behind: the index, the config and the
sandbox live in a temporary folder removed on exit.

The API listens on 8484, or on any free port when 8484 is taken (a second demo, a running
`inlet serve`): the first command of the README must start whatever else runs. A port the user
asks for with `--port` is taken at its word: busy, it is one line and exit 4, as for `serve`. The
port is bound before the sandbox starts, so that error comes at once, not after the backfill.

To keep the first run quick, the demo indexes `DEMO_MAILBOXES` of the sample's mailboxes (all of
Slack and Drive); `inlet sandbox --write-config` gives the full workspace.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from inlet.compose import assembled
from inlet.config import OAuthConfig, load_config
from inlet.errors import PortInUseError
from inlet.index.relevance import default_min_relevance
from inlet.index.search import SearchRequest, shown
from inlet.index.search import answer as run_answer
from inlet.process import listen, stop_on_signals, wait
from inlet.progress import progress_display
from inlet.sandbox.server import Sandbox
from inlet.server.app import create_app
from inlet.server.listener import ServerThread
from inlet.sync.engine import Engine

# Two of the sample's four Enron mailboxes (379 of its 931 mails, ~36% of the text): the backfill
# then takes about a minute on a 2-core laptop instead of three or more.
DEMO_MAILBOXES = ("phillip.allen@enron.com", "robert.badeer@enron.com")
DEMO_KEY_ENV = "INLET_DEMO_KEY"
DEMO_HOST, DEMO_PORT = "127.0.0.1", 8484
SAMPLE_QUERIES = (  # one per service of the sample workspace
    "What caused the March outage?",  # a PDF postmortem on Drive
    "Did the enrique deploy finish?",  # a deploy bot in a private Slack channel
    "California electricity prices",  # Enron traders' mail
    "indexer lag on-call runbook",  # a Markdown runbook in a SharePoint library
    "database failover replicas catching up",  # a Teams channel thread
)
# Permission filtering: the first question as a person the postmortem is shared with, and as one it is not.
AS_PEOPLE = ("abilinski@example.com", "heroeshannibal@example.com")


def demo_config(sandbox_toml: str, index_path: Path, port: int, mailboxes: Sequence[str] | None) -> str:
    """The sandbox's config with the demo's API key, and the mail sources (Outlook, Gmail) cut to `mailboxes`."""
    text = sandbox_toml.replace(_index_line(sandbox_toml), f"path = {json.dumps(index_path.as_posix())}", 1)
    if mailboxes is not None:
        text = re.sub(r"^mailboxes = \[(.*)\]$", lambda m: _keep_boxes(m[1], mailboxes), text, flags=re.MULTILINE)
    return (
        text.rstrip() + '\n\n[server]\nhost = "127.0.0.1"\n'
        f'port = {port}\n\n[[server.api_keys]]\nname = "demo"\nkey_env = "{DEMO_KEY_ENV}"\n'
        "admin = true\n"
    )


def _index_line(toml: str) -> str:
    match = re.search(r"^path = .*$", toml, flags=re.MULTILINE)
    return match[0] if match else 'path = ".inlet"'


def _keep_boxes(listed: str, keep: Sequence[str]) -> str:
    """The listed mailboxes that are in `keep`; the first `len(keep)` when none is (another workspace)."""
    boxes = [b.strip() for b in listed.split(",") if b.strip()]
    kept = [b for b in boxes if json.loads(b) in keep] or boxes[: len(keep)]
    return f"mailboxes = [{', '.join(kept)}]"


def run_demo(
    once: bool = False,
    as_json: bool = False,
    *,
    mailboxes: Sequence[str] | None = DEMO_MAILBOXES,
    port: int | None = None,
    out: TextIO | None = None,
) -> int:
    """0 when every source backfilled (with --once: and every query answered) or the demo was
    stopped by SIGINT/SIGTERM, 1 otherwise; `PortInUseError` when `port` is taken."""
    out = out or sys.stdout
    key = secrets.token_urlsafe(24)
    sock = None if once else demo_socket(port)
    stop = stop_on_signals("inlet demo: stopping")  # the runs end at their next checkpoint
    try:
        code = _run(once, as_json, mailboxes, sock, out, key, stop)
    finally:
        if sock is not None:
            sock.close()
    if stop.is_set():  # the `with` blocks have removed the temporary folder by now
        _say("inlet demo: stopped; its temporary folder is removed")
        return 0
    return code


def demo_socket(port: int | None) -> socket.socket:
    """The API's listening socket: on `port` (`PortInUseError` when taken), else on DEMO_PORT, else
    on any free port."""

    if port is not None:
        return listen(DEMO_HOST, port, "the demo's API (--port)")
    try:
        return listen(DEMO_HOST, DEMO_PORT, "the demo's API")
    except PortInUseError:
        _say(f"inlet demo: port {DEMO_PORT} is taken; the API will listen on a free port (--port N chooses)")
        return listen(DEMO_HOST, 0, "the demo's API")


def _run(
    once: bool,
    as_json: bool,
    mailboxes: Sequence[str] | None,
    sock: socket.socket | None,
    out: TextIO,
    key: str,
    stop: threading.Event,
) -> int:

    with tempfile.TemporaryDirectory(prefix="inlet-demo-") as tmp, Sandbox() as sb:
        sandbox_toml, secrets_env = sb.config(index_path=Path(tmp) / "index")
        path = Path(tmp) / "config.toml"
        port = sock.getsockname()[1] if sock is not None else 0
        path.write_text(demo_config(sandbox_toml, Path(tmp) / "index", port, mailboxes))
        settings = load_config(path)
        env = {**os.environ, **secrets_env, DEMO_KEY_ENV: key}
        _say(
            f"inlet demo: sandbox on {sb.ctx.http_url}; backfilling "
            f"{', '.join(s.name for s in settings.sources)} into {tmp}"
        )
        with _opened(settings) as (index, state):
            results = backfill_all(settings, index, state, env, progress=not as_json, stop=stop)
            if stop.is_set():
                return 0
            failed = [r for r in results if r.outcome == "failed"]
            for r in results:
                _say(
                    f"  {r.source}: {r.outcome}, {r.upserted} documents ({r.embedded} chunks embedded) in "
                    f"{r.seconds:.0f}s" + (f" — {r.error}" if r.error else "")
                )
            if sock is None:
                answers = answer(index, SAMPLE_QUERIES)
                answers += [
                    {**a, "user": user} for user in AS_PEOPLE for a in answer(index, SAMPLE_QUERIES[:1], user=user)
                ]
                _print_answers(out, as_json, results, answers)
                return 1 if failed or not all(a["results"] for a in answers) else 0
            return serve(
                settings,
                index,
                state,
                env,
                key,
                out,
                results if as_json else None,
                issuer=f"{sb.ctx.http_url}/idp",
                sock=sock,
                stop=stop,
            )


@contextmanager
def _opened(settings: Any) -> Iterator[tuple[Any, Any]]:
    """The demo's index and state, opened by the composition root (`backfill_all` gives the runs
    their own engine: the sandbox's secrets, and no grace at stop)."""
    with assembled(settings, threading.Event(), role="demo") as parts:
        yield parts.index, parts.state


def backfill_all(
    settings: Any,
    index: Any,
    state: Any,
    env: Mapping[str, str],
    progress: bool,
    stop: threading.Event | None = None,
) -> list[Any]:
    """Backfill every source, three at a time (fetching overlaps; embedding takes turns); once
    `stop` is set the runs end at their next checkpoint."""
    stop = stop or threading.Event()

    with progress_display(progress) as on_progress:
        engine = Engine(
            settings, index, state, env=env, stop=stop, on_progress=on_progress, stop_work=0.0
        )  # the temporary index is thrown away: stop at once
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="inlet-demo") as pool:
            try:
                return list(pool.map(lambda s: engine.run(s.name, "backfill"), settings.sources))
            except KeyboardInterrupt:  # a caller without signal handlers (a benchmark) was interrupted
                stop.set()  # the runs stop at their next checkpoint instead of finishing
                raise


def answer(index: Any, queries: tuple[str, ...], k: int = 3, user: str | None = None) -> list[dict[str, Any]]:
    """Each query's results (as `user` when given: only what that person may see) and its match."""
    answers = []
    for query in queries:
        got = run_answer(index, SearchRequest(query=query, k=k, user=user))
        answers.append({"query": query, "match": got.match, "results": [h.as_dict() for h in got.hits]})
    return answers


def _print_answers(out: TextIO, as_json: bool, results: list[Any], answers: list[dict[str, Any]]) -> None:
    if as_json:
        json.dump({"runs": [r.as_json() for r in results], "answers": answers}, out, indent=2, default=str)
        out.write("\n")
        return
    floor = default_min_relevance()
    for item in answers:
        asker = f" (asked as {item['user']})" if item.get("user") else ""
        out.write(f"\n? {item['query']}{asker} — match: {item['match']}\n")
        visible = [hit for hit in item["results"] if shown(item["match"], hit["relevance"], floor)]
        if not visible:
            out.write("  nothing visible to this person answers it\n")
        for n, hit in enumerate(visible, 1):
            passage = " ".join(hit["text"].split())
            out.write(f"  [{n}] {passage[:160]}{'…' if len(passage) > 160 else ''}\n")
            out.write(
                f"      — {hit['title'] or hit['doc_id']} ({hit['source_type']}, {hit['source']}) {hit['url']}"
                f" · relevance {hit['relevance']:.2f}\n"
            )
        left = len(item["results"]) - len(visible)
        if left and item["match"] == "none":
            out.write(f"  ({left} result{'s' * (left > 1)} judged not to answer, left out as /v1/context and MCP do)\n")
        elif left:
            out.write(f"  ({left} more below relevance {floor:.2f}, left out as /v1/context and MCP do)\n")


def serve(
    settings: Any,
    index: Any,
    state: Any,
    env: Mapping[str, str],
    key: str,
    out: TextIO,
    json_runs: list[Any] | None = None,
    issuer: str | None = None,
    sock: socket.socket | None = None,
    stop: threading.Event | None = None,
) -> int:
    """The API on the demo index until `stop` is set (Ctrl-C), with the URL, the key and a `curl` to try (with
    `--json`: one line `{"api_url", "key", "runs"}` for scripts). With `issuer` (the sandbox's
    identity provider) /mcp also takes OAuth tokens, so a person can add it to an MCP client."""

    sock = sock or demo_socket(settings.server.port)
    url = f"http://{DEMO_HOST}:{sock.getsockname()[1]}"
    if issuer is not None:  # the audience is this server's URL, known once the port is bound
        settings.server.oauth = OAuthConfig(issuer=issuer, audience=url, scopes=["inlet.read"], resource_url=url)
    app = create_app(settings, index=index, state=state, env=env, listening=sock.getsockname())
    served = ServerThread(app, sock, settings.server)
    stop = stop or stop_on_signals()
    body = json.dumps({"query": SAMPLE_QUERIES[0], "k": 3})
    if json_runs is not None:
        out.write(
            json.dumps({"api_url": url, "key": key, "oauth_issuer": issuer, "runs": [r.as_json() for r in json_runs]})
            + "\n"
        )
    else:
        out.write(
            f"\nThe API is at {url} (MCP at {url}/mcp); an admin key for this demo:\n\n"
            f"  export {DEMO_KEY_ENV}={key}\n\n"
            f'  curl -s {url}/v1/search -H "Authorization: Bearer ${DEMO_KEY_ENV}" '
            f"-H 'Content-Type: application/json' -d '{body}'\n\n"
            + (
                f"An MCP client can also sign in with OAuth: add {url}/mcp as a remote (streamable HTTP) "
                f"server; it opens the sandbox sign-in page ({issuer}) where you pick a sandbox user.\n\n"
                if issuer
                else ""
            )
            + "Ctrl-C stops the demo and deletes its temporary index.\n"
        )
    out.flush()
    try:
        wait(stop)
    finally:
        served.stop()
    return 0


def _say(line: str) -> None:
    """Notes and progress go to stderr in every mode: stdout carries only the answers (or the API)."""
    print(line, file=sys.stderr)
