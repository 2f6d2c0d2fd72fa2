"""Event-driven runs read only the container an event names, seen from the sandbox's request log.

A Slack message updates its thread from the event's payload and reads nothing else; a membership
change re-reads that channel's members and updates its ACL; a Graph notification runs that
folder's delta round only. Other containers keep their checkpoint entries and their documents
(even ones gone at the source: only the scheduled pass, which lists everything, may prune them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from inlet.sandbox import graph
from inlet.sandbox import slack as ss
from inlet.sandbox.graph_subscriptions import subscriptions
from inlet.sandbox.server import Sandbox
from inlet.sandbox.slack import hub
from inlet.sandbox.slack_socket import APP_TOKEN

from .events_stack import EventStack, event_stack, wait_for

SLACK, MAIL = "sandbox-slack", "sandbox-mail"
OPS, OLD = "G0PRIVOPS1", "C0OLDPROJ1"
BADEER = "robert.badeer@enron.com"
APP_ENV = "INLET_TEST_SLACK_APP_TOKEN"


@pytest.fixture(scope="module")
def slack_shared(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    extra = {"channels": ["private-ops", "old-project"], "events": True, "app_token_env": APP_ENV, "pace_scale": 1e6}
    with (
        Sandbox() as sb,
        event_stack(sb, tmp_path_factory.mktemp("slack-scope"), embedder, SLACK, extra, {APP_ENV: APP_TOKEN}) as st,
    ):
        yield st


@pytest.fixture
def slack(slack_shared: EventStack) -> EventStack:
    stack = slack_shared.settled(
        lambda: not hub(slack_shared.sb.ws, slack_shared.sb.faults).unacked, "Socket Mode connected"
    )
    stack.sb.faults.reset_counts()
    return stack


def _uid(sb: Sandbox, email: str) -> str:
    user = sb.ws.user_by_email(email)
    assert user is not None
    return user.id


def _channels_state(stack: EventStack) -> dict[str, Any]:
    checkpoint = stack.state.source(stack.source).checkpoint
    assert checkpoint is not None
    return dict(checkpoint["channels"])


def _last_kind(stack: EventStack) -> str | None:
    last = stack.state.last_run(stack.source)
    return last.kind if last else None


def test_a_message_syncs_only_its_channel(slack: EventStack) -> None:
    before = _channels_state(slack)
    assert {OPS, OLD} <= set(before)
    runs = slack.runs()
    ss.post_message(slack.sb.ws, OPS, "Gharial failover drill at noon", _uid(slack.sb, "hamza@example.com"))
    wait_for(lambda: slack.searchable("Gharial"), what="the message searchable")
    wait_for(slack.quiet, what="the event run finished")
    faults = slack.sb.faults
    assert set(faults.targets("slack:*")) <= {OPS, ""}  # "": calls naming no channel (users.info)
    assert faults.count("slack:conversations.history") == faults.count("slack:conversations.info") == 0  # the payload
    assert faults.count("slack:conversations.list") == 0 and faults.count("slack:users.list") == 0
    assert slack.runs() > runs and _last_kind(slack) == "event"
    after = _channels_state(slack)
    assert after[OPS] != before[OPS]
    assert {c: s for c, s in after.items() if c != OPS} == {c: s for c, s in before.items() if c != OPS}


def test_membership_change_updates_only_that_channels_acl(slack: EventStack) -> None:
    ss.post_message(slack.sb.ws, OPS, "Caracal access review", _uid(slack.sb, "hamza@example.com"))
    wait_for(lambda: slack.searchable("Caracal"), what="the message searchable")
    wait_for(slack.quiet, what="the event run finished")
    outsider = "abilinski@example.com"
    assert not slack.searchable("Caracal", user=outsider)
    slack.sb.faults.reset_counts()
    ss.join_channel(slack.sb.ws, OPS, _uid(slack.sb, outsider))
    wait_for(lambda: slack.searchable("Caracal", user=outsider), what="the new member sees the channel")
    wait_for(slack.quiet, what="the event run finished")
    assert set(slack.sb.faults.targets("slack:conversations.members")) == {OPS}
    assert set(slack.sb.faults.targets("slack:conversations.history")) == {OPS}
    ss.leave_channel(slack.sb.ws, OPS, _uid(slack.sb, outsider))
    wait_for(lambda: not slack.searchable("Caracal", user=outsider), what="the leaver no longer sees it")


def test_a_scoped_run_prunes_nothing_outside_its_channel(slack: EventStack) -> None:
    ws, hamza = slack.sb.ws, _uid(slack.sb, "hamza@example.com")
    ts = ss.post_message(ws, OLD, "Jerboa lunch order", hamza)
    wait_for(lambda: slack.searchable("Jerboa"), what="the message in #old-project searchable")
    wait_for(slack.quiet, what="the event run finished")
    slack.sb.faults.events("slack", drop=1)
    ss.delete_message(ws, OLD, ts)  # its event is lost: only a full pass can notice
    ss.post_message(ws, OPS, "Margay deploy freeze", hamza)
    wait_for(lambda: slack.searchable("Margay"), what="the message in #private-ops searchable")
    wait_for(slack.quiet, what="the event run finished")
    assert slack.searchable("Jerboa")  # the run of #private-ops proved nothing about #old-project
    result = slack.scheduled_pass()
    assert result is not None and result.outcome == "ok" and result.deleted >= 1
    assert not slack.searchable("Jerboa")


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    extra = {"mailboxes": [BADEER], "folders": ["inbox", "Capx"]}
    with (
        Sandbox() as sb,
        event_stack(
            sb, tmp_path_factory.mktemp("graph-scope"), embedder, MAIL, extra, hook_key="notifications_url"
        ) as st,
    ):
        yield st.settled(lambda: len(subscriptions(sb.ctx).subs) == 2, "both folders subscribed")


def _folder_id(sb: Sandbox, name: str) -> str:
    state = graph.mail_state(sb.ws)
    user = sb.ws.user_by_email(BADEER)
    assert user is not None
    return next(f.id for f in state.children(user.id, state.mailboxes[user.id].root_id) if f.display_name == name)


def test_a_notification_runs_only_that_folders_delta(mail: EventStack) -> None:
    capx, inbox = _folder_id(mail.sb, "Capx"), _folder_id(mail.sb, "Inbox")
    mail.sb.faults.reset_counts()
    graph.add_message(mail.sb.ws, BADEER, capx, "Caiman capex approval", "Caiman budget signed")
    wait_for(lambda: mail.searchable("Caiman"), what="the message searchable")
    wait_for(mail.quiet, what="the event run finished")
    deltas = mail.sb.faults.targets("graph:messages.delta")
    assert deltas and all(capx in path for path in deltas) and not any(inbox in path for path in deltas)
    assert mail.sb.faults.count("graph:mailFolders") == 0 and mail.sb.faults.count("graph:childFolders") == 0
    assert _last_kind(mail) == "event"
