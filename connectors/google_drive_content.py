"""What a Drive file becomes: the policy (export, download or skip), its text, its ACL, its path.

Pure functions over Drive's File resources, apart from `fetch_text`, which takes the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .extract import extract_text, kind_of
from .google_drive_client import DriveClient, DriveApiError
from .model import ACL

FOLDER = "application/vnd.google-apps.folder"
GOOGLE_DOC = "application/vnd.google-apps.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORTS = {  # a Sheet as a workbook: its CSV export holds the first sheet only
    GOOGLE_DOC: "text/markdown",
    "application/vnd.google-apps.spreadsheet": XLSX,
    "application/vnd.google-apps.presentation": "text/plain",
}
_ARCHIVES = {
    "application/zip",
    "application/x-zip-compressed",
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/x-rar-compressed",
    "application/x-bzip2",
}

FILE_FIELDS = (
    "id,name,mimeType,parents,driveId,trashed,createdTime,modifiedTime,webViewLink,size,"
    "owners(emailAddress),lastModifyingUser(emailAddress),"
    "permissions(type,role,emailAddress,domain,deleted,allowFileDiscovery)"
)


def skip_reason(f: dict[str, Any], max_bytes: int) -> str | None:
    """Why a file is not indexed by policy (not an error), or None to read it."""
    mime = f.get("mimeType", "")
    if mime.startswith("application/vnd.google-apps."):
        return None if mime in EXPORTS else f"unsupported Google type {mime.rsplit('.', 1)[-1]}"
    for prefix, what in (("image/", "image"), ("video/", "video"), ("audio/", "audio")):
        if mime.startswith(prefix):
            return what
    if mime in _ARCHIVES:
        return "archive"
    if kind_of(f.get("name", ""), mime) is None:
        return f"unsupported type {mime or '?'}"
    if int(f.get("size") or 0) > max_bytes:
        return f"over the size cap ({int(f['size'])} > {max_bytes} bytes)"
    return None


class TooLarge(Exception):
    """An export came back bigger than the size cap."""


def fetch_text(client: DriveClient, f: dict[str, Any], doc_format: str, max_bytes: int) -> str:
    """Export (Google types; a Sheet's workbook is read sheet by sheet, each under its name as a
    heading) or download and extract; `DriveApiError`, `ItemError`, `TooLarge` escape."""
    mime = f["mimeType"]
    if mime in EXPORTS:
        target = doc_format if mime == GOOGLE_DOC else EXPORTS[mime]
        try:
            data = client.export(f["id"], target)
        except DriveApiError as err:
            if err.status != 400 or target != "text/markdown":
                raise
            data = client.export(f["id"], "text/plain")  # Markdown export unavailable: plain text
        if len(data) > max_bytes:
            raise TooLarge(f"export over the size cap ({len(data)} > {max_bytes} bytes)")
        if target == XLSX:
            return extract_text(data, f.get("name", ""), XLSX).strip()
        # a Doc's images come as base64 `data:` URIs in its Markdown: the index leaves them out
        # (`inlet.index.clean.without_embedded_data`), as of every document
        return data.decode("utf-8", "replace").strip()
    return extract_text(client.download(f["id"]), f.get("name", ""), mime).strip()


def acl_of(
    permissions: list[dict[str, Any]], link_shares: bool = True, members: Callable[[str], list[str]] | None = None
) -> ACL:
    """`anyone` -> public, `domain` -> domains, `user`/`group` -> emails (any role can read), and a
    group's members' emails too (`members(group address)`, `google_drive_groups.Groups.expand`); a
    permission of a deleted account (`deleted: true`, kept on the file by Drive) grants nothing:
    the address may be given to someone else. Without `link_shares`, an `anyone` or `domain`
    permission that Drive does not let people find (`allowFileDiscovery: false`: "anyone with the
    link") grants nothing either: Drive shows such a file in nobody's search."""
    permissions = [
        p
        for p in permissions
        if not p.get("deleted")
        and (link_shares or p.get("type") not in ("anyone", "domain") or p.get("allowFileDiscovery", True))
    ]
    public = any(p.get("type") == "anyone" for p in permissions)
    domains = [p.get("domain", "") for p in permissions if p.get("type") == "domain"]
    users = [p.get("emailAddress", "") for p in permissions if p.get("type") in ("user", "group")]
    if members is not None:
        users += [
            m
            for p in permissions
            if p.get("type") == "group" and p.get("emailAddress")
            for m in members(p["emailAddress"])
        ]
    return ACL(public=public, users=users, domains=domains)


def owner_of(f: dict[str, Any]) -> str:
    owners = f.get("owners") or []
    if owners and owners[0].get("emailAddress"):
        return str(owners[0]["emailAddress"])
    return str((f.get("lastModifyingUser") or {}).get("emailAddress", ""))


ROOT = (None, None)  # My Drive's root folder in the folder map: it ends a path and adds no name


def folder_path(parent: str | None, folders: dict[str, list[Any]], drives: dict[str, str]) -> tuple[str, list[str]]:
    """('Company Wiki/Policies', [ancestor ids]) from the folder map {id: [name, parent, readers]}:
    the whole path, for the `folders` filter; what a document shows is `shown_location`.

    A path starts below My Drive's root (an entry `ROOT`, or a folder missing from the map) or at
    a shared drive's name: 'Engineering/Design Docs' for a folder at the top of My Drive, whether
    or not the root was met; '' for a file at the top of My Drive."""
    names: list[str] = []
    ids: list[str] = []
    seen: set[str] = set()
    while parent and parent not in seen:
        seen.add(parent)
        ids.append(parent)
        if parent in drives:
            names.append(drives[parent])
            break
        entry = folders.get(parent)
        if entry is None or entry[0] is None:
            break
        names.append(entry[0])
        parent = entry[1]
    return "/".join(reversed(names)), ids


def folder_readers(f: dict[str, Any], link_shares: bool = True) -> list[str] | None:
    """Who a folder's own sharing lets open it (`ACL.principals`), as its listing gives it; None when
    Drive gave no permissions (a shared drive's folder, or one the reader may not share)."""
    perms = f.get("permissions")
    return acl_of(perms, link_shares).principals() if isinstance(perms, list) else None


def folder_entry(f: dict[str, Any], parent: str | None, link_shares: bool = True) -> list[Any]:
    """A folder map entry: [name, parent, readers] (`folder_readers`)."""
    return [f["name"], parent, folder_readers(f, link_shares)]


def covers(readers: set[str], acl: ACL) -> bool:
    """Whether everyone `acl` lets read may open what `readers` (principals) lets open."""
    if "*" in readers:
        return True
    if acl.public:
        return False
    return all(f"d:{d}" in readers for d in acl.domains) and all(
        f"u:{u}" in readers or f"d:{u.rpartition('@')[2]}" in readers for u in acl.users
    )


def shown_location(
    parent: str | None,
    folders: dict[str, list[Any]],
    drives: dict[str, str],
    drive_readers: dict[str, str],
    acl: ACL,
) -> tuple[str, str | None]:
    """(folder path, shared drive name) as every reader of a file with `acl` may see them in Drive.

    A folder is named only when its readers (its own sharing, with its shared drive's members:
    `drive_readers`, the members' principals comma-joined) cover the file's; a shared drive only
    when its members do. The path keeps the folders from the file up to the first one some reader
    may not open; above it, "…/" stands for the rest; a file none of whose folders all its readers
    may open has no path (Drive shows it under "Shared with me", without its location)."""
    chain: list[tuple[str, list[str] | None]] = []  # from the file's folder up
    drive: str | None = None
    seen: set[str] = set()
    while parent and parent not in seen:
        seen.add(parent)
        if parent in drives:
            drive = parent
            break
        entry = folders.get(parent)
        if entry is None or entry[0] is None:
            break
        chain.append((entry[0], entry[2] if len(entry) > 2 else None))
        parent = entry[1]
    members = {p for p in drive_readers.get(drive, "").split(",") if p} if drive else set()
    shown: list[str] = []
    for name, readers in chain:
        if not covers(set(readers or ()) | members, acl):
            break
        shown.append(name)
    drive_name = drives[drive] if drive is not None and covers(members, acl) else None
    whole = len(shown) == len(chain) and (drive is None or drive_name is not None)
    if whole and drive_name is not None:
        shown.append(drive_name)
    path = "/".join(reversed(shown))
    if not whole:
        path = "…/" + path if path else ""
    return path, drive_name


def in_scope(path: str, ancestors: list[str], wanted: list[str]) -> bool:
    """True without a folder filter; else the file sits under one of the folder ids or paths."""
    if not wanted:
        return True
    for entry in wanted:
        entry = entry.strip("/")
        if entry in ancestors or path == entry or path.startswith(entry + "/"):
            return True
    return False
