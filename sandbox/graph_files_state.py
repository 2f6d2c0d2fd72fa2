"""State of the emulated SharePoint / OneDrive tenant: sites, drives, driveItems, permissions, groups.

Every mutation goes through a method here, so each drive's change log (what `root/delta` reads)
stays consistent: a change to an item logs it, a change to a folder's permissions logs the folder and
every descendant that inherits from it (what delta reports with `Prefer: deltashowsharingchanges`),
a deletion logs the item and everything below it. A folder move or rename logs the folder only,
as OneDrive does: the paths of its descendants change without their appearing in delta.

Permissions are kept on the item that grants them; an item inherits its parent's (reported with
`inheritedFrom`) unless it breaks inheritance (`unique`). A SharePoint site group is named alone
(`siteGroup`, no Entra group beside it: what Graph sends); on a group-connected site (`Site.group`,
the drive's `owner.group`) "SITE Owners" holds the Microsoft 365 group's owners and "SITE Members"
its members, as SharePoint keeps them. A permission may name a claims principal (`claim`, a
`siteUser` whose `loginName` is a claim), expire (`expires`) or, for an anonymous link, have a
password (`password`).

`identities` sets how a user a permission names is written (Graph documents only `id` and
`displayName` on an identity): "email" (the `user` carries `email`, what SharePoint usually sends),
"login" (no email; a `siteUser` with the claims `loginName`), "id" (the `user`'s id alone, to be
looked up with `GET /users/{id}`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .graph_state import graph_id


@dataclass
class Group:
    """An Entra group; `members` holds user emails and group ids (nested groups)."""

    id: str
    name: str
    mail: str
    members: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)  # user emails (a Microsoft 365 group's owners)


@dataclass
class Perm:
    id: str
    roles: list[str]
    user: str | None = None  # email
    group: str | None = None  # Entra group id
    site_group: str | None = None  # SharePoint site group name ("Engineering Members")
    site_group_id: str | None = None  # its id; default: a small number, as SharePoint numbers them
    claim: str | None = None  # a claims principal's loginName ("c:0t.c|tenant|GROUP-ID")
    link: str | None = None  # sharing link scope: "organization", "anonymous" or "users"
    link_type: str | None = None  # its type when not what the roles make it: "createOnly" (upload only)
    expires: dt.datetime | None = None  # expirationDateTime
    password: bool = False  # an anonymous link's hasPassword


@dataclass
class Item:
    id: str
    drive_id: str
    name: str
    parent_id: str | None  # None: the drive's root
    folder: bool = False
    data: bytes = b""
    mime: str = ""
    author: str = ""
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    ctag: int = 1  # content version
    etag: int = 1  # any version (content, name, parent, sharing)
    perms: list[Perm] = field(default_factory=list)
    unique: bool = False  # breaks inheritance: only its own permissions apply
    deleted: bool = False


@dataclass
class Drive:
    id: str
    name: str
    kind: str  # "documentLibrary" (a site's library) or "business" (a OneDrive)
    root_id: str
    site_id: str | None = None
    owner: str | None = None  # OneDrive owner's email
    log: list[tuple[int, str, bool]] = field(default_factory=list)  # (seq, item id, sharing-only)


@dataclass
class Site:
    id: str  # "{hostname},{collection guid},{web guid}"
    hostname: str
    path: str  # "/sites/Engineering"
    name: str
    drive_ids: list[str] = field(default_factory=list)
    group: str | None = None  # the Microsoft 365 group of a group-connected site (its drives' owner)


@dataclass
class DeltaState:
    """Server side of a delta or skip token."""

    drive_id: str
    watermark: int
    pending: list[str]
    initial: bool
    sharing: bool  # the client asked for sharing changes
    top: int
    shared: list[str] = field(default_factory=list)  # items whose only changes were sharing changes


class FilesState:
    """The tenant's SharePoint sites and OneDrives, its groups and verified domains."""

    def __init__(self, hostname: str = "sandbox.sharepoint.com") -> None:
        self.hostname = hostname
        self.sites: dict[str, Site] = {}
        self.drives: dict[str, Drive] = {}
        self.items: dict[str, Item] = {}
        self.groups: dict[str, Group] = {}
        self.domains: list[str] = []
        self.selected: set[str] | None = None  # Sites.Selected: the sites granted to the app; None: all
        self.identities = "email"  # how permissions name a user: "email", "login" or "id" (module docstring)
        self.seq = 0
        self.deltas: dict[str, DeltaState] = {}
        self.downloads: dict[str, str] = {}  # download token -> item id
        # change listeners (subscriptions): (drive id, item id)
        self.listeners: list[Callable[[str, str], None]] = []

    # --- structure ------------------------------------------------------------------------------
    def add_group(self, name: str, members: list[str], mail: str = "", owners: list[str] | None = None) -> Group:
        group = Group(
            graph_guid("group", name),
            name,
            mail or f"{name.lower().replace(' ', '-')}@groups.invalid",
            list(members),
            list(owners or []),
        )
        self.groups[group.id] = group
        return group

    def add_site(self, path: str, name: str, group: str | None = None) -> Site:
        """A site; `group`: the Microsoft 365 group it is connected to."""
        site = Site(
            f"{self.hostname},{graph_guid('site', path)},{graph_guid('web', path)}",
            self.hostname,
            path,
            name,
            group=group,
        )
        self.sites[site.id] = site
        return site

    def add_drive(self, name: str, site: Site | None = None, owner: str | None = None) -> Drive:
        key = site.id if site else owner
        drive_id = "b!" + graph_id("", "drive", key, name)[:40]
        root = Item(graph_id("01", "root", drive_id)[:34].upper(), drive_id, "root", None, folder=True)
        drive = Drive(
            drive_id, name, "documentLibrary" if site else "business", root.id, site.id if site else None, owner
        )
        self.drives[drive_id] = drive
        self.items[root.id] = root
        if site:
            site.drive_ids.append(drive_id)
        return drive

    def delete_drive(self, drive_id: str) -> None:
        """The drive (a document library) and its items are gone (listeners hear nothing: a sync finds it gone)."""
        drive = self.drives.pop(drive_id)
        if drive.site_id is not None:
            self.sites[drive.site_id].drive_ids.remove(drive_id)
        for item_id in [i.id for i in self.items.values() if i.drive_id == drive_id]:
            del self.items[item_id]

    def site_by_path(self, hostname: str, path: str) -> Site | None:
        return next(
            (
                s
                for s in self.sites.values()
                if s.hostname.lower() == hostname.lower() and s.path.lower() == path.rstrip("/").lower()
            ),
            None,
        )

    def onedrive(self, email: str) -> Drive | None:
        return next((d for d in self.drives.values() if d.owner == email.lower()), None)

    def readable(self, drive: Drive) -> bool:
        """Whether the app may read this drive (Sites.Selected: only drives of granted sites)."""
        return self.selected is None or (drive.site_id is not None and drive.site_id in self.selected)

    # --- items --------------------------------------------------------------------------------
    def _log(self, item: Item, sharing: bool = False) -> None:
        self.seq += 1
        self.drives[item.drive_id].log.append((self.seq, item.id, sharing))
        for listener in list(self.listeners):
            listener(item.drive_id, item.id)

    def add_item(
        self,
        drive_id: str,
        parent_id: str | None,
        name: str,
        data: bytes = b"",
        mime: str = "",
        folder: bool = False,
        author: str = "",
        when: dt.datetime | None = None,
        perms: list[Perm] | None = None,
        unique: bool = False,
    ) -> Item:
        drive = self.drives[drive_id]
        now = when or dt.datetime.now(dt.timezone.utc)
        item = Item(
            graph_id("01", "item", drive_id, parent_id, name, self.seq)[:34].upper(),
            drive_id,
            name,
            parent_id or drive.root_id,
            folder,
            data,
            mime,
            author,
            now,
            now,
            perms=list(perms or []),
            unique=unique,
        )
        self.items[item.id] = item
        self._log(item)
        return item

    def edit_item(
        self, item_id: str, data: bytes | None = None, name: str | None = None, parent_id: str | None = None
    ) -> Item:
        item = self._live(item_id)
        if data is not None:
            item.data, item.ctag = data, item.ctag + 1
        if name is not None:
            item.name = name
        if parent_id is not None:
            item.parent_id = parent_id
        item.etag += 1
        item.modified = dt.datetime.now(dt.timezone.utc)
        self._log(item)
        return item

    def delete_item(self, item_id: str) -> None:
        item = self._live(item_id)
        for child in self.children(item.id):
            self.delete_item(child.id)
        item.deleted = True
        self._log(item)

    def share(
        self, item_id: str, perm: Perm | None = None, remove: str | None = None, unique: bool | None = None
    ) -> None:
        """Add a permission, remove one (by id), or break/restore inheritance; logs a sharing change
        on the item and on every descendant that inherits from it."""
        item = self._live(item_id)
        if perm is not None:
            item.perms.append(perm)
        if remove is not None:
            item.perms = [p for p in item.perms if p.id != remove]
        if unique is not None:
            item.unique = unique
        self._log_sharing(item)

    def _log_sharing(self, item: Item) -> None:
        item.etag += 1
        self._log(item, sharing=True)
        for child in self.children(item.id):
            if not child.unique:
                self._log_sharing(child)

    def children(self, item_id: str) -> list[Item]:
        return [i for i in self.items.values() if i.parent_id == item_id and not i.deleted]

    def _live(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        return item

    def path_of(self, item: Item) -> str:
        """'/drives/{id}/root:' plus the folders above the item, as `parentReference.path` reads."""
        names: list[str] = []
        parent = self.items.get(item.parent_id or "")
        while parent is not None and parent.parent_id is not None:
            names.append(parent.name)
            parent = self.items.get(parent.parent_id)
        return f"/drives/{item.drive_id}/root:" + "".join("/" + n for n in reversed(names))

    def effective(self, item: Item) -> list[tuple[Perm, Item | None]]:
        """The permissions that apply to `item`, each with the ancestor it is inherited from (or None)."""
        out: list[tuple[Perm, Item | None]] = [(p, None) for p in item.perms]
        node = item
        while not node.unique and node.parent_id is not None:
            parent = self.items[node.parent_id]
            out += [(p, parent) for p in parent.perms]
            node = parent
        return out

    def user_emails(self) -> set[str]:
        """Every user a permission or a group names (the directory `GET /users/{id}` reads)."""
        named = {p.user for item in self.items.values() for p in item.perms if p.user}
        owners = {o for g in self.groups.values() for o in g.owners}
        return named | owners | {m for g in self.groups.values() for m in g.members if m not in self.groups}

    def member_emails(self, group_id: str, seen: set[str] | None = None) -> list[str]:
        """Users of a group and its nested groups (what transitiveMembers lists, users only)."""
        seen = seen if seen is not None else set()
        out: list[str] = []
        for member in self.groups[group_id].members:
            if member in self.groups:
                if member not in seen:
                    seen.add(member)
                    out += self.member_emails(member, seen)
            elif member not in out:
                out.append(member)
        return out

    # --- delta tokens -------------------------------------------------------------------------
    def changed_since(self, drive_id: str, seq: int, sharing: bool) -> tuple[list[str], list[str]]:
        """Ids changed after `seq`, each once in order of its last change, and those of them whose
        every change was a sharing change."""
        order: dict[str, int] = {}
        content: set[str] = set()
        for n, item_id, sharing_only in reversed(self.drives[drive_id].log):
            if n <= seq:
                break
            if sharing_only and not sharing:
                continue
            order.setdefault(item_id, n)
            if not sharing_only:
                content.add(item_id)
        ids = sorted(order, key=order.__getitem__)
        return ids, [i for i in ids if i not in content]

    def store_delta(self, state: DeltaState) -> str:
        token = secrets.token_urlsafe(18)
        self.deltas[token] = state
        return token

    def expire_delta_tokens(self) -> None:
        """Every delta and skip token answers 410 resyncRequired from now on."""
        self.deltas.clear()

    def download_url_token(self, item_id: str) -> str:
        token = secrets.token_urlsafe(18)
        self.downloads[token] = item_id
        return token


def graph_guid(*parts: object) -> str:
    """A deterministic GUID-shaped id (Entra object ids: groups, users, sites)."""
    raw = graph_id("", *parts)
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-8{raw[17:20]}-{raw[20:32]}"


def files_state(ws: Any) -> FilesState:
    with ws.lock:
        if ws.m365_files is None:
            ws.m365_files = FilesState()
        return ws.m365_files  # type: ignore[no-any-return]
