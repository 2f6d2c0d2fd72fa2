"""One sync of the microsoft_files connector: the drives, their delta rounds, files and ACLs.

The drives to read come from the config on every run (one `$batch` call): each listed user's
OneDrive, every document library of each listed site, each listed drive id. A site or user the app
may not read (403, e.g. a `Sites.Selected` app the site was not granted to), or a drive whose delta
it may not read, is a `Skipped` that names it and the permission it needs, and the other drives go
on; its documents are kept. When Graph refuses every target and the run reads no drive (the app's
consent withdrawn), the run fails with `AccessRefusedError` instead, deleting nothing
(`kit.refusals`). A drive no longer configured has its documents deleted.

Each drive is followed with its own `root/delta` round, checkpointed after every page (the link to
resume from: `@odata.nextLink` mid-round, `@odata.deltaLink` between rounds). The checkpoint keeps,
per drive, the folder tree (id -> name, parent: delta does not carry paths, and a moved folder is
reported alone) and every file seen (name, parent, cTag, grant tokens, ACL fingerprint, and whether
it is indexed), so that:

- a file is downloaded only when its content, name or place changed, or when its ACL changed (a
  permission-only change yields the same text with a new ACL: the index re-writes the ACL and
  re-embeds nothing);
- a moved or renamed folder re-checks the files below it: out of the `include` globs -> deleted,
  still in -> re-yielded with the new path;
- a 410 `resyncRequired` starts one full listing; the files it does not list again are deleted
  (`resync` holds the ids still unseen, so an interrupted re-listing resumes correctly);
- group memberships and owners and the tenant's domains are read once per sync (`Principals`),
  and files whose ACL they (or a permission's expiry passing) change are re-yielded (a membership
  change re-writes ACLs, never re-embeds);
- each drive keeps the Microsoft 365 group of its site (`owner.group`, refreshed by every full run),
  which resolves the site's Owners and Members groups; a site group that resolves to nobody is a
  skip by policy of the run, once per run (`FilesRun.unresolved`);
- a configured `include` glob that matches no file the drives' entries know (in scope or not) is a
  skip by policy of each full run once every drive's round is complete; none matching raises
  `NothingInScopeError` at its end, before the engine's prune (`kit.scope`; the engine then forgets
  a backfill's checkpoint, so the corrected globs' pass starts over);
- a version-1 checkpoint (which kept no site group or claim) is migrated into a full re-listing of
  every drive, as after a 410, so every file's permissions are read again;
- a file whose content or permissions could not be read (a failed `Skipped`: its indexed version is
  kept) is read again, content and current permissions, at the start of each later round of its
  drive in a whole run (`kit.retries.Retries`; an event's scoped run, `load_scope`, leaves it to the
  next one, so a change is searchable without waiting out the retries of another file), so a
  sharing change the failed read missed still reaches the index;
- a file whose download (or permissions) still answers a server error after the transport's
  retries is such a failed read, named by its path, and the other files go on, unless
  `kit.retries.OUTAGE_AFTER` reads in a row fail so (Graph is down: the run fails, naming the last
  call, and the next resumes from its checkpoint; `kit.retries.Outage`).

Permissions are read with `$batch` (20 items per call) for the files of a page that need them;
sharing-only changes arrive in delta through `Prefer: deltashowsharingchanges`, and
`deltaExcludeParent` spares the unchanged parent folders (paths come from the folder tree kept). A change
notification on a drive asks for a scoped run (`load_scope`) of that drive only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field

from inlet.errors import CredentialsError, ItemError, RetriableError

from .extract import document_title, extract_text, kind_of
from .kit.graph_batch import batch_get
from .kit.checkpoint import CheckpointModel, Migration
from .kit.graph import GraphClient, GraphError, before, error_of, refusal
from .kit.paging import Pager
from .kit.refusals import Refusals
from .kit.retries import Outage, Retries
from .kit.retry import retry_after
from .kit.scope import warn
from .microsoft_files_acl import Principals, Site, acl_key, grants_of
from .model import Deletion, Document, Item, Skipped

if TYPE_CHECKING:
    from .microsoft_files import MicrosoftFilesConnector

log = logging.getLogger(__name__)

# deltaExcludeParent is documented as a header of its own; older clients sent it in Prefer: both.
# Graph documents that sharing changes in delta need deltashowremovedasdeleted and
# deltatraversepermissiongaps beside deltashowsharingchanges.
DELTA_HEADERS = {
    "Prefer": "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges, deltaExcludeParent",
    "deltaExcludeParent": "true",
}
# what a refused site needs (`GraphConnector.permissions`, a skip's reason)
SITES_PERMISSION = "Sites.Read.All, or Sites.Selected and a grant of the site (POST /sites/{site-id}/permissions)"
REFUSED_ADVICE = (
    "check that the app still holds Files.Read.All (OneDrives, drives by id) and Sites.Read.All or "
    "Sites.Selected with each site granted, with admin consent"
)
# a file's state: indexed, skipped, out of scope, before since, unreadable (its version indexed before is kept)
DOC, SKIP, OUT, OLD, ERR = "doc", "skip", "out", "old", "err"
KEPT = (DOC, ERR)  # states whose file may be in the index: a deletion must reach it


class DriveState(BaseModel):
    target: str = ""  # the config entry that brought the drive ("site:...", "user:...", "drive:...")
    name: str = ""
    site: str = ""
    group: str = ""  # the Microsoft 365 group of a group-connected site (the drive's owner.group): its site groups
    group_name: str = ""
    link: str | None = None  # nextLink (mid-round) or deltaLink
    resync: list[str] | None = None  # during a re-listing after a 410: files not listed again yet
    folders: dict[str, list[str | None]] = Field(default_factory=dict)  # id -> [name, parent]; root: ["", None]
    files: dict[str, dict[str, Any]] = Field(default_factory=dict)  # id -> {n, p, c, g, a, s}
    retries: Retries = Field(default_factory=Retries)  # files whose read failed: read again next round
    # files whose path stopped at a folder not seen yet (delta gives no parent-first order across
    # pages): file id -> that folder's id; read again when it appears
    waiting: dict[str, str] = Field(default_factory=dict)


def _relist(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept no SharePoint site group or claim a permission names (they granted nobody):
    every drive is listed again whole, re-reading each file's permissions (`resync`, as after a 410)."""
    for ds in (data.get("drives") or {}).values():
        ds["resync"] = sorted(set(ds.get("resync") or []) | set(ds.get("files") or {}))
        ds["link"] = None
    return data


class FilesCheckpoint(CheckpointModel):
    VERSION: ClassVar[int] = 2
    MIGRATIONS: ClassVar[Mapping[int, Migration]] = {1: _relist}
    since: str | None = None
    drives: dict[str, DriveState] = Field(default_factory=dict)
    refused: list[str] = Field(default_factory=list)  # targets the last full run was refused: drives kept, unread


class FilesRun:
    """One sync: discover the drives, refresh the principals, follow each drive's delta."""

    def __init__(self, conn: MicrosoftFilesConnector, client: GraphClient, st: FilesCheckpoint) -> None:
        self.c, self.client, self.st = conn, client, st
        self.now = conn.clock()  # expiring permissions are weighed against this instant
        self.principals = Principals(client, conn.policy, self.now)
        self.reported: set[str] = set()  # unresolved site groups already reported this run
        self.max_bytes = int(conn.config.max_file_mb * 1024 * 1024)
        self.refusals = Refusals(conn.name, "drive", REFUSED_ADVICE)  # a full run read none: it fails
        self.outage = Outage(
            conn.name
        )  # files whose reads keep answering server errors: past a few in a row, Graph is down

    # --- drives --------------------------------------------------------------------------------
    def discover(self) -> tuple[list[dict[str, Any]], list[Skipped]]:
        """The configured drives (each with `target`, `site`), and a Skipped per target refused."""
        cfg = self.c.config
        asks: dict[str, list[str]] = {}
        for user in cfg.users:
            asks[f"user:{user}"] = [f"/users/{quote(user, safe='@')}/drive"]
        for site in cfg.sites:
            asks[f"site:{site}"] = [
                f"/sites/{site}",
                f"/sites/{site}/drives" if ":" not in site else f"/sites/{site}:/drives",
            ]
        for drive in cfg.drives:
            asks[f"drive:{drive}"] = [f"/drives/{drive}"]
        answers = batch_get(self.client, self.c.policy, [p for paths in asks.values() for p in paths])
        targets: list[dict[str, Any]] = []
        problems: list[Skipped] = []
        for target, paths in asks.items():
            got = [answers[p] for p in paths]
            error = next((a for a in got if isinstance(a, GraphError)), None)
            if error is not None:
                problems.append(self._refused(target, error))
                continue
            bodies = [a for a in got if not isinstance(a, GraphError)]
            if target.startswith("site:"):
                drives = [d for d in bodies[1].get("value", []) if isinstance(d, dict)]
                name = str(bodies[0].get("displayName") or bodies[0].get("name") or "")
            else:
                drives, name = [bodies[0]], ""
            group = _owner_group(drives)
            targets += [{**d, "target": target, "site": name, "group": group} for d in drives]
        return targets, problems

    def _refused(self, target: str, error: GraphError) -> Skipped:
        """The failed skip of a target (`site:...`, `user:...`, `drive:...`) Graph refused (401, 403)
        or does not find (404), noted in `refusals`."""
        kind, _, ref = target.partition(":")
        if error.refused:
            reason = refusal(f"{kind} {ref!r}", error, SITES_PERMISSION if kind == "site" else "Files.Read.All")
        else:
            reason = f"{kind} {ref!r}: not found ({error})"
        self.refusals.skip(target, reason, refused=error.refused)
        log.error("source %r: %s", self.c.name, reason)
        return Skipped(id=self.c.doc_id(target), reason=reason)

    def run(self) -> Iterator[Item]:
        targets, problems = self.discover()
        yield from problems
        refused = {p.id.split(":", 1)[1] for p in problems}
        self.st.refused = sorted(refused)
        wanted = {d["id"] for d in targets}
        for drive_id in [d for d, ds in self.st.drives.items() if d not in wanted and ds.target not in refused]:
            ds = self.st.drives.pop(drive_id)
            log.info("source %r: drive %s (%s) is no longer read", self.c.name, ds.name, drive_id)
            for fid, entry in sorted(ds.files.items()):
                if entry["s"] in KEPT:
                    yield Deletion(id=self.c.doc_id(fid))
            yield self.st.checkpoint()
        for drive in targets:
            ds = self.st.drives.setdefault(drive["id"], DriveState())
            ds.target, ds.name, ds.site = drive["target"], str(drive.get("name") or ""), drive["site"]
            ds.group, ds.group_name = drive["group"]
        yield from self.run_drives([d["id"] for d in targets], replay=True)
        self.refusals.check()  # every target refused, no drive read: the run fails, deleting nothing
        if not problems:
            yield from warn(self.c, self.include_scope([d["id"] for d in targets]))

    def include_scope(self, drive_ids: list[str]) -> list[Skipped]:
        """The connector's `include_scope` over every file these drives' checkpoint entries know (in
        scope or not); unchecked while a drive's round is unfinished (a file not listed yet may match)."""
        if any(self.st.drives[d].link is None for d in drive_ids):
            return []
        drives = [self.st.drives[d] for d in drive_ids]
        return self.c.include_scope({_path(ds, e["p"], e["n"])[0] for ds in drives for e in ds.files.values()})

    def run_drives(self, drive_ids: list[str], replay: bool = False) -> Iterator[Item]:
        """The delta rounds of these drives; with `replay` (a whole run, not an event's scoped one),
        each drive's failed reads first."""
        self.principals.load_many(
            (e["g"], site_of(self.st.drives[d])) for d in drive_ids for e in self.st.drives[d].files.values()
        )
        for drive_id in drive_ids:
            yield from self._drive(drive_id, replay)

    def unresolved(self) -> Iterator[Skipped]:
        """A skip (by policy: the run stays ok) for each site group found unresolved since the last
        call: it grants nobody, and `inlet status` lists it by name."""
        for where, reason in self.principals.unresolved.items():
            if where not in self.reported:
                self.reported.add(where)
                yield Skipped(id=self.c.doc_id(f"site-group:{where}"), reason=reason, failed=False, title=where)

    def _first(self, drive_id: str) -> tuple[str, dict[str, Any]]:
        return f"/drives/{drive_id}/root/delta", {"$top": self.c.config.page_size}

    def _drive(self, drive_id: str, replay: bool) -> Iterator[Item]:
        ds = self.st.drives[drive_id]
        url, params = (ds.link, None) if ds.link else self._first(drive_id)
        pager = Pager(source=self.c.name, what=f"delta of drive {ds.name!r}", token=ds.link)
        if replay:  # an event's scoped run leaves them to the next whole run: the change comes first
            yield from ds.retries.replay(_Page(self, drive_id, ds).retry)
        while True:
            try:
                page = self.client.get(url, params, DELTA_HEADERS)
            except GraphError as exc:
                if exc.status == 410 or exc.code == "resyncRequired":
                    log.warning(
                        "source %r: delta link of drive %s expired (%s); listing it again",
                        self.c.name,
                        ds.name,
                        exc.code,
                    )
                    ds.resync = sorted(set(ds.resync or []) | set(ds.files))
                    ds.link = None
                    url, params = self._first(drive_id)
                    pager = Pager(source=self.c.name, what=f"delta of drive {ds.name!r}")
                    yield self.st.checkpoint()
                    continue
                if exc.status in (401, 403, 404):
                    yield self._refused(f"drive:{drive_id}", exc)
                    return
                raise
            self.refusals.readable(drive_id)
            yield from _Page(self, drive_id, ds).apply(page.get("value", []))
            yield from self.unresolved()
            next_link = page.get("@odata.nextLink")
            if pager.advance(next_link):
                ds.link, url, params = next_link, str(next_link), None
                yield self.st.checkpoint()
                continue
            for fid in ds.resync or []:
                entry = ds.files.pop(fid, None)
                ds.retries.forget(fid)
                if entry is not None and entry["s"] in KEPT:
                    yield Deletion(id=self.c.doc_id(fid))
            ds.resync = None
            ds.link = page.get("@odata.deltaLink")
            yield from self._acl_drift(drive_id, ds)
            yield from self.unresolved()
            yield self.st.checkpoint()
            return

    def _acl_drift(self, drive_id: str, ds: DriveState) -> Iterator[Item]:
        """Indexed files whose ACL a membership or domain change moved (their grants unchanged)."""
        keys: dict[tuple[str, ...], str] = {}  # files share few distinct grant lists

        def key(grants: list[str]) -> str:
            if tuple(grants) not in keys:
                keys[tuple(grants)] = acl_key(self.principals.acl(grants, site_of(ds)))
            return keys[tuple(grants)]

        stale = [fid for fid, e in ds.files.items() if e["s"] == DOC and key(e["g"]) != e["a"]]
        if stale:
            log.info(
                "source %r: %d files of drive %s have a new ACL (group membership)", self.c.name, len(stale), ds.name
            )
            yield from _Page(self, drive_id, ds).recheck(stale)

    def listed_ids(self, drive_id: str, paths: set[str] | None = None) -> Iterator[str]:
        """The ids of the drive's files in scope (one fresh delta listing); every file's path is
        added to `paths` when given."""
        ds = DriveState()
        files = []
        for page in self.client.pages(*self._first(drive_id), DELTA_HEADERS):
            for item in page.get("value", []):
                _Page(self, drive_id, ds).note_folder(item)
                if "file" in item and "deleted" not in item:
                    files.append(item)
        for item in files:  # once every folder is known: a page may hold a file before its folder
            path, _ = _path(ds, item["parentReference"].get("id"), item["name"])
            if paths is not None:
                paths.add(path)
            if self.c.in_scope(path) and self._policy_skip(item, path) is None:
                yield self.c.doc_id(item["id"])

    # --- one file --------------------------------------------------------------------------------
    def _policy_skip(self, item: dict[str, Any], path: str) -> str | None:
        size = int(item.get("size") or 0)
        if size > self.max_bytes:
            return f"{path}: {size} bytes, over max_file_mb ({self.c.config.max_file_mb:g} MB)"
        mime = (item.get("file") or {}).get("mimeType")
        if kind_of(item["name"], mime) is None:
            return f"{path}: unsupported type {mime or '?'}"
        return None

    def content(self, drive_id: str, item_id: str) -> bytes:
        """The file's bytes, through the `/content` redirect to its download URL; a server error the
        retries did not clear is a `RetriableError` naming the call."""
        url = f"{self.client.graph_url}/drives/{drive_id}/items/{item_id}/content"
        call = self.client.call("GET", url)
        for fresh in (False, True):
            self.client.calls += 1
            try:
                answer = self.client.http.get(
                    url, headers={"Authorization": f"Bearer {self.client.token(fresh)}"}, follow_redirects=True
                )
            except httpx.TransportError as exc:
                raise RetriableError(f"source {self.c.name!r}: {call}: download failed: {exc}") from exc
            if answer.status_code != 401:
                break
        else:
            raise CredentialsError(self.c.name, "Graph refused a fresh token for a download")
        if answer.status_code >= 500 or answer.status_code == 429:
            code, message = error_of(answer)
            raise RetriableError(
                f"source {self.c.name!r}: {call}: download answered {answer.status_code} {code}"
                f"{': ' + message if message else ''}",
                retry_after(answer.headers),
            )
        if answer.status_code >= 400:
            raise GraphError(answer.status_code, "download", answer.text[:200], call)
        return answer.content

    def document(
        self, ds: DriveState, drive_id: str, item: dict[str, Any], path: str, grants: list[str]
    ) -> Document | Skipped | None:
        """The file as a document; a Skipped (by policy or unreadable: a server error the retries did
        not clear, unless Graph looks down, `Outage`); None: gone meanwhile."""
        doc_id = self.c.doc_id(item["id"])
        reason = self._policy_skip(item, path)
        if reason:
            return Skipped(id=doc_id, reason=reason, failed=False, title=item["name"])
        mime = (item.get("file") or {}).get("mimeType") or ""
        try:
            data = self.content(drive_id, item["id"])
            self.outage.read()
            text = extract_text(data, item["name"], mime).strip()
        except RetriableError as exc:
            reason = self.outage.failed(path, exc)  # raises when Graph looks down
            acl = self.principals.acl(grants, site_of(ds))  # the kept version takes the permissions just read
            return Skipped(id=doc_id, reason=reason, title=item["name"], acl=acl)
        except GraphError as exc:
            if exc.status == 404:
                return None
            acl = self.principals.acl(grants, site_of(ds))  # the kept version takes the permissions just read
            return Skipped(id=doc_id, reason=f"{path}: {exc}", title=item["name"], acl=acl)
        except ItemError as exc:
            acl = self.principals.acl(grants, site_of(ds))
            return Skipped(id=doc_id, reason=f"{path}: {exc}", failed=exc.failed, title=item["name"], acl=acl)
        if not text:
            return Skipped(id=doc_id, reason=f"{path}: no text", failed=False, title=item["name"])
        who = (item.get("createdBy") or {}).get("user") or {}
        return self.c.document(
            item["id"],
            title=document_title(data, item["name"], text, mime) or item["name"],
            text=text,
            url=item.get("webUrl") or "",
            author=str(who.get("email") or ""),
            created_at=item.get("createdDateTime"),
            updated_at=item.get("lastModifiedDateTime"),
            metadata={"drive": ds.name, "site": ds.site, "path": path, "mime_type": mime},
            acl=self.principals.acl(grants, site_of(ds)),
        )


def _owner_group(drives: list[dict[str, Any]]) -> tuple[str, str]:
    """The Microsoft 365 group (id, display name) a site's drives name as their owner, else ("", "")."""
    for drive in drives:
        group = (drive.get("owner") or {}).get("group") or {}
        if group.get("id"):
            return str(group["id"]), str(group.get("displayName") or "")
    return "", ""


def site_of(ds: DriveState) -> Site:
    """What resolves a site group on this drive (`microsoft_files_acl.Site`)."""
    return Site(group=ds.group, names=(ds.site, ds.group_name), label=ds.site or ds.name)


def _path(ds: DriveState, parent: str | None, name: str) -> tuple[str, str | None]:
    """The path of `name` under `parent` inside the drive, and the id of the folder it stopped at
    when that folder is not known yet (else None)."""
    names = [name]
    seen: set[str] = set()
    while parent and parent not in seen:
        if parent not in ds.folders:
            return "/".join(reversed(names)), parent
        seen.add(parent)
        folder_name, parent = ds.folders[parent]
        if parent is None:  # the root
            break
        names.append(folder_name or "")
    return "/".join(reversed(names)), None


class _Page:
    """What one delta page (or a re-check of some files) changes in one drive."""

    def __init__(self, run: FilesRun, drive_id: str, ds: DriveState) -> None:
        self.run, self.drive_id, self.ds = run, drive_id, ds
        self.c = run.c

    def note_folder(self, item: dict[str, Any]) -> bool:
        """Record a folder (or the root); True when an existing folder moved or was renamed."""
        if "root" in item:
            self.ds.folders[item["id"]] = ["", None]
            return False
        if "folder" not in item or "deleted" in item:
            return False
        entry = [item["name"], (item.get("parentReference") or {}).get("id")]
        moved = item["id"] in self.ds.folders and self.ds.folders[item["id"]] != entry
        self.ds.folders[item["id"]] = entry
        return moved

    def apply(self, values: list[dict[str, Any]]) -> Iterator[Item]:
        files: list[dict[str, Any]] = []
        moved: list[str] = []
        if self.ds.resync is not None:  # listed again: not gone
            listed = {item["id"] for item in values}
            self.ds.resync = [i for i in self.ds.resync if i not in listed]
        new: set[str] = set()
        for item in values:
            known = item["id"] in self.ds.folders
            if "deleted" in item:
                yield from self._deleted(item["id"])
            elif self.note_folder(item):
                moved.append(item["id"])
            elif not known and item["id"] in self.ds.folders:
                new.add(item["id"])
            elif "file" in item:
                files.append(item)
        below = [fid for fid, e in self.ds.files.items() if any(self._under(e["p"], m) for m in moved)]
        below += [fid for fid, folder in self.ds.waiting.items() if folder in new]  # their path is whole now
        listed = {f["id"] for f in files}
        yield from self._files(files)
        yield from self.recheck([fid for fid in dict.fromkeys(below) if fid not in listed])

    def _under(self, parent: str | None, folder: str) -> bool:
        seen: set[str] = set()
        while parent and parent not in seen:
            if parent == folder:
                return True
            seen.add(parent)
            parent = (self.ds.folders.get(parent) or [None, None])[1]
        return False

    def _deleted(self, item_id: str) -> Iterator[Item]:
        if item_id in self.ds.folders:
            gone = [fid for fid, e in self.ds.files.items() if self._under(e["p"], item_id)]
            del self.ds.folders[item_id]
            for fid in gone:
                yield from self._deleted(fid)
        entry = self.ds.files.pop(item_id, None)
        self.ds.retries.forget(item_id)
        self.ds.waiting.pop(item_id, None)
        if entry is not None and entry["s"] in KEPT:
            yield Deletion(id=self.c.doc_id(item_id))

    def retry(self, file_id: str) -> Iterator[Item]:
        """A file whose last read failed: read again, content and current permissions."""
        try:
            item = self.run.client.get(f"/drives/{self.drive_id}/items/{file_id}")
        except RetriableError as exc:  # still a server error: failed again, unless Graph looks down
            failure = self.ds.retries.failed[file_id]
            reason = self.run.outage.failed(failure.title or file_id, exc)
            yield self.ds.retries.note(file_id, Skipped(id=failure.id, reason=reason, title=failure.title))
            return
        except GraphError as exc:
            if exc.status == 404:
                yield from self._deleted(file_id)
                return
            failure = self.ds.retries.failed[file_id]
            skipped = Skipped(id=failure.id, reason=f"{failure.title or file_id}: {exc}", title=failure.title)
            yield self.ds.retries.note(file_id, skipped)
            return
        yield from self._files([item], force=True)

    def recheck(self, file_ids: list[str]) -> Iterator[Item]:
        """Files whose path or ACL changed without a change of their own: read them again (one that
        keeps answering a server error is a failed read, remembered, unless Graph looks down)."""
        if not file_ids:
            return
        paths = {fid: f"/drives/{self.drive_id}/items/{fid}" for fid in file_ids}
        answers = batch_get(self.run.client, self.c.policy, paths.values(), per_item=True)
        items = []
        for fid, path in paths.items():
            answer = answers[path]
            if isinstance(answer, GraphError):
                if answer.retriable:
                    name = str((self.ds.files.get(fid) or {}).get("n") or fid)
                    reason = self.run.outage.failed(name, answer)
                    yield self.ds.retries.note(fid, Skipped(id=self.c.doc_id(fid), reason=reason, title=name))
                    continue
                if answer.status != 404:
                    raise answer
                yield from self._deleted(fid)
            else:
                items.append(answer)
        yield from self._files(items, force=True)

    def _files(self, items: list[dict[str, Any]], force: bool = False) -> Iterator[Item]:
        since = self.run.st.since
        todo = []
        for item in items:
            path, missing = _path(self.ds, (item.get("parentReference") or {}).get("id"), item["name"])
            if missing is None:
                self.ds.waiting.pop(item["id"], None)
            else:
                self.ds.waiting[item["id"]] = missing
            entry = self.ds.files.get(item["id"])
            if not self.c.in_scope(path):
                if entry is not None and entry["s"] in KEPT:
                    yield Deletion(id=self.c.doc_id(item["id"]))
                self.ds.files[item["id"]] = _entry(item, [], "", OUT)
                self.ds.retries.forget(item["id"])
                continue
            if before(item.get("lastModifiedDateTime"), since) and (entry is None or entry["s"] == OLD):
                self.ds.files[item["id"]] = _entry(item, [], "", OLD)
                continue
            todo.append((item, path, entry))
        perms = batch_get(
            self.run.client,
            self.c.policy,
            [f"/drives/{self.drive_id}/items/{item['id']}/permissions" for item, _, _ in todo],
            per_item=True,
        )
        for item, path, entry in todo:
            answer = perms[f"/drives/{self.drive_id}/items/{item['id']}/permissions"]
            if isinstance(answer, GraphError):
                if answer.status == 404:
                    yield from self._deleted(item["id"])
                    continue
                what = f"{path}: permissions unreadable"
                reason = self.run.outage.failed(what, answer) if answer.retriable else f"{what}: {answer}"
                skipped = Skipped(id=self.c.doc_id(item["id"]), reason=reason, title=item["name"])
                yield self.ds.retries.note(item["id"], skipped)
                continue
            grants = grants_of(answer.get("value", []), self.run.now, self.c.config.link_shares)
            key = acl_key(self.run.principals.acl(grants, site_of(self.ds)))
            same = (
                entry is not None
                and entry["s"] in (DOC, SKIP)
                and entry["c"] is not None
                and entry["c"] == content_version(item)
                and entry["n"] == item["name"]
                and entry["p"] == (item.get("parentReference") or {}).get("id")
            )
            if same and not force and entry["a"] == key:  # type: ignore[index]
                entry["g"] = grants  # type: ignore[index]
                self.run.outage.read()  # read whole (nothing to download): the failures before are not in a row
                continue
            result = self.run.document(self.ds, self.drive_id, item, path, grants)
            if result is None:
                yield from self._deleted(item["id"])
                continue
            state = DOC if isinstance(result, Document) else SKIP if not result.failed else ERR
            if state == SKIP and entry is not None and entry["s"] in KEPT:
                yield Deletion(id=self.c.doc_id(item["id"]))
            self.ds.files[item["id"]] = _entry(item, grants, key, state)
            yield self.ds.retries.note(item["id"], result)


def content_version(item: dict[str, Any]) -> str | None:
    """What changes when the file's content does: its `cTag`, which delta leaves out on OneDrive for
    Business and SharePoint, else its content hash, else its time and size; None when unknown
    (the file is then read again)."""
    if item.get("cTag"):
        return str(item["cTag"])
    hashes = (item.get("file") or {}).get("hashes") or {}
    digest = next((f"{k}:{hashes[k]}" for k in ("quickXorHash", "sha256Hash", "sha1Hash") if hashes.get(k)), None)
    if digest is not None:
        return digest
    if item.get("lastModifiedDateTime"):
        return f"{item['lastModifiedDateTime']}|{item.get('size')}"
    return None


def _entry(item: dict[str, Any], grants: list[str], key: str, state: str) -> dict[str, Any]:
    return {
        "n": item["name"],
        "p": (item.get("parentReference") or {}).get("id"),
        "c": content_version(item),
        "g": grants,
        "a": key,
        "s": state,
    }
