"""Outlook change events end to end: the sandbox's Graph subscriptions post to the daemon's
`/hooks/outlook/{source}`, each notification runs a delta round; the schedule is six hours away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from inlet.sandbox import graph
from inlet.status import sources_status
from inlet.sandbox.graph_seed import text_to_html
from inlet.sandbox.graph_subscriptions import Subscriptions, subscriptions
from inlet.sandbox.server import Sandbox

from .events_stack import EventStack, event_stack, wait_for

SOURCE = "sandbox-mail"
BADEER = "robert.badeer@enron.com"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    extra = {"mailboxes": [BADEER], "folders": ["inbox"], "subscription_lifetime": "6s"}
    with (
        Sandbox() as sb,
        event_stack(
            sb, tmp_path_factory.mktemp("graph-events"), embedder, SOURCE, extra, hook_key="notifications_url"
        ) as st,
    ):
        yield st


def _subs(stack: EventStack) -> Subscriptions:
    return subscriptions(stack.sb.ctx)


@pytest.fixture
def stack(shared: EventStack) -> EventStack:
    return shared.settled(lambda: _subs(shared).subs, "subscribed")


def _hook(stack: EventStack) -> str:
    url = stack.settings.source(SOURCE).notifications_url  # type: ignore[attr-defined]
    return str(url)


def test_new_edited_and_deleted_mail_is_searchable_within_seconds(stack: EventStack) -> None:
    msg = graph.add_message(stack.sb.ws, BADEER, "inbox", "Heron gas nomination", "Heron volumes for Tuesday")
    wait_for(lambda: stack.searchable("Heron"), what="a new message searchable")
    graph.edit_message(stack.sb.ws, msg.id, body_html=text_to_html("Egret volumes for Tuesday"))
    wait_for(lambda: stack.searchable("Egret"), what="an edit searchable")
    graph.delete_message(stack.sb.ws, msg.id)
    wait_for(lambda: not stack.searchable("Egret") and not stack.searchable("Heron"), what="a deletion applied")
    assert 0 < stack.report()["latency_seconds"] < 5


def test_hook_validates_checks_client_state_and_hides_other_sources(stack: EventStack) -> None:
    hook = _hook(stack)
    assert httpx.post(hook, params={"validationToken": "abc 123"}).text == "abc 123"
    assert httpx.post(hook.replace(SOURCE, "nope"), params={"validationToken": "x"}).status_code == 404
    assert httpx.post(hook.replace("/outlook/", "/google_drive/"), content=b"{}").status_code == 404
    before = stack.daemon.events.sources[SOURCE].hints  # type: ignore[union-attr]
    sub_id = next(iter(_subs(stack).subs))
    forged = {"value": [{"subscriptionId": sub_id, "clientState": "guessed", "changeType": "created"}]}
    assert httpx.post(hook, content=json.dumps(forged)).status_code == 404  # as for a hook nobody registered
    assert stack.daemon.events.sources[SOURCE].hints == before  # type: ignore[union-attr]


def test_dropped_notification_is_caught_by_the_scheduled_pass(stack: EventStack) -> None:
    stack.sb.faults.events("graph", drop=1)
    runs, posted = stack.runs(), _subs(stack).posted
    graph.add_message(stack.sb.ws, BADEER, "inbox", "Ibis curtailment notice", "Ibis plant is offline")
    assert _subs(stack).posted == posted and stack.runs() == runs
    assert not stack.searchable("Ibis")
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok" and stack.searchable("Ibis")


def test_duplicated_and_out_of_order_notifications_index_once(stack: EventStack) -> None:
    subs, posted = _subs(stack), _subs(stack).posted
    stack.sb.faults.events("graph", duplicate=2, delayed=1, delay=0.4)
    msg = graph.add_message(stack.sb.ws, BADEER, "inbox", "Plover pipeline outage", "Plover is down")
    graph.edit_message(stack.sb.ws, msg.id, body_html=text_to_html("Plover outage resolved"))
    wait_for(lambda: subs.posted >= posted + 4, what="every notification posted")
    wait_for(lambda: stack.quiet() and stack.searchable("resolved"), what="the final state searchable")
    hits = [t for t in stack.texts("Plover pipeline outage") if "Plover" in t]
    assert len(hits) == 1 and "resolved" in hits[0]


def test_lifecycle_notifications(stack: EventStack) -> None:
    subs = _subs(stack)
    sub_id = next(iter(subs.subs))
    renewals = subs.subs[sub_id].renewals
    subs.lifecycle(sub_id, "reauthorizationRequired")
    wait_for(lambda: subs.subs[sub_id].renewals > renewals, what="a renewal after reauthorizationRequired")
    runs = stack.runs()
    subs.lifecycle(sub_id, "missed")
    wait_for(lambda: stack.runs() > runs and stack.quiet(), what="a delta round after missed")
    subs.lifecycle(sub_id, "subscriptionRemoved")
    wait_for(lambda: subs.subs and sub_id not in subs.subs, what="a new subscription after subscriptionRemoved")
    msg = graph.add_message(stack.sb.ws, BADEER, "inbox", "Sandpiper meter reading", "Sandpiper numbers")
    wait_for(lambda: stack.searchable("Sandpiper"), what="events flowing on the new subscription")
    assert msg.id


def test_subscriptions_are_renewed_before_they_expire(stack: EventStack) -> None:
    subs = _subs(stack)
    sub = next(iter(subs.subs.values()))
    first_expiry, renewals = sub.expires, sub.renewals
    wait_for(
        lambda: sub.renewals >= renewals + 2 and sub.expires > first_expiry,
        timeout=12,
        what="two renewals of a six-second subscription",
    )
    assert sub.id in subs.subs  # never lapsed


def _watching(stack: EventStack, folder: str) -> bool:
    return any(sub.folder_id == folder for sub in _subs(stack).subs.values())


def test_a_folder_created_while_the_daemon_runs_gets_a_subscription_and_loses_it_when_deleted(
    stack: EventStack, caplog: pytest.LogCaptureFixture
) -> None:
    folder = graph.add_folder(stack.sb.ws, BADEER, "Kestrel deals", parent="inbox")
    graph.add_message(stack.sb.ws, BADEER, folder, "Kestrel term sheet", "Kestrel swap terms")
    runs = stack.runs()
    moved = graph.add_message(stack.sb.ws, BADEER, "inbox", "Kestrel counterparty", "Kestrel credit line")
    wait_for(lambda: stack.runs() > runs and stack.searchable("credit"), what="the message in the inbox indexed")
    graph.move_message(stack.sb.ws, moved.id, folder)  # the inbox's event run finds the new folder
    wait_for(lambda: stack.quiet() and stack.searchable("swap"), what="the new folder synced by an event run")
    _events_flow_in(stack, folder, "Merlin")
    graph.delete_folder(stack.sb.ws, BADEER, folder)
    assert _full_sync(stack) == "ok" and not stack.searchable("Merlin")
    wait_for(lambda: not _watching(stack, folder), what="the deleted folder's subscription removed")
    assert stack.report()["live"]
    assert "keeping change events alive failed" not in caplog.text


def test_a_folder_found_by_the_scheduled_pass_gets_a_subscription(stack: EventStack) -> None:
    folder = graph.add_folder(stack.sb.ws, BADEER, "Harrier desk", parent="inbox")
    graph.add_message(stack.sb.ws, BADEER, folder, "Harrier schedule", "Harrier delivery dates")
    assert not stack.searchable("Harrier")  # no subscription, no run: nothing heard of it
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok" and stack.searchable("Harrier")
    _events_flow_in(stack, folder, "Peregrine")
    graph.delete_folder(stack.sb.ws, BADEER, folder)
    assert _full_sync(stack) == "ok"
    wait_for(lambda: not _watching(stack, folder), what="the deleted folder's subscription removed")


def _full_sync(stack: EventStack) -> str:
    """A full sync's outcome, after any event run in flight (a deleted folder's messages notify)."""
    return stack.daemon.run_now([SOURCE])[0].outcome


def _events_flow_in(stack: EventStack, folder: str, word: str) -> None:
    """The new folder is subscribed to, and a message posted into it is searchable by its event."""
    wait_for(lambda: _watching(stack, folder) and stack.report()["live"], what="a subscription for the new folder")
    graph.add_message(stack.sb.ws, BADEER, folder, f"{word} confirmation", f"{word} confirms the trade")
    wait_for(lambda: stack.searchable(word), what="a message posted into the new folder searchable by its event")


def _restart_events(stack: EventStack) -> None:
    """What a restarted daemon does for its events: the old subscriptions removed, new ones made."""
    assert stack.daemon.events is not None
    stack.daemon.events.stop()
    stack.daemon.start_events()


def test_a_change_made_while_the_daemon_was_down_is_synced_when_its_events_start(stack: EventStack) -> None:
    """Graph notifies only changes made after a subscription exists, and the schedule is hours away:
    a message that arrived while the daemon restarted is synced by the catch-up that follows the
    new subscription."""
    assert stack.daemon.events is not None
    stack.daemon.events.stop()
    assert not _subs(stack).subs  # removed on exit, as documented
    graph.add_message(stack.sb.ws, BADEER, "inbox", "Crimson octopus sighting", "Crimson octopus at the dock")
    stack.daemon.start_events()
    wait_for(lambda: stack.searchable("octopus"), what="a message of the downtime synced at start")


def test_a_throttled_subscription_is_not_waited_out_and_status_says_why(
    stack: EventStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Graph throttling subscription creation (429, Retry-After: 30): the events' start tries once and
    returns (no in-line retries holding the daemon's start and its signals); the next try waits for
    the Retry-After; the status says events are down, and why."""
    assert stack.daemon.events is not None
    stack.daemon.events.stop()
    faults = stack.sb.faults
    faults.fail("graph", "subscriptions", 429, times=1000, retry_after=30)
    before = faults.rejected["graph:subscriptions"]
    try:
        stack.daemon.start_events()
        report = stack.report()
        assert faults.rejected["graph:subscriptions"] == before + 1
        assert not report["live"] and "429" in report["reason"]
        assert "next try in 30s" in caplog.text and "served by" not in caplog.text
        shown = next(s for s in sources_status(stack.settings)["sources"] if s["name"] == SOURCE)["events"]
        assert shown["live"] is False and "429" in shown["reason"]  # what `inlet status` prints
    finally:
        faults.clear()
        _restart_events(stack)


def test_a_crashed_daemons_subscription_is_removed_when_events_start_again(stack: EventStack) -> None:
    """A daemon killed (-9) leaves its subscription at Graph: each change is then notified twice, one
    refused as forged, until it expires days later. The next start deletes the subscriptions on the
    source's hook it does not hold, and leaves those of other hooks alone."""
    subs = _subs(stack)
    live = next(iter(subs.subs.values()))
    orphan = replace(live, id="orphan-of-a-crash", client_state="a dead process's secret")
    other = replace(live, id="another-apps", notification_url="https://elsewhere.example.com/hook")
    subs.subs.update({orphan.id: orphan, other.id: other})
    try:
        _restart_events(stack)
        wait_for(lambda: stack.report()["live"], what="events live again")
        assert orphan.id not in subs.subs and other.id in subs.subs
        assert [s.notification_url for s in subs.subs.values()].count(_hook(stack)) == 1
    finally:
        subs.subs.pop(other.id, None)


def test_beside_other_daemons_a_subscription_not_held_here_is_left_alone(stack: EventStack) -> None:
    """Several daemons on one database each hold a live subscription on the hook: one that starts
    must not delete the others' (they are not a crash's leftovers)."""
    subs = _subs(stack)
    live = next(iter(subs.subs.values()))
    other_daemon = replace(live, id="another-daemons", client_state="its own secret")
    subs.subs[other_daemon.id] = other_daemon
    events = stack.settings.connector(SOURCE, stack.engine.env).events()
    assert events is not None
    events.sole = False  # what the daemon sets when its index is shared (PostgreSQL)
    try:
        events.start(lambda hint: None)
        assert other_daemon.id in subs.subs
    finally:
        events.stop()
        subs.subs.pop(other_daemon.id, None)


def _shown(stack: EventStack) -> dict[str, Any]:
    """The source's change events as `inlet status` prints them."""
    return next(s for s in sources_status(stack.settings)["sources"] if s["name"] == SOURCE)["events"] or {}


def test_the_changes_of_a_reauthorization_pause_are_caught_up_once_renewed(stack: EventStack) -> None:
    """`reauthorizationRequired`: Graph pauses the subscription's delivery until it is renewed, and the
    changes of the pause are never notified (probe34d F2): the renewal is followed by a catch-up."""
    subs = _subs(stack)
    sub_id = next(iter(subs.subs))
    renewals = subs.subs[sub_id].renewals
    subs.lifecycle(sub_id, "reauthorizationRequired")
    graph.add_message(stack.sb.ws, BADEER, "inbox", "Albatross gas imbalance", "Albatross imbalance at the hub")
    wait_for(lambda: subs.subs[sub_id].renewals > renewals, what="the renewal")
    wait_for(lambda: stack.searchable("Albatross"), what="the mail of the pause caught up")


def test_a_refused_reauthorization_reads_down_saying_why(stack: EventStack) -> None:
    """While Graph refuses the renewal a reauthorization asks for (403), its delivery stays paused:
    the events read down with the reason, not live; once a renewal succeeds, live again."""
    subs = _subs(stack)
    sub_id = next(iter(subs.subs))
    stack.sb.faults.fail("graph", "subscriptions", 403, times=1000, reason="ExtensionError", target=f"*/{sub_id}")
    subs.lifecycle(sub_id, "reauthorizationRequired")
    wait_for(lambda: "403" in (_shown(stack).get("reason") or ""), what="the refused renewal in the status")
    assert _shown(stack)["live"] is False and "reauthorize" in _shown(stack)["reason"]
    stack.sb.faults.clear()
    wait_for(lambda: _shown(stack)["live"], timeout=15, what="live again once renewed")
