"""Synced text never drives the operator's terminal: `inlet search` over a document whose title (its
file name) and body hold OSC 52 (clipboard write), CSI (clear screen, colours), an OSC 8 hyperlink, a C1 CSI and a
bidi override prints them made visible, on a terminal and redirected to a file alike."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.terminal import visible

HOSTILE = (
    "\x1b]52;c;ZXZpbA==\x07 \x1b[2J\x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ "
    "\x9b31m \u202egnp.exe\r\x08"
)
NAMED = HOSTILE.replace("http://", "")  # as a file name: no "/"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("terminal")
    (home / "docs").mkdir()
    # a text file's own escape sequences are removed as it is read (connectors/extract.py): its name,
    # the title of a file with no heading, still brings them along
    (home / "docs" / f"invoice {NAMED}.md").write_text(f"Invoice {HOSTILE}\n\nPayment overdue {HOSTILE} please pay\n")
    (home / "config.toml").write_text(
        '[index]\npath = "index"\n[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\n'
    )
    result = CliRunner().invoke(cli, ["sync", "--config", str(home / "config.toml")])
    assert result.exit_code == 0, result.output
    return home


def check(output: str) -> None:
    assert "Invoice" in output and "overdue" in output
    assert not CONTROL.search(output.replace("\r\n", "\n")), repr(output)
    # the controls are dropped as the text is indexed (index/clean.py) or spelt out as it is printed
    # (inlet/terminal.py): either way what they carried stays visible as text
    assert "]52;c;ZXZpbA==" in output and "gnp.exe" in output


def test_visible_spells_out_every_control() -> None:
    assert visible("a\tb\nc\x1b[2J\x07\x9b\u202e") == "a\tb\nc\\x1b[2J\\x07\\x9b\\u202e"


def test_search_output_captured_in_process(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["search", "invoice overdue", "--config", str(workdir / "config.toml")])
    assert result.exit_code == 0, result.output
    check(result.output)


def test_search_redirected_to_a_file(workdir: Path) -> None:
    out = workdir / "out.txt"
    env = {k: v for k, v in os.environ.items() if k != "INLET_CONFIG"}
    with open(out, "w") as handle:
        subprocess.run(
            [sys.executable, "-m", "inlet", "search", "invoice overdue", "--config", "config.toml"],
            cwd=workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.PIPE,
            check=True,
            timeout=300,
        )
    check(out.read_text())


def test_search_on_a_terminal(workdir: Path) -> None:
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "INLET_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inlet", "search", "invoice overdue", "--config", "config.toml"],
        cwd=workdir,
        env={**env, "TERM": "xterm-256color"},
        stdout=child,
        stderr=child,
    )
    os.close(child)
    received = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(main)
    assert proc.wait(60) == 0
    check(received.decode("utf-8", "replace"))


def test_a_name_or_reason_with_a_newline_stays_on_its_status_line(capsys: pytest.CaptureFixture[str]) -> None:
    from inlet.cli import _print_source

    forged = "notes\n  last run: backfill ok at 2026-12-07T09:00:00.000Z — 9 upserted\n\tx.txt"
    run = {
        "kind": "backfill",
        "outcome": "ok",
        "started_at": "2026-12-07T09:59:00.000Z",
        "finished_at": "2026-12-07T10:00:00.000Z",
    }
    run |= {"upserted": 1, "deleted": 0, "skipped": 1, "errors": 0, "error": None}
    skip = {"title": forged, "id": f"s:{forged}", "reason": f"{forged}: binary content, not text", "failed": False}
    row = {"name": "s", "type": "files", "documents": 1, "chunks": 1, "last_run": run, "next_run": None}
    row["recent_skips"] = {"kind": "backfill", "finished_at": run["finished_at"], "items": [skip], "total": 1}
    _print_source(row, detail=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("  last run:")] == [lines[1]]  # inlet's own line alone
    assert (
        "    notes\\n  last run: backfill ok at 2026-12-07T09:00:00.000Z — 9 upserted\\n\\tx.txt [s:notes\\n"
        in lines[3]
    )
