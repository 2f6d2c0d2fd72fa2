"""The outlook connector against the sandbox's Graph and identity endpoints (msal over HTTPS)."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inlet.connectors.kit.graph import GraphClient
from inlet.connectors.model import Checkpoint, Deletion, Document, Progress, Skipped
from inlet.connectors.outlook import OutlookConfig, OutlookConnector
from inlet.errors import (
    AccessRefusedError,
    CredentialsError,
    IncompleteListingError,
    NothingInScopeError,
    RetriableError,
)
from inlet.sandbox import graph
from inlet.sandbox.server import Sandbox

ALLEN = "phillip.allen@enron.com"
EXCLUDED = {"deleteditems", "junkemail", "drafts"}


def connector(sb: Sandbox, sleeps: list[float] | None = None, **overrides: Any) -> OutlookConnector:
    block, env = graph.source(sb.ctx, sb.ctx.workdir)
    config = tomllib.loads(block)["sources"][0] | overrides
    waits = sleeps if sleeps is not None else []
    return OutlookConnector(OutlookConfig(**config), env, sleep=waits.append)


def run(
    conn: OutlookConnector, checkpoint: dict[str, Any] | None = None, **kw: Any
) -> tuple[list[Any], dict[str, Any]]:
    items = list(conn.load(checkpoint, **kw))
    assert isinstance(items[-1], Checkpoint)
    return items, items[-1].state


def docs(items: list[Any]) -> dict[str, Document]:
    return {i.id: i for i in items if isinstance(i, Document)}


def deletions(items: list[Any]) -> set[str]:
    return {i.id for i in items if isinstance(i, Deletion)}


def progress_of(items: list[Any]) -> tuple[list[int], list[int]]:
    """The totals and the done counts a load reported, in order."""
    progress = [i for i in items if isinstance(i, Progress)]
    return [p.total for p in progress if p.total is not None], [p.done for p in progress if p.done is not None]


def synced_ids(sb: Sandbox, mailboxes: set[str] | None = None) -> set[str]:
    """What the connector should hold: messages outside Junk, Deleted Items (and children), Drafts."""
    state = sb.ws.mail
    out = set()
    for msg in state.messages.values():
        box = state.mailboxes[msg.mailbox]
        if mailboxes and box.email not in mailboxes:
            continue
        folder = box.folders[msg.folder_id]
        while folder.parent_id in box.folders:
            folder = box.folders[folder.parent_id]
        if folder.well_known not in EXCLUDED:
            out.add(f"sandbox-mail:{msg.id}")
    return out


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def backfill(sb: Sandbox) -> tuple[list[Any], dict[str, Any]]:
    return run(connector(sb))


def test_backfill_yields_every_synced_message_once_with_content(sb: Sandbox, backfill: Any) -> None:
    items, _ = backfill
    got = [i.id for i in items if isinstance(i, Document)]
    assert len(got) == len(set(got))
    assert set(got) == synced_ids(sb)
    assert not [i for i in items if isinstance(i, Skipped)]
    west = [
        d
        for d in docs(items).values()
        if d.title == "RE: West Position" and d.metadata["folder"] == "Inbox" and d.metadata["mailbox"] == ALLEN
    ]
    doc = next(d for d in west if "Curve Shift" in d.text)
    assert "Please let me know if you still need Curve Shift." in doc.text
    assert "Original Message" not in doc.text and "Did you attach the file" not in doc.text
    assert doc.acl.users == [ALLEN] and not doc.acl.public
    assert doc.url.startswith(sb.ctx.https_url + "/owa/?ItemID=")
    assert doc.metadata["conversation_id"].startswith("AAQkConv")
    assert doc.author == "heather.dunton@enron.com"
    assert doc.created_at == dt.datetime(2001, 12, 7, 18, 6, 42, tzinfo=dt.timezone.utc)


def test_backfill_total_is_the_folders_item_count_and_done_ends_equal_to_it(sb: Sandbox, backfill: Any) -> None:
    """Issue 14: the synced folders' totalItemCount, summed over the mailboxes, is the bar's total."""
    items, _ = backfill
    totals, done = progress_of(items)
    assert totals == [len(synced_ids(sb))]
    assert done == [0, *range(1, totals[0] + 1)]  # message by message, up to the total
    first_doc = next(n for n, i in enumerate(items) if isinstance(i, Document))
    assert any(isinstance(i, Progress) and i.total for i in items[:first_doc])  # known before any message


def test_attachments_are_extracted_into_the_message(backfill: Any) -> None:
    texts = " ".join(d.text for d in docs(backfill[0]).values())
    assert "## Attachment: positions.csv" in texts and "west,1200" in texts
    assert "Trading memo about" in texts  # PDF
    assert "Quarterly report on" in texts  # DOCX


def test_child_folders_are_synced_with_their_path(backfill: Any) -> None:
    folders = {d.metadata["folder"] for d in docs(backfill[0]).values()}
    assert "Inbox/Hist Vols" in folders
    assert "Deleted Items" not in folders and "Drafts" not in folders


def test_no_change_resync_costs_one_delta_call_per_folder(sb: Sandbox, backfill: Any) -> None:
    _, state = backfill
    folders = sum(len(box["folders"]) for box in state["mailboxes"].values())
    before = sb.faults.count("graph:messages.delta")
    items, _ = run(connector(sb), state)
    assert not docs(items) and not deletions(items)
    assert sb.faults.count("graph:messages.delta") - before == folders


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


def small(sb: Sandbox, **kw: Any) -> OutlookConnector:
    return connector(sb, mailboxes=["robert.badeer@enron.com"], page_size=10, **kw)


def test_changes_moves_and_deletions(fresh: Sandbox) -> None:
    conn = small(fresh)
    _, state = run(conn)
    ws = fresh.ws
    m_id = ws.user_by_email("robert.badeer@enron.com").id
    inbox_msgs = ws.mail.in_folder(ws.mail.folder(m_id, "inbox").id)
    moved, deleted, trashed = inbox_msgs[0], inbox_msgs[1], inbox_msgs[2]
    new = graph.add_message(ws, "robert.badeer@enron.com", "inbox", "Capacity auction", "Bids close Friday.")
    edited = next(
        m
        for m in ws.mail.messages.values()
        if m.mailbox == m_id and m.subject and m is not moved and m.folder_id == ws.mail.folder(m_id, "sentitems").id
    )
    graph.edit_message(ws, edited.id, subject="Edited subject")
    capx = next(f for f in ws.mail.mailboxes[m_id].folders.values() if f.display_name == "Capx")
    graph.move_message(ws, moved.id, capx.id)
    graph.delete_message(ws, deleted.id)
    graph.move_message(ws, trashed.id, "deleteditems")

    items, state = run(conn, state)
    got = docs(items)
    assert set(got) == {f"sandbox-mail:{i}" for i in (new.id, edited.id, moved.id)}
    assert got[f"sandbox-mail:{moved.id}"].metadata["folder"] == "Capx"
    assert got[f"sandbox-mail:{edited.id}"].title == "Edited subject"
    assert "Bids close Friday." in got[f"sandbox-mail:{new.id}"].text
    assert deletions(items) == {f"sandbox-mail:{deleted.id}", f"sandbox-mail:{trashed.id}"}
    assert progress_of(items) == ([], [])  # delta rounds have no count: no total rather than a guess
    # and the moved message is in exactly one folder's id set
    held = [fid for fid, e in state["mailboxes"]["robert.badeer@enron.com"]["folders"].items() if moved.id in e["ids"]]
    assert held == [capx.id]


def test_a_removal_that_cannot_be_checked_keeps_the_message_until_the_next_run_decides(fresh: Sandbox) -> None:
    """A message its folder's delta reports removed is checked (moved or deleted?) with one GET; one
    that keeps answering 500 is a failed skip (kept, not deleted on a guess) and the mailbox goes
    on; the next run reads it again and deletes it, gone to Deleted Items."""
    conn = small(fresh)
    _, state = run(conn)
    ws = fresh.ws
    uid = ws.user_by_email(BADEER).id
    trashed, other = ws.mail.in_folder(ws.mail.folder(uid, "inbox").id)[:2]
    graph.move_message(ws, trashed.id, "deleteditems")
    graph.edit_message(ws, other.id, subject="Edited subject")
    fresh.faults.fail("graph", "message", 500, times=1000, reason="ErrorInternalServerError", target=f"*/{trashed.id}")
    items, state = run(conn, state)
    assert not deletions(items) and [d.title for d in docs(items).values()] == ["Edited subject"]
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id == f"sandbox-mail:{trashed.id}"
    assert skip.reason.startswith(f"message {trashed.id}: not checked for a move or a deletion")
    assert "500 ErrorInternalServerError" in skip.reason
    fresh.faults.clear()
    items, state = run(conn, state)
    assert deletions(items) == {f"sandbox-mail:{trashed.id}"} and not [i for i in items if isinstance(i, Skipped)]
    assert "retries" not in state["mailboxes"][BADEER]


def test_links_saved_on_another_host_are_followed_on_graph_url(fresh: Sandbox) -> None:
    conn = small(fresh)
    _, state = run(conn)
    origin = str(httpx.URL(conn.config.graph_url).copy_with(path="/", query=None)).rstrip("/")
    saved = json.dumps(state)
    assert saved.count(origin) > 0  # delta links are absolute
    moved = json.loads(saved.replace(origin, "https://127.0.0.1:1"))  # graph_url moved since (nothing listens there)
    graph.add_message(fresh.ws, "robert.badeer@enron.com", "inbox", "Capacity auction", "Bids close Friday.")
    items, _ = run(small(fresh), moved)
    assert [d.title for d in docs(items).values()] == ["Capacity auction"]


def test_move_into_a_folder_synced_earlier_is_not_deleted(fresh: Sandbox) -> None:
    conn = small(fresh)
    _, state = run(conn)
    ws = fresh.ws
    uid = ws.user_by_email("robert.badeer@enron.com").id
    capx = next(f for f in ws.mail.mailboxes[uid].folders.values() if f.display_name == "Capx")
    msg = ws.mail.in_folder(capx.id)[0]
    graph.move_message(ws, msg.id, "inbox")  # Inbox is read before Capx
    items, _ = run(conn, state)
    assert f"sandbox-mail:{msg.id}" in docs(items)
    assert not deletions(items)


def test_expired_delta_token_resyncs_folder_and_deletes_what_is_gone(fresh: Sandbox) -> None:
    conn = small(fresh)
    _, state = run(conn)
    ws = fresh.ws
    uid = ws.user_by_email("robert.badeer@enron.com").id
    victim = ws.mail.in_folder(ws.mail.folder(uid, "sentitems").id)[0]
    graph.delete_message(ws, victim.id)
    graph.expire_delta_tokens(ws)
    items, state2 = run(conn, state)
    assert deletions(items) == {f"sandbox-mail:{victim.id}"}
    assert set(docs(items)) == synced_ids(fresh, {"robert.badeer@enron.com"})
    assert all("resync" not in e for e in state2["mailboxes"]["robert.badeer@enron.com"]["folders"].values())


def test_interrupted_backfill_resumes_without_loss_or_duplicates(fresh: Sandbox) -> None:
    conn = small(fresh)
    before: list[str] = []
    last: Checkpoint | None = None
    since_checkpoint: list[str] = []
    for item in conn.load(None):
        if isinstance(item, Document):
            before.append(item.id)
            since_checkpoint.append(item.id)
        if isinstance(item, Checkpoint):
            last, since_checkpoint = item, []
        if len(before) >= 25 and last is not None and since_checkpoint:
            break  # crash mid-page, after a checkpoint
    assert last is not None
    committed = [i for i in before if i not in since_checkpoint]
    items, _ = run(conn, last.state)
    after = [i.id for i in items if isinstance(i, Document)]
    totals, done = progress_of(items)
    assert totals == [len(after)] and done[-1] == len(after)  # what is left, not the whole mailbox
    assert len(after) == len(set(after))
    assert not set(committed) & set(after)
    assert set(committed) | set(after) == synced_ids(fresh, {"robert.badeer@enron.com"})


def test_token_expiring_mid_sync_is_reacquired_once(fresh: Sandbox) -> None:
    conn = small(fresh)
    items = []
    expired = False
    for item in conn.load(None):
        items.append(item)
        if isinstance(item, Checkpoint) and not expired:
            graph.expire_tokens(fresh.ws)
            expired = True
    assert expired and fresh.faults.count("identity:token") == 2
    assert set(docs(items)) == synced_ids(fresh, {"robert.badeer@enron.com"})


def test_throttling_honours_retry_after(fresh: Sandbox) -> None:
    sleeps: list[float] = []
    conn = connector(fresh, sleeps, mailboxes=["robert.badeer@enron.com"])
    fresh.faults.fail("graph", "messages.delta", 429, times=2, retry_after=0.25)
    fresh.faults.fail("graph", "mailFolders", 503, times=1, retry_after=0.5)
    items, _ = run(conn)
    assert sleeps[:3] == [0.5, 0.25, 0.25]
    assert fresh.faults.rejected["graph:messages.delta"] == 2
    assert set(docs(items)) == synced_ids(fresh, {"robert.badeer@enron.com"})


def test_persistent_outage_is_retriable(fresh: Sandbox) -> None:
    conn = small(fresh)
    fresh.faults.fail("graph", "messages.delta", 504, times=50)
    with pytest.raises(RetriableError):
        run(conn)


def test_wrong_secret_is_credentials_error_with_msal_text(fresh: Sandbox) -> None:
    conn = small(fresh)  # holds the secret of before the rotation
    graph.rotate_secret(fresh.ws, "rotated")
    with pytest.raises(CredentialsError, match="AADSTS7000215"):
        conn.check()
    with pytest.raises(CredentialsError, match="invalid_client"):
        list(conn.load(None))


def test_a_message_whose_attachments_failed_is_read_again_by_the_next_run(fresh: Sandbox) -> None:
    """A 4xx on one attachment listing: the message goes in without them, with a failed skip;
    the next run reads it again by id (the folders' delta says nothing new of it) and forgets it."""
    fresh.faults.fail("graph", "attachments", 403, times=1)
    items, state = run(connector(fresh, mailboxes=[ALLEN]))
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id.endswith("#attachments") and "read again" in skip.reason
    message = skip.id.removesuffix("#attachments")
    assert "## Attachment:" not in docs(items)[message].text
    assert list(state["mailboxes"][ALLEN]["retries"]["failed"]) == [message.removeprefix("sandbox-mail:")]

    items, state = run(connector(fresh, mailboxes=[ALLEN]), state)
    assert not [i for i in items if isinstance(i, Skipped)]
    assert list(docs(items)) == [message] and "## Attachment:" in docs(items)[message].text
    assert "retries" not in state["mailboxes"][ALLEN]


def test_missing_mailbox_is_skipped_and_others_sync(fresh: Sandbox) -> None:
    conn = connector(fresh, mailboxes=["nobody@enron.com", "robert.badeer@enron.com"])
    items, _ = run(conn)
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [s.id for s in skipped] == ["sandbox-mail:mailbox:nobody@enron.com"] and skipped[0].failed
    assert set(docs(items)) == synced_ids(fresh, {"robert.badeer@enron.com"})


def test_since_filters_received_date_on_the_first_round(fresh: Sandbox) -> None:
    cut = dt.datetime(2001, 11, 1, tzinfo=dt.timezone.utc)
    items, state = run(small(fresh), since=cut)
    got = docs(items)
    assert got and all(d.created_at >= cut for d in got.values())
    assert len(got) < len(synced_ids(fresh, {"robert.badeer@enron.com"}))
    assert progress_of(items) == ([], [])  # the folders' counts ignore the filter: no total
    assert state["since"] == "2001-11-01T00:00:00Z"


def test_folder_selection_and_vanished_folder(fresh: Sandbox) -> None:
    conn = small(fresh, folders=["Inbox", "capx"], exclude_folders=[])
    items, state = run(conn)
    assert {d.metadata["folder"] for d in docs(items).values()} == {"Inbox", "Capx"}
    capx_ids = {i for i, d in docs(items).items() if d.metadata["folder"] == "Capx"}
    graph.delete_folder(
        fresh.ws,
        "robert.badeer@enron.com",
        next(
            f.id
            for f in fresh.ws.mail.mailboxes[fresh.ws.user_by_email("robert.badeer@enron.com").id].folders.values()
            if f.display_name == "Capx"
        ),
    )
    items, _ = run(conn, state)
    assert deletions(items) == capx_ids


def test_a_folder_naming_nothing_is_a_skip_per_mailbox_and_none_matching_refuses_the_run(fresh: Sandbox) -> None:
    conn = small(fresh, folders=["Inbox", "Capxx"], exclude_folders=[])
    items, state = run(conn)
    skip = "key 'folders': no folder of mailbox robert.badeer@enron.com matches 'Capxx' (closest: 'Capx')"
    assert [(s.title, s.reason, s.failed) for s in items if isinstance(s, Skipped)] == [
        ("folders = 'Capxx' of mailbox robert.badeer@enron.com", skip + "; nothing is read for it", False)
    ]
    assert {d.metadata["folder"] for d in docs(items).values()} == {"Inbox"}
    again, _ = run(conn, state)  # every run says so
    assert [s.reason for s in again if isinstance(s, Skipped)] == [skip + "; nothing is read for it"]
    for read in (lambda c: run(c, state), lambda c: list(c.live_ids())):  # no folder dropped, nothing pruned
        with pytest.raises(NothingInScopeError, match="'Inboxx' \\(closest: 'Inbox'"):
            read(small(fresh, folders=["Inboxx"]))


def test_shared_mailbox_acl_users(fresh: Sandbox) -> None:
    conn = small(fresh, acl_users={"robert.badeer@enron.com": ["assistant@enron.com"]})
    items, _ = run(conn)
    assert all(d.acl.users == ["assistant@enron.com", "robert.badeer@enron.com"] for d in docs(items).values())


def test_changed_readers_reach_every_message_and_a_dropped_mailbox_leaves(fresh: Sandbox) -> None:
    box = "robert.badeer@enron.com"
    items, state = run(small(fresh, acl_users={"Robert.Badeer@Enron.com": ["carol@enron.com"]}))  # any case
    first = docs(items)
    assert first and all("carol@enron.com" in d.acl.users for d in first.values())
    items, state = run(small(fresh, acl_users={box: ["dave@enron.com"]}), state)
    again = docs(items)
    assert set(again) == set(first) and not deletions(items)  # listed again whole: the same messages
    assert all(d.acl.users == ["dave@enron.com", box] for d in again.values())
    items, _ = run(connector(fresh, mailboxes=["phillip.allen@enron.com"], page_size=10), state)
    assert set(first) <= deletions(items)  # the mailbox the config dropped


def test_a_mailbox_named_by_user_id_is_for_its_owner_s_address(fresh: Sandbox) -> None:
    owner = "robert.badeer@enron.com"
    by_id = fresh.ws.user_by_email(owner).id
    conn = connector(fresh, mailboxes=[by_id], page_size=10)
    items, state = run(conn)
    assert docs(items) and all(d.acl.users == [owner] for d in docs(items).values())
    assert state["mailboxes"][by_id.lower()]["owner"] == owner  # scoped runs use it too


def test_acl_users_must_name_listed_mailboxes() -> None:
    with pytest.raises(ValueError, match="acl_users names mailboxes that mailboxes does not list: bob@x.com"):
        OutlookConfig(
            name="m",
            type="outlook",
            tenant_id="t",
            client_id="c",
            client_secret_env="S",
            mailboxes=["a@x.com"],
            acl_users={"bob@x.com": ["c@x.com"]},
        )


def test_live_ids_list_synced_messages_for_prune(fresh: Sandbox) -> None:
    conn = small(fresh)
    items, _ = run(conn)
    assert set(conn.live_ids()) == set(docs(items))
    ws = fresh.ws
    m_id = ws.user_by_email("robert.badeer@enron.com").id
    gone, trashed = ws.mail.in_folder(ws.mail.folder(m_id, "inbox").id)[:2]
    graph.delete_message(ws, gone.id)
    graph.move_message(ws, trashed.id, "deleteditems")  # excluded folder: no longer live
    assert set(conn.live_ids()) == set(docs(items)) - {f"sandbox-mail:{gone.id}", f"sandbox-mail:{trashed.id}"}


BADEER = "robert.badeer@enron.com"


def _inbox(sb: Sandbox) -> Any:
    return sb.ws.mail.folder(sb.ws.user_by_email(BADEER).id, "inbox")


def test_attachments_are_listed_without_bytes_and_only_readable_ones_under_the_cap_are_read(
    fresh: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: a 30 MB attachment over the cap came whole in the listing. Now the listing has no
    bytes, and one call reads each attachment inlet reads and the cap admits."""
    host = fresh.ws.mail.in_folder(_inbox(fresh).id)[0]
    graph.add_attachment(fresh.ws, host.id, "huge.txt", b"Heron " * 50_000, "text/plain")  # 300 KB
    notes = graph.add_attachment(fresh.ws, host.id, "notes.txt", b"Osprey capacity notes", "text/plain")
    graph.add_attachment(fresh.ws, host.id, "photo.png", b"\x89PNG" * 1000, "image/png")  # read by nobody
    answers: list[tuple[str, int]] = []
    send = GraphClient._send

    def measured(client: GraphClient, method: str, url: str, *args: Any, **kw: Any) -> httpx.Response:
        response = send(client, method, url, *args, **kw)
        answers.append((url, len(response.content)))
        return response

    monkeypatch.setattr(GraphClient, "_send", measured)
    items, _ = run(small(fresh, max_attachment_bytes=100_000))
    doc = docs(items)[f"sandbox-mail:{host.id}"]
    assert "Osprey capacity notes" in doc.text and "Heron" not in doc.text
    assert {"huge.txt", "notes.txt", "photo.png"} <= set(doc.metadata["attachments"])
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.id.endswith("#huge.txt") and not skip.failed
    assert max(size for url, size in answers if "/attachments" in url) < 20_000  # never the 300 KB
    assert [t.rsplit("/", 1)[-1] for t in fresh.faults.targets("graph:attachment")] == [notes.id]


def test_an_attached_mail_is_indexed_and_a_cloud_attachment_is_named(fresh: Sandbox) -> None:
    """Item attachments (a mail forwarded as attachment) are read with their item expanded and
    indexed as the mail archive indexes an attached message/rfc822; reference attachments are names."""
    host = fresh.ws.mail.in_folder(_inbox(fresh).id)[0]
    graph.attach_message(
        fresh.ws, host.id, "Fwd: Kestrel storage bids", "Kestrel bids close at noon", "kay.mann@enron.com"
    )
    graph.add_attachment(
        fresh.ws, host.id, "Budget 2002.xlsx", link="https://contoso.sharepoint.com/Budget%202002.xlsx"
    )
    items, _ = run(small(fresh))
    doc = docs(items)[f"sandbox-mail:{host.id}"]
    assert "## Attachment: Fwd: Kestrel storage bids\n\nFrom: kay.mann@enron.com" in doc.text
    assert "Kestrel bids close at noon" in doc.text
    assert doc.metadata["attachments"][-2:] == ["Fwd: Kestrel storage bids", "Budget 2002.xlsx"]
    assert not [i for i in items if isinstance(i, Skipped)]  # a link is no attachment over the cap


def test_a_mail_moved_into_a_new_folder_is_kept_by_the_scoped_run(fresh: Sandbox) -> None:
    """Issue: the notified folder's delta said the mail left, its new folder was unknown to the scoped
    run: a deletion until the next full run. Now the new folder is listed and synced by that run."""
    conn = small(fresh)
    _, state = run(conn)
    inbox = _inbox(fresh)
    moved, trashed = fresh.ws.mail.in_folder(inbox.id)[:2]
    kestrel = graph.add_folder(fresh.ws, BADEER, "Kestrel", parent="inbox")
    graph.move_message(fresh.ws, moved.id, kestrel)
    items = list(conn.load_scope(state, frozenset({inbox.id})))
    assert not deletions(items)
    assert docs(items)[f"sandbox-mail:{moved.id}"].metadata["folder"] == "Inbox/Kestrel"
    state = items[-1].state
    assert state["mailboxes"][BADEER]["folders"][kestrel]["ids"] == [moved.id]

    listings = fresh.faults.count("graph:*Folders")
    graph.move_message(fresh.ws, trashed.id, "deleteditems")
    items = list(conn.load_scope(state, frozenset({inbox.id})))
    assert deletions(items) == {f"sandbox-mail:{trashed.id}"}
    assert fresh.faults.count("graph:*Folders") == listings  # Deleted Items is known: no folder listing


def test_a_renamed_folder_s_messages_say_its_new_path(fresh: Sandbox) -> None:
    """Issue: a rename changes no message, so no delta round re-read them and their documents kept
    the old folder. Now the run that lists the folders reads a folder whose path changed again."""
    conn = small(fresh)
    items, state = run(conn)
    capx = {i for i, d in docs(items).items() if d.metadata["folder"] == "Capx"}
    uid = fresh.ws.user_by_email(BADEER).id
    folder = next(f for f in fresh.ws.mail.mailboxes[uid].folders.values() if f.display_name == "Capx")
    graph.rename_folder(fresh.ws, BADEER, folder.id, "Capacity")
    items, state = run(conn, state)
    assert capx and set(docs(items)) == capx and not deletions(items)
    assert {d.metadata["folder"] for d in docs(items).values()} == {"Capacity"}
    items, _ = run(conn, state)
    assert not docs(items)  # read again once


def test_a_body_over_max_body_bytes_is_cut_there_and_says_so(fresh: Sandbox) -> None:
    html = "".join(f"<p>Paragraph {n} of the newsletter.</p>" for n in range(2000))
    msg = graph.add_message(fresh.ws, "robert.badeer@enron.com", "inbox", "Newsletter", html=html)
    items, _ = run(small(fresh, max_body_bytes=5000))
    doc = docs(items)[f"sandbox-mail:{msg.id}"]
    assert "Paragraph 0 of the newsletter." in doc.text and "Paragraph 1999" not in doc.text
    skipped = [i for i in items if isinstance(i, Skipped) and i.id == f"{doc.id}#body"]
    assert [(s.failed, s.title) for s in skipped] == [(False, "Newsletter")]
    assert skipped[0].reason.startswith("body truncated at 5000 bytes")


def test_an_attachment_that_cannot_be_read_loses_no_other(fresh: Sandbox) -> None:
    """One attachment's GET refused (an attached mail here) leaves the message's other attachments
    read and named; the message is remembered and read whole on the next run."""
    host = fresh.ws.mail.in_folder(_inbox(fresh).id)[0]
    graph.attach_message(fresh.ws, host.id, "Fwd: Kestrel storage bids", "Kestrel bids close at noon")
    graph.add_attachment(fresh.ws, host.id, "notes.txt", b"Osprey capacity notes", "text/plain")
    fresh.faults.fail("graph", "attachment", 404)  # the first attachment read: the attached mail
    conn = small(fresh)
    items, state = run(conn)
    doc = docs(items)[f"sandbox-mail:{host.id}"]
    assert "Osprey capacity notes" in doc.text and "Kestrel bids" not in doc.text
    assert doc.metadata["attachments"][-2:] == ["Fwd: Kestrel storage bids", "notes.txt"]
    [failed] = [i for i in items if isinstance(i, Skipped) and i.failed]
    assert failed.id == f"{doc.id}#attachments" and "404" in failed.reason
    items, _ = run(conn, state)
    assert "Kestrel bids close at noon" in docs(items)[f"sandbox-mail:{host.id}"].text


def test_a_message_whose_attachment_keeps_failing_is_a_failed_skip_named_by_its_subject(fresh: Sandbox) -> None:
    """probe33a F4: one attachment answering 500 after every retry (a damaged item) costs its message
    only its attachments: a failed skip naming the message and the call, the mailbox indexed, and
    the message read whole by the next run."""
    host, other = fresh.ws.mail.in_folder(_inbox(fresh).id)[:2]
    graph.add_attachment(fresh.ws, host.id, "minutes.txt", b"Osprey minutes", "text/plain")
    graph.add_attachment(fresh.ws, other.id, "notes.txt", b"Kestrel notes", "text/plain")
    fresh.faults.fail(
        "graph", "attachment", 500, times=1000, reason="ErrorInternalServerError", target=f"*/{host.id}/attachments/*"
    )
    conn = small(fresh)
    items, state = run(conn)
    got = docs(items)
    assert set(got) == synced_ids(fresh, {BADEER})
    assert "Kestrel notes" in got[f"sandbox-mail:{other.id}"].text
    assert "Osprey minutes" not in got[f"sandbox-mail:{host.id}"].text
    [failed] = [i for i in items if isinstance(i, Skipped) and i.failed]
    assert failed.id == f"sandbox-mail:{host.id}#attachments" and failed.title == host.subject
    assert failed.reason.startswith(f"message {host.subject!r}: attachments not read")
    assert "GET /users/" in failed.reason and "500 ErrorInternalServerError" in failed.reason
    fresh.faults.clear()
    items, _ = run(conn, state)
    assert "Osprey minutes" in docs(items)[f"sandbox-mail:{host.id}"].text


def test_attachments_failing_in_a_row_are_an_outage_and_the_run_fails_naming_the_call(fresh: Sandbox) -> None:
    for message in fresh.ws.mail.in_folder(_inbox(fresh).id)[:3]:
        graph.add_attachment(fresh.ws, message.id, "notes.txt", b"notes", "text/plain")
    fresh.faults.fail("graph", "attachments", 500, times=1000, reason="ErrorInternalServerError")
    last = "GET /users/.*/attachments: Graph answered 500 ErrorInternalServerError"
    with pytest.raises(RetriableError, match=f"^source 'sandbox-mail': 3 reads in a row .*, the last of .*: {last}"):
        run(small(fresh))


def test_every_mailbox_refused_fails_the_run_naming_them_and_what_to_grant(fresh: Sandbox) -> None:
    """Mail.Read's consent withdrawn (or an application access policy leaving the mailboxes out):
    Graph refuses every mailbox. The run reads nothing and fails, naming each mailbox and what to
    check, rather than ending `partial`; nothing is deleted, and a prune decides nothing."""
    conn = connector(fresh, mailboxes=[ALLEN, BADEER])
    _, state = run(conn)
    fresh.faults.fail("graph", "mailFolders", 403, times=1000, reason="ErrorAccessDenied")
    items: list[Any] = []
    with pytest.raises(AccessRefusedError) as caught:
        items.extend(conn.load(state))
    message = str(caught.value)
    assert message.startswith("source 'sandbox-mail': no mailbox it is configured to read could be read")
    for mailbox in (ALLEN, BADEER):
        assert f"mailbox {mailbox}: unavailable (GET /users/{mailbox}/mailFolders: 403 ErrorAccessDenied" in message
    assert "the app needs the application permission Mail.Read, with admin consent" in message
    assert "application access policy" in message
    assert not deletions(items) and not docs(items)
    with pytest.raises(IncompleteListingError, match=f"mailbox {ALLEN}: unavailable"):
        set(conn.live_ids())  # an unreadable mailbox proves none of its messages gone
