"""A lone UTF-16 surrogate in an item (JSON allows `"\\ud83d"`: what a bot written in JavaScript posts
when it cuts a string between the two halves of an emoji) never reaches the index: it is read as
U+FFFD, and the rest of the run is indexed (probe35b F1). (An item the index cannot prepare anyway
is that item's failed skip: tests/sync/test_engine.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from inlet.connectors.model import ACL, Deletion, Document, Skipped
from inlet.index.search import SearchRequest, search
from inlet.sandbox import slack
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace
from inlet.status import sources_status

from .test_slack_scopes import slack_engine

ENRIQUE, SAILOR = "C0JGLMMNX", "C0JL6CGQ2"
CUT = "\ud83d"  # the high half of 🚀, alone


def test_a_slack_message_holding_a_lone_surrogate_is_indexed_with_a_replacement_and_so_is_the_rest(
    tmp_path: Path, embedder: Any
) -> None:
    ws = Workspace()
    slack.seed_sample(ws)
    with Sandbox(ws) as sb, slack_engine(sb, tmp_path, embedder, ["enrique", "traveling-sailor"]) as parts:
        settings, index, state, engine = parts
        assert engine.run("team-slack", "backfill").outcome == "ok"
        post = sb.ctx.http_url + "/_admin/slack/post"
        # the lone surrogate goes over the wire as its JSON escape, and the sandbox serves it so
        bad = json.dumps({"channel": SAILOR, "text": f"deploy bot: build ok {CUT}"})
        httpx.post(post, content=bad).raise_for_status()
        httpx.post(post, json={"channel": ENRIQUE, "text": "an ordinary new message about the wallaby"})
        wire = httpx.post(
            sb.ctx.http_url + "/api/conversations.history",
            data={"channel": SAILOR, "limit": "1"},
            headers={"Authorization": f"Bearer {slack.TOKEN}"},
        )
        assert b"build ok \\ud83d" in wire.content  # what the connector reads: the escape
        result = engine.run("team-slack", "sync")
        assert (result.outcome, result.errors, result.error) == ("ok", 0, None), result
        hits = {
            h.doc_id: h
            for h in search(index, SearchRequest(query="deploy bot build ok", k=10))[0]
            + search(index, SearchRequest(query="ordinary new message about the wallaby", k=10))[0]
        }
        texts = [index.document(d) for d in hits]
        assert any(d is not None and "build ok \ufffd" in d.text for d in texts)
        assert any(d is not None and "wallaby" in d.text for d in texts)
        assert not any(d is not None and CUT in d.text for d in texts)
        assert sources_status(settings, state)["sources"][0]["last_run"]["outcome"] == "ok"


def test_every_string_of_an_item_has_its_lone_surrogates_replaced() -> None:
    doc = Document(
        id=f"s:a{CUT}",
        source="s",
        source_type="t",
        title=f"t{CUT}",
        text=f"x{CUT}y\udc00z 🚀",
        url=f"https://x/{CUT}",
        author=f"a{CUT}",
        metadata={"k": f"v{CUT}", "people": [f"p{CUT}", "q"], "n": 3},
        acl=ACL(users=[f"u{CUT}@example.com"]),
    )
    assert (doc.id, doc.title, doc.text, doc.url, doc.author) == (
        "s:a\ufffd",
        "t\ufffd",
        "x\ufffdy\ufffdz 🚀",
        "https://x/\ufffd",
        "a\ufffd",
    )
    assert doc.metadata == {"k": "v\ufffd", "people": ["p\ufffd", "q"], "n": 3}
    assert doc.acl.users == ["u\ufffd@example.com"]
    doc.content_hash(), doc.meta_hash()  # hashable: UTF-8 throughout
    assert Deletion(id=f"s:a{CUT}").id == doc.id  # the same item, whatever names it
    skip = Skipped(id=f"s:a{CUT}", reason=f"r{CUT}", title=f"t{CUT}")
    assert (skip.id, skip.reason, skip.title) == (doc.id, "r\ufffd", "t\ufffd")
