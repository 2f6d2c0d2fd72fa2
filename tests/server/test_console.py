"""The operator console's routes: the page needs no key, its data and actions need an admin key,
pauses persist in the state database and hold back the daemon's schedule. Its script: functions of
console.js run under node, their answers arriving in the order a test sets; and the page itself in
headless Chromium against an in-process `inlet serve` (a few seconds; skipped without Debian's
chromium)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inlet.config import Settings, parse_config
from inlet.index.store import Index
from inlet.server.app import create_app
from inlet.status import sources_status
from inlet.sync.daemon import Daemon
from inlet.sync.engine import RunResult
from inlet.storage.sqlite.leases import FolderLeases
from inlet.storage.sqlite.state import SqliteState

from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS

from .conftest import ALICE, KEYS, OPS, serve, settings_for


def with_sources(settings: Settings, folder: Path) -> Settings:
    sources = parse_config(
        {
            "sources": [
                {"name": name, "type": "files", "path": str(folder), "every": "1h"} for name in ("handbook", "notes")
            ]
        },
        folder / "config.toml",
    ).sources
    return settings.model_copy(update={"sources": sources})


@pytest.fixture(scope="module")
def console(index: Index, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings]]:
    folder = tmp_path_factory.mktemp("handbook")
    settings = with_sources(settings_for(index.path), folder)
    state = SqliteState(index.path / "state.db")
    run = state.start_run("handbook", "backfill")
    run.outcome, run.upserted, run.error = "failed", 3, "the folder vanished: /srv/handbook"
    state.finish_run(run)
    app = create_app(settings, index=index, state=state, env=KEYS)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.retrieval.ready.wait(30)
        yield client, settings
    state.close()


def test_the_page_and_its_files_need_no_key_and_forbid_inline_scripts(console: Any) -> None:
    client, _ = console
    page = client.get("/console")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/console/console.js" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers it
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert client.get("/console/console.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/console/console.css").status_code == 200
    assert client.get("/console/%2e%2e%2fapp.py").status_code == 404
    assert client.get("/console/secrets.json").status_code == 404


def test_a_trailing_slash_redirects_to_a_path_not_to_the_host_the_client_named(console: Any) -> None:
    client, _ = console
    moved = client.get("/console/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/console"
    forged = {"Host": "evil.example", "X-Forwarded-Proto": "https"}
    for path, to in [("/console//", "/console"), ("/console/console.js/", "/console/console.js")]:
        moved = client.get(path, headers=forged, follow_redirects=False)  # no key needed here
        assert moved.status_code == 307 and moved.headers["location"] == to, path
    moved = client.get("/v1/sources/?x=1", headers={**forged, **OPS}, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/v1/sources?x=1"
    assert client.get("/v1/nothing/", headers=OPS, follow_redirects=False).status_code == 404
    # behind a proxy serving inlet under a path, the path holds it once (review29 F13)
    under = TestClient(client.app, raise_server_exceptions=False, root_path="/inlet")
    for path, to in [("/inlet/v1/sources/", "/inlet/v1/sources"), ("/inlet/console/", "/inlet/console")]:
        moved = under.get(path, headers=OPS, follow_redirects=False)
        assert moved.status_code == 307 and moved.headers["location"] == to, path


def test_answers_holding_data_are_not_stored_by_caches_and_vary_with_the_caller(console: Any) -> None:
    client, _ = console
    for answer in [
        client.get("/v1/admin/console", headers=OPS),
        client.get("/v1/sources", headers=OPS),
        client.get("/metrics", headers=OPS),
        client.get("/openapi.json", headers=OPS),
        client.post("/v1/context", json={"query": "handbook"}, headers=OPS),
        client.get("/v1/admin/console"),  # a 401 too
    ]:
        assert answer.headers["cache-control"] == "no-store", answer.url
        vary = {v.strip().lower() for v in answer.headers["vary"].split(",")}
        assert {"authorization", "x-inlet-user"} <= vary, answer.url


def test_console_data_needs_an_admin_key(console: Any) -> None:
    client, _ = console
    assert client.get("/v1/admin/console").status_code == 401
    refused = client.get("/v1/admin/console", headers=ALICE)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.post("/v1/admin/sources/handbook/pause", headers=ALICE).status_code == 403


def test_console_data_has_status_history_and_errors(console: Any) -> None:
    client, _ = console
    data = client.get("/v1/admin/console", headers=OPS).json()
    handbook = next(s for s in data["sources"] if s["name"] == "handbook")
    assert handbook["history"][0]["outcome"] == "failed" and handbook["history"][0]["upserted"] == 3
    assert handbook["history"][0]["seconds"] is not None
    assert handbook["recent_errors"][0]["error"] == "the folder vanished: /srv/handbook"
    assert handbook["failure_streak"] == 1 and handbook["paused"] is False
    assert data["can_run"] is False  # `inlet serve`: no daemon in this process


def test_pause_persists_and_shows_in_status(console: Any, index: Index) -> None:
    client, settings = console
    paused = client.post("/v1/admin/sources/notes/pause", headers=OPS)
    assert paused.status_code == 200 and paused.json() == {"source": "notes", "paused": True}
    with _reader(index.path) as state:
        report = {s["name"]: s for s in sources_status(settings, state)["sources"]}
    assert report["notes"]["paused"] is True and report["handbook"]["paused"] is False
    assert client.post("/v1/admin/sources/notes/resume", headers=OPS).json()["paused"] is False
    with _reader(index.path) as state:
        assert state.paused() == {}


def test_the_access_log_names_the_admin_key_of_console_actions(console: Any, caplog: Any) -> None:
    import json
    import logging

    client, _ = console
    with caplog.at_level(logging.INFO, logger="inlet.server.access"):
        assert client.post("/v1/admin/sources/notes/resume", headers=OPS).status_code == 200
        assert client.get("/v1/admin/console", headers=OPS).status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "inlet.server.access"]
    assert [(line["path"], line["key"]) for line in lines] == [
        ("/v1/admin/sources/notes/resume", "ops"),
        ("/v1/admin/console", "ops"),
    ]


def test_actions_name_what_is_wrong(console: Any) -> None:
    client, _ = console
    assert client.post("/v1/admin/sources/nope/pause", headers=OPS).status_code == 404
    assert client.post("/v1/admin/sources/notes/explode", headers=OPS).status_code == 404
    no_daemon = client.post("/v1/admin/sources/notes/run", headers=OPS)
    assert no_daemon.status_code == 409 and "inlet daemon --serve" in no_daemon.json()["error"]["message"]


class _reader:
    """A second SqliteState on the same file, as another process would open it."""

    def __init__(self, path: Path) -> None:
        self.db = SqliteState(path / "state.db")

    def __enter__(self) -> SqliteState:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


class CountingEngine:
    """Records runs; enough of `Engine` for the daemon's scheduling decisions."""

    def __init__(self, state: SqliteState, path: Path) -> None:
        self.state = state
        self.stop = threading.Event()
        self.index = type("FakeIndex", (), {"path": path})()
        self.leases = FolderLeases(path / "locks")
        self.runs: list[tuple[str, str, bool]] = []
        self.ran = threading.Event()

    def run(self, name: str, kind: str = "sync", restart: bool = False, **_: Any) -> RunResult:
        self.runs.append((name, kind, restart))
        self.ran.set()
        return RunResult(name, "ok", 0, 0, 0, 0, 0.0)


def test_a_paused_source_skips_its_schedule_but_runs_when_asked(tmp_path: Path) -> None:
    settings = with_sources(settings_for(tmp_path), tmp_path)
    state = SqliteState(tmp_path / "state.db")
    engine = CountingEngine(state, tmp_path)
    daemon = Daemon(settings, engine)  # type: ignore[arg-type]
    state.set_paused("notes", True)
    assert daemon.sync_job("notes") is None and engine.runs == []
    assert daemon.sync_job("handbook") is not None and engine.runs == [("handbook", "sync", False)]
    daemon.scheduler.start()
    try:
        engine.ran.clear()
        daemon.start_now("notes", restart_backfill=True)  # an operator's request runs even when paused
        assert engine.ran.wait(10)
        assert engine.runs[-1] == ("notes", "backfill", True)
    finally:
        assert daemon.shutdown(grace=30)
        state.close()


def test_the_current_error_has_its_time_and_goes_once_a_run_succeeds(tmp_path: Path) -> None:
    """Issue 28.10: "Last error" stayed after the source recovered, with no time."""
    from inlet.server.console import overview

    settings = with_sources(settings_for(tmp_path / "index"), tmp_path)
    state = SqliteState(tmp_path / "state.db")
    failed = state.start_run("handbook", "sync")
    failed.outcome, failed.error, failed.skipped = "failed", "the folder vanished: /srv/handbook", 1
    state.add_skip(failed.id, 1, "handbook:big.pdf", "big.pdf", "larger than 1000 bytes", False)
    state.finish_run(failed)
    state.set_paused("notes", True)
    report = {s["name"]: s for s in overview(settings, state)["sources"]}
    current = report["handbook"]["current_error"]
    assert current["error"] == failed.error and current["at"] is not None and current["at"].endswith("Z")
    assert report["notes"]["paused_since"] is not None and report["handbook"]["paused_since"] is None
    assert report["handbook"]["scheduled"] is False  # no daemon: the next run is not one anything will run
    recovered = state.start_run("handbook", "sync")
    recovered.outcome = "ok"
    state.finish_run(recovered)
    handbook = next(s for s in overview(settings, state)["sources"] if s["name"] == "handbook")
    assert handbook["current_error"] is None
    assert handbook["recent_errors"][0]["error"] == failed.error and handbook["recent_errors"][0]["at"]
    skips = handbook["recent_skips"]  # the last run skipped nothing: the run before it is what shows
    assert handbook["last_run"]["skipped_items"] == [] and skips["kind"] == "sync" and skips["total"] == 1
    assert skips["items"] == [
        {"id": "handbook:big.pdf", "title": "big.pdf", "reason": "larger than 1000 bytes", "failed": False}
    ]
    state.close()


def test_a_run_that_could_not_read_items_shows_among_the_errors(tmp_path: Path) -> None:
    """probe29e F12: "no errors in the recent runs" above a partial run that counted 1 error."""
    from inlet.server.console import overview

    settings = with_sources(settings_for(tmp_path / "index"), tmp_path)
    state = SqliteState(tmp_path / "state.db")
    partial = state.start_run("handbook", "backfill")
    partial.outcome, partial.errors, partial.upserted = "partial", 1, 2
    state.add_skip(partial.id, 1, "handbook:bad.pdf", "bad.pdf", "PdfStreamError: damaged", True)
    state.finish_run(partial)
    handbook = next(s for s in overview(settings, state)["sources"] if s["name"] == "handbook")
    assert [e["error"] for e in handbook["recent_errors"]] == ["1 item(s) could not be read: see the items not indexed"]
    assert handbook["recent_errors"][0]["kind"] == "backfill" and handbook["recent_errors"][0]["at"]
    assert handbook["recent_skips"]["items"][0]["failed"] is True
    state.close()


def test_the_user_box_takes_any_user_the_api_takes(console: Any) -> None:
    """probe29e F4: `<input type=email>` made the browser refuse `alice`, `U024BE7LH` and
    `jürgen@example.com` (the API takes each) before the console sent anything."""
    client, _ = console
    page = client.get("/console").text
    box = re.search(r"<input id=\"as-user\"[^>]*>", page)
    assert box is not None and 'type="text"' in box[0] and "email" not in box[0].split("placeholder")[0]
    for user in ("alice", "U024BE7LH", "jürgen@example.com"):
        answer = client.post("/v1/context", json={"query": "handbook", "user": user}, headers=OPS)
        assert answer.status_code == 200, user


def test_the_console_shows_synced_text_by_the_command_lines_rule_and_times_in_utc(console: Any) -> None:
    """probe29e F6, F9: the console's character rule is the terminal's (bidi overrides, isolates,
    marks and controls spelled out), and its times are UTC (`toLocale*` showed the browser's zone
    with no name)."""
    from inlet.terminal import _CONTROL

    client, _ = console
    script = client.get("/console/console.js").text
    rule = re.search(r"const CONTROL = /(\[.*?\])/g;", script)
    assert rule is not None
    js = re.compile(rule[1])  # the JS class's \xNN and \uNNNN escapes read alike in Python
    assert [c for c in range(0x10000) if js.match(chr(c))] == [c for c in range(0x10000) if _CONTROL.match(chr(c))]
    assert "toLocale" not in script and "toISOString" in script


def console_functions(client: TestClient, *names: str) -> str:
    """The named top-level functions of the served console.js, as written there: run under node
    beside stubs of what they call, their order of events can be set exactly."""
    script = client.get("/console/console.js").text
    found = [re.search(rf"^(?:async )?function {name}\(.*?^\}}\n", script, re.M | re.S) for name in names]
    missing = [name for name, match in zip(names, found) if match is None]
    assert not missing, f"console.js has no function {missing}"
    return "".join(match[0] for match in found if match is not None)


def node(program: str) -> Any:
    """What `program` prints (one line of JSON) when node runs it."""
    return json.loads(
        subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True, timeout=30).stdout
    )


READ_STUBS = (  # what `refresh` calls; `api` answers when the test says so, in the order it says
    "const state = { generation: 0, failures: 0, data: null, timer: null, loadedAt: null, requests: 0, shown: 0 };\n"
    "const nodes = {};\n"
    "const $ = (id) => (nodes[id] ||= { hidden: true, dataset: {}, classList: { remove() {}, toggle() {} } });\n"
    "const asked = []; const api = () => new Promise((ok, no) => { asked.push({ ok, no }); });\n"
    "let rendered = 0; const render = () => { rendered += 1; };\n"
    "const say = () => {}; const clock = () => ''; const setText = () => {}; const retryDelay = () => 5000;\n"
)


def test_a_refresh_under_way_at_logout_shows_nothing(console: Any) -> None:
    """review29 F8: the console's answer arriving after "Logout" neither shows the page again nor
    keeps the data (the refresh was started before `stop`)."""
    client, _ = console
    program = (
        READ_STUBS
        + console_functions(client, "refresh", "stop")
        + "(async () => { const pending = refresh(); stop(); asked[0].ok({ sources: [] });\n"
        "  const outcome = await pending;\n"
        "  console.log(JSON.stringify([outcome, $('app').hidden, $('logout').hidden, rendered, state.data]));\n"
        "})();\n"
    )
    assert node(program) == ["stale", True, True, 0, None]


def test_an_older_read_answering_late_does_not_undo_a_newer_one(console: Any) -> None:
    """probe34h F11: a poll under way when *Pause* was pressed answered after the action's own
    refresh, and the row showed *Pause* again (not paused) until the next poll."""
    client, _ = console
    program = (
        READ_STUBS + console_functions(client, "refresh") + "(async () => {\n"
        "  const poll = refresh(), after = refresh();   // the poll, then the refresh after Pause\n"
        "  asked[1].ok({ paused: true }); const newer = await after;\n"
        "  asked[0].ok({ paused: false }); const older = await poll;\n"
        "  const poll2 = refresh(), after2 = refresh();   // an older read failing late: no 'Reconnecting'\n"
        "  asked[3].ok({ paused: true, again: true }); await after2;\n"
        "  asked[2].no(Object.assign(new Error('down'), { status: 503 })); const failed = await poll2;\n"
        "  console.log(JSON.stringify([newer, older, failed, state.data, rendered, state.failures]));\n"
        "})();\n"
    )
    assert node(program) == ["ok", "superseded", "superseded", {"paused": True, "again": True}, 2, 0]


def test_a_search_answering_after_a_later_one_is_dropped(console: Any) -> None:
    """probe34h F11: a search as alice, then (before it answered) as bob: both answers landed in
    one list, alice's private passage under "... for bob@example.com", whichever answered first."""
    client, _ = console
    program = (
        "const state = { generation: 0, searches: 0 };\n"
        "const nodes = {};\n"
        "const node = (props) => Object.assign({ value: '', textContent: '', className: '', dataset: {},\n"
        "  children: [], replaceChildren() { this.children = []; },\n"
        "  append(...items) { this.children.push(...items); } }, props);\n"
        "const $ = (id) => (nodes[id] ||= node());\n"
        "const el = (tag, text, cls) =>\n"
        "  node({ textContent: text === undefined ? '' : String(text), className: cls || '' });\n"
        "const visible = String; const safeHref = () => null;\n"
        "let message = ''; const say = (text) => { message = text; };\n"
        "const asked = [];\n"
        "const api = (method, path, body) => new Promise((ok) => { asked.push({ user: body.user, ok }); });\n"
        "const answer = (user) => ({ results: [{ doc_id: 'doc-of-' + user, title: 't', source: 's',\n"
        "  source_type: 'files', score: 1, text: 'x' }], citations: [{}], context: 'context for ' + user });\n"
        + console_functions(client, "search")
        + "(async () => {\n"
        "  const seen = [];\n"
        "  for (const order of [[1, 0], [0, 1]]) {   // the first search answers last, then first\n"
        "    $('query').value = 'salary';\n"
        "    $('as-user').value = 'alice@example.com'; const first = search({ preventDefault() {} });\n"
        "    $('as-user').value = 'bob@example.com'; const second = search({ preventDefault() {} });\n"
        "    const sent = asked.splice(0), searches = [first, second];\n"
        "    for (const i of order) { sent[i].ok(answer(sent[i].user)); await searches[i]; }\n"
        "    seen.push([message, $('passages').children.map((c) => c.dataset.docId), $('context').textContent]);\n"
        "  }\n"
        "  console.log(JSON.stringify(seen));\n"
        "})();\n"
    )
    bob = [
        "1 passage(s), 1 citation(s) for bob@example.com.",
        ["doc-of-bob@example.com"],
        "context for bob@example.com",
    ]
    assert node(program) == [bob, bob]


LONG_NAME = "Quarterly_Report_Final_Version_" * 6 + "v2.svg"  # no space to wrap at


@pytest.fixture
def served(tmp_path: Path, text_hash_embedder: Any) -> Iterator[str]:
    """The console of an `inlet serve` on loopback (no daemon, no sandbox): `handbook`'s last run
    skipped a file with a long name, `notes` ran and is paused."""
    from inlet.config import IndexConfig

    settings = with_sources(settings_for(tmp_path / "index"), tmp_path)
    with Index(IndexConfig(path=tmp_path / "index"), embedder=text_hash_embedder) as index:
        state = SqliteState(index.path / "state.db")
        for name in ("handbook", "notes"):
            run = state.start_run(name, "backfill")
            run.outcome, run.upserted, run.skipped = "ok", 2, 1
            state.add_skip(run.id, 1, f"{name}:{LONG_NAME}", LONG_NAME, "its type (.svg) is not read", False)
            state.finish_run(run)
        state.set_paused("notes", True)
        try:
            for address in serve(create_app(settings, index=index, state=state, env=KEYS), lifespan="on"):
                yield f"http://{address}"
        finally:
            state.close()


def contrast(one: tuple[int, ...], other: tuple[int, ...]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(rgb: tuple[int, ...]) -> float:
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def rgb(css: str) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in found) for found in re.findall(r"rgb\((\d+), (\d+), (\d+)\)", css)]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_page_in_a_browser_keys_links_focus_layout_and_contrast(served: str) -> None:
    """probe34h F4-F8 in headless Chromium: a key pasted with curly quotes or a zero-width space is
    refused as such (it was "Reconnecting" for ever: a browser cannot send it); a link's address
    puts no sentence of its own in the status line; opening a source's page and going back moves
    focus to the page's heading and back to the source's link, and the title names the view; a long
    file name wraps instead of widening the page; a paused row's text keeps 4.5:1 contrast."""
    from playwright.sync_api import expect, sync_playwright

    key = OPS["Authorization"].removeprefix("Bearer ")
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served + "/console")
        for pasted, code in [(f"\u201c{key}\u201d", "U+201C"), (key + "\u200b", "U+200B")]:
            page.fill("#key", pasted)
            page.click("#login button[type=submit]")
            expect(page.locator("#message")).to_contain_text(f"a character no key can have ({code}")
        page.fill("#key", key)
        page.click("#login button[type=submit]")
        page.wait_for_selector("#sources tbody tr.paused[data-source='notes']")
        expect(page.locator("#message")).to_have_text("")

        stripes = rgb(page.eval_on_selector("#sources tr.paused", "row => getComputedStyle(row).backgroundImage"))
        colours = page.eval_on_selector_all(  # every text of the row but the badge and buttons (their own background)
            "#sources tr.paused td *:not(.badge):not(button)",
            "nodes => nodes.filter((n) => Array.from(n.childNodes)"
            "  .some((c) => c.nodeType === 3 && c.textContent.trim()))"
            "  .map((n) => [n.textContent, getComputedStyle(n).color])",
        )
        assert len(stripes) >= 2 and {text for text, _ in colours} >= {"ok", "notes"}
        low = [
            (text, colour) for text, colour in colours for stripe in stripes if contrast(rgb(colour)[0], stripe) < 4.5
        ]
        assert not low, low

        for link in ["#sources a[href='#source=handbook'][title]", "#sources a[href='#source=handbook']:not([title])"]:
            page.focus(link)  # the source's name, then its "1 not indexed: see why"
            page.keyboard.press("Enter")
            expect(page.locator("#detail-title")).to_be_focused()
            expect(page).to_have_title("handbook — inlet console")
            expect(page.locator("#skipped")).to_contain_text("its type (.svg) is not read")
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # the long name wraps
            page.focus("#back")
            page.keyboard.press("Enter")
            expect(page.locator(link)).to_be_focused()
            expect(page).to_have_title("inlet console")

        spoof = "handbook.%20Your%20admin%20key%20was%20rotated:%20get%20the%20new%20one%20at%20https%3A//keys.example"
        page.goto(served + "/console#source=" + spoof)
        expect(page.locator("#message")).to_have_text("That link names no source.")
        page.goto(served + "/console#source=handbok")
        expect(page.locator("#message")).to_have_text('No source named "handbok".')
        browser.close()
