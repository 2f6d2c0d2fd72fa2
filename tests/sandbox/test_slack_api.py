"""The emulated Slack Web API, driven by slack_sdk's WebClient like the connector drives it."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Iterator

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from inlet.sandbox import slack
from inlet.sandbox.faults import Faults
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace

ENRIQUE, SAILOR, OPS, DM, RANDOM, HR, OLD = (
    "C0JGLMMNX",
    "C0JL6CGQ2",
    "G0PRIVOPS1",
    "D0DMHARRY1",
    "C0RANDOM01",
    "G0SECRETHR",
    "C0OLDPROJ1",
)
ALL_TYPES = "public_channel,private_channel,mpim,im"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture
def client(sb: Sandbox) -> WebClient:
    sb.faults.clear()
    return WebClient(token=slack.TOKEN, base_url=sb.ctx.http_url + "/api/", retry_handlers=[])


def _error(call: object) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()  # type: ignore[operator]
    return info.value


def test_auth_test_names_team_url_and_bot(client: WebClient) -> None:
    body = client.auth_test().data
    assert body["ok"] is True and body["url"] == "https://sandbox.slack.com/"
    assert body["user_id"] == slack.BOT_USER and body["bot_id"] and body["team_id"]


def test_conversations_list_keys_visibility_and_pagination(client: WebClient) -> None:
    pages = [p.data for p in client.conversations_list(types=ALL_TYPES, limit=2)]  # one object, new data
    assert len(pages) >= 3 and all(len(p["channels"]) <= 2 for p in pages)
    assert pages[0]["response_metadata"]["next_cursor"] and not pages[-1]["response_metadata"]["next_cursor"]
    channels = {c["id"]: c for p in pages for c in p["channels"]}
    assert set(channels) == {ENRIQUE, SAILOR, OPS, DM, RANDOM, OLD}  # not the private channel it is not in
    for c in channels.values():
        assert "id" in c and (c.get("is_im") or {"name", "is_private", "is_member"} <= set(c))
    assert channels[RANDOM]["is_member"] is False and channels[OPS]["is_private"] is True
    assert channels[DM]["is_im"] and channels[DM]["user"] == "U0BMYT2FL"
    public = client.conversations_list(exclude_archived=True, limit=100)["channels"]
    assert {c["id"] for c in public} == {ENRIQUE, SAILOR, RANDOM}


def test_history_newest_first_with_cursor_pagination(client: WebClient, sb: Sandbox) -> None:
    seen: list[str] = []
    for page in client.conversations_history(channel=ENRIQUE, limit=7):
        msgs = page["messages"]
        assert all({"ts", "text", "type"} <= set(m) for m in msgs)
        assert page["has_more"] == bool(page["response_metadata"]["next_cursor"])
        seen += [m["ts"] for m in msgs]
    expected = [m.ts for m in sb.ws.slack.channels[ENRIQUE].messages]
    assert seen == sorted(expected, key=float, reverse=True)
    user_msgs = [m for m in client.conversations_history(channel=ENRIQUE, limit=200)["messages"] if "subtype" not in m]
    assert user_msgs and all("user" in m for m in user_msgs)


def test_history_oldest_latest_inclusive(client: WebClient) -> None:
    everything = client.conversations_history(channel=ENRIQUE, limit=999)["messages"]
    a, b = everything[10]["ts"], everything[5]["ts"]
    exclusive = [m["ts"] for m in client.conversations_history(channel=ENRIQUE, oldest=a, latest=b)["messages"]]
    inclusive = [
        m["ts"] for m in client.conversations_history(channel=ENRIQUE, oldest=a, latest=b, inclusive=True)["messages"]
    ]
    assert exclusive == [m["ts"] for m in everything[6:10]]
    assert inclusive == [m["ts"] for m in everything[5:11]]


def test_thread_parent_and_replies(client: WebClient) -> None:
    parent = next(
        m
        for m in client.conversations_history(channel=ENRIQUE, limit=999)["messages"]
        if m["ts"] == "1459200000.000100"
    )
    assert parent["reply_count"] == 3 and parent["latest_reply"] == "1459200180.000100"
    assert parent["thread_ts"] == parent["ts"] and len(parent["reply_users"]) == 3
    pages = [p.data for p in client.conversations_replies(channel=ENRIQUE, ts=parent["ts"], limit=2)]
    assert len(pages) == 2 and all(p["messages"][0]["ts"] == parent["ts"] for p in pages)
    replies = [m for p in pages for m in p["messages"][1:]]
    assert [m["thread_ts"] for m in replies] == [parent["ts"]] * 3
    assert replies[-1]["files"][0]["name"] == "release-notes.md"
    by_reply = client.conversations_replies(channel=ENRIQUE, ts=replies[0]["ts"])["messages"]
    assert by_reply[0]["ts"] == parent["ts"]
    assert (
        _error(lambda: client.conversations_replies(channel=ENRIQUE, ts="1.000001")).response["error"]
        == "thread_not_found"
    )


def test_members_users_and_files(client: WebClient, sb: Sandbox) -> None:
    members = [u for p in client.conversations_members(channel=ENRIQUE, limit=2) for u in p["members"]]
    assert members == sb.ws.slack.channels[ENRIQUE].members and len(members) == 5
    users = [u for p in client.users_list(limit=3) for u in p["members"]]
    assert len(users) == len(sb.ws.users)
    hamza = next(u for u in users if u["id"] == "U0BMQB6JE")
    assert hamza["profile"]["email"] == "hamza@example.com" and hamza["profile"]["display_name"] == "hamza"
    stub = client.conversations_history(channel=OPS, limit=999)["messages"][-1]["files"][0]
    assert stub["file_access"] == "check_file_info"
    info = client.files_info(file=stub["id"])["file"]
    assert {"id", "name", "mimetype", "url_private", "url_private_download", "size"} <= set(info)
    got = httpx.get(info["url_private_download"], headers={"Authorization": f"Bearer {slack.TOKEN}"})
    assert got.status_code == 200 and got.content.startswith(b"Rotate the cluster") and len(got.content) == info["size"]
    anonymous = httpx.get(info["url_private"])
    assert anonymous.status_code == 200 and "text/html" in anonymous.headers["content-type"]
    assert _error(lambda: client.files_info(file="F404")).response["error"] == "file_not_found"


def test_errors_like_slack(client: WebClient, sb: Sandbox) -> None:
    base = sb.ctx.http_url + "/api/"
    bad = WebClient(token="xoxb-nope", base_url=base, retry_handlers=[])
    assert _error(bad.auth_test).response["error"] == "invalid_auth"
    assert _error(lambda: client.conversations_history(channel="C404")).response["error"] == "channel_not_found"
    assert _error(lambda: client.conversations_history(channel=HR)).response["error"] == "channel_not_found"
    err = _error(lambda: client.conversations_history(channel=RANDOM))
    assert err.response.status_code == 200 and err.response["error"] == "not_in_channel"
    assert (
        _error(lambda: client.conversations_history(channel=ENRIQUE, cursor="garbage")).response["error"]
        == "invalid_cursor"
    )
    cursor = client.conversations_history(channel=ENRIQUE, limit=2)["response_metadata"]["next_cursor"]
    slack.expire_cursors(sb.ws)
    assert (
        _error(lambda: client.conversations_history(channel=ENRIQUE, limit=2, cursor=cursor)).response["error"]
        == "invalid_cursor"
    )


def test_revoked_token(sb: Sandbox) -> None:
    ws = Workspace()
    slack.seed_sample(ws)
    with Sandbox(ws) as box:
        client = WebClient(token=slack.TOKEN, base_url=box.ctx.http_url + "/api/", retry_handlers=[])
        httpx.post(box.ctx.http_url + "/_admin/slack/revoke", json={}).raise_for_status()
        assert _error(client.auth_test).response["error"] == "token_revoked"


def test_faults_rate_limit_and_server_errors(client: WebClient, sb: Sandbox) -> None:
    sb.faults.fail("slack", "conversations.history", 429, times=1, retry_after=2.5)
    err = _error(lambda: client.conversations_history(channel=ENRIQUE))
    assert err.response.status_code == 429 and err.response.headers["Retry-After"] == "3"
    assert err.response["error"] == "ratelimited"
    sb.faults.fail("slack", "conversations.*", 503, times=1)
    assert _error(lambda: client.conversations_list()).response.status_code == 503
    sb.faults.fail("slack", "users.list", 200, reason="fatal_error")
    assert _error(client.users_list).response["error"] == "fatal_error"
    assert client.conversations_history(channel=ENRIQUE, limit=1)["ok"]


def test_tier_limits_reject_over_the_published_rate() -> None:
    faults = Faults(clock=lambda: 100.0)
    slack.tier_limits(faults)
    allowed = sum(faults.check("slack", "conversations.list") is None for _ in range(25))
    assert allowed == 20
    refused = faults.check("slack", "conversations.history")
    assert refused is None
    assert sum(faults.check("slack", "conversations.history") is None for _ in range(60)) == 49


def test_mutations_threads_edits_and_tombstones(client: WebClient, sb: Sandbox) -> None:
    post = httpx.post(
        sb.ctx.http_url + "/_admin/slack/post", json={"channel": SAILOR, "text": "new plan", "user": "U0BMQB6JE"}
    ).json()
    ts = post["ts"]
    reply = slack.post_message(sb.ws, SAILOR, "agreed", "U0BMS113R", thread_ts=ts)
    slack.edit_message(sb.ws, SAILOR, ts, "new plan (v2)")
    top = client.conversations_history(channel=SAILOR, limit=1)["messages"][0]
    assert top["ts"] == ts and top["text"] == "new plan (v2)" and top["edited"]["ts"]
    assert top["reply_count"] == 1 and top["latest_reply"] == reply
    slack.delete_message(sb.ws, SAILOR, ts)
    top = client.conversations_history(channel=SAILOR, limit=1)["messages"][0]
    assert top["ts"] == ts and top["subtype"] == "tombstone"
    slack.delete_message(sb.ws, SAILOR, reply)
    assert client.conversations_history(channel=SAILOR, limit=1)["messages"][0]["ts"] != ts
    httpx.post(sb.ctx.http_url + "/_admin/slack/leave", json={"channel": OPS, "user": "U0BMS113R"})
    assert "U0BMS113R" not in client.conversations_members(channel=OPS)["members"]
    slack.join_channel(sb.ws, OPS, "U0BMS113R")


def test_seed_generated_is_deterministic_and_threaded() -> None:
    def make() -> Workspace:
        ws = Workspace(rng=random.Random(3))
        slack.seed_generated(ws, channels=6, messages=1500)
        return ws

    a, b = make(), make()

    def summary(ws: Workspace) -> list[tuple[str, int, int]]:
        return [(c.id, len(c.messages), sum(map(len, c.replies.values()))) for c in ws.slack.channels.values()]

    assert summary(a) == summary(b)
    total = sum(m + r for _, m, r in summary(a))
    assert total == 1500
    biggest = max(len(r) for c in a.slack.channels.values() for r in c.replies.values())
    assert biggest >= 40  # a few threads with many replies (more than one replies page)
    assert any(c.is_private for c in a.slack.channels.values())
    assert any(slack.BOT_USER not in c.members for c in a.slack.channels.values())


def test_source_block_points_at_the_sandbox(sb: Sandbox) -> None:
    block, env = slack.source(sb.ctx, sb.ctx.workdir)
    entry = tomllib.loads(block)["sources"][0]
    assert entry["type"] == "slack" and entry["base_url"] == sb.ctx.http_url + "/api/"
    assert env[entry["token_env"]] == slack.TOKEN


def test_a_deleted_file_and_a_converted_channel_look_as_at_slack() -> None:
    ws = Workspace()
    slack.seed_sample(ws)
    heard: list[dict[str, object]] = []
    slack.state(ws).listeners.append(heard.append)
    with Sandbox(ws) as box:
        client = WebClient(token=slack.TOKEN, base_url=box.ctx.http_url + "/api/", retry_handlers=[])
        notes = slack.add_file(ws, "notes.txt", b"secret", "text/plain", "U0BMQB6JE")
        ts = slack.post_message(ws, SAILOR, "notes", "U0BMQB6JE", files=[notes.id])
        slack.delete_file(ws, notes.id)
        msg = client.conversations_history(channel=SAILOR, latest=ts, inclusive=True, limit=1)["messages"][0]
        assert msg["files"] == [{"id": notes.id, "mode": "tombstone"}] and "edited" not in msg
        assert _error(lambda: client.files_info(file=notes.id)).response["error"] == "file_deleted"
        assert heard[-1] == {
            "type": "file_deleted",
            "file_id": notes.id,
            "channel_ids": [SAILOR],
            "event_ts": heard[-1]["event_ts"],
        }
        notice = slack.convert_channel(ws, SAILOR, private=True, user="U0BMQB6JE")
        info = client.conversations_info(channel=SAILOR)["channel"]
        assert info["id"] == SAILOR and info["is_private"] and not info["is_channel"]
        top = client.conversations_history(channel=SAILOR, limit=1)["messages"][0]
        assert top["ts"] == notice and top["subtype"] == "channel_convert_to_private"
        assert heard[-1]["subtype"] == "channel_convert_to_private" and heard[-1]["channel_type"] == "group"
