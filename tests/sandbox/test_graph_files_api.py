"""The emulated Graph files and Teams APIs, driven by msal and httpx as clients would."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msal
import pytest

from inlet.sandbox import graph_files, graph_teams
from inlet.sandbox.graph_files_seed import perm
from inlet.sandbox.server import Sandbox

SITE = "sandbox.sharepoint.com:/sites/Engineering"


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture()
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    mail = sb.ws.mail
    # closed once the token is in: an idle TLS connection left open held the sandbox's stop for
    # its whole graceful-shutdown second
    with httpx.Client(verify=str(sb.ctx.ca_path)) as idp:
        app = msal.ConfidentialClientApplication(
            mail.client_id,
            client_credential=mail.client_secret,
            authority=f"{sb.ctx.https_url}/{mail.tenant_id}",
            instance_discovery=False,
            http_client=idp,
        )
        token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    with httpx.Client(
        base_url=f"{sb.ctx.https_url}/v1.0",
        verify=str(sb.ctx.ca_path),
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def drive_id(api: httpx.Client, name: str = "Documents") -> str:
    drives = api.get(f"/sites/{SITE}:/drives").json()["value"]
    return str(next(d["id"] for d in drives if d["name"] == name))


def test_sites_by_path_and_id_list_every_library(api: httpx.Client) -> None:
    site = api.get(f"/sites/{SITE}").json()
    assert site["displayName"] == "Engineering"
    by_id = api.get(f"/sites/{site['id']}/drives").json()["value"]
    assert sorted(d["name"] for d in by_id) == ["Documents", "Specs"]
    assert all(d["driveType"] == "documentLibrary" for d in by_id)
    assert api.get("/sites/sandbox.sharepoint.com:/sites/Nope").status_code == 404
    assert api.get("/sites/x", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_delta_pages_then_answers_changes_and_410_once_expired(sb: Sandbox, api: httpx.Client) -> None:
    drive = drive_id(api)
    page = api.get(f"/drives/{drive}/root/delta", params={"$top": 3}).json()
    seen = list(page["value"])
    assert "root" in seen[0] and "path" not in seen[1]["parentReference"]  # root first; delta omits paths
    while "@odata.nextLink" in page:
        assert "$skiptoken=" in page["@odata.nextLink"]
        page = api.get(page["@odata.nextLink"]).json()
        seen += page["value"]
    assert len({i["id"] for i in seen}) == len(seen) == 10
    delta = page["@odata.deltaLink"]
    state = graph_files.files_state(sb.ws)
    doomed = next(i for i in seen if i["name"] == "Budget 2024.xlsx")
    with sb.ws.lock:
        state.delete_item(doomed["id"])
    changes = api.get(delta).json()
    assert [(i["id"], i["deleted"]) for i in changes["value"]] == [(doomed["id"], {"state": "deleted"})]
    with sb.ws.lock:
        state.expire_delta_tokens()
    gone = api.get(changes["@odata.deltaLink"])
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "resyncRequired"


def test_sharing_changes_come_only_when_asked_for(sb: Sandbox, api: httpx.Client) -> None:
    drive = drive_id(api, "Specs")
    first = api.get(f"/drives/{drive}/root/delta").json()
    alone = api.get(f"/drives/{drive}/root/delta", headers={"Prefer": "deltashowsharingchanges"}).json()
    asked = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"  # as Graph requires
    plain = api.get(f"/drives/{drive}/root/delta", headers={"Prefer": asked}).json()
    spec = next(i for i in plain["value"] if i["name"] == "API spec.html")
    with sb.ws.lock:
        graph_files.files_state(sb.ws).share(spec["id"], perm(user="bob@example.com"))
    assert api.get(first["@odata.deltaLink"]).json()["value"] == []
    assert api.get(alone["@odata.deltaLink"]).json()["value"] == []  # the header without its two companions
    shared = api.get(plain["@odata.deltaLink"]).json()["value"]
    assert [(i["id"], i["@microsoft.graph.sharedChanged"]) for i in shared] == [(spec["id"], "True")]
    perms = api.get(f"/drives/{drive}/items/{spec['id']}/permissions").json()["value"]
    assert {p["grantedToV2"].get("user", {}).get("email") for p in perms} >= {"bob@example.com"}
    assert any(
        p.get("inheritedFrom") and p["grantedToV2"]["siteGroup"]["displayName"] == "Engineering Members" for p in perms
    )


def test_content_redirects_to_a_download_url_that_needs_no_token(sb: Sandbox, api: httpx.Client) -> None:
    drive = drive_id(api, "Specs")
    spec = next(i for i in api.get(f"/drives/{drive}/root/delta").json()["value"] if i["name"] == "API spec.html")
    answer = api.get(f"/drives/{drive}/items/{spec['id']}/content")
    assert answer.status_code == 302
    with httpx.Client(verify=str(sb.ctx.ca_path)) as anonymous:
        assert b"Search API" in anonymous.get(answer.headers["location"]).content


def test_sites_selected_answers_403_until_the_site_is_granted(sb: Sandbox, api: httpx.Client) -> None:
    site = api.get(f"/sites/{SITE}").json()
    graph_files.select_sites(sb.ws, [])
    refused = api.get(f"/sites/{SITE}:/drives")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "accessDenied"
    grant = api.post(
        f"/sites/{site['id']}/permissions",
        json={
            "roles": ["read"],
            "grantedToIdentities": [{"application": {"id": sb.ws.mail.client_id, "displayName": "inlet"}}],
        },
    )
    assert grant.status_code == 201
    assert api.get(f"/sites/{SITE}:/drives").status_code == 200
    assert api.get("/sites/sandbox.sharepoint.com:/sites/Finance").status_code == 403


def test_groups_expand_nested_members_and_the_tenant_names_its_domains(sb: Sandbox, api: httpx.Client) -> None:
    engineering = next(g for g in graph_files.files_state(sb.ws).groups.values() if g.name == "Engineering")
    members = api.get(f"/groups/{engineering.id}/transitiveMembers").json()["value"]
    users = {m["mail"] for m in members if m["@odata.type"] == "#microsoft.graph.user"}
    assert users == {"abilinski@example.com", "doubledeez@example.com", "hamza@example.com"}
    domains = api.get("/organization").json()["value"][0]["verifiedDomains"]
    assert [d["name"] for d in domains] == ["example.com", "sandbox.onmicrosoft.com"]


def test_batch_answers_each_request_and_throttles_inside(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.fail("graph", "organization", 429, retry_after=3)
    body = api.post(
        "/$batch",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/organization"},
                {"id": "2", "method": "GET", "url": f"/sites/{SITE}"},
            ]
        },
    )
    answers = {r["id"]: r for r in body.json()["responses"]}
    assert body.status_code == 200
    assert answers["1"]["status"] == 429 and answers["1"]["headers"]["retry-after"] == "3"
    assert answers["2"]["status"] == 200 and answers["2"]["body"]["displayName"] == "Engineering"
    too_many = [{"id": str(n), "method": "GET", "url": "/organization"} for n in range(21)]
    assert api.post("/$batch", json={"requests": too_many}).status_code == 400


def test_channel_delta_lists_roots_without_their_replies_unless_told_to(sb: Sandbox, api: httpx.Client) -> None:
    """As Graph documents it, a reply's change lists nothing in the channel's delta; the switch
    `replies_move_root` (what Graph has been seen to do) lists its root, moved."""
    team = next(t for t in api.get("/teams").json()["value"] if t["displayName"] == "Engineering")
    channels = api.get(f"/teams/{team['id']}/channels").json()["value"]
    assert sorted(c["membershipType"] for c in channels) == ["private", "shared", "standard", "standard"]
    general = next(c for c in channels if c["displayName"] == "General")
    first = api.get(f"/teams/{team['id']}/channels/{general['id']}/messages/delta").json()
    roots = {m["id"]: m for m in first["value"]}
    latency = next(m for m in roots.values() if m["subject"] == "Search latency")
    state = graph_teams.teams_state(sb.ws)
    with sb.ws.lock:
        reply, other = state.replies(latency["id"])[:2]
        state.delete(reply.id)
    documented = api.get(first["@odata.deltaLink"]).json()
    assert documented["value"] == []
    with sb.ws.lock:
        state.replies_move_root = True
        state.delete(other.id)
    changed = api.get(documented["@odata.deltaLink"]).json()["value"]
    assert [m["id"] for m in changed] == [latency["id"]] and changed[0]["lastModifiedDateTime"] > latency[
        "lastModifiedDateTime"
    ]
    replies = api.get(f"/teams/{team['id']}/channels/{general['id']}/messages/{latency['id']}/replies").json()
    deleted = next(m for m in replies["value"] if m["id"] == reply.id)
    assert deleted["deletedDateTime"] and deleted["body"]["content"] == ""
    private = next(c["id"] for c in channels if c["membershipType"] == "private")
    members = api.get(f"/teams/{team['id']}/channels/{private}/members").json()["value"]
    assert [m["email"] for m in members] == ["abilinski@example.com"]


def test_a_teams_message_link_opens_its_thread(sb: Sandbox, api: httpx.Client) -> None:
    """probe33g F5: a message's `webUrl` (what a citation links to) opens, as a file's and a mail's do."""
    team = next(t for t in api.get("/teams").json()["value"] if t["displayName"] == "Engineering")
    general = next(c for c in api.get(f"/teams/{team['id']}/channels").json()["value"] if c["displayName"] == "General")
    root = next(
        m
        for m in api.get(f"/teams/{team['id']}/channels/{general['id']}/messages").json()["value"]
        if m["subject"] == "Search latency"
    )
    reply = api.get(f"/teams/{team['id']}/channels/{general['id']}/messages/{root['id']}/replies").json()["value"][0]
    with httpx.Client(verify=str(sb.ctx.ca_path)) as browser:
        for message in (root, reply):
            page = browser.get(message["webUrl"])
            assert page.status_code == 200 and "Search latency" in page.text, message["webUrl"]
            assert reply["body"]["content"] in page.text
        gone = browser.get(root["webUrl"].replace(root["id"], "no-such-message"))
        assert gone.status_code == 404
