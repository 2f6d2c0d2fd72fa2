"""The emulated Gmail API as google-api-python-client sees it: formats, attachments, paging, history,
batch, the per-user quota and domain-wide delegation."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from inlet.sandbox import gmail
from inlet.sandbox import gmail_state as gs
from inlet.sandbox.documents import make_pdf
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace

ANN, BEN = "ann@example.com", "ben@example.com"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    ws = Workspace()
    gmail.add_mailbox(ws, ANN, "Ann")
    gmail.add_mailbox(ws, BEN, "Ben")
    for n in range(7):
        gmail.add_message(ws, ANN, f"Note {n}", f"Body of note {n}.", labels=["INBOX", "Notes"])
    gmail.add_message(
        ws,
        ANN,
        "Memo",
        "See the memo.",
        labels=["INBOX"],
        attachments=[("memo.pdf", "application/pdf", make_pdf("Memo", ["Quarterly numbers."]))],
    )
    gmail.add_message(ws, ANN, "Junk", "Win a prize.", labels=["SPAM"])
    with Sandbox(ws=ws) as box:
        yield box


def service(sb: Sandbox, subject: str = ANN) -> Any:
    info = json.loads(gmail.write_credentials(sb.ctx, sb.ctx.workdir / "sa.json").read_text())
    creds = service_account.Credentials.from_service_account_info(info, scopes=[gmail.SCOPE]).with_subject(subject)
    return build(
        "gmail",
        "v1",
        credentials=creds,
        static_discovery=True,
        client_options=ClientOptions(api_endpoint=sb.ctx.http_url + "/"),
    )


def message(sb: Sandbox, subject: str) -> gs.GmailMessage:
    return next(m for m in gs.mailbox(sb.ws, ANN).messages.values() if f"Subject: {subject}".encode() in m.raw)


def test_every_format_and_the_attachment(sb: Sandbox) -> None:
    users = service(sb).users()
    memo = message(sb, "Memo")
    full = users.messages().get(userId="me", id=memo.id).execute()
    assert (
        full["threadId"] == memo.thread_id
        and full["labelIds"] == ["INBOX"]
        and full["payload"]["mimeType"] == "multipart/mixed"
    )
    text, pdf = full["payload"]["parts"]
    assert base64.urlsafe_b64decode(text["body"]["data"]).decode().strip() == "See the memo."
    assert pdf["filename"] == "memo.pdf" and "data" not in pdf["body"] and pdf["body"]["size"] > 0
    got = users.messages().attachments().get(userId="me", messageId=memo.id, id=pdf["body"]["attachmentId"]).execute()
    assert base64.urlsafe_b64decode(got["data"]).startswith(b"%PDF") and got["size"] == pdf["body"]["size"]
    raw = users.messages().get(userId="me", id=memo.id, format="raw").execute()
    assert base64.urlsafe_b64decode(raw["raw"]) == memo.raw and "payload" not in raw
    meta = users.messages().get(userId="me", id=memo.id, format="metadata", metadataHeaders=["Subject"]).execute()
    assert meta["payload"]["headers"] == [{"name": "Subject", "value": "Memo"}] and "parts" not in meta["payload"]
    minimal = users.messages().get(userId="me", id=memo.id, format="minimal").execute()
    assert set(minimal) == {"id", "threadId", "labelIds", "historyId", "internalDate", "sizeEstimate"}
    assert message_from_bytes(memo.raw)["Subject"] == "Memo"


def test_listing_pages_filters_and_hides_spam(sb: Sandbox) -> None:
    users = service(sb).users()
    seen, token, pages = [], None, 0
    while True:
        page = users.messages().list(userId="me", maxResults=3, pageToken=token).execute()
        seen += [m["id"] for m in page.get("messages", [])]
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break
    visible = {m.id for m in gs.mailbox(sb.ws, ANN).messages.values() if "SPAM" not in m.labels}
    assert sorted(seen) == sorted(visible) and pages == 3 and page["resultSizeEstimate"] == 8
    notes = gs.label_id(sb.ws, ANN, "Notes")
    assert users.messages().list(userId="me", labelIds=[notes]).execute()["resultSizeEstimate"] == 7
    assert users.messages().list(userId="me", includeSpamTrash=True).execute()["resultSizeEstimate"] == 9
    assert users.messages().list(userId="me", q="subject:memo has:attachment").execute()["resultSizeEstimate"] == 1
    names = {label["name"] for label in users.labels().list(userId="me").execute()["labels"]}
    assert {"INBOX", "SPAM", "TRASH", "Notes"} <= names


def test_history_types_labels_and_expiry(sb: Sandbox) -> None:
    users = service(sb, BEN).users()
    start = users.getProfile(userId="me").execute()["historyId"]
    added = gmail.add_message(sb.ws, BEN, "Hello", "First.")
    gmail.relabel(sb.ws, BEN, added.id, add=["Later"], remove=["INBOX"])
    gmail.trash(sb.ws, BEN, added.id)
    other = gmail.add_message(sb.ws, BEN, "Bye", "Second.")
    gmail.delete_message(sb.ws, BEN, other.id)
    everything = users.history().list(userId="me", startHistoryId=start).execute()
    kinds = [next(k for k in r if k not in ("id", "messages")) for r in everything["history"]]
    assert kinds == ["messagesAdded", "labelsRemoved", "labelsAdded", "labelsAdded", "messagesAdded", "messagesDeleted"]
    assert everything["historyId"] == users.getProfile(userId="me").execute()["historyId"]
    trashed = everything["history"][3]["labelsAdded"][0]
    assert trashed["labelIds"] == ["TRASH"] and "TRASH" in trashed["message"]["labelIds"]
    deletes = users.history().list(userId="me", startHistoryId=start, historyTypes=["messageDeleted"]).execute()
    assert [r["messagesDeleted"][0]["message"]["id"] for r in deletes["history"]] == [other.id]
    first = users.history().list(userId="me", startHistoryId=start, maxResults=4).execute()
    rest = users.history().list(userId="me", startHistoryId=start, pageToken=first["nextPageToken"]).execute()
    assert [r["id"] for r in first["history"] + rest["history"]] == [r["id"] for r in everything["history"]]
    gmail.expire_history(sb.ws, BEN)
    with pytest.raises(HttpError) as gone:
        users.history().list(userId="me", startHistoryId=start).execute()
    assert gone.value.resp.status == 404
    now = users.getProfile(userId="me").execute()["historyId"]
    assert "history" not in users.history().list(userId="me", startHistoryId=now).execute()


def test_batch_answers_each_part(sb: Sandbox) -> None:
    svc = service(sb)
    ids = sorted(m.id for m in gs.mailbox(sb.ws, ANN).messages.values())[:3]
    answers: dict[str, Any] = {}
    batch = BatchHttpRequest(
        callback=lambda rid, resp, exc: answers.update({rid: resp or exc}), batch_uri=sb.ctx.http_url + gmail.BATCH_PATH
    )
    for mid in [*ids, "0000000000000000"]:
        batch.add(svc.users().messages().get(userId="me", id=mid, format="raw"), request_id=mid)
    sb.faults.reset_counts()
    batch.execute()
    assert [answers[mid]["id"] for mid in ids] == ids
    assert isinstance(answers["0000000000000000"], HttpError) and answers["0000000000000000"].resp.status == 404
    assert sb.faults.calls["gmail:batch"] == 1 and sb.faults.calls["gmail:messages.get"] == 4


def test_quota_is_per_user_in_units_with_retry_after(sb: Sandbox) -> None:
    users = service(sb).users()
    gs.state(sb.ws).units_per_second = 12
    try:
        gs.state(sb.ws).usage.clear()
        users.messages().list(userId="me").execute()  # 5 units
        users.messages().list(userId="me").execute()  # 10
        with pytest.raises(HttpError) as throttled:
            users.messages().list(userId="me").execute()  # 15 > 12
        service(sb, BEN).users().messages().list(userId="me").execute()  # another user's quota
    finally:
        gs.state(sb.ws).units_per_second = 250
    assert throttled.value.resp.status == 429 and 1 <= int(throttled.value.resp["retry-after"]) <= 2
    assert json.loads(throttled.value.content)["error"]["errors"][0]["reason"] == "rateLimitExceeded"


def test_delegation_covers_one_user_per_token(sb: Sandbox) -> None:
    with pytest.raises(HttpError) as denied:
        service(sb, ANN).users().getProfile(userId=BEN).execute()
    assert denied.value.resp.status == 403
    gmail.refuse_delegation(sb.ws, BEN)
    try:
        with pytest.raises(RefreshError, match="unauthorized_client"):
            service(sb, BEN).users().getProfile(userId="me").execute()
    finally:
        gmail.refuse_delegation(sb.ws, BEN, refused=False)
    assert service(sb, BEN).users().getProfile(userId="me").execute()["emailAddress"] == BEN


def test_admin_routes_change_a_mailbox_as_its_owner_would(sb: Sandbox) -> None:
    import httpx

    users = service(sb, BEN).users()
    start = users.getProfile(userId="me").execute()["historyId"]
    with httpx.Client(base_url=sb.ctx.http_url) as admin:
        added = admin.post(
            "/_admin/gmail/messages",
            json={"mailbox": BEN, "subject": "Via admin", "body": "Hi.", "labels": ["INBOX", "Admin"]},
        ).json()
        assert admin.patch(
            f"/_admin/gmail/{BEN}/messages/{added['id']}", json={"add": ["Later"], "remove": ["INBOX"]}
        ).json() == {"ok": True}
        assert admin.post(f"/_admin/gmail/{BEN}/messages/{added['id']}/trash").json() == {"ok": True}
        assert admin.delete(f"/_admin/gmail/{BEN}/messages/{added['id']}").json() == {"ok": True}
        assert admin.delete(f"/_admin/gmail/{BEN}/messages/{added['id']}").status_code == 404
        kinds = [
            next(k for k in r if k not in ("id", "messages"))
            for r in users.history().list(userId="me", startHistoryId=start).execute()["history"]
        ]
        assert kinds == ["messagesAdded", "labelsRemoved", "labelsAdded", "labelsAdded", "messagesDeleted"]
        assert admin.post("/_admin/gmail/expire_history", json={"mailbox": BEN}).json() == {"ok": True}
    with pytest.raises(HttpError):
        users.history().list(userId="me", startHistoryId=start).execute()
