"""The operator console in a real browser: headless Debian Chromium, driven by Playwright, against
`inlet daemon --serve` syncing the service sandbox.

It checks what an operator relies on: a wrong key and a non-admin key are refused, and the message
goes once a valid key is in; the sources table lists the three sandbox sources with their
documents; a search as two users shows different passages (mail only to its mailbox owner); "Run
now" makes a new run appear; "Restart backfill" asks first; "Pause" shows the source paused, with
its time; each source has a page of its own (runs, a labelled chart, errors, skipped items with
reasons); at 390 px wide nothing scrolls sideways. The screenshots are kept in
`$INLET_TEST_ARTIFACTS` (default `.artifacts/` in the checkout).

Needs Debian's `chromium` package (`apt-get install chromium`); without it the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inlet.sandbox.server import Sandbox

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("INLET_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".artifacts"))
OPS_KEY, ALICE_KEY = "console-ops-key-0123456789", "console-alice-key-0123456789"
BADEER = "robert.badeer@enron.com"
OUTSIDER = "visitor@outside.example"
NARROW: dict[str, dict[str, Any]] = {
    "sandbox-slack": {"channels": ["random", "private-ops"], "pace_scale": 1e6, "retry_backoff": 0.01},
    "sandbox-drive": {"backoff_seconds": 0.01, "max_requests_per_second": 0, "shared_drives": False},
    "sandbox-mail": {"mailboxes": [BADEER], "folders": ["inbox"]},
    "sandbox-gmail": {"mailboxes": [BADEER], "labels": ["INBOX"]},
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (apt-get install chromium)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(sb: Sandbox, tmp_path: Path, port: int) -> tuple[Path, dict[str, str]]:
    text, env = sb.config(tmp_path / "index")
    raw = tomllib.loads(text)
    lines = [
        f"[index]\npath = {json.dumps(str(tmp_path / 'index'))}\n",
        f'[server]\nport = {port}\n\n[daemon]\njitter = "0s"\n',
        '[[server.api_keys]]\nname = "ops"\nkey_env = "CONSOLE_OPS_KEY"\nadmin = true\n',
        '[[server.api_keys]]\nname = "alice"\nkey_env = "CONSOLE_ALICE_KEY"\nuser = "alice@example.com"\n',
    ]
    for source in raw["sources"]:
        source.update(NARROW.get(source["name"], {}), every="1h")
        source.pop("schedule", None)
        lines.append("[[sources]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in source.items()]
        lines.append("")
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines))
    return config, {**env, "CONSOLE_OPS_KEY": OPS_KEY, "CONSOLE_ALICE_KEY": ALICE_KEY}


def wait_for(what: str, check: Callable[[], Any], daemon: subprocess.Popen, log: Path, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if daemon.poll() is not None:
            pytest.fail(f"the daemon exited ({daemon.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    with Sandbox() as sb:
        port = free_port()
        config, env = write_config(sb, tmp_path, port)
        log = tmp_path / "daemon.log"
        with open(log, "w") as err:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "inlet", "daemon", "--serve", "--config", str(config)],
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=err,
                stderr=err,
            )
        try:
            yield f"http://127.0.0.1:{port}", daemon, log
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(90) == 0, log.read_text()[-3000:]


def console_data(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(url + "/v1/admin/console", headers={"Authorization": f"Bearer {OPS_KEY}"}, timeout=10)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def all_synced(url: str) -> dict[str, Any] | None:
    data = console_data(url)
    if data and all(s["last_run"] and s["last_run"]["outcome"] == "ok" for s in data["sources"]):
        return data
    return None


def passages_as(page: Any, user: str, query: str) -> list[str]:
    from playwright.sync_api import expect

    page.fill("#as-user", user)
    page.fill("#query", query)
    page.click("#search button[type=submit]")
    expect(page.locator("#message")).to_contain_text(f"for {user}", timeout=60_000)
    return page.eval_on_selector_all("#passages li", "items => items.map(i => i.dataset.docId || '')")


def test_the_console_in_a_browser(serving: tuple[str, subprocess.Popen, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, daemon, log = serving
    data = wait_for("the first sync of every source", lambda: all_synced(url), daemon, log)
    names = sorted(s["name"] for s in data["sources"])
    slack_runs = len(next(s for s in data["sources"] if s["name"] == "sandbox-slack")["history"])

    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/console")

        page.fill("#key", "not-a-key-of-this-server")
        page.click("#login button[type=submit]")
        expect(page.locator("#message")).to_contain_text("That key is not valid.")
        page.fill("#key", ALICE_KEY)
        page.click("#login button[type=submit]")
        expect(page.locator("#message")).to_contain_text("admin key")
        assert page.is_hidden("#app")

        page.fill("#key", OPS_KEY)
        page.click("#login button[type=submit]")
        page.wait_for_selector("#sources tbody tr[data-source='sandbox-mail']")
        expect(page.locator("#message")).to_have_text("")  # issue 28.10: the refusal does not linger
        rows = page.eval_on_selector_all(
            "#sources tbody tr", "rows => rows.map(r => [r.dataset.source, parseInt(r.children[2].textContent, 10)])"
        )
        assert sorted(name for name, _ in rows) == names
        assert all(documents > 0 for _, documents in rows)

        owner = passages_as(page, BADEER, "access to TAGG")
        outsider = passages_as(page, OUTSIDER, "access to TAGG")
        mail = ("sandbox-mail:", "sandbox-gmail:")  # the same mailboxes in Outlook and Gmail: either copy
        assert any(doc.startswith(mail) for doc in owner)
        assert not any(doc.startswith(mail) for doc in outsider)
        assert owner != outsider

        run_now = "button[data-action='run'][data-source='sandbox-slack']"
        assert page.get_attribute(run_now, "aria-label") == "Run now: sandbox-slack"  # probe29e F10
        page.click(run_now)
        expect(page.locator("#message")).to_contain_text("run of sandbox-slack: requested")
        wait_for(
            "the requested run",
            lambda: (
                (d := console_data(url))
                and len(next(s for s in d["sources"] if s["name"] == "sandbox-slack")["history"]) > slack_runs
            ),
            daemon,
            log,
        )

        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.click("button[data-action='backfill'][data-source='sandbox-mail']")
        expect(page.locator("#message")).to_contain_text("backfill of sandbox-mail: cancelled")
        assert asked and "sandbox-mail" in asked[0] and "again" in asked[0]

        page.click("button[data-action='pause'][data-source='sandbox-drive']")
        page.wait_for_selector("#sources tbody tr.paused[data-source='sandbox-drive']")
        assert next(s for s in console_data(url)["sources"] if s["name"] == "sandbox-drive")["paused"]  # type: ignore[index]
        expect(page.locator("tr[data-source='sandbox-drive'] .badge.paused").first).to_contain_text("Paused since")
        assert not page.eval_on_selector_all(
            "#sources tbody tr.healthy td[data-label='Last error']", "cells => cells.map(c => c.textContent).join('')"
        )

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shots = [ARTIFACTS / "console.png", ARTIFACTS / "console-390.png", ARTIFACTS / "console-source-390.png"]
        page.screenshot(path=str(shots[0]), full_page=True)

        page.set_viewport_size({"width": 390, "height": 844})  # a phone: no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(shots[1]), full_page=True)

        page.click("#sources a[href='#source=sandbox-drive']")  # the source's own page
        page.wait_for_selector("#detail:not([hidden]) #runs tbody tr")
        expect(page.locator("#detail-title")).to_contain_text("sandbox-drive")
        expect(page.locator("#detail-paused")).to_contain_text("Paused since")
        chart = page.locator("#chart svg")
        for label in ("duration", "run start"):
            expect(chart).to_contain_text(label)
        expect(page.locator("#legend")).to_contain_text("failed")
        drive = next(s for s in console_data(url)["sources"] if s["name"] == "sandbox-drive")  # type: ignore[index]
        skipped = (drive["recent_skips"] or {"items": []})["items"]
        assert skipped == drive["last_run"]["skipped_items"]  # its backfill is its last run here
        shown = page.eval_on_selector_all("#skipped tbody tr[data-item-id]", "rows => rows.map(r => r.dataset.itemId)")
        assert shown == [item["id"] for item in skipped]
        for item in skipped:
            expect(page.locator("#skipped")).to_contain_text(item["reason"])
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(shots[2]), full_page=True)
        page.click("#back")
        page.wait_for_selector("#overview:not([hidden])")
        browser.close()
    assert all(shot.stat().st_size > 10_000 for shot in shots)
