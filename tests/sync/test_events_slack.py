"""Slack change events over Socket Mode, end to end: sandbox -> slack_sdk's Socket Mode client ->
the daemon's event loop -> the real engine and index, with the schedule six hours away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from inlet.connectors.events import Hint
from inlet.connectors.slack_events import SlackSocketEvents, carries_payload, hints_for, split_container
from inlet.sandbox import slack as ss
from inlet.sandbox.server import Sandbox
from inlet.sandbox.slack import hub
from inlet.sandbox.slack_socket import APP_TOKEN
from inlet.status import SourcesCollector, sources_status

from .events_stack import EventStack, event_stack, wait_for

SOURCE = "sandbox-slack"
OPS = "G0PRIVOPS1"  # the sample's private channel (the bot is a member)
APP_ENV = "INLET_TEST_SLACK_APP_TOKEN"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    """One sandbox and daemon for the module (setting one up takes seconds); tests use distinct words."""
    extra = {"channels": ["private-ops*"], "events": True, "app_token_env": APP_ENV, "pace_scale": 1e6}
    with (
        Sandbox() as sb,
        event_stack(sb, tmp_path_factory.mktemp("slack-events"), embedder, SOURCE, extra, {APP_ENV: APP_TOKEN}) as st,
    ):
        yield st


@pytest.fixture
def stack(shared: EventStack) -> EventStack:
    """The shared stack, connected, with no fault armed and no event sync pending."""
    return shared.settled(lambda: not hub(shared.sb.ws, shared.sb.faults).unacked, "Socket Mode connected")


def _member(sb: Sandbox, email: str) -> str:
    user = sb.ws.user_by_email(email)
    assert user is not None
    return user.id


def test_message_edit_reply_delete_are_searchable_within_seconds(stack: EventStack) -> None:
    ws, hamza = stack.sb.ws, _member(stack.sb, "hamza@example.com")
    ts = ss.post_message(ws, OPS, "Quokka rollback plan for the payments cluster", hamza)
    wait_for(lambda: stack.searchable("Quokka"), what="a new message searchable")
    ss.edit_message(ws, OPS, ts, "Wombat rollback plan for the payments cluster")
    wait_for(lambda: stack.searchable("Wombat") and not stack.searchable("Quokka"), what="an edit searchable")
    ss.post_message(ws, OPS, "Numbat canary looks healthy", _member(stack.sb, "hamza@example.com"), thread_ts=ts)
    wait_for(lambda: stack.searchable("Numbat"), what="a thread reply searchable")
    loose = ss.post_message(ws, OPS, "Axolotl dashboard is stale", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Axolotl"), what="a second message searchable")
    ss.delete_message(ws, OPS, loose)
    wait_for(lambda: not stack.searchable("Axolotl"), what="a deletion applied")
    report = stack.report()
    assert report["live"] and report["last_event_at"] is not None
    assert 0 < report["latency_seconds"] < 5


def test_membership_change_updates_the_acl(stack: EventStack) -> None:
    ws = stack.sb.ws
    ss.post_message(ws, OPS, "Capybara incident timeline", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Capybara"), what="the message searchable")
    outsider = "abilinski@example.com"
    assert _member(stack.sb, outsider) not in ss.state(ws).channels[OPS].members
    assert not stack.searchable("Capybara", user=outsider)
    ss.join_channel(ws, OPS, _member(stack.sb, outsider))
    wait_for(lambda: stack.searchable("Capybara", user=outsider), what="the new member sees the channel")
    ss.leave_channel(ws, OPS, _member(stack.sb, outsider))
    wait_for(lambda: not stack.searchable("Capybara", user=outsider), what="the leaver no longer sees it")


def test_rename_reaches_the_index(stack: EventStack) -> None:
    def channels() -> set[str]:
        docs = stack.index.catalog.documents(stack.index.catalog.source_doc_ids(SOURCE)).values()
        return {d.metadata["channel"] for d in docs}

    assert channels() == {"private-ops"}
    ss.rename_channel(stack.sb.ws, OPS, "private-ops-east")
    wait_for(lambda: channels() == {"private-ops-east"}, what="the new channel name on every document")
    ss.rename_channel(stack.sb.ws, OPS, "private-ops")
    wait_for(lambda: channels() == {"private-ops"}, what="the old name back")


def test_dropped_event_is_caught_by_the_scheduled_pass(stack: EventStack) -> None:
    socket = hub(stack.sb.ws, stack.sb.faults)
    stack.sb.faults.events("slack", drop=1)
    runs, sent = stack.runs(), socket.delivered
    ss.post_message(stack.sb.ws, OPS, "Pangolin capacity review", _member(stack.sb, "hamza@example.com"))
    assert socket.delivered == sent and stack.runs() == runs  # no event went out, no run was made
    assert not stack.searchable("Pangolin")
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok"
    assert stack.searchable("Pangolin")


def test_duplicated_and_out_of_order_events_index_once(stack: EventStack) -> None:
    ws, socket = stack.sb.ws, hub(stack.sb.ws, stack.sb.faults)
    sent = socket.delivered
    stack.sb.faults.events("slack", duplicate=3, delayed=1, delay=0.4)
    ts = ss.post_message(ws, OPS, "Okapi migration starts", _member(stack.sb, "hamza@example.com"))
    ss.edit_message(ws, OPS, ts, "Okapi migration starts at noon")
    ss.post_message(ws, OPS, "Okapi migration done", _member(stack.sb, "hamza@example.com"), thread_ts=ts)
    wait_for(lambda: not socket.unacked and socket.delivered >= sent + 6, what="every envelope delivered, acknowledged")
    wait_for(lambda: stack.searchable("noon") and stack.searchable("done"), what="the final state searchable")
    ids = [i for i in stack.index.catalog.source_doc_ids(SOURCE) if i.endswith(ts)]
    assert len(ids) == 1
    hits = [t for t in stack.texts("Okapi migration") if "Okapi" in t]
    assert len(hits) == 1 and "noon" in hits[0] and "done" in hits[0]


def test_reconnects_after_disconnect_and_reports_status(stack: EventStack) -> None:
    socket = hub(stack.sb.ws, stack.sb.faults)
    opened = socket.opened
    assert socket.disconnect() == 1
    wait_for(lambda: socket.opened > opened and len(socket.connections) == 1, what="a new connection")
    ss.post_message(stack.sb.ws, OPS, "Tapir postmortem drafted", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Tapir"), what="an event after the reconnect")
    wait_for(
        lambda: (sources_status(stack.settings, stack.state)["sources"][0]["events"] or {}).get("latency_seconds"),
        what="status reporting latency",
    )
    events = sources_status(stack.settings, stack.state)["sources"][0]["events"]
    assert events["live"] is True and events["last_event_at"].endswith("Z")
    gauges = {m.name: m.samples[0].value for m in SourcesCollector(stack.settings, stack.state).collect() if m.samples}
    assert gauges["inlet_source_events_live"] == 1 and 0 < gauges["inlet_source_event_latency_seconds"] < 5


def test_a_lost_connection_reads_as_down_within_a_second_or_two_and_live_once_back(stack: EventStack) -> None:
    """The connection ends without a close frame (a lost network or host): slack_sdk's client
    noticed only once its pings had failed for some 25 s, and `inlet status` said `live` meanwhile."""
    socket = hub(stack.sb.ws, stack.sb.faults)

    def live() -> bool:
        return bool((sources_status(stack.settings, stack.state)["sources"][0]["events"] or {}).get("live"))

    def reason() -> str:
        return str((sources_status(stack.settings, stack.state)["sources"][0]["events"] or {}).get("reason"))

    assert live() and socket.lose() == 1
    try:
        wait_for(lambda: not live(), timeout=3, what="status saying the events are down")
        assert not socket.connections  # nothing reconnected: the service still refuses
        assert "the Socket Mode connection was lost at " in reason()  # and why (probe34d F4)
        stack.sb.faults.events("slack", drop=1)  # what Slack gives up on after its retries
        ss.post_message(stack.sb.ws, OPS, "Mongoose posted during the outage", _member(stack.sb, "hamza@example.com"))
    finally:
        socket.restore()
    wait_for(lambda: live() and len(socket.connections) == 1, timeout=15, what="live again on a new connection")
    # the new connection is a gap: one catch-up sync finds what Slack dropped (probe34d F3)
    wait_for(lambda: stack.searchable("Mongoose"), what="the message of the outage caught up")


def test_a_message_slack_dropped_while_the_daemon_was_down_is_synced_when_its_events_start(
    stack: EventStack,
) -> None:
    """Slack gives up on an event no connection acknowledged after a few retries (some 5 minutes):
    a message posted while the daemon was down longer is found by the catch-up at start (probe34d F3)."""
    assert stack.daemon.events is not None
    stack.daemon.events.stop()
    stack.sb.faults.events("slack", drop=1)
    ss.post_message(
        stack.sb.ws, OPS, "Caracal posted while the daemon was down", _member(stack.sb, "hamza@example.com")
    )
    stack.daemon.start_events()
    wait_for(lambda: stack.searchable("Caracal"), what="the message of the downtime synced at start")


def test_a_channel_made_private_or_public_follows_within_seconds(stack: EventStack) -> None:
    ws, hamza, outsider = stack.sb.ws, _member(stack.sb, "hamza@example.com"), "abilinski@example.com"
    ss.post_message(ws, OPS, "Tapir budget review", hamza)
    wait_for(lambda: stack.searchable("Tapir"), what="the message searchable")
    wait_for(stack.quiet, what="its run finished")
    assert not stack.searchable("Tapir", user=outsider)
    stack.sb.faults.events("slack", drop=1)
    ss.convert_channel(ws, OPS, private=False, user=hamza)  # its event lost: the schedule makes it public
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok" and stack.searchable("Tapir", user=outsider)
    # Made private: Slack's notice is a message (subtype channel_convert_to_private, channel_type "group")
    ss.convert_channel(ws, OPS, private=True, user=hamza)
    ss.post_message(ws, OPS, "Okapi salary bands", hamza)
    wait_for(lambda: stack.searchable("Okapi"), what="the message after the conversion searchable")
    wait_for(stack.quiet, what="the runs finished")
    assert not stack.searchable("Okapi", user=outsider) and not stack.searchable("Tapir", user=outsider)
    assert not stack.searchable("invitation")  # the notice is no document
    ss.convert_channel(ws, OPS, private=False, user=hamza)  # and public again, heard
    wait_for(lambda: stack.searchable("Okapi", user=outsider), what="a public channel readable by everyone")
    ss.convert_channel(ws, OPS, private=True, user=hamza)
    wait_for(lambda: not stack.searchable("Okapi", user=outsider), what="private again")


def test_a_deleted_file_leaves_the_index_within_seconds(stack: EventStack) -> None:
    ws = stack.sb.ws
    ss.post_message(ws, OPS, "Aardvark keys", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Aardvark"), what="the events flowing")
    runbook = next(f for f in ss.state(ws).files.values() if f.name == "runbook.txt")  # in a years-old thread
    assert stack.searchable("Rotate the cluster credentials")
    ss.delete_file(ws, runbook.id)  # file_deleted, with the channel it was shared in
    wait_for(lambda: not stack.searchable("Rotate the cluster credentials"), what="the deleted file's text gone")
    assert stack.searchable("Credentials rotation plan")  # the thread stays


def test_sources_of_one_app_share_its_connection_and_all_hear_every_event(stack: EventStack) -> None:
    # Slack hands each event to one of an app's open connections at random: one per source would
    # give each source only a share of its events (sources splitting a workspace by `channels`).
    socket = hub(stack.sb.ws, stack.sb.faults)
    opened = socket.opened
    heard: dict[str, list[Hint]] = {"eng-slack": [], "ops-slack": []}
    sources = [SlackSocketEvents(name, APP_TOKEN, stack.sb.ctx.http_url + "/api/") for name in heard]
    try:
        for events in sources:
            events.start(heard[events.source].append)
        assert socket.opened == opened and all(events.live for events in sources)  # the daemon's connection
        ss.post_message(stack.sb.ws, OPS, "Jerboa heard by every source", _member(stack.sb, "hamza@example.com"))
        wait_for(
            lambda: all(len(hs) > 1 for hs in heard.values()) and stack.searchable("Jerboa"),
            what="every source hears the event",
        )
        # each first catches up what it may have missed before it joined, then hears the channel's event
        assert all(hs[0].container is None for hs in heard.values())
        assert all(split_container(h.container or "")[0] == OPS for hs in heard.values() for h in hs[1:])
    finally:
        for events in sources:
            events.stop()
    assert socket.connections and stack.report()["live"]  # the daemon's source is still on it


# --- what an event run calls --------------------------------------------------------------------


def _calls(stack: EventStack) -> dict[str, int]:
    faults = stack.sb.faults
    return {
        m: faults.count(f"slack:{m}")
        for m in (
            "conversations.replies",
            "conversations.members",
            "conversations.info",
            "conversations.history",
            "conversations.list",
            "users.list",
        )
    }


def _settle(stack: EventStack) -> None:
    wait_for(stack.quiet, what="events settled")
    stack.sb.faults.reset_counts()


def _checkpoint_channel(stack: EventStack) -> dict[str, Any]:
    checkpoint = stack.state.source(SOURCE).checkpoint
    assert checkpoint is not None
    return dict(checkpoint["channels"][OPS])


def test_each_message_event_costs_at_most_one_replies_call_and_no_members(stack: EventStack) -> None:
    ws, hamza = stack.sb.ws, _member(stack.sb, "hamza@example.com")
    steps: list[tuple[str, Any, Any]] = []  # (what, change, searchable when done)
    ts: dict[str, str] = {}
    steps.append(
        (
            "message",
            lambda: ts.setdefault("top", ss.post_message(ws, OPS, "Gerenuk rota posted", hamza)),
            lambda: stack.searchable("Gerenuk"),
        )
    )
    steps.append(
        (
            "edit",
            lambda: ss.edit_message(ws, OPS, ts["top"], "Gerenuk rota posted and agreed"),
            lambda: stack.searchable("agreed"),
        )
    )
    steps.append(
        (
            "reply",
            lambda: ts.setdefault(
                "reply", ss.post_message(ws, OPS, "Dikdik swaps Tuesday", hamza, thread_ts=ts["top"])
            ),
            lambda: stack.searchable("Dikdik"),
        )
    )
    steps.append(
        (
            "reply edit",
            lambda: ss.edit_message(ws, OPS, ts["reply"], "Dikdik swaps Wednesday"),
            lambda: stack.searchable("Wednesday"),
        )
    )
    steps.append(
        ("reply deletion", lambda: ss.delete_message(ws, OPS, ts["reply"]), lambda: not stack.searchable("Dikdik"))
    )
    steps.append(("deletion", lambda: ss.delete_message(ws, OPS, ts["top"]), lambda: not stack.searchable("Gerenuk")))
    for what, change, done in steps:
        _settle(stack)
        runs = stack.runs()
        change()
        wait_for(done, what=f"the {what} searchable")
        wait_for(stack.quiet, what=f"the {what}'s run finished")
        calls = _calls(stack)
        assert stack.runs() == runs + 1, what
        assert calls["conversations.replies"] <= 1, (what, calls)
        assert calls["conversations.members"] == calls["conversations.info"] == 0, (what, calls)
        assert calls["conversations.history"] == calls["conversations.list"] == calls["users.list"] == 0, (what, calls)
    assert _calls(stack)["conversations.replies"] == 0  # the last step: a message without replies, gone


def test_a_single_message_needs_no_call_at_all(stack: EventStack) -> None:
    _settle(stack)
    ss.post_message(stack.sb.ws, OPS, "Serval outage is over", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Serval"), what="the message searchable")
    wait_for(stack.quiet, what="the run finished")
    assert sum(_calls(stack).values()) == 0


def test_a_burst_of_messages_is_searchable_within_seconds(stack: EventStack) -> None:
    _settle(stack)
    hamza = _member(stack.sb, "hamza@example.com")
    words = [f"Burstword{i:02d}" for i in range(12)]
    for word in words:  # as fast as they can be posted: several a second
        ss.post_message(stack.sb.ws, OPS, f"{word} deploy step done", hamza)
    wait_for(lambda: all(stack.searchable(w) for w in words), what="every message of the burst searchable")
    wait_for(stack.quiet, what="the runs finished")
    calls = _calls(stack)
    assert calls["conversations.members"] == calls["conversations.history"] == 0, calls


def test_membership_event_rereads_the_members(stack: EventStack) -> None:
    _settle(stack)
    ws, outsider = stack.sb.ws, _member(stack.sb, "abilinski@example.com")
    ss.join_channel(ws, OPS, outsider)
    wait_for(lambda: _calls(stack)["conversations.members"] >= 1, what="the members re-read")
    ss.leave_channel(ws, OPS, outsider)
    wait_for(stack.quiet, what="the runs finished")


def test_an_event_run_leaves_the_scheduled_run_everything_to_check(stack: EventStack) -> None:
    """The event run only adds marks: `newest` stays, so a message whose event was lost (older than
    the one heard) is still found by the schedule, and the heard one is re-read there."""
    ws, hamza = stack.sb.ws, _member(stack.sb, "hamza@example.com")
    _settle(stack)
    before = _checkpoint_channel(stack)
    stack.sb.faults.events("slack", drop=1)
    ss.post_message(ws, OPS, "Bongo event was lost", hamza)
    heard = ss.post_message(ws, OPS, "Kudu event was heard", hamza)
    wait_for(lambda: stack.searchable("Kudu"), what="the heard message searchable")
    wait_for(stack.quiet, what="the run finished")
    after = _checkpoint_channel(stack)
    assert after["newest"] == before["newest"]
    assert after["recent"][heard] == "event"
    assert not stack.searchable("Bongo")
    stack.sb.faults.reset_counts()
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok"
    assert stack.searchable("Bongo") and stack.searchable("Kudu")
    assert _checkpoint_channel(stack)["recent"][heard] != "event"  # re-read and fingerprinted


def test_a_payload_not_found_reads_the_channel(stack: EventStack) -> None:
    """The inbox is an optimisation: a hint whose payload is gone (another process) reads the channel."""
    _settle(stack)
    stack.sb.faults.events("slack", drop=1)
    ss.post_message(stack.sb.ws, OPS, "Sitatunga notes", _member(stack.sb, "hamza@example.com"))
    result = stack.engine.run(SOURCE, "sync", scope=frozenset({f"{OPS}/EvNOTINTHEINBOX"}))
    assert result.outcome == "ok" and stack.searchable("Sitatunga")
    assert _calls(stack)["conversations.history"] >= 1


def test_the_bot_removed_from_a_channel_drops_it_within_seconds(stack: EventStack) -> None:
    ws = stack.sb.ws
    ss.post_message(ws, OPS, "Gharial vendor shortlist", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Gharial"), what="the message searchable")
    ss.leave_channel(ws, OPS, ss.BOT_USER)  # the bot hears group_left, no member_left_channel
    wait_for(lambda: not stack.searchable("Gharial"), what="the channel the bot left dropped")
    ss.join_channel(ws, OPS, ss.BOT_USER)  # invited back: read whole again
    wait_for(lambda: stack.searchable("Gharial"), what="the channel back once the bot is back")


def test_a_deactivated_member_leaves_the_acl_within_seconds(stack: EventStack) -> None:
    ws, member = stack.sb.ws, "doubledeez@example.com"
    ss.post_message(ws, OPS, "Dugong salary bands", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Dugong", user=member), what="the member reads the message")
    ss.deactivate_user(ws, _member(stack.sb, member))  # user_change with deleted: true, naming no channel
    try:
        wait_for(lambda: not stack.searchable("Dugong", user=member), what="the deactivated member reads nothing")
        assert stack.searchable("Dugong", user="hamza@example.com")
    finally:
        ss.deactivate_user(ws, _member(stack.sb, member), deleted=False)
        stack.scheduled_pass()


def test_a_changed_email_reaches_the_acl_within_seconds(stack: EventStack) -> None:
    ws, old, new = stack.sb.ws, "doubledeez@example.com", "hermione@rebrand.example.com"
    ss.post_message(ws, OPS, "Narwhal offsite budget", _member(stack.sb, "hamza@example.com"))
    wait_for(lambda: stack.searchable("Narwhal", user=old), what="the member reads the message")
    uid = _member(stack.sb, old)
    ss.change_email(ws, uid, new)  # user_change with the new profile
    try:
        wait_for(
            lambda: stack.searchable("Narwhal", user=new) and not stack.searchable("Narwhal", user=old),
            what="the new address reads the channel, the old one nothing",
        )
    finally:
        ss.change_email(ws, uid, old)
        wait_for(lambda: stack.searchable("Narwhal", user=old), what="the address back")


@pytest.mark.parametrize(
    ("event", "hints"),
    [
        ({"type": "channel_left", "channel": "C1", "actor_id": "U1", "event_ts": "1.0"}, [("C1", False)]),
        ({"type": "group_left", "channel": "G1", "actor_id": "U1", "event_ts": "1.0"}, [("G1", False)]),
        (
            {"type": "channel_id_changed", "old_channel_id": "G1", "new_channel_id": "C9", "event_ts": "1.0"},
            [("G1", False), ("C9", False)],
        ),
        ({"type": "user_change", "user": {"id": "U2", "deleted": True}, "event_ts": "1.0"}, [(None, True)]),
        # any other profile change: the run compares the email with the one it knew (`@USER`)
        ({"type": "user_change", "user": {"id": "U2", "deleted": False}, "event_ts": "1.0"}, [("@U2", True)]),
        ({"type": "user_change", "user": {"id": "B2", "is_bot": True}, "event_ts": "1.0"}, []),
        (
            {"type": "message", "subtype": "channel_convert_to_private", "channel": "C1", "channel_type": "group"},
            [("C1", True)],
        ),
        (
            {"type": "file_deleted", "file_id": "F1", "channel_ids": ["C1", "G2"], "event_ts": "1.0"},
            [("C1", False), ("G2", False)],
        ),
        ({"type": "file_deleted", "file_id": "F1", "event_ts": "1.0"}, [(None, False)]),
    ],
)
def test_removal_id_change_and_deactivation_events_ask_for_runs(
    event: dict[str, Any], hints: list[tuple[str | None, bool]]
) -> None:
    assert [(h.container, h.acl) for h in hints_for(event)] == hints
    # a conversion is read from its channel, never written from its payload
    assert carries_payload(event) == (event["type"] in ("file_deleted", "user_change"))
