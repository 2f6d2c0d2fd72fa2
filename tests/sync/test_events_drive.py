"""Google Drive change events end to end: the sandbox's `changes.watch` channel posts to the daemon's
`/hooks/google_drive/{source}`, each message runs `changes.list` from the saved page token; the
schedule is six hours away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inlet.connectors import google_drive_events
from inlet.sandbox import drive_state as ds
from inlet.sandbox.drive_channels import Channels, channels
from inlet.sandbox.server import Sandbox

from .events_stack import EventStack, event_stack, wait_for

SOURCE = "sandbox-drive"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[EventStack]:
    extra = {"channel_lifetime": "6s", "backoff_seconds": 0.01, "max_requests_per_second": 0, "retries": 1}
    with (
        Sandbox() as sb,
        event_stack(sb, tmp_path_factory.mktemp("drive-events"), embedder, SOURCE, extra, hook_key="push_url") as st,
    ):
        yield st


def _chans(stack: EventStack) -> Channels:
    return channels(stack.sb.ctx)


@pytest.fixture
def stack(shared: EventStack) -> EventStack:
    return shared.settled(lambda: _chans(shared).open, "a push channel open")


def _folder(stack: EventStack) -> str:
    return next(f.id for f in stack.sb.ws.drive.files.values() if f.name == "Operations")


def _add(stack: EventStack, name: str, text: str) -> ds.DriveFile:
    return ds.add_file(
        stack.sb.ws,
        name,
        "text/plain",
        text,
        parent=_folder(stack),
        owner="a@example.com",
        permissions=[ds.anyone_permission()],
    )


def test_new_edited_and_trashed_files_are_searchable_within_seconds(stack: EventStack) -> None:
    f = _add(stack, "kingfisher.txt", "Kingfisher failover drill on Thursday")
    wait_for(lambda: stack.searchable("Kingfisher"), what="a new file searchable")
    ds.edit(stack.sb.ws, f.id, content="Cormorant failover drill on Thursday")
    wait_for(lambda: stack.searchable("Cormorant") and not stack.searchable("Kingfisher"), what="an edit searchable")
    ds.trash(stack.sb.ws, f.id)
    wait_for(lambda: not stack.searchable("Cormorant"), what="a trashed file gone")
    assert 0 < stack.report()["latency_seconds"] < 5


def test_a_shared_drives_own_changes_come_through_its_own_channel(stack: EventStack, monkeypatch: Any) -> None:
    """Drive need not show a member a shared drive's item changes in the user's log (its docs say
    so): the drive's own channel brings them within seconds, and a drive joined later gets one."""
    ws = stack.sb.ws
    wiki = next(d for d in ws.drive.drives.values() if d.name == "Company Wiki")
    assert _watched(stack) == {None, wiki.id}
    ws.drive.drive_items_in_user_log = False
    try:
        ds.add_file(ws, "Lapwing agenda", ds.DOC, "Lapwing offsite agenda", parent=wiki.id)
        wait_for(lambda: stack.searchable("Lapwing"), what="a shared drive's new file searchable")
        monkeypatch.setattr(google_drive_events, "DRIVES_EVERY", 0.0)  # list the drives at every maintain()
        sales = ds.add_drive(ws, "Sales", [ds.domain_permission(ws, ws.domain)])  # the user joins it
        wait_for(lambda: sales.id in _watched(stack), what="a channel for a drive joined")
        ds.add_file(ws, "Plover prices", ds.DOC, "Plover price list", parent=sales.id)
        wait_for(lambda: stack.searchable("Plover"), what="a joined drive's new file searchable")
        ds.leave_drive(ws, sales.id)
        wait_for(lambda: sales.id not in _watched(stack), what="the channel of a drive left stopped")
    finally:
        ws.drive.drive_items_in_user_log = True


def _watched(stack: EventStack) -> set[str | None]:
    return {c.drive_id for c in _chans(stack).open.values()}


def test_every_channels_sync_message_reaches_the_hook(stack: EventStack) -> None:
    """Drive (and the sandbox) post a `sync` message right after `changes.watch`: heard at the hook,
    it confirms the channel, so its events stay live past the SYNC_WAIT a deaf channel gets."""
    events = stack.daemon.events.sources[SOURCE].events  # type: ignore[union-attr]
    wait_for(lambda: _chans(stack).open.keys() <= events.heard, what="every channel's sync message heard")
    assert stack.report()["live"]


def test_hook_checks_the_channel_token(stack: EventStack) -> None:
    hook = str(stack.settings.source(SOURCE).push_url)  # type: ignore[attr-defined]
    channel = next(iter(_chans(stack).open.values()))
    before = stack.daemon.events.sources[SOURCE].hints  # type: ignore[union-attr]
    forged = {"X-Goog-Channel-ID": channel.id, "X-Goog-Channel-Token": "guessed", "X-Goog-Resource-State": "change"}
    assert httpx.post(hook, headers=forged).status_code == 404  # as for a hook nobody registered
    assert httpx.post(hook, headers={**forged, "X-Goog-Channel-ID": "other"}).status_code == 404
    assert httpx.post(hook.replace(SOURCE, "nope"), headers=forged).status_code == 404
    assert stack.daemon.events.sources[SOURCE].hints == before  # type: ignore[union-attr]


def test_dropped_message_is_caught_by_the_scheduled_pass(stack: EventStack) -> None:
    stack.sb.faults.events("drive", drop=1)
    runs, posted = stack.runs(), _chans(stack).notifier.posted
    _add(stack, "grebe.txt", "Grebe vendor contract renewal")
    assert _chans(stack).notifier.posted == posted and stack.runs() == runs
    assert not stack.searchable("Grebe")
    result = stack.scheduled_pass()
    assert result is not None and result.outcome == "ok" and stack.searchable("Grebe")


def test_duplicated_and_out_of_order_messages_index_once(stack: EventStack) -> None:
    chans, posted = _chans(stack), _chans(stack).notifier.posted
    stack.sb.faults.events("drive", duplicate=2, delayed=1, delay=0.4)
    f = _add(stack, "avocet.txt", "Avocet budget draft")
    ds.edit(stack.sb.ws, f.id, content="Avocet budget final")
    wait_for(lambda: chans.notifier.posted >= posted + 4, what="every message posted")
    wait_for(lambda: stack.quiet() and stack.searchable("final"), what="the final state searchable")
    hits = [t for t in stack.texts("Avocet budget") if "Avocet" in t]
    assert len(hits) == 1 and "final" in hits[0]


def test_channels_are_replaced_before_they_expire_and_stopped_on_shutdown(stack: EventStack) -> None:
    chans = _chans(stack)
    first = next(iter(chans.open.values()))
    wait_for(lambda: first.id in chans.stopped and chans.open, timeout=10, what="a new channel, the old stopped")
    _add(stack, "dunlin.txt", "Dunlin retention policy")
    wait_for(lambda: stack.searchable("Dunlin"), what="events flowing on the new channel")
    open_ids = set(chans.open)
    assert stack.daemon.events is not None
    stack.daemon.events.sources[SOURCE].events.stop()
    assert open_ids <= set(chans.stopped) and not chans.open
    stack.daemon.events.sources[SOURCE].events.maintain()  # reopen for the module's other tests


def test_a_change_made_while_the_daemon_was_down_is_synced_when_its_events_start(stack: EventStack) -> None:
    """A channel notifies only changes made after `changes.watch`, and the schedule is hours away: a
    file added while the daemon restarted is synced by the catch-up that follows the new channels."""
    assert stack.daemon.events is not None
    stack.daemon.events.stop()
    assert not _chans(stack).open  # stopped on exit, as documented
    _add(stack, "violet.txt", "Violet glacier survey results")
    stack.daemon.start_events()
    wait_for(lambda: stack.searchable("glacier"), what="a file of the downtime synced at start")


def test_a_redelivered_or_replayed_message_runs_nothing(stack: EventStack) -> None:
    """Drive retries a message with its number (`X-Goog-Message-Number`), and a captured one can be
    replayed: a message already heard on its channel makes no hint and no sync (probe34d F1)."""
    chans, posted = _chans(stack), _chans(stack).notifier.posted
    loop = stack.daemon.events
    assert loop is not None
    hints = loop.sources[SOURCE].hints
    stack.sb.faults.events("drive", duplicate=1)  # the change's message delivered twice
    _add(stack, "shearwater.txt", "Shearwater audit findings")
    wait_for(lambda: chans.notifier.posted >= posted + 2, what="both copies posted")
    wait_for(lambda: stack.quiet() and stack.searchable("Shearwater"), what="the file searchable")
    assert loop.sources[SOURCE].hints == hints + 1
    channel = next(c for c in chans.open.values() if c.number > 1)  # the one that posted the message
    replay = {
        "X-Goog-Channel-ID": channel.id,
        "X-Goog-Channel-Token": str(channel.token),
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-State": "change",
        "X-Goog-Message-Number": str(channel.number),
    }
    hook = str(stack.settings.source(SOURCE).push_url)  # type: ignore[attr-defined]
    runs = stack.runs()
    assert all(httpx.post(hook, headers=replay).status_code == 200 for _ in range(5))
    assert loop.sources[SOURCE].hints == hints + 1 and stack.quiet() and stack.runs() == runs
