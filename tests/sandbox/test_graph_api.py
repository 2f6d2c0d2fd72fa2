"""The emulated Graph mail API and identity platform, driven by msal and httpx as clients would."""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Iterator
from typing import Any

import httpx
import msal
import pytest

from inlet.sandbox import graph
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace

SCOPE = ["https://graph.microsoft.com/.default"]
BOX = "robert.badeer@enron.com"
IMMUTABLE = {"Prefer": 'IdType="ImmutableId", odata.maxpagesize=2'}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


def app(sb: Sandbox, secret: str | None = None, tenant: str | None = None) -> msal.ConfidentialClientApplication:
    state = sb.ws.mail
    return msal.ConfidentialClientApplication(
        state.client_id,
        client_credential=secret or state.client_secret,
        authority=f"{sb.ctx.https_url}/{tenant or state.tenant_id}",
        instance_discovery=False,
        http_client=httpx.Client(verify=str(sb.ctx.ca_path)),
    )


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    token = app(sb).acquire_token_for_client(SCOPE)["access_token"]
    # a generous read timeout: once in a full CI run (652 tests) this client waited over httpx's
    # default 5 s for one answer; these tests check the wire format, not the latency
    with httpx.Client(
        base_url=f"{sb.ctx.https_url}/v1.0",
        verify=str(sb.ctx.ca_path),
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def error(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_msal_client_credentials_over_https(sb: Sandbox) -> None:
    result = app(sb).acquire_token_for_client(SCOPE)
    assert result["token_type"] == "Bearer" and result["access_token"]
    bad = app(sb, secret="wrong").acquire_token_for_client(SCOPE)
    assert bad["error"] == "invalid_client" and bad["error_description"].startswith("AADSTS7000215")
    assert app(sb).acquire_token_for_client(["User.Read"])["error"] == "invalid_scope"
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        app(sb, tenant="nope.onmicrosoft.com")


def test_instance_discovery_answers_like_entra(sb: Sandbox) -> None:
    with httpx.Client(verify=str(sb.ctx.ca_path)) as client:
        body = client.get(
            f"{sb.ctx.https_url}/common/discovery/instance",
            params={"authorization_endpoint": f"{sb.ctx.https_url}/t1/oauth2/v2.0/authorize"},
        ).json()
    assert body["tenant_discovery_endpoint"].endswith("/t1/v2.0/.well-known/openid-configuration")


def test_folders_page_with_next_links_and_child_folders(api: httpx.Client) -> None:
    page = api.get("/users/harry.arora@enron.com/mailFolders", params={"$top": 3}).json()
    names = [f["displayName"] for f in page["value"]]
    while "@odata.nextLink" in page:
        page = api.get(page["@odata.nextLink"]).json()
        names += [f["displayName"] for f in page["value"]]
    assert {"Inbox", "Sent Items", "Deleted Items", "Junk Email", "Drafts", "Vanderbilt"} <= set(names)
    assert len(names) == len(set(names))
    inbox = api.get("/users/harry.arora@enron.com/mailFolders/inbox").json()
    assert inbox["childFolderCount"] == 3 and "wellKnownName" not in inbox
    children = api.get(f"/users/harry.arora@enron.com/mailFolders/{inbox['id']}/childFolders").json()["value"]
    assert {c["displayName"] for c in children} == {"Hist Vols", "Receipts", "Saved Mail"}


def delta_all(
    api: httpx.Client, url: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    page = api.get(url, headers=headers, params=params).json()
    while True:
        items += page["value"]
        if "@odata.deltaLink" in page:
            return items, page["@odata.deltaLink"]
        assert page["@odata.nextLink"].startswith("https://")
        page = api.get(page["@odata.nextLink"], headers=headers).json()


def test_delta_rounds_with_select_paging_and_removed_entries(sb: Sandbox, api: httpx.Client) -> None:
    url = f"/users/{BOX}/mailFolders/sentitems/messages/delta"
    first, link = delta_all(api, url, IMMUTABLE, {"$select": "subject,receivedDateTime"})
    sent = sb.ws.mail.folder(sb.ws.user_by_email(BOX).id, "sentitems")
    assert len(first) == len(sb.ws.mail.in_folder(sent.id)) > 2
    assert set(first[0]) == {"@odata.etag", "id", "subject", "receivedDateTime"}
    assert "$deltatoken=" in link
    assert delta_all(api, link, IMMUTABLE)[0] == []  # nothing changed

    added = graph.add_message(sb.ws, BOX, "sentitems", "New one", "hello")
    moved, gone = first[0]["id"], first[1]["id"]
    graph.move_message(sb.ws, moved, "inbox")
    graph.delete_message(sb.ws, gone)
    changes, link2 = delta_all(api, link, IMMUTABLE)
    by_id = {c["id"]: c for c in changes}
    assert by_id[added.id]["subject"] == "New one"
    assert by_id[moved]["@removed"] == {"reason": "changed"}
    assert by_id[gone]["@removed"] == {"reason": "deleted"}
    inbox_changes, _ = delta_all(api, f"/users/{BOX}/mailFolders/inbox/messages/delta", IMMUTABLE)
    assert moved in {c["id"] for c in inbox_changes}  # immutable id survives the move
    assert api.get(link2, headers=IMMUTABLE).json()["value"] == []


def test_rest_ids_change_on_move_without_immutable_prefer(sb: Sandbox, api: httpx.Client) -> None:
    msg = graph.add_message(sb.ws, BOX, "inbox", "Mover", "x")
    before = api.get(f"/users/{BOX}/messages/{msg.id}").json()["id"]
    graph.move_message(sb.ws, msg.id, "sentitems")
    after = api.get(f"/users/{BOX}/messages/{msg.id}").json()
    assert after["id"] != before and after["parentFolderId"] == sb.ws.mail.folder(msg.mailbox, "sentitems").id
    assert api.get(f"/users/{BOX}/messages/{msg.id}", headers=IMMUTABLE).json()["id"] == msg.id


def test_filter_on_received_date(api: httpx.Client) -> None:
    url = f"/users/{BOX}/mailFolders/sentitems/messages/delta"
    everything, _ = delta_all(api, url, IMMUTABLE, {"$select": "receivedDateTime"})
    recent, _ = delta_all(
        api, url, IMMUTABLE, {"$filter": "receivedDateTime ge 2001-11-01T00:00:00Z", "$select": "receivedDateTime"}
    )
    assert 0 < len(recent) < len(everything)
    assert all(m["receivedDateTime"] >= "2001-11-01" for m in recent)
    assert api.get(url, params={"$filter": "subject eq 'x'"}).status_code == 400


def test_errors(sb: Sandbox, api: httpx.Client) -> None:
    assert error(api.get(f"/users/{BOX}/messages/delta")) == "ErrorInvalidRequest"
    assert error(api.get("/users/nobody@enron.com/mailFolders")) == "ErrorInvalidUser"
    sb.ws.add_user("nomail@enron.com", "nomail")
    missing = api.get("/users/nomail@enron.com/mailFolders")
    assert missing.status_code == 404 and error(missing) == "MailboxNotEnabledForRESTAPI"
    assert error(api.get(f"/users/{BOX}/mailFolders/AAMkNope/messages/delta")) == "ErrorItemNotFound"
    assert error(api.get(f"/users/{BOX}/messages/AAMkNope")) == "ErrorItemNotFound"
    assert api.get(f"/users/{BOX}/mailFolders", headers={"Authorization": ""}).status_code == 401


def test_expired_tokens() -> None:
    with Sandbox() as sb:  # expires every token: its own sandbox
        token = app(sb).acquire_token_for_client(SCOPE)["access_token"]
        with httpx.Client(base_url=f"{sb.ctx.http_url}/v1.0", headers={"Authorization": f"Bearer {token}"}) as c:
            _, link = delta_all(c, f"/users/{BOX}/mailFolders/inbox/messages/delta")
            graph.expire_delta_tokens(sb.ws)
            gone = c.get(link)
            assert gone.status_code == 410 and error(gone) == "SyncStateNotFound"
            graph.expire_tokens(sb.ws)
            refused = c.get(f"/users/{BOX}/mailFolders")
            assert refused.status_code == 401 and error(refused) == "InvalidAuthenticationToken"


def test_faults_throttle_and_fail(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.fail("graph", "messages.delta", 429, times=1, retry_after=2)
    throttled = api.get(f"/users/{BOX}/mailFolders/inbox/messages/delta")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert error(throttled) == "TooManyRequests"
    for status in (503, 504):
        sb.faults.fail("graph", "mailFolders", status, times=1)
        assert api.get(f"/users/{BOX}/mailFolders").status_code == status
    assert api.get(f"/users/{BOX}/mailFolders").status_code == 200


def test_message_and_attachments(sb: Sandbox, api: httpx.Client) -> None:
    msg = next(m for m in sb.ws.mail.messages.values() if m.attachments)
    box = sb.ws.mail.mailboxes[msg.mailbox].email
    body = api.get(f"/users/{box}/messages/{msg.id}", headers=IMMUTABLE).json()
    assert body["hasAttachments"] and body["body"]["contentType"] == "html"
    assert body["webLink"].startswith(str(api.base_url).removesuffix("/v1.0/") + "/owa/?ItemID=")
    atts = api.get(f"/users/{box}/messages/{msg.id}/attachments").json()["value"]
    assert base64.b64decode(atts[0]["contentBytes"]) == msg.attachments[0].data
    assert atts[0]["@odata.type"] == "#microsoft.graph.fileAttachment"


def test_attachments_select_one_by_one_and_expanded_items() -> None:
    """As Graph: `$select` leaves `contentBytes` out of the listing (each entry keeps `@odata.type`),
    one attachment is read by id, an item attachment's message only with `$expand`, a reference
    attachment has no bytes."""
    with Sandbox() as sb:  # attaches to a message: its own sandbox
        msg = sb.ws.mail.in_folder(sb.ws.mail.folder(sb.ws.user_by_email(BOX).id, "inbox").id)[0]
        file = graph.add_attachment(sb.ws, msg.id, "notes.txt", b"Osprey notes", "text/plain")
        item = graph.attach_message(sb.ws, msg.id, "Fwd: Kestrel bids", "Kestrel bids close at noon")
        link = graph.add_attachment(sb.ws, msg.id, "plan.docx", link="https://contoso.sharepoint.com/plan.docx")
        token = app(sb).acquire_token_for_client(SCOPE)["access_token"]
        with httpx.Client(
            base_url=f"{sb.ctx.https_url}/v1.0/users/{BOX}/messages/{msg.id}",
            verify=str(sb.ctx.ca_path),
            headers={"Authorization": f"Bearer {token}"},
        ) as c:
            listed = c.get("/attachments", params={"$select": "id,name,size"}).json()["value"]
            assert [a["@odata.type"].rsplit(".", 1)[-1] for a in listed] == [
                "fileAttachment",
                "itemAttachment",
                "referenceAttachment",
            ]
            assert all(set(a) == {"@odata.type", "id", "name", "size"} for a in listed)
            assert base64.b64decode(c.get(f"/attachments/{file.id}").json()["contentBytes"]) == b"Osprey notes"
            assert "item" not in c.get(f"/attachments/{item.id}").json()
            expanded = c.get(
                f"/attachments/{item.id}", params={"$expand": "microsoft.graph.itemattachment/item"}
            ).json()
            assert expanded["item"]["subject"] == "Fwd: Kestrel bids" and "noon" in expanded["item"]["body"]["content"]
            assert "contentBytes" not in c.get(f"/attachments/{link.id}").json()
            assert error(c.get("/attachments/AAMkAttNone")) == "ErrorItemNotFound"


def test_admin_routes() -> None:
    with Sandbox() as sb:  # rotates the secret: its own sandbox
        with httpx.Client(base_url=sb.ctx.http_url) as c:
            new = c.post("/_admin/graph/messages", json={"mailbox": BOX, "subject": "via admin", "body": "b"}).json()
            assert sb.ws.mail.messages[new["id"]].subject == "via admin"
            assert c.patch(f"/_admin/graph/messages/{new['id']}", json={"subject": "edited"}).status_code == 200
            moved = c.post(f"/_admin/graph/messages/{new['id']}/move", json={"destinationId": "sentitems"})
            assert moved.status_code == 200
            sent = sb.ws.mail.folder(sb.ws.user_by_email(BOX).id, "sentitems")
            assert sb.ws.mail.messages[new["id"]].folder_id == sent.id
            assert c.delete(f"/_admin/graph/messages/{new['id']}").status_code == 200
            assert new["id"] not in sb.ws.mail.messages
            secret = c.post("/_admin/graph/rotate_secret").json()["client_secret"]
            assert sb.ws.mail.client_secret == secret
            assert c.post("/_admin/graph/expire_tokens").status_code == 200
            assert c.post("/_admin/graph/expire_delta_tokens").status_code == 200


def test_source_block_and_generated_seed(sb: Sandbox) -> None:
    block, env = graph.source(sb.ctx, sb.ctx.workdir)
    cfg = tomllib.loads(block)["sources"][0]
    assert cfg["type"] == "outlook" and cfg["authority_url"].startswith("https://")
    assert len(cfg["mailboxes"]) == 4 and env["INLET_SANDBOX_OUTLOOK_SECRET"] == sb.ws.mail.client_secret
    one, two = Workspace(), Workspace()
    for ws in (one, two):
        graph.seed_generated(ws, mailboxes=3, mails=300)
    assert len(one.mail.messages) == 300 and len(one.mail.mailboxes) == 3
    assert [m.subject for m in one.mail.messages.values()] == [m.subject for m in two.mail.messages.values()]


def test_a_stopped_sandbox_leaves_no_keys_behind():
    with Sandbox() as box:
        workdir = box.ctx.workdir
        assert (workdir / "server.key").exists() and box.ctx.ca_path.exists()
        assert {oct(p.stat().st_mode & 0o777) for p in workdir.glob("*.pem")} | {
            oct((workdir / "server.key").stat().st_mode & 0o777)
        } == {"0o600"}  # the private key and certificates are the owner's alone
    assert not workdir.exists()


def test_subjects_are_served_decoded_as_graph_serves_them(sb: Sandbox, api: httpx.Client) -> None:
    """probe33g F6: a sample mail's RFC 2047 subject ("=?ANSI_X3.4-1968?Q?Enron=01,s_Entry...?=") is
    served decoded, as Exchange does (the Gmail copy of the same mail is decoded by the connector)."""
    assert not [m.subject for m in sb.ws.mail.messages.values() if "=?" in m.subject]
    metals = next(m for m in sb.ws.mail.messages.values() if "Global Metals Market" in m.subject)
    box = sb.ws.mail.mailboxes[metals.mailbox].email
    served = api.get(f"/users/{box}/messages/{metals.id}", headers=IMMUTABLE).json()["subject"]
    assert served.startswith("Enron") and served.endswith("s Entry Into Global Metals Market"), served
