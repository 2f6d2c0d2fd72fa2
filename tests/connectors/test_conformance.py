"""The conformance suite (`inlet.connectors.testing`) against every registered connector type.

Each type in the `inlet.connectors` entry-point group gets a case below that configures it the way a
user would (a `[[sources]]` table through `parse_config`): the API connectors against one shared
sandbox (these tests only read it), the file-based ones against a temp folder or the packaged sample
data. A registered type without a case fails loudly, so a new connector cannot skip the suite.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from inlet.connectors import registry
from inlet.connectors.testing import Case, Change, ConformanceSuite
from inlet.sandbox import drive, drive_state, gmail, graph, graph_files, graph_teams
from inlet.sandbox import slack as sandbox_slack
from inlet.sandbox.documents import make_docx, make_pdf
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import DATA_DIR

TYPES = sorted(registry.available())


# --- the cases, one per connector type ------------------------------------------------------------


def _files(root: Path, sb: Sandbox) -> Case:
    folder = root / "files"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "setup.md").write_text("# Setup guide\n\nInstall with pip and run the wizard.\n")
    (folder / "notes.txt").write_text("Plain notes about the Osprey project and its budget.")
    (folder / "page.html").write_text("<html><body><h1>Welcome</h1><p>Hello <b>team</b></p></body></html>")
    (folder / "report.pdf").write_bytes(make_pdf("Quarterly report", ["Revenue grew in the Pelican region."]))
    (folder / "plan.docx").write_bytes(make_docx("Quarterly plan", ["The Zanzibar initiative ships."]))
    (folder / "empty.txt").write_text("   \n")  # a policy skip: no text

    def mutate() -> Change:
        notes = folder / "notes.txt"
        notes.write_text("Plain notes about the Osprey project: the budget doubled.")
        stamp = notes.stat().st_mtime + 60  # a newer modification time, whatever the clock's resolution
        os.utime(notes, (stamp, stamp))
        (folder / "page.html").unlink()
        return Change(edited="conf-files:notes.txt", deleted="conf-files:page.html")

    return Case({"name": "conf-files", "type": "files", "path": str(folder), "checkpoint_every": 2}, mutate=mutate)


def _slack_export(root: Path, sb: Sandbox) -> Case:
    # No `mutate`: an export is a snapshot; a newer one is read whole, and what it lacks is pruned
    # by the engine after the complete pass, never yielded as a Deletion.
    return Case(
        {
            "name": "conf-export",
            "type": "slack_export",
            "path": str(DATA_DIR / "slack-export-sample.zip"),
            "domains": ["example.com"],
        }
    )


def _mail_archive(root: Path, sb: Sandbox) -> Case:
    with tarfile.open(DATA_DIR / "enron-mini.tar.gz") as tar:
        members = [m for m in tar.getmembers() if "/badeer-r/" in m.name]
        tar.extractall(root / "enron", members=members, filter="data")
    sent = root / "enron" / "enron-mini" / "badeer-r" / "_sent_mail"

    def mutate() -> Change:
        edited = sent / "1."
        edited.write_text(edited.read_text().replace("Subject:", "Subject: Edited:", 1))
        stamp = edited.stat().st_mtime + 60  # a newer modification time, whatever the clock's resolution
        os.utime(edited, (stamp, stamp))
        (sent / "10.").unlink()
        return Change(edited="conf-mail:badeer-r/_sent_mail/1.", deleted="conf-mail:badeer-r/_sent_mail/10.")

    raw = {
        "name": "conf-mail",
        "type": "mail_archive",
        "path": str(root / "enron" / "enron-mini"),
        "users": ["auditor@example.com"],
        "checkpoint_every": 25,
    }
    return Case(raw, mutate=mutate)


def _slack(root: Path, sb: Sandbox) -> Case:
    block, env = sandbox_slack.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-slack", "pace_scale": 1e6, "retry_backoff": 0.01, "page_size": 20}
    # Slack has no change feed: a sync re-reads `lookback_days` of history for edits and deletions,
    # and the sample's messages are from 2016.
    raw["lookback_days"] = 36500

    def mutate() -> Change:
        chan = next(c for c in sb.ws.slack.channels.values() if sandbox_slack.BOT_USER in c.members)
        alone = [m.ts for m in chan.messages if m.subtype is None and not chan.replies.get(m.ts)]
        sandbox_slack.edit_message(sb.ws, chan.id, alone[0], "Edited by the conformance suite.")
        sandbox_slack.delete_message(sb.ws, chan.id, alone[1])
        return Change(edited=f"conf-slack:{chan.id}:{alone[0]}", deleted=f"conf-slack:{chan.id}:{alone[1]}")

    return Case(raw, env, bad_env={k: "xoxb-not-a-real-token" for k in env}, api=True, mutate=mutate)


def _google_drive(root: Path, sb: Sandbox) -> Case:
    block, env = drive.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-drive", "backoff_seconds": 0.01, "max_requests_per_second": 0, "page_size": 5}

    def mutate() -> Change:
        files = {f.name: f.id for f in sb.ws.drive.files.values()}
        drive_state.edit(sb.ws, files["runbook.txt"], content="VPN runbook, edited by the conformance suite.")
        drive_state.delete(sb.ws, files["faq.html"])
        return Change(edited=f"conf-drive:{files['runbook.txt']}", deleted=f"conf-drive:{files['faq.html']}")

    delegation_refused = {"subject": "nobody@unknown.invalid"}
    return Case(raw, env, bad_raw=delegation_refused, api=True, mutate=mutate)


def _outlook(root: Path, sb: Sandbox) -> Case:
    block, env = graph.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-outlook", "mailboxes": ["robert.badeer@enron.com"]}

    def mutate() -> Change:
        mail = sb.ws.mail
        owner = next(uid for uid, box in mail.mailboxes.items() if box.email == "robert.badeer@enron.com")
        edited, deleted = mail.in_folder(mail.folder(owner, "inbox").id)[:2]
        graph.edit_message(sb.ws, edited.id, subject="Edited by the conformance suite")
        graph.delete_message(sb.ws, deleted.id)
        return Change(edited=f"conf-outlook:{edited.id}", deleted=f"conf-outlook:{deleted.id}")

    return Case(raw, env, bad_env={k: "wrong-secret" for k in env}, api=True, mutate=mutate)


def _microsoft_files(root: Path, sb: Sandbox) -> Case:
    block, env = graph_files.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-m365-files", "page_size": 3}

    def mutate() -> Change:
        files = sb.ws.m365_files
        with sb.ws.lock:
            items = {i.name: i.id for i in files.items.values() if not i.deleted}
            files.edit_item(items["Notes.txt"], data=b"Notes, edited by the conformance suite.")
            files.delete_item(items["Reorg plan.txt"])
        return Change(
            edited=f"conf-m365-files:{items['Notes.txt']}", deleted=f"conf-m365-files:{items['Reorg plan.txt']}"
        )

    return Case(raw, env, bad_env={k: "wrong-secret" for k in env}, api=True, mutate=mutate)


def _teams(root: Path, sb: Sandbox) -> Case:
    block, env = graph_teams.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {"name": "conf-teams", "page_size": 2}

    def mutate() -> Change:
        teams = sb.ws.teams
        with sb.ws.lock:
            replied = {m.reply_to for m in teams.messages.values()}
            alone = [m for m in teams.messages.values() if m.reply_to is None and m.id not in replied]
            teams.edit(alone[0].id, "<p>Edited by the conformance suite.</p>")
            teams.delete(alone[1].id)
        return Change(
            edited=f"conf-teams:{alone[0].channel_id}:{alone[0].id}",
            deleted=f"conf-teams:{alone[1].channel_id}:{alone[1].id}",
        )

    return Case(raw, env, bad_env={k: "wrong-secret" for k in env}, api=True, mutate=mutate)


def _gmail(root: Path, sb: Sandbox) -> Case:
    block, env = gmail.source(sb.ctx, sb.ctx.workdir)
    raw = _table(block) | {
        "name": "conf-gmail",
        "mailboxes": ["robert.badeer@enron.com"],
        "batch_size": 20,
        "page_size": 40,
        "backoff_seconds": 0.01,
    }

    def mutate() -> Change:  # a sent message never changes: only a deletion
        box = sorted(m.id for m in sb.ws.gmail.mailboxes["robert.badeer@enron.com"].messages.values())
        gmail.delete_message(sb.ws, "robert.badeer@enron.com", box[0])
        return Change(edited=None, deleted=f"conf-gmail:robert.badeer@enron.com/{box[0]}")

    foreign = {"credentials_file": str(foreign_key(root / "foreign-key.json", raw))}
    return Case(raw, env, bad_raw=foreign, api=True, mutate=mutate)


def foreign_key(path: Path, raw: dict[str, Any]) -> Path:
    """The source's service-account file with a private key the token endpoint never issued."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(Path(raw["credentials_file"]).read_text())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(json.dumps(info))
    return path


CASES: dict[str, Callable[[Path, Sandbox], Case]] = {
    "files": _files,
    "slack_export": _slack_export,
    "mail_archive": _mail_archive,
    "slack": _slack,
    "google_drive": _google_drive,
    "outlook": _outlook,
    "microsoft_files": _microsoft_files,
    "teams": _teams,
    "gmail": _gmail,
}


def _table(block: str) -> dict[str, Any]:
    import tomllib

    return dict(tomllib.loads(block)["sources"][0])


# --- the suite, once per registered type ------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_module() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module", params=TYPES)
def conformance_case(
    request: pytest.FixtureRequest, sandbox_module: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Case:
    type_name = request.param
    if type_name not in CASES:
        pytest.fail(
            f"connector type {type_name!r} is registered in {registry.GROUP} but has no "
            f"conformance case: add one to CASES in {__file__}"
        )
    return CASES[type_name](tmp_path_factory.mktemp(type_name), sandbox_module)


class TestBuiltinConnectors(ConformanceSuite):
    pass


def test_every_registered_type_has_a_case() -> None:
    assert {"files", "slack", "slack_export", "google_drive", "outlook", "mail_archive", "gmail"} <= set(TYPES)
    missing = sorted(set(TYPES) - set(CASES))
    assert not missing, f"registered connector types without a conformance case: {missing}"
