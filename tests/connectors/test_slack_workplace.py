"""Slack messages as workplaces write them (probe33f): apps' Block Kit posts, emphasis marks,
exports that share files or hold Slack Connect partners."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from inlet.connectors.model import Document, Skipped
from inlet.connectors.slack import SlackExportConnector
from inlet.connectors.slack_render import Directory, message_body, render

ALICE = {
    "id": "U1",
    "name": "alice",
    "real_name": "Alice Example",
    "profile": {"email": "alice@example.com", "display_name": "alice"},
}


def export(tmp_path: Path, messages: list[dict[str, Any]], users: list[dict[str, Any]] | None = None) -> list[Any]:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("users.json", json.dumps(users if users is not None else [ALICE]))
        zf.writestr("channels.json", json.dumps([{"id": "C01", "name": "general"}]))
        zf.writestr("general/2026-11-02.json", json.dumps(messages))
    conn = SlackExportConnector(SlackExportConnector.Config(name="sx", type="slack_export", path=path), {})
    return list(conn.load(None))


def docs(items: list[Any]) -> list[Document]:
    return [i for i in items if isinstance(i, Document)]


def message(user: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": user, "ts": ts, "text": text, **extra}


def test_links_are_the_workspaces_though_a_shared_file_names_files_slack_com_first(tmp_path: Path) -> None:
    shared = message(
        "U1",
        "1793613600.000100",
        "the plan",
        files=[
            {
                "id": "F1",
                "name": "plan.txt",
                "title": "Q3 plan",
                "mimetype": "text/plain",
                "url_private": "https://files.slack.com/files-pri/T1-F1/plan.txt",
                "permalink": "https://acme.slack.com/files/U1/F1/plan.txt",
                "preview": "Q3 plan: the first lines",
                "preview_is_truncated": True,
            }
        ],
    )
    items = export(tmp_path, [shared])
    (doc,) = docs(items)
    assert doc.url == "https://acme.slack.com/archives/C01/p1793613600000100"
    assert "[file: Q3 plan]\n(preview: the first lines only)\nQ3 plan: the first lines" in doc.text
    skips = [i for i in items if isinstance(i, Skipped)]
    assert [(s.id, s.failed) for s in skips] == [("sx:C01:1793613600.000100#Q3 plan", False)]
    assert "only the first lines of Q3 plan" in skips[0].reason


def test_a_writer_missing_from_users_json_is_named_by_the_profile_their_messages_carry(tmp_path: Path) -> None:
    profile = {"real_name": "Priya Partner", "display_name": "priya.p", "name": "priya"}
    partner = message("W0EXT123", "1793613600.000100", "Hi <@U1>, the jabiru shipment leaves Friday")
    partner["user_profile"] = profile
    reply = message("U1", "1793613700.000100", "thanks <@W0EXT123>", thread_ts="1793613600.000100")
    (doc,) = docs(export(tmp_path, [partner, reply]))
    assert doc.author == "priya.p" and doc.metadata["participants"] == ["priya.p", "alice"]
    assert "priya.p: Hi @alice, the jabiru shipment leaves Friday" in doc.text
    assert doc.text.endswith("alice: thanks @priya.p")
    assert doc.metadata["participant_full_names"] == ["Priya Partner", "Alice Example"]


def test_an_apps_block_kit_post_is_read_not_only_its_notification_fallback() -> None:
    directory = Directory()
    directory.add_user(ALICE)
    incident = {
        "text": "New incident opened",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "INC-4821: bluethroat payment gateway down"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Impact:* card payments fail &amp; retry"},
                "fields": [{"type": "mrkdwn", "text": "*Owner:* <@U1>"}, {"type": "plain_text", "text": "Sev 1"}],
            },
            {"type": "divider"},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Ack"}}]},
        ],
    }
    assert message_body(incident, directory) == (
        "New incident opened\nINC-4821: bluethroat payment gateway down\nImpact: card payments fail & retry\n"
        "Owner: @alice\nSev 1"
    )
    bot = {
        "text": "",
        "attachments": [
            {
                "fallback": "[repo] PR #12 opened",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Fix the avocet cache eviction"}}],
            }
        ],
    }
    assert message_body(bot, directory) == "Fix the avocet cache eviction"
    rich = {
        "text": "",
        "blocks": [
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "Ask "},
                            {"type": "user", "user_id": "U1"},
                            {"type": "text", "text": " about the re"},
                            {"type": "text", "text": "deployment", "style": {"bold": True}},
                            {"type": "text", "text": " of pipit, see "},
                            {"type": "link", "url": "https://wiki.example.com/pipit"},
                        ],
                    },
                    {
                        "type": "rich_text_list",
                        "style": "bullet",
                        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "step one"}]}],
                    },
                ],
            }
        ],
    }
    assert message_body(rich, directory) == (
        "Ask @alice about the redeployment of pipit, see https://wiki.example.com/pipit\n- step one"
    )
    typed = {
        "text": "plain words <@U1>",
        "blocks": rich["blocks"][:0]
        + [
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [{"type": "text", "text": "plain words "}, {"type": "user", "user_id": "U1"}],
                    }
                ],
            }
        ],
    }
    assert message_body(typed, directory) == "plain words @alice"  # a person's message: its text, once


def test_mrkdwn_emphasis_marks_are_not_text() -> None:
    directory = Directory()
    assert render("Deploy of *wagtail* is _done_ ~today~ &amp; verified", directory) == (
        "Deploy of wagtail is done today & verified"
    )
    kept = "snake_case_name, 2*3*4, a * b, `*literal*` and __init__.py"
    assert render(kept, directory) == kept
