"""The emulated Drive v3 API and token endpoint, checked on the wire and against Google's schemas."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from inlet.sandbox import drive
from inlet.sandbox import drive_auth
from inlet.sandbox import drive_state as ds
from inlet.sandbox.server import Sandbox
from inlet.sandbox.workspace import Workspace

DISCOVERY = json.loads(
    (Path(__import__("googleapiclient").__file__).parent / "discovery_cache/documents/drive.v3.json").read_text()
)


def drive_workspace() -> Workspace:
    ws = Workspace()
    drive.seed_sample(ws)
    return ws


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(ws=drive_workspace()) as sandbox:
        yield sandbox


DRIVE_READONLY = "https://www.googleapis.com/auth/drive.readonly"
DIRECTORY = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"


def token_for(sb: Sandbox, scopes: tuple[str, ...] = (DRIVE_READONLY,), subject: str | None = None) -> str:
    import google_auth_httplib2
    import httplib2
    from google.oauth2 import service_account

    info = drive_auth.service_account_info(sb.ws, sb.ctx.http_url + drive_auth.TOKEN_PATH)
    creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes), subject=subject)
    creds.refresh(google_auth_httplib2.Request(httplib2.Http()))
    return str(creds.token)


@pytest.fixture
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {token_for(sb)}"}
    with httpx.Client(base_url=sb.ctx.http_url + "/drive/v3", headers=headers) as client:
        yield client


def by_name(sb: Sandbox, name: str) -> ds.DriveFile:
    return next(f for f in sb.ws.drive.files.values() if f.name == name)


# --- schema conformance -----------------------------------------------------------------------
_JSON_TYPES = {"string": str, "boolean": bool, "integer": int, "array": list, "object": dict, "number": (int, float)}


def assert_schema(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    if "$ref" in schema:
        schema = DISCOVERY["schemas"][schema["$ref"]]
    kind = schema.get("type", "object")
    assert isinstance(value, _JSON_TYPES[kind]), f"{where}: {value!r} is not {kind}"
    if kind == "array":
        for n, item in enumerate(value):
            assert_schema(item, schema["items"], f"{where}[{n}]")
    elif kind == "object" and "properties" in schema:
        for key, item in value.items():
            assert key in schema["properties"], f"{where}.{key} is not in the discovery schema"
            assert_schema(item, schema["properties"][key], f"{where}.{key}")
    elif kind == "object" and "additionalProperties" in schema:
        for key, item in value.items():
            assert_schema(item, schema["additionalProperties"], f"{where}.{key}")


def test_responses_match_the_discovery_schemas(sb: Sandbox, api: httpx.Client) -> None:
    everything = {"fields": "*", "supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
    files = api.get("/files", params=everything).json()
    assert_schema(files, {"$ref": "FileList"})
    assert len(files["files"]) == len(sb.ws.drive.files)
    assert {"owners", "permissions", "webViewLink", "modifiedTime"} <= set(files["files"][0])
    doc = by_name(sb, "Search service design")
    assert_schema(api.get(f"/files/{doc.id}", params=everything).json(), {"$ref": "File"})
    perms = api.get(f"/files/{doc.id}/permissions", params=everything).json()
    assert_schema(perms, {"$ref": "PermissionList"})
    assert {p["type"] for p in perms["permissions"]} == {"user", "domain"}
    start = api.get("/changes/startPageToken").json()
    assert_schema(start, {"$ref": "StartPageToken"})
    changes = api.get("/changes", params={**everything, "pageToken": "1"}).json()
    assert_schema(changes, {"$ref": "ChangeList"})
    assert changes["changes"] and "file" in changes["changes"][0]
    assert_schema(api.get("/drives", params={"fields": "*"}).json(), {"$ref": "DriveList"})
    assert_schema(api.get("/about", params={"fields": "*"}).json(), {"$ref": "About"})


# --- files.list ------------------------------------------------------------------------------
def test_fields_projection_and_page_tokens(api: httpx.Client) -> None:
    first = api.get("/files", params={"pageSize": 3, "fields": "files(id,owners/emailAddress)"}).json()
    assert set(first) == {"files"}  # no nextPageToken unless asked for
    assert all(set(f) <= {"id", "owners"} for f in first["files"])
    assert all(set(o) == {"emailAddress"} for f in first["files"] for o in f.get("owners", []))
    seen: list[str] = []
    token = None
    while True:
        params = {"pageSize": 4, "fields": "nextPageToken,files(id)"}
        if token:
            params["pageToken"] = token
        page = api.get("/files", params=params).json()
        seen += [f["id"] for f in page["files"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 17  # every My Drive item once, shared drive excluded
    default = api.get("/files").json()
    assert set(default["files"][0]) == {"kind", "id", "name", "mimeType"}


def test_query_subset(sb: Sandbox, api: httpx.Client) -> None:
    def names(q: str, **extra: str) -> set[str]:
        page = api.get("/files", params={"q": q, "fields": "files(name)", "pageSize": 1000, **extra}).json()
        return {f["name"] for f in page["files"]}

    ops = by_name(sb, "Operations").id
    assert names(f"'{ops}' in parents and trashed = false") == {
        "Incident postmortem 2024-03.pdf",
        "Security policy.docx",
        "runbook.txt",
        "README.md",
        "faq.html",
    }
    assert "logs.zip" in names(f"'{ops}' in parents")
    assert names(f"mimeType = '{ds.SHEET}'") == {"Q3 roadmap"}
    assert "Engineering" not in names(f"mimeType != '{ds.FOLDER}'")
    cutoff = ds.rfc3339(by_name(sb, "Incident postmortem 2024-03.pdf").modified)
    later = names(f"modifiedTime > '{cutoff}' and trashed = false")
    assert "Incident postmortem 2024-03.pdf" not in later and "runbook.txt" in later
    assert api.get("/files", params={"q": "owner has 'x'"}).status_code == 400


def test_my_drive_root_is_the_parent_of_its_top_items_and_is_never_listed(sb: Sandbox, api: httpx.Client) -> None:
    """Its owner's items at the top of My Drive name it as their parent; to anyone else (who may
    not read it) they have no parents, as Drive answers "Shared with me" items."""
    eng = by_name(sb, "Engineering")
    root = ds.root_id(sb.ws, eng.owner)
    owner = {"Authorization": f"Bearer {token_for(sb, subject=eng.owner)}"}
    with httpx.Client(base_url=sb.ctx.http_url + "/drive/v3", headers=owner) as own:
        assert own.get(f"/files/{eng.id}", params={"fields": "parents"}).json() == {"parents": [root]}
        fields = {"fields": "id,name,mimeType,parents"}
        found = own.get(f"/files/{root}", params=fields).json()
        assert found == {"id": root, "name": "My Drive", "mimeType": ds.FOLDER}
        top = {"q": f"'{root}' in parents", "fields": "files(name)"}
        assert "Engineering" in {f["name"] for f in own.get("/files", params=top).json()["files"]}
    assert api.get(f"/files/{eng.id}", params={"fields": "id,parents"}).json() == {"id": eng.id}
    assert api.get(f"/files/{root}", params={"fields": "id"}).status_code == 404  # another user's root
    mine = api.get("/files/root", params=fields).json()
    assert (
        mine["name"] == "My Drive"
        and "parents" not in mine
        and mine["id"] == ds.root_id(sb.ws, drive_auth.CLIENT_EMAIL)
    )
    listed = api.get("/files", params={"pageSize": 1000, "fields": "files(id,name)"}).json()["files"]
    assert "My Drive" not in {f["name"] for f in listed} and root not in {f["id"] for f in listed}
    wiki = next(iter(sb.ws.drive.drives.values()))
    holiday = api.get(
        f"/files/{by_name(sb, 'Holiday calendar').id}", params={"fields": "parents", "supportsAllDrives": "true"}
    )
    assert holiday.json() == {"parents": [wiki.id]}  # the top of a shared drive: the drive is the parent


def test_shared_drives(sb: Sandbox, api: httpx.Client) -> None:
    wiki = next(iter(sb.ws.drive.drives.values()))
    only = api.get(
        "/files",
        params={
            "corpora": "drive",
            "driveId": wiki.id,
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
            "fields": "files(name,driveId)",
        },
    )
    assert {f["name"] for f in only.json()["files"]} == {"Holiday calendar", "Expense policy.pdf"}
    assert api.get("/files", params={"includeItemsFromAllDrives": "true"}).status_code == 403
    holiday = by_name(sb, "Holiday calendar").id
    assert api.get(f"/files/{holiday}").status_code == 404  # needs supportsAllDrives
    perms = api.get(f"/files/{holiday}/permissions", params={"supportsAllDrives": "true"}).json()
    assert {p.get("domain") for p in perms["permissions"] if p["type"] == "domain"} == {sb.ws.domain}
    listed = api.get("/drives").json()
    assert [d["name"] for d in listed["drives"]] == ["Company Wiki"]


def test_a_shared_drive_the_caller_is_no_member_of_shows_only_its_files_shared_with_them(
    sb: Sandbox, api: httpx.Client
) -> None:
    """Not listed, its members and its own log "not found"; a file shared with the caller directly
    is listed and logged without `parents` (the drive is not theirs to read), and shows its
    sharing, the drive's members among it, to a writer only."""
    ws, me = sb.ws, drive_auth.CLIENT_EMAIL
    start = api.get("/changes/startPageToken").json()["startPageToken"]
    finance = ds.add_drive(ws, "Finance", [ds.user_permission(ws, "erin@example.com")], member=False)
    budget = ds.add_file(
        ws, "budget.txt", "text/plain", "b", drive_id=finance.id, permissions=[ds.user_permission(ws, me, "writer")]
    )
    memo = ds.add_file(ws, "memo.txt", "text/plain", "m", drive_id=finance.id, permissions=[ds.user_permission(ws, me)])
    hidden = ds.add_file(ws, "hidden.txt", "text/plain", "h", drive_id=finance.id)
    every = {"corpora": "allDrives", "supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
    listed = api.get("/files", params={**every, "pageSize": 1000, "fields": "files(id,parents,driveId)"}).json()
    mine = {f["id"]: f for f in listed["files"] if f.get("driveId") == finance.id}
    assert mine == {
        budget.id: {"id": budget.id, "driveId": finance.id},
        memo.id: {"id": memo.id, "driveId": finance.id},
    }
    assert [d["name"] for d in api.get("/drives").json()["drives"]] == ["Company Wiki"]
    drive_only = {**every, "corpora": "drive", "driveId": finance.id}
    assert api.get("/files", params=drive_only).status_code == 404
    assert api.get("/changes/startPageToken", params={"driveId": finance.id}).status_code == 404
    all_drives = {"supportsAllDrives": "true"}
    assert api.get(f"/files/{finance.id}/permissions", params=all_drives).status_code == 404
    assert api.get(f"/files/{hidden.id}", params=all_drives).status_code == 404
    shown = api.get(f"/files/{budget.id}/permissions", params=all_drives).json()["permissions"]
    assert {p["emailAddress"] for p in shown} == {"erin@example.com", me}
    refused = api.get(f"/files/{memo.id}/permissions", params=all_drives)
    assert (
        refused.status_code == 403 and refused.json()["error"]["errors"][0]["reason"] == "insufficientFilePermissions"
    )
    changes = api.get("/changes", params={**every, "pageToken": start, "fields": "changes(fileId,driveId)"}).json()
    assert {c.get("fileId") for c in changes["changes"]} == {budget.id, memo.id}  # no drive change: never joined


def test_an_incomplete_search_leaves_out_shared_drives_and_says_so(sb: Sandbox, api: httpx.Client) -> None:
    all_drives = {"corpora": "allDrives", "supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
    fields = {"fields": "incompleteSearch,files(name)", "pageSize": 1000}
    complete = api.get("/files", params={**all_drives, **fields}).json()
    assert complete["incompleteSearch"] is False and "Holiday calendar" in {f["name"] for f in complete["files"]}
    ds.set_incomplete_search(sb.ws)
    partial = api.get("/files", params={**all_drives, **fields}).json()
    assert partial["incompleteSearch"] is True
    assert {f["name"] for f in partial["files"]} == {f["name"] for f in complete["files"]} - {
        "Holiday calendar",
        "Expense policy.pdf",
    }
    assert api.get("/files", params=fields).json()["incompleteSearch"] is False  # one corpus: complete


# --- content ---------------------------------------------------------------------------------
def test_download_export_and_their_errors(sb: Sandbox, api: httpx.Client) -> None:
    runbook = by_name(sb, "runbook.txt")
    whole = api.get(f"/files/{runbook.id}", params={"alt": "media"})
    assert whole.content == runbook.content
    part = api.get(f"/files/{runbook.id}", params={"alt": "media"}, headers={"Range": "bytes=0-10"})
    assert part.status_code == 206 and part.content == runbook.content[:11]
    assert part.headers["content-range"] == f"bytes 0-10/{len(runbook.content)}"
    doc = by_name(sb, "Search service design")
    refused = api.get(f"/files/{doc.id}", params={"alt": "media"})
    assert refused.status_code == 403
    assert refused.json()["error"]["errors"][0]["reason"] == "fileNotDownloadable"
    markdown = api.get(f"/files/{doc.id}/export", params={"mimeType": "text/markdown"}).text
    plain = api.get(f"/files/{doc.id}/export", params={"mimeType": "text/plain"}).text
    assert markdown.startswith("# Search service design") and plain.startswith("Search service design")
    sheet = by_name(sb, "Q3 roadmap")
    assert api.get(f"/files/{sheet.id}/export", params={"mimeType": "text/csv"}).text.startswith("Quarter,")
    assert api.get(f"/files/{sheet.id}/export", params={"mimeType": "text/markdown"}).status_code == 400
    workbook = api.get(f"/files/{sheet.id}/export", params={"mimeType": drive.XLSX})
    assert workbook.headers["content-type"] == drive.XLSX
    assert [row for row in load_workbook(io.BytesIO(workbook.content)).active.values][0] == (
        "Quarter",
        "Project",
        "Owner",
        "Status",
    )
    sb.ws.drive.export_limit = 10
    too_big = api.get(f"/files/{doc.id}/export", params={"mimeType": "text/plain"}).json()["error"]
    assert too_big["code"] == 403 and too_big["errors"][0]["reason"] == "exportSizeLimitExceeded"


def test_error_envelope_faults_and_not_found(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.fail("drive", "files.list", 403, times=1, reason="userRateLimitExceeded")
    limited = api.get("/files")
    body = limited.json()["error"]
    assert limited.status_code == 403 and body["errors"][0]["reason"] == "userRateLimitExceeded"
    assert set(body) == {"code", "message", "errors", "status"}
    assert api.get("/files").status_code == 200
    sb.faults.rate_limit("drive", "files.get", 1)
    assert api.get(f"/files/{by_name(sb, 'README.md').id}").status_code == 200
    throttled = api.get(f"/files/{by_name(sb, 'README.md').id}")
    assert throttled.status_code == 429 and "retry-after" in throttled.headers
    sb.faults.clear()
    missing = api.get("/files/nope", params={"supportsAllDrives": "true"})
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    sb.faults.fail("drive", "changes.*", 503, times=1)
    assert api.get("/changes", params={"pageToken": "1"}).json()["error"]["status"] == "UNAVAILABLE"
    assert sb.faults.count("drive:*") >= 6


# --- changes ---------------------------------------------------------------------------------
def test_changes_feed_reports_edits_moves_trash_removal_and_sharing(sb: Sandbox, api: httpx.Client) -> None:
    ws = sb.ws
    start = api.get("/changes/startPageToken").json()["startPageToken"]
    empty = api.get("/changes", params={"pageToken": start}).json()
    assert empty["changes"] == [] and empty["newStartPageToken"] == start
    readme, runbook, faq = by_name(sb, "README.md"), by_name(sb, "runbook.txt"), by_name(sb, "faq.html")
    ds.edit(ws, readme.id, content="# Ops\n\nnew text")
    ds.edit(ws, readme.id, name="OPS.md")  # two edits: one change entry
    ds.move(ws, runbook.id, by_name(sb, "Engineering").id)
    ds.trash(ws, faq.id)
    ds.set_permissions(ws, by_name(sb, "Security policy.docx").id, [ds.anyone_permission()])
    ds.delete(ws, by_name(sb, "Q3 roadmap").id)
    fields = "nextPageToken,newStartPageToken,changes(fileId,removed,file(name,trashed,parents,permissions))"
    page1 = api.get("/changes", params={"pageToken": start, "pageSize": 3, "fields": fields}).json()
    page2 = api.get("/changes", params={"pageToken": page1["nextPageToken"], "fields": fields}).json()
    assert "newStartPageToken" not in page1 and "nextPageToken" not in page2
    changes = {c["fileId"]: c for c in page1["changes"] + page2["changes"]}
    assert len(changes) == 5
    assert changes[readme.id]["file"]["name"] == "OPS.md"
    assert changes[runbook.id]["file"]["parents"] == [by_name(sb, "Engineering").id]
    assert changes[faq.id]["file"]["trashed"] is True
    removed = [c for c in changes.values() if c["removed"]]
    assert len(removed) == 1 and "file" not in removed[0]
    assert api.get("/changes", params={"pageToken": page2["newStartPageToken"]}).json()["changes"] == []
    ds.expire_page_tokens(ws)
    stale = api.get("/changes", params={"pageToken": start})
    assert stale.status_code == 400 and stale.json()["error"]["errors"][0]["location"] == "pageToken"


# --- OAuth -----------------------------------------------------------------------------------
def _grant(sb: Sandbox, **claims: Any) -> httpx.Response:
    from google.auth import crypt, jwt

    info = drive_auth.service_account_info(sb.ws, "unused")
    signer = crypt.RSASigner.from_service_account_info(info)
    now = int(sb.ws.clock())
    payload = {
        "iss": info["client_email"],
        "aud": drive_auth.GOOGLE_TOKEN_URI,
        "scope": "drive",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    assertion = jwt.encode(signer, payload).decode()
    return httpx.post(
        sb.ctx.http_url + drive_auth.TOKEN_PATH, data={"grant_type": drive_auth.JWT_GRANT, "assertion": assertion}
    )


def test_a_sheet_exports_every_sheet_as_xlsx_and_its_first_as_csv(sb: Sandbox, api: httpx.Client) -> None:
    sheet = ds.add_file(sb.ws, "Plan", ds.SHEET, "a,b\n1,2\n", sheets={"Later": "c\n3\n"})
    csv = api.get(f"/files/{sheet.id}/export", params={"mimeType": "text/csv"}).text
    assert csv == "a,b\n1,2\n"
    book = load_workbook(io.BytesIO(api.get(f"/files/{sheet.id}/export", params={"mimeType": drive.XLSX}).content))
    assert {s.title: list(s.values) for s in book.worksheets} == {
        "Sheet1": [("a", "b"), ("1", "2")],
        "Later": [("c",), ("3",)],
    }


def test_shared_drive_changes_are_in_the_user_log_without_a_file(sb: Sandbox, api: httpx.Client) -> None:
    """Renaming a shared drive or losing membership of it is one change of changeType "drive"."""
    wiki = next(iter(sb.ws.drive.drives.values()))
    start = api.get("/changes/startPageToken").json()["startPageToken"]
    params = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true", "fields": "*"}
    ds.rename_drive(sb.ws, wiki.id, "Handbook")
    renamed = api.get("/changes", params={**params, "pageToken": start}).json()
    assert_schema(renamed, {"$ref": "ChangeList"})
    [change] = renamed["changes"]
    assert change["changeType"] == "drive" and "fileId" not in change and change["removed"] is False
    assert change["driveId"] == wiki.id and change["drive"]["name"] == "Handbook"
    drive_log = api.get("/changes", params={**params, "pageToken": start, "driveId": wiki.id}).json()
    assert drive_log["changes"] == []  # a drive's own changes are in the user's log only
    ds.leave_drive(sb.ws, wiki.id)
    [left] = api.get("/changes", params={**params, "pageToken": start}).json()["changes"]
    assert left["changeType"] == "drive" and left["driveId"] == wiki.id and left["removed"] is True
    assert "drive" not in left and "fileId" not in left  # only the id of what is gone
    assert api.get("/drives").json()["drives"] == []
    assert api.get("/changes", params={**params, "pageToken": start, "driveId": wiki.id}).status_code == 404


def test_each_shared_drive_keeps_its_own_change_log(sb: Sandbox, api: httpx.Client) -> None:
    wiki = next(iter(sb.ws.drive.drives.values()))
    sb.ws.drive.drive_items_in_user_log = False  # allowed: apps must not rely on seeing them there
    both = {
        "supportsAllDrives": "true",
        "includeItemsFromAllDrives": "true",
        "fields": "changes(fileId,removed,file(id))",
    }
    start = api.get("/changes/startPageToken").json()["startPageToken"]
    assert api.get("/changes/startPageToken", params={"driveId": wiki.id}).json()["startPageToken"] == start
    runbook, holiday = by_name(sb, "runbook.txt"), by_name(sb, "Holiday calendar")
    ds.edit(sb.ws, holiday.id, content="# Closed on May 1")
    ds.move(sb.ws, runbook.id, wiki.id)  # out of the user's log, into the drive's

    def log(**params: str) -> list[dict[str, Any]]:
        return list(api.get("/changes", params={**both, "pageToken": start, **params}).json()["changes"])

    assert log() == [{"fileId": runbook.id, "removed": True}]  # no holiday edit; the file gone from here
    assert log(includeCorpusRemovals="true") == [{"fileId": runbook.id, "removed": True, "file": {"id": runbook.id}}]
    assert log(driveId=wiki.id) == [
        {"fileId": holiday.id, "removed": False, "file": {"id": holiday.id}},
        {"fileId": runbook.id, "removed": False, "file": {"id": runbook.id}},
    ]
    missing = api.get("/changes/startPageToken", params={"driveId": "0Anope"}).json()["error"]
    assert (
        missing["code"] == 404
        and api.get("/changes", params={"pageToken": start, "driveId": "0Anope"}).status_code == 404
    )


def test_token_endpoint_checks_assertions(sb: Sandbox) -> None:
    ok = _grant(sb, sub=next(iter(sb.ws.users.values())).email)
    assert ok.status_code == 200 and ok.json()["expires_in"] == 3600
    assert _grant(sb, aud=sb.ctx.http_url + drive_auth.TOKEN_PATH).status_code == 200
    assert _grant(sb, iss="evil@x.iam.gserviceaccount.com").json()["error"] == "invalid_grant"
    assert _grant(sb, aud="https://elsewhere/token").status_code == 400
    assert _grant(sb, sub="stranger@other.org").json()["error_description"] == "Invalid email or User ID"
    assert _grant(sb, exp=int(sb.ws.clock()) - 3600, iat=int(sb.ws.clock()) - 7200).status_code == 400
    forged = _grant(sb)  # a valid grant, then the same claims signed by another key
    assert forged.status_code == 200
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    auth = drive_auth.auth(sb.ws)
    real = auth.private_pem
    auth.private_pem = other
    try:
        assert _grant(sb).json()["error_description"] == "Invalid JWT Signature."
    finally:
        auth.private_pem = real


def test_refresh_tokens_expiry_and_revocation(sb: Sandbox) -> None:
    info = drive_auth.authorized_user_info(sb.ws, "unused")
    url = sb.ctx.http_url + drive_auth.TOKEN_PATH
    form = {
        "grant_type": "refresh_token",
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "refresh_token": info["refresh_token"],
    }
    token = httpx.post(url, data=form).json()["access_token"]
    files = sb.ctx.http_url + "/drive/v3/files"
    assert httpx.get(files, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.post(url, data={**form, "client_secret": "wrong"}).status_code == 401
    httpx.post(sb.ctx.http_url + "/_admin/drive/expire_tokens")
    expired = httpx.get(files, headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401 and expired.json()["error"]["status"] == "UNAUTHENTICATED"
    httpx.post(sb.ctx.http_url + "/_admin/drive/revoke", json={"revoked": True})
    assert httpx.post(url, data=form).json()["error"] == "invalid_grant"


def test_about_names_the_user_the_token_reads_as(sb: Sandbox, api: httpx.Client) -> None:
    assert api.get("/about").json()["error"]["errors"][0]["reason"] == "required"  # Drive asks for `fields`
    me = api.get("/about", params={"fields": "user(emailAddress)"}).json()
    assert me == {"user": {"emailAddress": drive_auth.CLIENT_EMAIL}}  # the service account itself
    info = drive_auth.authorized_user_info(sb.ws, "unused")
    form = {"grant_type": "refresh_token", **{k: info[k] for k in ("client_id", "client_secret", "refresh_token")}}
    token = httpx.post(sb.ctx.http_url + drive_auth.TOKEN_PATH, data=form).json()["access_token"]
    drive_auth.auth(sb.ws).user_email = "dana@example.com"  # who granted the refresh token
    user = httpx.get(
        sb.ctx.http_url + "/drive/v3/about",
        params={"fields": "user(emailAddress)"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["user"]
    assert user == {"emailAddress": "dana@example.com"}


# --- admin and seeds -------------------------------------------------------------------------
def test_admin_routes_mutate_the_drive(sb: Sandbox, api: httpx.Client) -> None:
    admin = sb.ctx.http_url + "/_admin/drive"
    created = httpx.post(
        admin + "/files",
        json={
            "name": "notes.txt",
            "mimeType": "text/plain",
            "content": "hello",
            "owner": "a@example.com",
            "parent": by_name(sb, "Operations").id,
            "permissions": [{"type": "domain", "domain": "example.com"}],
        },
    )
    fid = created.json()["id"]
    assert api.get(f"/files/{fid}", params={"alt": "media"}).text == "hello"
    httpx.patch(admin + f"/files/{fid}", json={"content": "bye"})
    assert api.get(f"/files/{fid}", params={"alt": "media"}).text == "bye"
    httpx.put(admin + f"/files/{fid}/permissions", json={"permissions": [{"type": "anyone"}]})
    kinds = {p["type"] for p in api.get(f"/files/{fid}/permissions").json()["permissions"]}
    assert kinds == {"user", "anyone"}  # the owner stays
    httpx.post(admin + f"/files/{fid}/move", json={"parent": by_name(sb, "Engineering").id})
    httpx.post(admin + f"/files/{fid}/trash", json={})
    got = api.get(f"/files/{fid}", params={"fields": "trashed,parents"}).json()
    assert got == {"trashed": True, "parents": [by_name(sb, "Engineering").id]}
    httpx.delete(admin + f"/files/{fid}")
    assert api.get(f"/files/{fid}").status_code == 404


def test_generated_drive_is_deterministic() -> None:
    def build(seed: int) -> list[tuple[str, str, bytes]]:
        ws = Workspace(rng=random.Random(seed))
        drive.seed_generated(ws, files=120)
        return [(f.id, f.name, f.content) for f in ws.drive.files.values()]

    first = build(7)
    assert first[0][:2] == build(7)[0][:2] and [x[:2] for x in first] == [x[:2] for x in build(7)]
    assert len([x for x in first if "report" in x[1]]) == 120
    assert [x[:2] for x in build(8)] != [x[:2] for x in first]


def test_source_block_points_at_the_sandbox(sb: Sandbox, tmp_path: Path) -> None:
    import tomllib

    block, env = drive.source(sb.ctx, tmp_path)
    cfg = tomllib.loads(block)["sources"][0]
    assert env == {} and cfg["type"] == "google_drive" and cfg["name"] == "sandbox-drive"
    assert cfg["api_endpoint"] == sb.ctx.http_url + "/drive/v3/"
    creds = json.loads(Path(cfg["credentials_file"]).read_text())
    assert creds["token_uri"] == sb.ctx.http_url + drive_auth.TOKEN_PATH
    assert "PRIVATE KEY" in creds["private_key"]


def test_a_stopped_sandbox_closes_its_push_notifier_and_its_connection() -> None:
    """The notifier's thread and its keep-alive connection to the hook end with the sandbox (they
    lasted until the process ended: a test session starts hundreds of sandboxes)."""
    import os
    import time

    from inlet.sandbox.drive_channels import channels
    from inlet.sandbox.notifier import Notifier

    def watch_then_stop() -> Notifier:
        with Sandbox(ws=drive_workspace()) as sb:
            headers = {"Authorization": f"Bearer {token_for(sb)}"}
            body = {"id": "c1", "type": "web_hook", "address": sb.ctx.http_url + "/api/auth.test"}  # answers 200
            token = httpx.get(sb.ctx.http_url + "/drive/v3/changes/startPageToken", headers=headers).json()
            watched = httpx.post(sb.ctx.http_url + "/drive/v3/changes/watch", params=token, json=body, headers=headers)
            assert watched.status_code == 200
            notifier = channels(sb.ctx).notifier
            deadline = time.monotonic() + 5
            while notifier.posted < 1:  # the channel's `sync` message, on a kept-alive connection
                assert time.monotonic() < deadline, "the sync message was not posted"
                time.sleep(0.05)
        assert notifier._thread is not None
        notifier._thread.join(timeout=5)
        assert not notifier._thread.is_alive()
        return notifier

    watch_then_stop()  # first uses (imports, the token endpoint's key) keep what they open
    before = len(os.listdir("/proc/self/fd"))
    watch_then_stop()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_shared_drives_members_change_through_the_admin_route_and_nothing_is_logged(
    sb: Sandbox, api: httpx.Client
) -> None:
    """permissions.list on a drive's id answers its members; changing them logs nothing (Drive logs
    no change to the drive's files), yet every file of the drive shows the new members."""
    wiki = next(d for d in sb.ws.drive.drives.values() if d.name == "Company Wiki")
    calendar = by_name(sb, "Holiday calendar").id
    start = api.get("/changes/startPageToken", params={"supportsAllDrives": "true"}).json()["startPageToken"]
    members = [{"type": "user", "role": "reader", "emailAddress": "bob@example.com"}]
    assert httpx.put(sb.ctx.http_url + f"/_admin/drive/drives/{wiki.id}/members", json={"members": members}).is_success
    shown = api.get(f"/files/{wiki.id}/permissions", params={"supportsAllDrives": "true", "fields": "*"}).json()
    assert [(p["emailAddress"], p["deleted"]) for p in shown["permissions"]] == [("bob@example.com", False)]
    of_file = api.get(f"/files/{calendar}/permissions", params={"supportsAllDrives": "true"}).json()
    assert "bob@example.com" in [p.get("emailAddress") for p in of_file["permissions"]]
    for drive_id in (None, wiki.id):
        params = {"pageToken": start, "supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
        changes = api.get("/changes", params={**params, **({"driveId": drive_id} if drive_id else {})}).json()
        assert changes["changes"] == []


def test_the_directory_lists_a_groups_members_page_by_page_as_google_does(sb: Sandbox, api: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {token_for(sb, (DIRECTORY,))}"}
    with httpx.Client(base_url=sb.ctx.http_url + "/admin/directory/v1/groups", headers=headers) as directory:
        first = directory.get("/eng@example.com/members", params={"maxResults": 1})
        assert first.status_code == 200 and first.json()["kind"] == "admin#directory#members"
        [bob] = first.json()["members"]
        assert {k: bob[k] for k in ("kind", "email", "type", "status", "role")} == {
            "kind": "admin#directory#member",
            "email": "bob@example.com",
            "type": "USER",
            "status": "ACTIVE",
            "role": "MEMBER",
        }
        token = first.json()["nextPageToken"]
        fields = "nextPageToken,members(email,type)"
        second = directory.get("/eng@example.com/members", params={"pageToken": token, "fields": fields}).json()
        assert second == {"members": [{"email": "platform@example.com", "type": "GROUP"}]}  # the last page
        nested = directory.get("/platform%40example.com/members").json()["members"]
        assert [(m["email"], m["type"]) for m in nested] == [("carol@example.com", "USER")]

        def error(path: str, **params: Any) -> tuple[int, str, str]:
            r = directory.get(path, params=params)
            body = r.json()["error"]
            return r.status_code, body["errors"][0]["reason"], body["message"]

        assert error("/nobody@example.com/members") == (404, "notFound", "Resource Not Found: groupKey")
        not_authorized = (403, "forbidden", "Not Authorized to access this resource/api")
        assert error("/eng@other.org/members") == not_authorized  # another organisation's group
        assert error("/eng@example.com/members", maxResults=201)[:2] == (400, "invalid")
        assert error("/eng@example.com/members", pageToken="bogus")[:2] == (400, "invalid")
    # each API checks the token's scopes: Drive's token reads no directory, the directory's no Drive
    refused = (403, "insufficientPermissions")
    r = httpx.get(sb.ctx.http_url + "/admin/directory/v1/groups/eng@example.com/members", headers=api.headers)
    assert (r.status_code, r.json()["error"]["errors"][0]["reason"]) == refused
    r = httpx.get(sb.ctx.http_url + "/drive/v3/files", headers=headers)
    assert (r.status_code, r.json()["error"]["errors"][0]["reason"]) == refused
    assert r.json()["error"]["message"] == "Request had insufficient authentication scopes."
