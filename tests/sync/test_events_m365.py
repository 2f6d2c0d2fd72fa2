"""Microsoft 365 files and Teams change events end to end: the sandbox's Graph subscriptions on drive
roots and channel messages post to the daemon's `/hooks/{type}/{source}`; each notification runs a
delta round of that drive or channel only; the schedule is six hours away."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from inlet.sandbox import graph_files, graph_teams
from inlet.sandbox.graph_subscriptions import Subscriptions, subscriptions
from inlet.sandbox.server import Sandbox

from .events_stack import EventStack, event_stack, wait_for


MD = "text/markdown"


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
    """With replies that leave their root untouched (as Graph documents delta, the sandbox's
    default), the notification naming the reply (`.../messages('ROOT')/replies('ID')`) has the
    scoped run read its thread."""
    sb = teams_stack.sb
    state = graph_teams.teams_state(sb.ws)
    with sb.ws.lock:
        assert not state.replies_move_root
        root = next(m for m in state.messages.values() if "slow exports" in m.html)
        state.post(root.channel_id, "doubledeez@example.com", "<p>The heron cache is warm again.</p>", root.id)
    wait_for(lambda: teams_stack.searchable("heron"), what="a reply searchable through its notification")
    wait_for(teams_stack.quiet, what="the run finished")


def _watching(stack: EventStack, container: str) -> bool:
    """The sandbox holds a subscription on this drive's root or channel's messages."""
    return any(sub.folder_id == container for sub in _subs(stack).subs.values())


def _reconciled(stack: EventStack) -> None:
    """The scheduled pass, once no event run is in flight (it would be skipped meanwhile)."""
    wait_for(stack.quiet, what="no event run in flight")
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok"


def _followed(stack: EventStack, container: str, post: Callable[[str], object], delete: Callable[[], object]) -> None:
    """A container created while the daemon runs: the scheduled pass indexes what `post("gannet")`
    put in it and subscribes to it, so what `post("cormorant")` adds is searchable by its event
    alone; once a pass has seen it deleted, its documents and its subscription are gone, and the
    other subscriptions stay live."""
    with stack.sb.ws.lock:
        post("gannet")
    assert not stack.searchable("gannet")  # no subscription, no run: nothing heard of it
    _reconciled(stack)
    assert stack.searchable("gannet")
    wait_for(lambda: _watching(stack, container) and stack.report()["live"], what="a subscription for it")
    with stack.sb.ws.lock:
        post("cormorant")
    wait_for(lambda: stack.searchable("cormorant"), what="what was posted into it searchable by its event")
    wait_for(stack.quiet, what="the run finished")
    with stack.sb.ws.lock:
        delete()
    _reconciled(stack)
    assert not stack.searchable("cormorant")
    wait_for(lambda: not _watching(stack, container), what="the deleted container's subscription removed")
    assert stack.report()["live"]


def test_a_drive_created_while_the_daemon_runs_gets_a_subscription_and_loses_it_when_deleted(
    files_stack: EventStack,
) -> None:
    state = graph_files.files_state(files_stack.sb.ws)
    with files_stack.sb.ws.lock:
        site = state.site_by_path(state.hostname, "/sites/Finance")
        assert site is not None
        drive = state.add_drive("Contracts", site)
        state.items[drive.root_id].perms = list(state.items[state.drives[site.drive_ids[0]].root_id].perms)
    _followed(
        files_stack,
        drive.id,
        lambda word: state.add_item(drive.id, None, f"{word}.md", f"# {word}\n\nThe {word} lease ends.".encode(), MD),
        lambda: state.delete_drive(drive.id),
    )


def test_a_channel_created_while_the_daemon_runs_gets_a_subscription_and_loses_it_when_deleted(
    teams_stack: EventStack,
) -> None:
    state = graph_teams.teams_state(teams_stack.sb.ws)
    with teams_stack.sb.ws.lock:
        support = next(t for t in state.teams.values() if t.name == "Support")
        channel = state.add_channel(support.id, "Escalations")
    _followed(
        teams_stack,
        channel.id,
        lambda word: state.post(channel.id, "doubledeez@example.com", f"<p>The {word} account wants a callback.</p>"),
        lambda: state.delete_channel(channel.id),
    )


def test_the_changes_of_a_reauthorization_pause_are_caught_up_once_renewed(teams_stack: EventStack) -> None:
    """Graph pauses a subscription's delivery after `reauthorizationRequired` until it is renewed, and
    sends no `missed` for channel messages (probe34d F2): the renewal is followed by a catch-up."""
    sb = teams_stack.sb
    subs = _subs(teams_stack)
    sub_id = next(iter(subs.subs))
    renewals = subs.subs[sub_id].renewals
    subs.lifecycle(sub_id, "reauthorizationRequired")
    state = graph_teams.teams_state(sb.ws)
    with sb.ws.lock:
        root = next(m for m in state.messages.values() if "slow exports" in m.html)
        state.post(root.channel_id, "doubledeez@example.com", "<p>The puffin export finished overnight.</p>")
    wait_for(lambda: subs.subs[sub_id].renewals > renewals, what="the renewal")
    wait_for(lambda: teams_stack.searchable("puffin"), what="the message of the pause caught up")
