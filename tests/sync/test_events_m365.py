"""Microsoft 365 files and Teams change events end to end: the sandbox's Graph subscriptions on drive
roots and channel messages post to the daemon's `/hooks/{type}/{source}`; each notification runs a
delta round of that drive or channel only; the schedule is six hours away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from inlet.sandbox import graph_files, graph_teams
from inlet.sandbox.graph_subscriptions import Subscriptions, subscriptions
from inlet.sandbox.server import Sandbox

from .events_stack import EventStack, event_stack, wait_for


def _subs(stack: EventStack) -> Subscriptions:
    return subscriptions(stack.sb.ctx)


@pytest.fixture(scope="module")
def files_stack(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    extra = {"sites": ["sandbox.sharepoint.com:/sites/Finance"], "subscription_lifetime": "6s"}
    with (
        Sandbox() as sb,
        event_stack(
            sb, tmp_path_factory.mktemp("files-events"), embedder, "sandbox-files", extra, hook_key="notifications_url"
        ) as st,
    ):
        yield st.settled(lambda: len(_subs(st).subs) == 2, "subscribed to both drives")


@pytest.fixture(scope="module")
def teams_stack(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    extra = {"teams": ["Support"], "subscription_lifetime": "6s"}
    with (
        Sandbox() as sb,
        event_stack(
            sb, tmp_path_factory.mktemp("teams-events"), embedder, "sandbox-teams", extra, hook_key="notifications_url"
        ) as st,
    ):
        yield st.settled(lambda: len(_subs(st).subs) == 1, "subscribed to the channel")


def test_a_new_file_is_searchable_within_seconds_and_only_its_drive_is_read(files_stack: EventStack) -> None:
    sb = files_stack.sb
    state = graph_files.files_state(sb.ws)
    with sb.ws.lock:
        drive = next(d for d in state.drives.values() if d.kind == "business")
    sb.faults.reset_counts()
    with sb.ws.lock:
        state.add_item(
            drive.id, None, "Kestrel plan.md", b"# Kestrel\n\nThe kestrel rollout starts in May.", "text/markdown"
        )
    wait_for(lambda: files_stack.searchable("kestrel"), what="a new file searchable")
    wait_for(files_stack.quiet, what="the run finished")
    assert set(sb.faults.targets("graph:delta")) == {f"/v1.0/drives/{drive.id}/root/delta"}


def test_drive_subscriptions_are_renewed_before_they_expire(files_stack: EventStack) -> None:
    sub = next(iter(_subs(files_stack).subs.values()))
    renewals = sub.renewals
    wait_for(lambda: sub.renewals >= renewals + 2, timeout=12, what="two renewals of a six-second subscription")
    assert sub.id in _subs(files_stack).subs


def test_a_new_reply_is_searchable_within_seconds(teams_stack: EventStack) -> None:
    sb = teams_stack.sb
    state = graph_teams.teams_state(sb.ws)
    with sb.ws.lock:
        root = next(m for m in state.messages.values() if "slow exports" in m.html)
        state.post(root.channel_id, "doubledeez@example.com", "<p>Fixed by raising the osprey quota.</p>", root.id)
    wait_for(lambda: teams_stack.searchable("osprey"), what="a new reply searchable")
    wait_for(teams_stack.quiet, what="the run finished")
    assert 0 < teams_stack.report()["latency_seconds"] < 5


def test_a_reply_delta_does_not_list_is_searchable_through_its_notification(teams_stack: EventStack) -> None:
    """With replies that leave their root untouched (as Graph documents delta), the notification
    naming the reply (`.../messages('ROOT')/replies('ID')`) has the scoped run read its thread."""
    sb = teams_stack.sb
    state = graph_teams.teams_state(sb.ws)
    with sb.ws.lock:
        state.replies_move_root = False
        root = next(m for m in state.messages.values() if "slow exports" in m.html)
    try:
        with sb.ws.lock:
            state.post(root.channel_id, "doubledeez@example.com", "<p>The heron cache is warm again.</p>", root.id)
        wait_for(lambda: teams_stack.searchable("heron"), what="a reply searchable through its notification")
        wait_for(teams_stack.quiet, what="the run finished")
    finally:
        with sb.ws.lock:
            state.replies_move_root = True
