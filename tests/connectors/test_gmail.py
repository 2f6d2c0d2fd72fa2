"""The gmail connector with the real google-api-python-client against the emulated Gmail: backfill,
history (new, deleted, trashed, relabelled), an expired history id, quota 429s, refused credentials
and a mailbox the domain-wide delegation does not cover."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inlet.connectors.gmail import GmailConfig, GmailConnector
from inlet.connectors.model import Checkpoint, Deletion, Document, Item, Progress, Skipped
from inlet.errors import CredentialsError, NothingInScopeError, RetriableError
from inlet.sandbox import gmail
from inlet.sandbox import gmail_state as gs
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import DATA_DIR, Workspace
from tests.connectors.test_conformance import foreign_key
from tests.workspaces import fresh

BADEER, CAROL = "robert.badeer@enron.com", "carol@example.com"


def mailboxes() -> Workspace:
    ws = Workspace()
    gmail.seed_sample(ws, DATA_DIR / "enron-mini.tar.gz")
    gmail.add_mailbox(ws, CAROL, "Carol Example")
    gmail.add_message(ws, CAROL, "Budget for the offsite", "The offsite budget is 12,000 dollars.")
    gmail.add_message(ws, CAROL, "Menu", "Pizza on Friday.")
    return ws


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """The sample mailboxes and Carol's, at ten times Gmail's quota (tests/workspaces.py), which
    `connector` paces at unless told otherwise."""
    with Sandbox(ws=fresh(mailboxes)) as sandbox:
        yield sandbox


def connector(sb: Sandbox, **overrides: Any) -> GmailConnector:
    creds = overrides.pop("credentials_file", None) or gmail.write_credentials(sb.ctx, sb.ctx.workdir / "sa.json")
    config = GmailConfig(
        **{
            "name": "gm",
            "type": "gmail",
            "credentials_file": creds,
            "mailboxes": [BADEER],
            "api_endpoint": sb.ctx.http_url + "/",
            "backoff_seconds": 0.01,
            "quota_units_per_second": gs.state(sb.ws).units_per_second,
            **overrides,
        }
    )
    return GmailConnector(config)


def run(items: Iterable[Item]) -> tuple[list[Item], dict[str, Any] | None]:
    out, state = [], None
    for item in items:
        if isinstance(item, Checkpoint):
            state = json.loads(json.dumps(item.state))
        else:
            out.append(item)
    return out, state


def docs(items: list[Item]) -> dict[str, Document]:
    return {i.id: i for i in items if isinstance(i, Document)}


def deletions(items: list[Item]) -> set[str]:
    return {i.id for i in items if isinstance(i, Deletion)}


def in_scope(sb: Sandbox, mailbox: str, label: str | None = None) -> set[str]:
    box = gs.mailbox(sb.ws, mailbox)
    return {
        f"gm:{mailbox}/{m.id}"
        for m in box.messages.values()
        if not {"SPAM", "TRASH"} & set(m.labels) and (label is None or label in m.labels)
    }


def test_backfill_renders_every_message_in_scope_once(sb: Sandbox) -> None:
    items, state = run(connector(sb).load(None))
    got = docs(items)
    assert set(got) == in_scope(sb, BADEER) and len(got) == len([i for i in items if isinstance(i, Document)])
    assert not [i for i in items if isinstance(i, (Skipped, Deletion))]
    assert state is not None and state["mailboxes"][BADEER]["history"] == str(gs.mailbox(sb.ws, BADEER).history_id)
    for doc in got.values():
        mid = doc.id.rsplit("/", 1)[1]
        msg = gs.get(sb.ws, BADEER, mid)
        assert doc.url == f"https://mail.google.com/mail/u/{BADEER}/#all/{mid}"
        assert doc.acl.users == [BADEER] and not doc.acl.public
        assert doc.metadata["thread_id"] == msg.thread_id and doc.metadata["mailbox"] == BADEER
        assert BADEER in doc.metadata["participants"] or doc.metadata["participants"]
        assert "<p>" not in doc.text and "<div" not in doc.text, doc.id
    attached = [d for d in got.values() if d.metadata.get("attachments")]
    assert attached and all("## Attachment:" in d.text for d in attached)
    assert any("Quarterly report on" in d.text for d in attached)  # DOCX text
    assert any("Trading memo about" in d.text for d in attached)  # PDF text


def test_html_bodies_become_text_without_their_signature(sb: Sandbox) -> None:
    html = (
        "<html><body><div><p>The <b>storage</b> auction closes at noon.</p><div>-- <br>Ops desk<br>"
        "555-0100</div></div></body></html>"
    )
    msg = gmail.add_message(sb.ws, BADEER, "Auction", html=html, labels=["INBOX", "Desk Notes"])
    got = docs(run(connector(sb).load(None))[0])[f"gm:{BADEER}/{msg.id}"]
    assert "The storage auction closes at noon." in got.text.replace("**", "")
    assert "555-0100" not in got.text and "<" not in got.text
    assert got.title == "Auction" and got.metadata["labels"] == ["Desk Notes", "INBOX"]  # names; UNREAD left out


def test_no_change_resync_is_one_history_call_per_mailbox(sb: Sandbox) -> None:
    conn = connector(sb, mailboxes=[BADEER, CAROL])
    _, state = run(conn.load(None))
    sb.faults.reset_counts()
    items, again = run(conn.load(state))
    assert items == [] and again == state
    assert {k: v for k, v in sb.faults.calls.items() if k.startswith("gmail:")} == {"gmail:history.list": 2}


def test_history_brings_new_deleted_trashed_spam_and_relabelled_messages(sb: Sandbox) -> None:
    conn = connector(sb, labels=["SENT"])
    first, state = run(conn.load(None))
    assert set(docs(first)) == in_scope(sb, BADEER, "SENT")
    inbox = sorted(m.id for m in gs.mailbox(sb.ws, BADEER).messages.values() if "SENT" in m.labels)
    deleted, trashed, spam, moved_out, relabelled, starred = inbox[:6]
    new = gmail.add_message(sb.ws, BADEER, "Gas storage bids", "Bids close Friday.", labels=["SENT"])
    gmail.add_message(sb.ws, BADEER, "Lunch?", "Noon at the usual place.")  # INBOX: not synced
    gmail.delete_message(sb.ws, BADEER, deleted)
    gmail.trash(sb.ws, BADEER, trashed)
    gmail.relabel(sb.ws, BADEER, spam, add=["SPAM"], remove=["SENT"])
    gmail.relabel(sb.ws, BADEER, moved_out, add=["Archive 2001"], remove=["SENT"])
    gmail.relabel(sb.ws, BADEER, relabelled, add=["Projects"])
    gmail.relabel(sb.ws, BADEER, starred, add=["STARRED"])  # not what is indexed: no read
    sb.faults.reset_counts()
    items, state = run(conn.load(state))
    ids = {name: f"gm:{BADEER}/{mid}" for name, mid in (("new", new.id), ("relabelled", relabelled))}
    assert set(docs(items)) == set(ids.values())
    assert "Bids close Friday." in docs(items)[ids["new"]].text
    assert docs(items)[ids["relabelled"]].metadata["labels"] == ["Projects", "SENT"]
    assert deletions(items) == {f"gm:{BADEER}/{m}" for m in (deleted, trashed, spam, moved_out)}
    assert sb.faults.calls["gmail:messages.get"] == 2 and sb.faults.calls["gmail:history.list"] == 1
    assert state is not None and set(state["mailboxes"][BADEER]["known"]) == {
        d.rsplit("/", 1)[1] for d in in_scope(sb, BADEER, "SENT")
    }


def test_an_expired_history_id_lists_again_and_finds_deletions(sb: Sandbox) -> None:
    conn = connector(sb)
    _, state = run(conn.load(None))
    victim = sorted(in_scope(sb, BADEER))[0]
    gmail.delete_message(sb.ws, BADEER, victim.rsplit("/", 1)[1])
    new = gmail.add_message(sb.ws, BADEER, "After the gap", "Sent while history was lost.")
    gmail.expire_history(sb.ws, BADEER)
    sb.faults.reset_counts()
    items, state = run(conn.load(state))
    assert deletions(items) == {victim}
    assert f"gm:{BADEER}/{new.id}" in docs(items) and set(docs(items)) == in_scope(sb, BADEER)
    assert sb.faults.rejected == {} and sb.faults.calls["gmail:history.list"] == 1  # the 404, once
    sb.faults.reset_counts()
    assert run(conn.load(state))[0] == [] and sb.faults.calls["gmail:history.list"] == 1


def _query_and_history(sb: Sandbox) -> tuple[GmailConnector, list[Item], dict[str, Any] | None, str]:
    """A backfill limited by `query`, then a mail it does not select, indexed through the history
    (whatever the query): the connector, the backfill's items, the checkpoint and that mail's id."""
    conn = connector(sb, query="subject:badge")
    first, state = run(conn.load(None))
    assert docs(first) and all("badge" in d.title.lower() for d in docs(first).values())
    lunch = gmail.add_message(sb.ws, BADEER, "Lunch", "Noon at the usual place.")
    items, state = run(conn.load(state))
    assert set(docs(items)) == {f"gm:{BADEER}/{lunch.id}"}
    return conn, first, state, lunch.id


def test_the_prune_keeps_mail_the_history_indexed_outside_the_query_while_the_mailbox_has_it(sb: Sandbox) -> None:
    conn, first, _, lunch = _query_and_history(sb)
    assert {f"gm:{BADEER}/{lunch}", *docs(first)} <= set(conn.live_ids())
    gmail.delete_message(sb.ws, BADEER, lunch)
    assert f"gm:{BADEER}/{lunch}" not in set(conn.live_ids())


def test_an_expired_history_with_a_query_keeps_what_the_mailbox_has_and_reads_what_came_meanwhile(
    sb: Sandbox,
) -> None:
    """The re-listing reads what the query selects, and the mail received since the history was
    last read whatever the query (the history would have brought it); what it does not list is
    deleted only when the mailbox no longer has it."""
    conn, first, state, lunch = _query_and_history(sb)
    dinner = gmail.add_message(sb.ws, BADEER, "Dinner", "Seven at the usual place.")
    victim = sorted(docs(first))[0]
    gmail.delete_message(sb.ws, BADEER, victim.rsplit("/", 1)[1])
    gmail.expire_history(sb.ws, BADEER)
    items, state = run(conn.load(state))
    assert deletions(items) == {victim}  # gone from the mailbox; Lunch is not
    assert f"gm:{BADEER}/{dinner.id}" in docs(items)  # received while the history was lost
    assert state is not None and {lunch, dinner.id} <= set(state["mailboxes"][BADEER]["known"])


def test_an_expired_history_with_a_query_reads_old_mail_that_entered_the_labels_meanwhile(sb: Sandbox) -> None:
    """Old mail restored from the trash while the history was lost is what the history would have
    brought, though the query does not select it: the re-listing reads it, and no other old mail."""
    box = gs.mailbox(sb.ws, BADEER)
    old = sorted(
        m.id
        for m in box.messages.values()
        if "INBOX" in m.labels and "badge" not in str(email.message_from_bytes(m.raw)["Subject"]).lower()
    )
    back, restored, untouched = old[:3]
    gmail.trash(sb.ws, BADEER, back)  # in the trash when the backfill lists
    conn = connector(sb, query="subject:badge")
    first, state = run(conn.load(None))
    assert docs(first) and not {back, restored, untouched} & {d.rsplit("/", 1)[1] for d in docs(first)}
    gmail.trash(sb.ws, BADEER, restored)  # out of the labels, through the history
    _, state = run(conn.load(state))
    for mid in (back, restored):
        gmail.relabel(sb.ws, BADEER, mid, remove=["TRASH"])
    gmail.expire_history(sb.ws, BADEER)
    items, state = run(conn.load(state))
    assert set(docs(items)) == {*docs(first), f"gm:{BADEER}/{back}", f"gm:{BADEER}/{restored}"}  # not `untouched`
    sb.faults.reset_counts()
    assert run(conn.load(state))[0] == [] and sb.faults.calls["gmail:history.list"] == 1


def test_the_checkpoint_keeps_no_id_of_the_mail_a_query_or_since_leaves_out(sb: Sandbox) -> None:
    """A query bounds a large mailbox: the checkpoint grows with what is indexed, never with the
    mail a listing left out (an expired history finds what entered the labels by its `historyId`)."""
    every = set(gs.mailbox(sb.ws, BADEER).messages)
    for conn, since in (
        (connector(sb, query="subject:badge"), None),
        (connector(sb), dt.datetime(2001, 5, 1, tzinfo=dt.timezone.utc)),
    ):
        _, state = run(conn.load(None, since=since))
        assert state is not None
        known = set(state["mailboxes"][BADEER]["known"])
        left_out = every - known
        assert known and left_out
        text = json.dumps(state)
        assert not [mid for mid in left_out if mid in text]


def test_quota_429s_are_waited_out_and_pacing_avoids_them(sb: Sandbox) -> None:
    gs.state(sb.ws).units_per_second = 100  # a stingier quota than the client assumes ...
    items, _ = run(connector(sb, quota_units_per_second=0, batch_size=10).load(None))  # ... and no pacing
    assert set(docs(items)) == in_scope(sb, BADEER)
    assert gs.state(sb.ws).throttled > 0  # 429 rateLimitExceeded with Retry-After, retried
    gs.state(sb.ws).throttled = 0
    items, _ = run(connector(sb, quota_units_per_second=100, batch_size=10).load(None))
    assert set(docs(items)) == in_scope(sb, BADEER) and gs.state(sb.ws).throttled == 0


def test_throttled_parts_of_a_batch_are_sent_again(sb: Sandbox) -> None:
    sb.faults.fail("gmail", "messages.get", 429, times=7, reason="userRateLimitExceeded", retry_after=0.01)
    items, _ = run(connector(sb).load(None))
    assert set(docs(items)) == in_scope(sb, BADEER)
    assert sb.faults.rejected["gmail:messages.get"] == 7


def test_server_errors_of_batch_parts_past_the_retries_ask_for_no_wait_gmail_did_not_send(sb: Sandbox) -> None:
    sb.faults.fail("gmail", "messages.get", 503, times=99)  # no Retry-After
    with pytest.raises(RetriableError, match="3 reads in a row kept answering server errors") as info:
        run(connector(sb, retries=1).load(None))
    assert info.value.retry_after is None  # the run's retry_after: null, not inlet's back-off cap


def test_a_message_whose_fetch_keeps_failing_is_a_failed_skip_and_the_others_are_read(sb: Sandbox) -> None:
    """One message answering 500 after every retry (in the batch) is its own failed skip, named,
    read again by the next pass; the mailbox is indexed (probe33a F4's rule, as for Drive)."""
    wanted = in_scope(sb, BADEER)
    broken = sorted(wanted)[0]
    mid = broken.rsplit("/", 1)[1]
    sb.faults.fail("gmail", "messages.get", 500, times=1000, reason="backendError", target=f"*/messages/{mid}")
    items, state = run(connector(sb, retries=1).load(None))
    assert set(docs(items)) == wanted - {broken}
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id == broken and skip.reason.startswith(f"message {mid} of {BADEER}: 500 backendError")
    sb.faults.clear()
    items, _ = run(connector(sb, retries=1).load(state))
    assert broken in docs(items) and not [i for i in items if isinstance(i, Skipped)]


def test_failures_spread_through_one_batch_are_not_in_a_row(sb: Sandbox) -> None:
    """review33 #8: a batch's parts still failing came back after all its good ones, so any three in
    one batch were "three in a row" and the run failed; they are weighed in the order asked."""
    wanted = sorted(in_scope(sb, BADEER))
    broken = {wanted[1], wanted[len(wanted) // 2], wanted[-2]}
    for doc in broken:
        mid = doc.rsplit("/", 1)[1]
        sb.faults.fail("gmail", "messages.get", 500, times=1000, reason="backendError", target=f"*/messages/{mid}")
    items, _ = run(connector(sb, retries=1, batch_size=100).load(None))
    assert set(docs(items)) == set(wanted) - broken
    assert {i.id for i in items if isinstance(i, Skipped) and i.failed} == broken


def test_a_mailbox_outside_the_delegation_is_named_and_the_others_sync(sb: Sandbox) -> None:
    gmail.refuse_delegation(sb.ws, CAROL)
    conn = connector(sb, mailboxes=[CAROL, BADEER])
    conn.check()  # one mailbox is covered: usable
    items, state = run(conn.load(None))
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [s.id for s in skipped] == [f"gm:mailbox:{CAROL}"] and skipped[0].failed
    assert "unauthorized_client" in skipped[0].reason and "delegation" in skipped[0].reason
    assert set(docs(items)) == in_scope(sb, BADEER)
    gmail.refuse_delegation(sb.ws, CAROL, refused=False)  # the admin adds it: the next sync lists it
    items, _ = run(conn.load(state))
    assert set(docs(items)) == in_scope(sb, CAROL)
    gmail.refuse_delegation(sb.ws, CAROL)
    gmail.refuse_delegation(sb.ws, BADEER)
    with pytest.raises(CredentialsError, match="covers none of the mailboxes"):
        conn.check()
    with pytest.raises(CredentialsError, match="'gm'"):
        run(conn.load(None))


def test_a_mailbox_taken_out_of_the_config_has_its_documents_deleted(sb: Sandbox) -> None:
    items, state = run(connector(sb, mailboxes=[BADEER, CAROL]).load(None))
    assert set(docs(items)) == in_scope(sb, BADEER) | in_scope(sb, CAROL)
    items, state = run(connector(sb).load(state))
    assert deletions(items) == in_scope(sb, CAROL) and not docs(items)
    assert state is not None and list(state["mailboxes"]) == [BADEER]


def test_labels_and_query_limit_the_backfill(sb: Sandbox) -> None:
    items, _ = run(connector(sb, labels=["sent"]).load(None))  # names match case-insensitively
    assert set(docs(items)) == in_scope(sb, BADEER, "SENT")
    items, _ = run(connector(sb, query="subject:badge").load(None))
    assert docs(items) and all("badge" in d.title.lower() for d in docs(items).values())
    items, _ = run(connector(sb, labels=["sent", "Snet"]).load(None))  # a typo: shown, not silent
    (skip,) = [i for i in items if isinstance(i, Skipped)]
    assert not skip.failed and "key 'labels': no label of mailbox" in skip.reason
    assert "matches 'Snet' (closest: 'SENT')" in skip.reason
    assert set(docs(items)) == in_scope(sb, BADEER, "SENT")
    for read in (lambda c: run(c.load(None)), lambda c: set(c.live_ids())):  # none known: nothing read, or pruned
        with pytest.raises(NothingInScopeError, match="key 'labels': no label of mailbox .* matches 'Snet'"):
            read(connector(sb, labels=["Snet"]))


def test_refused_credentials_exit_3_naming_the_source(sb: Sandbox, tmp_path: Path) -> None:
    good = gmail.write_credentials(sb.ctx, tmp_path / "sa.json")
    bad = foreign_key(tmp_path / "foreign.json", {"credentials_file": str(good)})
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "{tmp_path / "index"}"\n\n[[sources]]\nname = "company-mail"\n'
        f'type = "gmail"\ncredentials_file = "{bad}"\nmailboxes = ["{BADEER}"]\n'
        f'api_endpoint = "{sb.ctx.http_url}/"\nretries = 0\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "inlet", "sync", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "INLET_CONFIG": str(config)},
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "company-mail" in proc.stderr and "credentials" in proc.stderr
    run_ = json.loads(proc.stdout)["runs"][0]
    assert run_["source"] == "company-mail" and run_["outcome"] == "failed"


def test_a_first_listing_reports_gmails_estimate_and_counts_up_to_it(sb: Sandbox) -> None:
    conn = connector(sb, mailboxes=[BADEER, CAROL])
    items, state = run(conn.load(None))
    progress = [i for i in items if isinstance(i, Progress)]
    totals = [p.total for p in progress if p.total is not None]
    dones = [p.done for p in progress if p.done is not None]
    wanted = len(in_scope(sb, BADEER) | in_scope(sb, CAROL))
    assert totals == [wanted] and dones[0] == 0 and dones[-1] == wanted and dones == sorted(dones)
    assert items.index(progress[0]) < min(i for i, item in enumerate(items) if isinstance(item, Document))
    again, _ = run(conn.load(state))  # history from here on: no listing, no total
    assert not [i for i in again if isinstance(i, Progress)]


def test_a_resumed_first_listing_reports_what_is_left(sb: Sandbox) -> None:
    conn = connector(sb, page_size=5)
    read: list[Document] = []
    state: dict[str, Any] | None = None
    for item in conn.load(None):  # killed after the first checkpoint that holds documents
        if isinstance(item, Document):
            read.append(item)
        if isinstance(item, Checkpoint) and read:
            state = json.loads(json.dumps(item.state))
            break
    assert state is not None
    seen = len(state["mailboxes"][BADEER]["listing"]["seen"])
    items, _ = run(conn.load(state))
    progress = [i for i in items if isinstance(i, Progress)]
    left = len(in_scope(sb, BADEER)) - seen
    assert 0 < seen and [p.total for p in progress if p.total is not None] == [left]
    assert progress[-1].done == left == len([i for i in items if isinstance(i, Document)])


def test_a_saved_page_token_gmail_refuses_starts_the_listing_over_without_duplicates(sb: Sandbox) -> None:
    conn = connector(sb, page_size=5)
    read: list[str] = []
    state: dict[str, Any] | None = None
    for item in conn.load(None):  # killed after a checkpoint saved mid-listing
        if isinstance(item, Document):
            read.append(item.id)
        if isinstance(item, Checkpoint) and (item.state["mailboxes"][BADEER].get("listing") or {}).get("token"):
            state = json.loads(json.dumps(item.state))
            break
    assert state is not None
    state["mailboxes"][BADEER]["listing"]["token"] = "bm90LWEtdG9rZW4"  # one Gmail no longer takes
    items, _ = run(conn.load(state))
    again = [i.id for i in items if isinstance(i, Document)]
    assert set(read) | set(again) == in_scope(sb, BADEER)
    seen = {f"gm:{BADEER}/{mid}" for mid in state["mailboxes"][BADEER]["listing"]["seen"]}
    assert seen and len(again) == len(set(again)) and not set(again) & seen  # read once only


def test_a_mailbox_gmail_refuses_otherwise_is_named_and_the_others_sync(sb: Sandbox) -> None:
    sb.faults.fail("gmail", "users.getProfile", 400, times=1, reason="failedPrecondition")  # Gmail not enabled
    items, _ = run(connector(sb, mailboxes=[CAROL, BADEER], concurrency=1).load(None))
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert len(skipped) == 1 and skipped[0].failed and "failedPrecondition" in skipped[0].reason
    named = skipped[0].id.removeprefix("gm:mailbox:")
    other = BADEER if named == CAROL else CAROL
    assert set(docs(items)) == in_scope(sb, other)


def test_malformed_and_huge_messages_as_gmail_serves_them_are_read_as_far_as_they_can_be(sb: Sandbox) -> None:
    head = b"From: Ops <ops@example.com>\r\nTo: robert.badeer@enron.com\r\n"
    broken = head + (
        b"Subject: =?x-unknown?q?Caf=E9?= \xe2\x80\x93 rota\r\n"
        b'Content-Type: multipart/mixed; boundary="declared"\r\n\r\n'  # its parts use another one
        b"--used\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe rota changes on Monday.\r\n"
        b"--used\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"Not base64 at all but prose, so it decodes to noise!\r\n--used--\r\n"
    )
    paragraphs = "".join(f"<p>Paragraph {n} of the newsletter.</p>" for n in range(2000))
    huge = head + b"Subject: Newsletter\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + paragraphs.encode()
    when = int(sb.ws.clock() * 1000)
    first, second = (gs.add_message(sb.ws, BADEER, raw, ["INBOX"], when) for raw in (broken, huge))
    items, _ = run(connector(sb, max_body_bytes=5000).load(None))
    got = docs(items)
    broken_doc, huge_doc = got[f"gm:{BADEER}/{first.id}"], got[f"gm:{BADEER}/{second.id}"]
    assert broken_doc.title == "Café – rota" and "The rota changes on Monday." in broken_doc.text
    assert "prose" not in broken_doc.text and "Content-Type" not in broken_doc.text
    assert "Paragraph 0 of the newsletter." in huge_doc.text and "Paragraph 1999" not in huge_doc.text
    mine = (f"{broken_doc.id}#body", f"{huge_doc.id}#body")
    skipped = {(i.id, i.failed): i.reason for i in items if isinstance(i, Skipped) and i.id in mine}
    assert set(skipped) == {(f"{broken_doc.id}#body", True), (f"{huge_doc.id}#body", False)}
    assert "base64 is corrupt" in skipped[(f"{broken_doc.id}#body", True)]
    assert skipped[(f"{huge_doc.id}#body", False)].startswith("body truncated at 5000 bytes")


def test_a_date_past_the_last_day_python_knows_is_no_date_and_stops_nothing(sb: Sandbox) -> None:
    """`Date: 31 Dec 9999 23:59:59 -2359` is past year 9999 in UTC: it once failed every run of the
    mailbox; the message is indexed without a sent date and the mailbox goes on."""
    raw = b"From: ops@example.com\r\nSubject: Far future\r\nDate: Fri, 31 Dec 9999 23:59:59 -2359\r\n\r\nHello."
    odd = gs.add_message(sb.ws, BADEER, raw, ["INBOX"], int(sb.ws.clock() * 1000))
    items, _ = run(connector(sb).load(None))
    doc = docs(items)[f"gm:{BADEER}/{odd.id}"]
    assert doc.title == "Far future" and "Hello." in doc.text
    assert not [i for i in items if isinstance(i, Skipped) and i.failed]
