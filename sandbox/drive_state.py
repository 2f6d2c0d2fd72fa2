"""The emulated Drive's data: files, folders, shared drives, permissions and the change log.

An item at the top of a user's My Drive has that user's root folder as its parent, as in Drive:
the root (`root_id`) is no file of the listing (`files.list` never names it), and `files.get` of its
id, or of the alias `root` for the caller's own, answers a folder named "My Drive" without parents
(`root_resource`). An item at the top of a shared drive has the drive's id as its parent.

Everything here is plain Python: tests and the admin routes call the same mutation functions
(`add_file`, `edit`, `trash`, `move`, `delete`, `set_permissions`, `add_drive`, `rename_drive`,
`leave_drive`, `set_members`), and each mutation appends to the change log that `changes.list`
serves: a file's change, or (as Drive logs membership gained or lost and a rename in the user's
log) a shared drive's. A change to a shared drive's other members is logged nowhere (Drive logs
none: the drive's files are unchanged, only what `permissions.list` shows for them), nor does
`set_group` (a Google Group's members, served by `drive_directory`).

The emulation reads from one point of view, the user's, with two exceptions that need the caller:
a shared drive the user is not a member of (`add_drive(member=False)`, or `leave_drive(keep_shared=
True)`) shows them only its files shared with them directly (`readable`), and an item whose parent
the caller may not read (another user's My Drive root, such a drive) is answered without `parents`
(`parent_readable`), as Drive answers "Shared with me" items. All access happens under `ws.lock`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
GOOGLE_PREFIX = "application/vnd.google-apps."
EXPORT_LIMIT = 10 * 1024 * 1024  # Drive refuses exports above 10 MB
MY_DRIVE = "My Drive"  # the name Drive gives every user's root folder

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class Permission:
    id: str
    type: str  # user | group | domain | anyone
    role: str = "reader"  # owner | organizer | fileOrganizer | writer | commenter | reader
    email: str = ""
    domain: str = ""
    display_name: str = ""
    deleted: bool = False  # the account was deleted: Drive keeps the permission, `deleted: true`
    discoverable: bool = False  # domain/anyone: people can find the file (not only who has the link)

    def resource(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "drive#permission",
            "id": self.id,
            "type": self.type,
            "role": self.role,
            "deleted": self.deleted,
        }
        if self.email:
            out["emailAddress"] = self.email
        if self.domain:
            out["domain"] = self.domain
        if self.display_name:
            out["displayName"] = self.display_name
        if self.type in ("domain", "anyone"):
            out["allowFileDiscovery"] = self.discoverable
        return out


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    owner: str  # email; empty for shared-drive items (the drive owns them)
    created: float
    modified: float
    content: bytes = b""  # Google types hold their exportable text (Markdown, CSV of Sheet1, text)
    trashed: bool = False
    drive_id: str | None = None
    permissions: list[Permission] = field(default_factory=list)
    version: int = 1
    not_downloadable: bool = False  # answers 403 fileNotDownloadable to alt=media
    modified_by: str = ""
    sheets: dict[str, str] = field(default_factory=dict)  # a Sheet's further sheets (name: CSV)

    @property
    def is_google(self) -> bool:
        return self.mime_type.startswith(GOOGLE_PREFIX)


@dataclass
class SharedDrive:
    id: str
    name: str
    created: float
    members: list[Permission] = field(default_factory=list)
    member: bool = True  # the user reads it as a member; else only its files shared with them directly


@dataclass
class GroupMember:
    """A member of a Google Group, as the Admin SDK Directory API lists it (`members.list`)."""

    email: str
    type: str = "USER"  # USER | GROUP | CUSTOMER | EXTERNAL
    status: str = "ACTIVE"  # ACTIVE | SUSPENDED | UNKNOWN ...
    role: str = "MEMBER"  # OWNER | MANAGER | MEMBER

    def resource(self) -> dict[str, Any]:
        key = hashlib.sha1(self.email.encode()).hexdigest()[:20]
        return {
            "kind": "admin#directory#member",
            "etag": f'"{key}"',
            "id": str(int(key, 16) % 10**21),
            "email": self.email,
            "role": self.role,
            "type": self.type,
            "status": self.status,
        }


@dataclass
class Change:
    seq: int
    file_id: str  # "" for a change to a shared drive itself
    time: float
    removed: bool
    drive_id: str | None
    kind: str = "file"  # file | drive (changeType)


@dataclass
class DriveState:
    files: dict[str, DriveFile] = field(default_factory=dict)  # insertion order = listing order
    drives: dict[str, SharedDrive] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    next_seq: int = 1
    change_floor: int = 1  # change tokens below this are refused (invalidated)
    page_epoch: int = 0  # files.list page tokens of an older epoch are refused
    export_limit: int = EXPORT_LIMIT
    incomplete_search: bool = False  # corpora=allDrives listings leave out shared drives, say incompleteSearch
    drive_items_in_user_log: bool = True  # Drive may show a member these; apps must not rely on it
    id_counter: int = 0
    roots: dict[str, str] = field(default_factory=dict)  # {My Drive root folder id: its user's email}
    auth: Any = None  # sandbox.drive_auth.AuthState
    groups: dict[str, list[GroupMember]] = field(default_factory=dict)  # {group address: direct members}
    directory_admins: set[str] = field(default_factory=set)  # users (besides the service account) who may list groups
    listeners: list[Callable[[Change], None]] = field(default_factory=list)  # push channels (drive_channels.py)


def in_log(st: DriveState, change: Change, drive_id: str | None, all_drives: bool) -> bool:
    """Whether `change` is in the change log a client reads: a shared drive's own (`drive_id`), or
    the user's, which holds the drives' own changes and, with `all_drives` (and only while
    `drive_items_in_user_log`), their items' changes."""
    if change.kind == "drive":  # a drive's own change: in the user's log only
        return not drive_id
    if drive_id:
        return all_drives and change.drive_id == drive_id
    return not change.drive_id or (all_drives and st.drive_items_in_user_log)


def state(ws: Any) -> DriveState:
    """The workspace's drive state, created on first use."""
    with ws.lock:
        if ws.drive is None:
            ws.drive = DriveState()
        return ws.drive


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def parse_rfc3339(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def new_id(ws: Any, prefix: str = "1") -> str:
    """A Drive-looking 33-character id, deterministic for a seeded workspace."""
    st = state(ws)
    st.id_counter += 1
    digest = hashlib.sha256(f"{ws.rng.random()}:{st.id_counter}".encode()).digest()
    return prefix + "".join(_ID_ALPHABET[b % 64] for b in digest[:32])


def root_id(ws: Any, user: str) -> str:
    """The id of `user`'s My Drive root folder (a Drive-looking "0A...Uk9PVA", stable per user)."""
    digest = hashlib.sha256(f"my-drive-root:{user.lower()}".encode()).digest()
    rid = "0A" + "".join(_ID_ALPHABET[b % 64] for b in digest[:13]) + "Uk9PVA"
    with ws.lock:
        state(ws).roots.setdefault(rid, user.lower())
    return rid


def root_resource(rid: str) -> dict[str, Any]:
    """What `files.get` answers for a My Drive root folder: "My Drive", a folder without parents."""
    return {
        "kind": "drive#file",
        "id": rid,
        "name": MY_DRIVE,
        "mimeType": FOLDER,
        "createdTime": rfc3339(0),
        "modifiedTime": rfc3339(0),
        "trashed": False,
        "explicitlyTrashed": False,
        "spaces": ["drive"],
        "starred": False,
        "webViewLink": f"https://drive.google.com/drive/folders/{rid}",
        "shared": False,
        "ownedByMe": True,
        "capabilities": {"canDownload": False, "canCopy": False, "canEdit": True},
        "quotaBytesUsed": "0",
    }


def _log(ws: Any, f: DriveFile, removed: bool = False) -> None:
    _append(ws, Change(state(ws).next_seq, f.id, ws.clock(), removed, f.drive_id))


def _log_drive(ws: Any, drive: SharedDrive, removed: bool = False) -> None:
    _append(ws, Change(state(ws).next_seq, "", ws.clock(), removed, drive.id, kind="drive"))


def _append(ws: Any, change: Change) -> None:
    st = state(ws)
    st.changes.append(change)
    st.next_seq += 1
    for listener in list(st.listeners):
        listener(change)


def user_permission(ws: Any, email: str, role: str = "reader", kind: str = "user") -> Permission:
    user = ws.user_by_email(email)
    return Permission(new_id(ws, "0"), kind, role, email=email.lower(), display_name=user.real_name if user else email)


def set_group(ws: Any, group: str, members: list[GroupMember]) -> None:
    """A Google Group's direct members (created when new). Drive logs no change for it: the files
    shared with the group are unchanged, only who the group holds."""
    with ws.lock:
        state(ws).groups[group.lower()] = [GroupMember(m.email.lower(), m.type, m.status, m.role) for m in members]


def domain_permission(ws: Any, domain: str, role: str = "reader") -> Permission:
    return Permission(new_id(ws, "0"), "domain", role, domain=domain.lower(), display_name=domain)


def anyone_permission(role: str = "reader") -> Permission:
    return Permission("anyoneWithLink", "anyone", role)


def add_drive(ws: Any, name: str, members: list[Permission] | None = None, member: bool = True) -> SharedDrive:
    """A shared drive; with `member` False, one the user is not a member of (`readable`): nothing
    is logged for it, and the user reads only its files shared with them directly."""
    with ws.lock:
        drive = SharedDrive(new_id(ws, "0A"), name, ws.clock(), list(members or []), member)
        state(ws).drives[drive.id] = drive
        if member:
            _log_drive(ws, drive)  # the user became a member: one change, none for the items inside
        return drive


def rename_drive(ws: Any, drive_id: str, name: str) -> None:
    with ws.lock:
        drive = state(ws).drives.get(drive_id)
        if drive is None:
            raise KeyError(f"no shared drive {drive_id!r}")
        drive.name = name
        _log_drive(ws, drive)


def leave_drive(ws: Any, drive_id: str, logged: bool = True, keep_shared: bool = False) -> None:
    """The user loses membership (or the drive is deleted): the drive and its items vanish from
    every answer, and the log gets one removed change for the drive, none for its items (as Drive
    does). `logged=False`: the user's log has not carried it yet (the drive went between the reads
    of the user's log and of the drive's own, which answers 404). `keep_shared`: the user left a
    drive that stays: its files shared with them directly stay theirs to read (`readable`)."""
    with ws.lock:
        st = state(ws)
        drive = st.drives.get(drive_id)
        if drive is None or not drive.member:
            raise KeyError(f"no shared drive {drive_id!r}")
        if keep_shared:
            drive.member = False
        else:
            del st.drives[drive_id]
            for f in [f for f in st.files.values() if f.drive_id == drive_id]:
                del st.files[f.id]
        if logged:
            _log_drive(ws, drive, removed=True)


def set_members(ws: Any, drive_id: str, members: list[Permission]) -> None:
    """Replace a shared drive's members (added, removed, a role changed). Drive logs nothing for
    it, in no log: only what `permissions.list` shows for the drive and each of its files changes."""
    with ws.lock:
        drive = state(ws).drives.get(drive_id)
        if drive is None:
            raise KeyError(f"no shared drive {drive_id!r}")
        drive.members = list(members)


def add_file(
    ws: Any,
    name: str,
    mime_type: str,
    content: bytes | str = b"",
    *,
    parent: str | None = None,
    owner: str = "",
    drive_id: str | None = None,
    permissions: list[Permission] | None = None,
    modified: float | None = None,
    created: float | None = None,
    sheets: dict[str, str] | None = None,
) -> DriveFile:
    """Create a file or folder. Its owner gets an `owner` permission (My Drive items only). A
    Sheet's `content` is the CSV of its first sheet (Sheet1), `sheets` the others' by name.
    Without `parent`, it sits at the top of `drive_id` or of its owner's My Drive (its parent is
    then that drive, or the owner's root folder)."""
    with ws.lock:
        st = state(ws)
        if parent and parent not in st.files and parent not in st.drives and parent not in st.roots:
            raise KeyError(f"no folder or shared drive {parent!r}")
        if parent and parent in st.files:
            drive_id = st.files[parent].drive_id
        elif parent and parent in st.drives:
            drive_id = parent
        elif parent:
            drive_id = None  # the top of a My Drive
        else:
            parent = drive_id or root_id(ws, owner)
        now = ws.clock()
        data = content.encode() if isinstance(content, str) else content
        perms = list(permissions or [])
        if owner and not drive_id and not any(p.role == "owner" for p in perms):
            perms.insert(0, user_permission(ws, owner, "owner"))
        f = DriveFile(
            new_id(ws),
            name,
            mime_type,
            [parent],
            "" if drive_id else owner,
            created if created is not None else (modified or now),
            modified or now,
            data,
            drive_id=drive_id,
            permissions=perms,
            modified_by=owner,
            sheets=dict(sheets or {}),
        )
        st.files[f.id] = f
        _log(ws, f)
        return f


def get(ws: Any, file_id: str) -> DriveFile:
    with ws.lock:
        f = state(ws).files.get(file_id)
        if f is None:
            raise KeyError(f"no file {file_id!r}")
        return f


def edit(
    ws: Any,
    file_id: str,
    *,
    name: str | None = None,
    content: bytes | str | None = None,
    mime_type: str | None = None,
    not_downloadable: bool | None = None,
) -> DriveFile:
    """Rename and/or replace content: bumps modifiedTime and version."""
    with ws.lock:
        f = get(ws, file_id)
        if name is not None:
            f.name = name
        if content is not None:
            f.content = content.encode() if isinstance(content, str) else content
        if mime_type is not None:
            f.mime_type = mime_type
        if not_downloadable is not None:
            f.not_downloadable = not_downloadable
        f.modified = max(ws.clock(), f.modified + 0.001)
        f.version += 1
        _log(ws, f)
        return f


def descendants(ws: Any, folder_id: str) -> list[DriveFile]:
    with ws.lock:
        files = state(ws).files
        out: list[DriveFile] = []
        frontier = [folder_id]
        while frontier:
            current = frontier.pop()
            for f in files.values():
                if current in f.parents:
                    out.append(f)
                    if f.mime_type == FOLDER:
                        frontier.append(f.id)
        return out


def trash(ws: Any, file_id: str, trashed: bool = True) -> None:
    """Trash (or restore) a file; a folder takes its descendants along, as Drive does."""
    with ws.lock:
        f = get(ws, file_id)
        for item in [f, *descendants(ws, file_id)] if f.mime_type == FOLDER else [f]:
            item.trashed = trashed
            item.version += 1
            _log(ws, item)


def delete(ws: Any, file_id: str) -> None:
    """Permanently delete: the changes feed reports `removed` (for descendants too)."""
    with ws.lock:
        f = get(ws, file_id)
        for item in [*descendants(ws, file_id), f]:
            del state(ws).files[item.id]
            _log(ws, item, removed=True)


def move(ws: Any, file_id: str, new_parent: str) -> None:
    """Move a file (a folder with what is below it) into a folder, a shared drive or a My Drive
    root (`root_id`). Into or out of a shared drive, each item
    leaves the change log it was in with a `removed` change (it is still there to read) and
    enters the new one's, as Drive's user and shared-drive logs do."""
    with ws.lock:
        f = get(ws, file_id)
        st = state(ws)
        if new_parent not in st.files and new_parent not in st.drives and new_parent not in st.roots:
            raise KeyError(f"no folder {new_parent!r}")
        f.parents = [new_parent]
        f.version += 1
        drive_id = new_parent if new_parent in st.drives else None
        if new_parent in st.files:
            drive_id = st.files[new_parent].drive_id
        for item in [f, *descendants(ws, file_id)] if f.mime_type == FOLDER else [f]:
            if item.drive_id != drive_id:
                _log(ws, item, removed=True)  # out of its old log; the file itself stays
                item.drive_id = drive_id
            _log(ws, item)


def set_permissions(ws: Any, file_id: str, permissions: list[Permission]) -> None:
    """Replace the sharing of a file (keeps the owner). Does not touch modifiedTime, as in Drive."""
    with ws.lock:
        f = get(ws, file_id)
        owners = [p for p in f.permissions if p.role == "owner"]
        f.permissions = owners + [p for p in permissions if p.role != "owner"]
        f.version += 1
        _log(ws, f)


def expire_page_tokens(ws: Any) -> None:
    """Every change token and files.list page token handed out so far becomes invalid."""
    with ws.lock:
        st = state(ws)
        st.change_floor = st.next_seq
        st.page_epoch += 1


def set_incomplete_search(ws: Any, incomplete: bool = True) -> None:
    """While set, listings over several drives (corpora=allDrives) leave out the shared drives'
    items and answer `incompleteSearch: true`, as Drive does when it could not search them all."""
    with ws.lock:
        state(ws).incomplete_search = incomplete


def direct_role(f: DriveFile, user: str) -> str | None:
    """The role a user permission of the file itself gives `user` (None: none does)."""
    roles = [p.role for p in f.permissions if p.type == "user" and not p.deleted and p.email == user.lower()]
    return roles[0] if roles else None


def readable(st: DriveState, f: DriveFile, user: str) -> bool:
    """Whether `user` may read `f`: every item outside the shared drives the user is not a member
    of (the emulation's single point of view), and such a drive's items shared with them directly
    (Drive lets a shared drive's files be shared with non-members)."""
    drive = st.drives.get(f.drive_id or "")
    return drive is None or drive.member or direct_role(f, user) is not None


def parent_readable(st: DriveState, parent: str, user: str) -> bool:
    """Whether `user` may read the folder `parent`: their own My Drive root (no other user's), a
    shared drive they are a member of, or a folder they may read. Drive answers an item whose
    parent the caller cannot read without `parents` (as it does every "Shared with me" item)."""
    if parent in st.roots:
        return st.roots[parent] == user.lower()
    if parent in st.drives:
        return st.drives[parent].member
    f = st.files.get(parent)
    return f is not None and readable(st, f, user)


def effective_permissions(ws: Any, f: DriveFile) -> list[Permission]:
    """What permissions.list shows: a shared drive's members plus the item's own permissions."""
    with ws.lock:
        drive = state(ws).drives.get(f.drive_id or "")
        return (list(drive.members) if drive else []) + list(f.permissions)
