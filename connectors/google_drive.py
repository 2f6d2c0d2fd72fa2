"""Google Drive: one document per file, with its sharing as the ACL, kept current by the changes feed.

A first run takes a `changes.getStartPageToken`, crawls `files.list` page by page (a checkpoint
after each page), then follows `changes.list` from the saved token: edits, moves, trash, removal and
permission changes all arrive there, and so do changes to a shared drive itself (`changeType:
"drive"`, no file): a drive joined or renamed has its files read again (their path names it), a
drive left or deleted has the documents no longer listed deleted. Drive keeps a change log per
shared drive, and the user's log need not carry its items' changes: each shared drive's own log is
followed too, with its own token (checkpoint key `drive_tokens`, taken before the crawl lists
anything, or when the drive is joined), after the user's log; the user's log's changes to items of
a followed drive are left to that drive's log. A change saying a file left a log while the user can
still read it (moved into or out of a shared drive) carries the file (`includeCorpusRemovals`) and
is a move, not a deletion. A refused page token (expired, invalidated: 400 about `pageToken`, 404,
410) falls back to a full re-crawl that reconciles against the ids known before it (checkpoint key
`prev`), once a run: the re-crawl's fresh token refused too, or any other 400 (a parameter refused),
fails the run with Drive's answer rather than re-crawl for ever; a files.list page token refused
restarts the listing once a run the same way. A crawl deletes nothing it did not list without
asking Drive first (`_confirm`: `files.get` per file, read again when still there): the page token
is a position in the listing, and files deleted before it mid-crawl move later files past the next
page's start; so are the documents a full pass's prune would delete (`recheck`). A shared
drive's own log answering 404 (the drive deleted before the user's log says so) drops that drive,
its documents deleted as a left drive's, and the other logs go on.

A shared drive's members are in every one of its files' ACLs (`permissions.list` shows them as
inherited permissions), yet Drive logs no change to the files when they change. So each sync reads
every shared drive's members (one `permissions.list` on the drive's id) and keeps a fingerprint of
them (checkpoint key `members`, taken before a crawl lists anything); when it differs, the drive's
indexed files have their permissions read again, no content, and are yielded as `AclUpdate`s (the
index rewrites the ACL, re-embeds nothing). A file of a shared drive the reading identity is not a
member of (shared with it directly, or a drive it left) holds the drive's members too when Drive
shows its sharing (to a writer), but Drive answers a non-member "not found" for the drive's
members: such files are kept with their drive (checkpoint key `outside`), and each sync reads the
sharing of each such drive's first one instead (one `permissions.list` per drive, fingerprint key
`outside_members`); when it differs, the drive's `outside` files have their permissions read
again, as `AclUpdate`s. A permission of a deleted account (`deleted: true`) grants nothing.

A file shared with a Google Group (a `type: "group"` permission, its own or its shared drive's)
is readable by the group's address and by its members, nested groups' included, read from the
Admin SDK Directory API once per sync (`google_drive_groups.Groups`; `expand_groups = false`: the
address only). The checkpoint keeps the groups each indexed file's permissions name (key `shared`)
and a fingerprint of each group's members as the ACLs took them (key `groups`); each sync reads
every such group again, and the files naming a group whose members changed have their permissions
read again, no content, and are yielded as `AclUpdate`s. A group whose members cannot be read
grants its address only and is reported as a skip by policy (the run stays ok), once per group per
run. A checkpoint from before groups were tracked (version 1) has every indexed file's ACL read
again that way once, so files indexed before take their groups' members.

A file whose read failed (a failed `Skipped`: its indexed version is kept) is read again, metadata,
text and current sharing, at the start of each later sync (`kit.retries.Retries`, checkpoint key
`retries`): the changes feed has moved past it, and a sharing change the failed read missed must
still reach the index. A file that keeps answering a server error is such a failed read, unless
`kit.retries.OUTAGE_AFTER` reads in a row fail so (Drive is down: the run fails, to resume from its
checkpoint; `kit.retries.Outage`).

Drive shows a file's sharing only to who may share it: a file the reading identity may only view
(`permissions.list` answers 403 `insufficientFilePermissions`) is indexed for its owners and that
identity, the readers known for certain: never wider than its real sharing. The identity is
`subject`, or the service account; an authorized user's credentials do not name their user, so
Drive is asked who it is (`about.get`, once a run, when the first such file is met).

A listing over all drives that Drive calls incomplete (`incompleteSearch`) is narrowed, as Drive
advises: My Drive (`corpora=user`) and each shared drive (`corpora=drive`) are listed on their own,
which Drive answers whole; the crawl reads the files the first listing left out from them, and is
then complete. Nothing is deleted that was not seen removed: only if a narrowed listing is
incomplete too, the crawl deletes nothing it did not list (a re-crawl keeps those documents known),
and `live_ids()` raises `IncompleteListingError` rather than answer with it.

Permission-only changes re-export/re-download the file: the connector keeps no copy of the text,
and the engine skips re-embedding when title and text are unchanged, so the cost is one download
(chosen over caching every file's text in the checkpoint). The checkpoint holds the live document
ids (to reconcile after a fallback) and the folder tree (to compute paths and the folder filter
without listing folders on every sync), so a sync with nothing to do is one `changes.list` call,
per shared drive one more and one `permissions.list` (its members), per shared drive the identity
is not a member of whose files are indexed one `permissions.list`, and per group an indexed file is
shared with one `members.list` (a page per 200 members).

Paths (`metadata.folder`, and what a `folders` path matches) start below My Drive and at a shared
drive's name: 'Engineering/Design Docs', never 'My Drive/Engineering/...'. A document shows only
the part of its path (and its shared drive's name) that every reader of the file may open
(`google_drive_content.shown_location`: each folder map entry keeps the folder's own sharing, a
drive its members' fingerprint, `members`); the `folders` filter matches the whole path. A folder
map of an earlier version (no sharing kept) reads it with one folder listing before a run. An item at the top of My
Drive has My Drive's root folder as its parent; no listing names that folder, and `files.get`
answers it as "My Drive" without parents: met as a parent, it is kept in the folder map as `ROOT`,
which ends a path and adds no name (a folder missing from the map ends it too, so `live_ids`, which
fetches nothing, finds the same paths). Drive answers without parents any item whose parent the
reader may not see, a folder "Shared with me" too: a folder met so is the root only if it is the one
`files.get("root")` names (asked once, checkpoint key `root`); any other starts its path with its
name, as the crawl's folder listing has it. A `folders` entry naming no folder id or path and no shared
drive of the tree is a skip by policy of each run; when none names anything, the run (and
`live_ids`) raises `NothingInScopeError` before a file is read (`kit.scope`). The change log
reshapes the tree (a folder renamed, moved or removed; a shared drive renamed, left or gone): each
page applies its folders' and drives' changes first and checks the scope again on the tree they
leave, before anything is deleted, so a rename that takes the last entry's folder away fails the
run there, with its checkpoint before that page. A tree no entry names is checked against Drive's
folders as they are now before the run fails: an entry naming a folder the log has yet to bring
(renamed back, or named by a later page) lets the run go on.

Progress: Drive's listing carries no count, so a crawl first counts the files it will go through
(ids only, 1000 a page: about one request per thousand files, against at least one per file for the
crawl itself) and reports that total, in files, left in this run (a resumed crawl subtracts the
files its earlier pages went through, kept as checkpoint key `listed`). If the listing changes while
the crawl runs, the total is corrected to what was gone through when it ends. The changes feed has
no count at all, so an incremental sync reports no total rather than a guessed one.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import logging
import threading
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pydantic import Field, field_serializer

from inlet.errors import IncompleteListingError, ItemError, NothingInScopeError, RetriableError

from .base import ConfigPath, Connector, Interval, ServiceUrl, SourceConfig, parse_duration
from .events import EventSource
from .google_drive_client import SCOPES, USER, CompleteListing, DriveApiError, DriveClient
from .google_drive_events import DrivePushChannels
from .google_drive_groups import DIRECTORY_SCOPE, DirectoryClient, Groups, named_groups
from .google_drive_content import (
    FILE_FIELDS,
    FOLDER,
    ROOT,
    TooLarge,
    acl_of,
    fetch_text,
    folder_entry,
    folder_path,
    in_scope,
    owner_of,
    shown_location,
    skip_reason,
)
from .kit import CheckpointModel, Outage, Pager, Retries, RetryPolicy, page_token
from .kit.checkpoint import Migration
from .kit.google import acting_as, load_credentials
from .kit.scope import check_scope, warn
from .model import ACL, AclUpdate, Deletion, Document, Item, Progress, Skipped

log = logging.getLogger(__name__)

# Refusals that stay until someone changes the file: skips by policy, not read errors retried every run
# (cannotDownloadAbusiveFile: Drive flagged it as malware or spam; only acknowledgeAbuse reads it).
_SKIP_REASONS = {
    "fileNotDownloadable",
    "cannotDownloadFile",
    "cannotDownloadAbusiveFile",
    "exportSizeLimitExceeded",
    "fileNotExportable",
}
_FOLDER_FIELDS = (
    "id,name,mimeType,parents,driveId,trashed,permissions(type,role,emailAddress,domain,deleted,allowFileDiscovery)"
)
_SHARING_FIELDS = (
    "id,name,trashed,driveId,owners(emailAddress),permissions(type,role,emailAddress,domain,deleted,allowFileDiscovery)"
)


class GoogleDriveConfig(SourceConfig):
    credentials_file: ConfigPath = Field(
        description="service-account or authorized-user JSON (its token_uri is used to refresh)"
    )
    subject: str | None = Field(None, description="user to impersonate (domain-wide delegation)")
    api_endpoint: ServiceUrl | None = Field(
        None, description="Drive API base, e.g. https://www.googleapis.com/drive/v3/ (tests, proxies)"
    )
    folders: list[str] = Field(
        default_factory=list,
        description="only files under these folder ids or "
        "paths ('Engineering/Design Docs', a shared drive's name); default: all",
    )
    shared_drives: bool = Field(True, description="include files of shared drives")
    expand_groups: bool = Field(
        True,
        description="a file shared with a Google Group is found by the group's members too (read with the "
        "Admin SDK Directory API: grant the scope " + DIRECTORY_SCOPE + "); false: by the group's address only",
    )
    directory_endpoint: ServiceUrl | None = Field(
        None,
        description="Directory API base (tests, proxies); default: Google's, or the root of `api_endpoint` "
        "when that ends in drive/v3/",
    )
    link_shares: bool = Field(
        True,
        description="a file shared with anyone (or the domain) who has the link is public (domain-wide); "
        "false: such link-only sharing grants nothing (Drive lets nobody find those files)",
    )
    max_file_bytes: int = Field(20 * 1024 * 1024, ge=1, description="skip larger files (and exports)")
    doc_format: Literal["text/markdown", "text/plain"] = Field("text/markdown", description="export format of Docs")
    concurrency: int = Field(4, ge=1, le=32, description="parallel downloads")
    page_size: int = Field(100, ge=1, le=1000, description="files.list / changes.list page size")
    max_requests_per_second: float = Field(50.0, ge=0, description="client-side quota (0: unlimited)")
    retries: int = Field(5, ge=0, le=20, description="retries of 429 / 5xx / rate-limit 403")
    backoff_seconds: float = Field(1.0, ge=0, description="first retry delay (doubles each time)")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP request (a stalled answer is retried)")
    push_url: ServiceUrl | None = Field(
        None,
        description="public HTTPS URL of this source's hook "
        "(.../hooks/google_drive/NAME): changes.watch push channels (daemon)",
    )
    channel_lifetime: Interval = Field(
        "1d", description="how long each push channel lasts before it is replaced (Drive allows up to 7 days)"
    )


def _untracked_groups(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept no groups per file: `shared` None has every indexed file's ACL read again once."""
    return {**data, "shared": None}


class _State(CheckpointModel):
    """The typed checkpoint (stored sets are sorted lists)."""

    VERSION: ClassVar[int] = 2
    MIGRATIONS: ClassVar[Mapping[int, Migration]] = {1: _untracked_groups}
    start_token: str
    phase: Literal["crawl", "changes"] = "crawl"
    page_token: str | None = None  # files.list token (crawl) or changes token (changes)
    # {id: [name, parent, readers]} (My Drive's root: ROOT; readers: `folder_readers`); None until listed
    folders: dict[str, list[Any]] | None = None
    root: str | None = None  # My Drive's root folder's id, once asked (`_root`)
    drives: dict[str, str] = {}
    drive_tokens: dict[str, str] = {}  # {shared drive id: token of its own change log}
    members: dict[str, str] = {}  # {shared drive id: fingerprint of its members' ACL}
    outside: dict[str, str] = {}  # {native id: shared drive id} files of drives not followed whose ACL holds members
    outside_members: dict[str, str] = {}  # {shared drive id in `outside`: fingerprint of its first file's sharing}
    shared: dict[str, list[str]] | None = Field(default_factory=dict)  # {native id: groups it names}; None: unknown
    groups: dict[str, str] = {}  # {group address: fingerprint of its members as the ACLs naming it took them}
    known: set[str] = set()  # native ids of indexed documents
    prev: set[str] | None = None  # during a fallback re-crawl: ids known before it
    listed: int = 0  # files the crawl's pages before `page_token` held
    incomplete: bool = False  # a page of the crawl said incompleteSearch
    retries: Retries = Field(default_factory=Retries)  # files whose read failed: read again each run

    @field_serializer("known", "prev")
    def _sorted(self, ids: set[str] | None) -> list[str] | None:
        return sorted(ids) if ids is not None else None


class GoogleDriveConnector(Connector[GoogleDriveConfig]):
    type: ClassVar[str] = "google_drive"
    Config: ClassVar[builtins.type[SourceConfig]] = GoogleDriveConfig  # builtins: `type` is the attribute above
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)
    # the change feed reports changed files only: a folder that left the scope keeps its files otherwise
    scope_keys = frozenset({"folders", "shared_drives", "subject", "link_shares"})

    _client: DriveClient | None = None
    _directory: DirectoryClient | None = None
    _groups: Groups | None = None  # this run's group memberships
    _named: dict[str, list[str]]  # {native id: groups its ACL just named}, filled on the pool's threads
    _inherits: dict[str, str | None]  # {native id: its shared drive, when Drive just showed its sharing}, ditto
    _named_lock: threading.Lock
    _reported: set[str]  # unreadable groups already reported this run
    _pool: ThreadPoolExecutor
    _outage: Outage  # reads in a row that ended in a `RetriableError`: past `OUTAGE_AFTER`, Drive is down
    _refused: set[str] = set()  # listings whose page token this run has restarted once ("files", "changes")
    _told: set[str] = set()  # ids of the `folders` skips this run has yielded
    _acting_as: str | None = None  # who the credentials file says it reads as (None: an authorized user)
    _reader: str | None = None  # the address the credentials read as, once known this run (`_reading_identity`)
    _reader_lock: threading.Lock

    @property
    def client(self) -> DriveClient:
        if self._client is None:
            c = self.config
            creds = load_credentials(c.credentials_file, c.subject, self.name, SCOPES)
            self._acting_as = acting_as(creds, c.subject)
            policy = RetryPolicy(attempts=c.retries + 1, backoff=c.backoff_seconds, cap=60.0)
            self._client = DriveClient(
                self.name, creds, c.api_endpoint, policy=policy, per_second=c.max_requests_per_second, timeout=c.timeout
            )
        return self._client

    def check_local(self) -> None:
        """The credentials file can serve (`subject` only with a service account), read without the network."""
        load_credentials(self.config.credentials_file, self.config.subject, self.name, SCOPES)

    @property
    def directory(self) -> DirectoryClient:
        """The Directory API, with credentials of its own asking for its scope alone (a scope the
        domain-wide delegation does not grant refuses the token: Drive's calls must not be refused)."""
        if self._directory is None:
            c = self.config
            creds = load_credentials(c.credentials_file, c.subject, self.name, [DIRECTORY_SCOPE])
            policy = RetryPolicy(attempts=c.retries + 1, backoff=c.backoff_seconds, cap=60.0)
            endpoint = c.directory_endpoint
            if endpoint is None and c.api_endpoint and c.api_endpoint.rstrip("/").endswith("drive/v3"):
                endpoint = c.api_endpoint.rstrip("/").removesuffix("drive/v3")
            self._directory = DirectoryClient(
                self.name, creds, endpoint, policy=policy, per_second=c.max_requests_per_second, timeout=c.timeout
            )
        return self._directory

    @property
    def groups(self) -> Groups:
        """This run's group memberships (each group's members read once a run)."""
        if self._groups is None:
            self._fresh_groups()
        assert self._groups is not None
        return self._groups

    def _fresh_groups(self) -> None:
        self._groups = Groups(self.name, lambda: self.directory, self.config.expand_groups)
        self._named, self._inherits, self._named_lock, self._reported = {}, {}, threading.Lock(), set()

    def check(self) -> None:
        self.client.start_page_token()

    def events(self) -> EventSource | None:
        if not self.config.push_url:
            return None
        return DrivePushChannels(self, self.config.push_url, parse_duration(self.config.channel_lifetime))

    # --- load --------------------------------------------------------------------------------
    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        st = _State.load(checkpoint, source=self.name)
        if st is None:
            st = _State(start_token=self.client.start_page_token())
            yield st.checkpoint()
        with self._running():
            crawled = st.phase == "crawl"
            if not crawled:
                self._read_folder_sharing(st)
            if crawled:
                yield from self._crawl(st, since)
            else:
                yield from self._misplaced_roots(st)
                yield from self._scope_skips(st)
            yield from self._follow_changes(st, replay=not crawled)  # a crawl has just read every file

    def recheck(self, checkpoint: dict[str, Any] | None, ids: list[str]) -> Iterator[Item]:
        """The documents a crawl just ended without listing, asked about one by one (`_confirm`)."""
        st = _State.load(checkpoint, source=self.name)
        if st is None or st.folders is None:
            return
        with self._running():
            yield from self._confirm(sorted(i.split(":", 1)[1] for i in ids), st)
        yield st.checkpoint()

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """A run's reads: its outage count, refusals, reader, group memberships and download pool."""
        self._outage, self._refused, self._told = Outage(self.name), set(), set()
        self._reader, self._reader_lock = None, threading.Lock()
        self._fresh_groups()  # memberships are read again by every run
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix=f"drive-{self.name}") as pool:
            self._pool = pool
            yield

    def _confirm(self, natives: list[str], st: _State) -> Iterator[Item]:
        """Files known before a crawl that it did not list, each asked about (`files.get`, on the
        pool): a `Deletion` for one gone, trashed or of a shared drive not read; the others are
        read as a crawl reads them (`_process`). Drive's page token of a listing is a position in
        it: a file deleted before that position mid-crawl moves the files after it up, and the next
        page starts past as many files as were deleted. Nothing is asked when nothing is unlisted."""
        context = contextvars.copy_context()
        found = self._pool.map(lambda n: context.copy().run(self._still_there, n), natives)
        live = []
        for native, f in zip(natives, found):
            if isinstance(f, DriveApiError):  # not known to be gone: kept, and asked about again next pass
                st.known.add(native)
                reason = f"Drive did not say whether the file is still there: {f.reason or f.status}: {f.message}"
                yield Skipped(id=self.doc_id(native), reason=reason)
            elif f is None:
                st.known.discard(native)
                st.retries.forget(native)
                yield Deletion(id=self.doc_id(native))
            else:
                live.append(f)
        if live:
            log.info("source %r: %d files the listing passed over are still there; reading them", self.name, len(live))
            yield from self._process(live, st)

    def _still_there(self, native: str) -> dict[str, Any] | DriveApiError | None:
        """The file as a crawl lists it; None when gone, trashed or of a shared drive not read;
        Drive's error when it answers neither."""
        try:
            f = self.client.get_file(native, FILE_FIELDS)
        except DriveApiError as err:
            return None if err.status == 404 else err
        if f.get("trashed") or f.get("mimeType") == FOLDER or (f.get("driveId") and not self.config.shared_drives):
            return None
        return f

    def _crawl(self, st: _State, since: datetime | None = None) -> Iterator[Item]:
        if st.folders is None:
            self._load_tree(st, follow=True)
            unmatched = self._new_skips(self._folder_scope(st))  # before the tree is saved: nothing to resume
            st.members = {d: key for d in st.drives if (key := self._members_key(d)) is not None}
            yield st.checkpoint()
        else:
            unmatched = self._new_skips(self._folder_scope(st))
        yield from unmatched
        q = f"mimeType != '{FOLDER}' and trashed = false"
        if since is not None:
            q += f" and modifiedTime > '{since.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')}'"
        pager = Pager(source=self.name, what="files.list", token=st.page_token)
        st.listed = st.listed if pager.token else 0
        count = self._count(q)
        done, total = 0, max(count - st.listed, 0) if pager.token else count
        yield Progress(total=total, done=0, unit="files")
        listed: set[str] = set()  # ids this run's pages held
        while True:
            try:
                page = self.client.list_files(
                    q, pager.token, self.config.page_size, FILE_FIELDS, self.config.shared_drives
                )
            except DriveApiError as err:
                if pager.token is None or not _token_refused(err):
                    raise
                self._once("files", err, "files.list refused the page token of a listing restarted in this run")
                log.warning("source %r: files.list page token refused; restarting the listing", self.name)
                pager, st.listed, total = Pager(source=self.name, what="files.list"), 0, done + count
                yield Progress(total=total)
                continue
            files = page.get("files", [])
            st.incomplete = st.incomplete or bool(page.get("incompleteSearch"))
            listed.update(f["id"] for f in files)
            yield from self._process(files, st, done)
            done += len(files)
            st.listed += len(files)
            yield Progress(done=done)  # also when the page held only files out of scope
            if not pager.advance(page_token(page)):
                break
            st.page_token = pager.token
            yield st.checkpoint()
        if st.incomplete:
            done = yield from self._narrowed(st, q, listed, done)
        if done != total:
            log.info("source %r: the listing held %d files, not the %d counted first", self.name, done, total)
            yield Progress(total=done, done=done)
        st.listed = 0
        yield from self._reconcile(st)
        st.prev, st.phase, st.page_token, st.incomplete = None, "changes", st.start_token, False
        yield st.checkpoint()

    def _reconcile(self, st: _State) -> Iterator[Item]:
        """After a re-crawl, what was known before it and not listed now is deleted; when the
        listing was incomplete, nothing is, and what it did not list stays known."""
        unseen = (st.prev or set()) - st.known
        if not st.incomplete:
            yield from self._confirm(sorted(unseen), st)
            return
        log.warning(
            "source %r: Drive could not search every shared drive (incompleteSearch); %d documents it "
            "did not list are kept, and files it left out are indexed when they next change",
            self.name,
            len(unseen),
        )
        st.known |= unseen
        yield Skipped(  # a folder skip over the whole source: a backfill's prune keeps what was indexed
            id=self.doc_id(""),
            title="every shared drive",
            reason="Drive could not search every shared drive (incompleteSearch): nothing it did not list "
            "is taken for deleted",
            folder=True,
        )

    def _narrowed(self, st: _State, q: str, listed: set[str], done: int) -> Generator[Item, None, int]:
        """After a crawl page said `incompleteSearch`: the files Drive left out, from My Drive's and
        each shared drive's own listings (complete, as Drive advises); the crawl is then complete
        unless one of them says incomplete too. Returns the files gone through."""
        log.info("source %r: Drive could not search every drive at once; listing each on its own", self.name)
        incomplete = False
        for corpus in [USER, *sorted(st.drives)]:
            listing = self.client.files(q, FILE_FIELDS, corpus)
            batch: list[dict[str, Any]] = []
            for f in [*listing, None]:
                if f is not None and f["id"] not in listed and f["id"] not in st.known:
                    listed.add(f["id"])
                    batch.append(f)
                if batch and (f is None or len(batch) >= self.config.page_size):
                    yield from self._process(batch, st, done)
                    done += len(batch)
                    yield Progress(done=done)
                    yield st.checkpoint()  # what is read is known: a resumed crawl does not read it again
                    batch = []
            incomplete = incomplete or listing.incomplete
        st.incomplete = incomplete
        return done

    def _folder_scope(self, st: _State) -> list[Skipped]:
        """A skip by policy for each `folders` entry that names no folder or shared drive of the tree
        (`kit.scope`); `NothingInScopeError` when none does: the crawl would find nothing in scope."""
        folders, drives = st.folders or {}, st.drives
        if not self.config.folders:
            return []
        paths = {folder_path(fid, folders, drives)[0] for fid in folders} | set(drives.values())
        paths.discard("")
        known = paths | set(folders) | set(drives)  # what `in_scope` compares an entry with: paths and ids
        matched = {e for e in self.config.folders if e.strip("/") in known}
        return check_scope(self, "folders", self.config.folders, matched, paths, "folder or shared drive")

    def _scope_skips(self, st: _State) -> list[Skipped]:
        """The `folders` skips of the tree as the change log has brought it so far (this run's new
        ones, to yield), checked before anything the tree decides is deleted. When no entry names
        anything there, Drive's folders are listed as they are now: an entry naming one of them (a
        folder created, or renamed back, that the log has yet to bring) lets the run go on;
        otherwise `NothingInScopeError`, the run failing before it deletes anything, its
        checkpoint still before the change that took the scope away."""
        try:
            skips = self._folder_scope(st)
        except NothingInScopeError:
            now = _State(start_token="")
            self._load_tree(now)
            skips = self._folder_scope(now)
        return self._new_skips(skips)

    def _new_skips(self, skips: list[Skipped]) -> list[Skipped]:
        """The `folders` skips this run has not yielded yet (each logged once: `kit.scope.warn`)."""
        new = [skip for skip in warn(self, skips) if skip.id not in self._told]
        self._told.update(skip.id for skip in new)
        return new

    def _listing(self, q: str, fields: str) -> CompleteListing:
        return CompleteListing(self.client, q, fields, self.config.shared_drives)

    def _count(self, q: str) -> int:
        """How many files the listing `q` holds (ids only: the total of a crawl's progress)."""
        return sum(1 for _ in self._listing(q, "id"))

    def _load_tree(self, st: _State, follow: bool = False) -> bool:
        """Shared drive names and every folder: paths and the folder filter come from them; with
        `follow`, first the start token of each drive's change log. False when Drive called the
        folder listing incomplete."""
        st.drives = self.client.drives() if self.config.shared_drives else {}
        if follow:
            st.drive_tokens = {drive: self.client.start_page_token(drive) for drive in st.drives}
        listing = self._listing(f"mimeType = '{FOLDER}' and trashed = false", _FOLDER_FIELDS)
        st.folders = {f["id"]: self._folder(f, (f.get("parents") or [None])[0]) for f in listing}
        return not listing.incomplete

    def _follow_changes(self, st: _State, replay: bool = True) -> Iterator[Item]:
        """The files whose read failed (read again first, with `replay`), then the user's change
        log, then each shared drive's own (a drive known from a checkpoint without its token is
        followed from now)."""
        if replay:
            yield from st.retries.replay(lambda native: self._read_again(native, st))
        for drive in st.drives.keys() - st.drive_tokens.keys():
            st.drive_tokens[drive] = self.client.start_page_token(drive)
        yield from self._follow(st, None)
        for drive in sorted(st.drive_tokens):
            if drive in st.drive_tokens:  # not left in a page read before
                yield from self._follow(st, drive)
        yield from self._membership(st)
        yield from self._outside_membership(st)
        yield from self._group_membership(st)

    def _membership(self, st: _State) -> Iterator[Item]:
        """Each shared drive's members, read again (one `permissions.list` per drive): Drive logs
        no change to a drive's files when its members change, yet every file's ACL holds them. A
        drive whose members differ from the checkpoint's has its indexed files' permissions read
        again (no content) and yielded as `AclUpdate`s."""
        for drive in sorted(st.drives):
            key = self._members_key(drive)
            if key is None or st.members.get(drive) == key:
                continue
            if drive in st.members:
                yield from self._relabel(st, drive)
            st.members[drive] = key
            yield st.checkpoint()

    def _outside_membership(self, st: _State) -> Iterator[Item]:
        """The members of each shared drive the reading identity is not a member of (or left) whose
        files are indexed through a direct share, with the drive's members in their ACL (Drive
        showed their sharing: `outside`). Drive answers a non-member's request for the drive's
        members "not found", so its first such file's sharing is read instead (one
        `permissions.list` per drive); when that differs from the checkpoint's, the drive's
        `outside` files have their sharing read again (no content), as `AclUpdate`s."""
        for native in [n for n, d in st.outside.items() if n not in st.known or d in st.drives]:
            del st.outside[native]
        by_drive: dict[str, list[str]] = {}
        for native, drive in sorted(st.outside.items()):
            by_drive.setdefault(drive, []).append(native)
        for drive in set(st.outside_members) - set(by_drive):
            del st.outside_members[drive]
        for drive, natives in sorted(by_drive.items()):
            key = self._sharing_key(natives)
            if key is None or st.outside_members.get(drive) == key:
                continue
            if drive in st.outside_members:
                log.info(
                    "source %r: the sharing of shared drive %s (not a member) changed; %d files take the new ACL",
                    self.name,
                    drive,
                    len(natives),
                )
                yield from self._reacl(st, natives)
            st.outside_members[drive] = key
            yield st.checkpoint()

    def _sharing_key(self, natives: list[str]) -> str | None:
        """A fingerprint of the sharing of the first of these files Drive shows it for (the id and
        who it lets read); None when none does (gone, or shown no more: their change logs say so)."""
        for native in natives:
            try:
                return native + ":" + ",".join(acl_of(self.client.permissions(native)).principals())
            except DriveApiError as err:
                if err.status not in (403, 404):
                    raise
        return None

    def _members_key(self, drive: str) -> str | None:
        """A fingerprint of who a shared drive's membership lets read; None when it cannot be read
        (the drive just went away, or the reading identity may not list them): nothing changes."""
        try:
            return ",".join(acl_of(self.client.permissions(drive)).principals())
        except DriveApiError as err:
            if err.status not in (403, 404):
                raise
            log.info("source %r: the members of shared drive %s cannot be read (%s)", self.name, drive, err)
            return None

    def _relabel(self, st: _State, drive: str) -> Iterator[Item]:
        """The current ACL of every indexed file of `drive` (its permissions, read concurrently)."""
        fields = "id,name,owners(emailAddress),driveId"
        listing = self.client.files(f"mimeType != '{FOLDER}' and trashed = false", fields, drive)
        files = [f for f in listing if f["id"] in st.known]
        log.info(
            "source %r: the members of shared drive %s changed; %d files take the new ACL",
            self.name,
            st.drives.get(drive, drive),
            len(files),
        )
        context = contextvars.copy_context()
        for f, perms in zip(files, self._pool.map(lambda f: context.copy().run(self._current, f), files)):
            if perms is not None:
                acl = self._acl(perms, f["id"])
                self._track(st, f["id"])
                yield AclUpdate(id=self.doc_id(f["id"]), acl=acl)
        yield from self._notices()

    def _group_membership(self, st: _State) -> Iterator[Item]:
        """Every group an indexed file names, its members read again (`_groups`): the files naming a
        group whose members differ from the ones their ACL took have their permissions read again
        (no content) and are yielded as `AclUpdate`s. A checkpoint that does not know which files
        name groups (`shared` None, version 1) has every indexed file's ACL read again once."""
        if st.shared is None:
            if not self.config.expand_groups:
                return  # nothing expands: the ACLs indexed are right; tracked once expansion is on
            log.info("source %r: reading the sharing of %d files again (Google Groups)", self.name, len(st.known))
            st.shared = {}
            yield from self._reacl(st, sorted(st.known))
            yield st.checkpoint()
            return
        for native in [n for n in st.shared if n not in st.known]:
            del st.shared[native]
        named = {g for gs in st.shared.values() for g in gs}
        changed = set()
        for group in sorted(named):
            key = self.groups.key(group)
            if st.groups.get(group, key) != key:
                changed.add(group)
            st.groups[group] = key
        for group in set(st.groups) - named:
            del st.groups[group]
        yield from self._notices()
        if changed:
            natives = sorted(n for n, gs in st.shared.items() if changed & set(gs))
            log.info(
                "source %r: the members of %s changed; %d files take the new ACL",
                self.name,
                ", ".join(sorted(changed)),
                len(natives),
            )
            yield from self._reacl(st, natives)
        yield st.checkpoint()

    def _reacl(self, st: _State, natives: list[str]) -> Iterator[Item]:
        """The current ACL of each of these indexed files (their permissions, read concurrently), as
        `AclUpdate`s; a file gone meanwhile is left to its change log."""
        context = contextvars.copy_context()
        for native, perms in zip(natives, self._pool.map(lambda n: context.copy().run(self._sharing, n), natives)):
            if perms is not None:
                acl = self._acl(perms, native)
                self._track(st, native)
                yield AclUpdate(id=self.doc_id(native), acl=acl)
        yield from self._notices()

    def _sharing(self, native: str) -> list[dict[str, Any]] | None:
        """A file's permissions now; None when it is gone or trashed (its change log says so)."""
        try:
            f = self.client.get_file(native, _SHARING_FIELDS)
        except DriveApiError as err:
            if err.status != 404:
                raise
            return None
        if f.get("trashed"):
            return None
        perms: list[dict[str, Any]] | None = f.get("permissions")
        return perms if perms is not None else self._current(f)

    def _track(self, st: _State, native: str) -> None:
        """Note the groups the ACL just computed for `native` named (and the fingerprint of each
        group's members it took, for a group not tracked yet), and whether it holds the members of
        a shared drive the reading identity is not a member of (`outside`: `_outside_membership`)."""
        with self._named_lock:
            groups = self._named.pop(native, None)
            drive = self._inherits.pop(native, None)
        if groups is None:
            return
        if drive is not None and drive not in st.drives:  # its members are not read by `_membership`
            st.outside[native] = drive
        else:
            st.outside.pop(native, None)
        if st.shared is None:
            return
        if groups:
            st.shared[native] = groups
            for group in groups:
                st.groups.setdefault(group, self.groups.key(group))
        else:
            st.shared.pop(native, None)

    def _notices(self) -> Iterator[Item]:
        """A skip by policy (the run stays ok) for each group found unreadable since the last call:
        it grants its address only, and `inlet status` lists it by name with the reason."""
        for group, reason in list(self.groups.unreadable.items()):
            if group not in self._reported:
                self._reported.add(group)
                yield Skipped(id=self.doc_id(f"group:{group}"), reason=reason, failed=False, title=group)

    def _current(self, f: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The file's permissions now; None when it is gone (its change log says so)."""
        try:
            return self._permissions(f)
        except DriveApiError as err:
            if err.status != 404:
                raise
            return None

    def _follow(self, st: _State, drive: str | None) -> Iterator[Item]:
        """One change log to its end: the user's (`drive` None) or a shared drive's."""
        what = "changes.list" if drive is None else f"changes.list of shared drive {drive}"
        pager = Pager(source=self.name, what=what, token=_token(st, drive))
        while (token := _token(st, drive)) is not None:
            try:
                page = self.client.list_changes(
                    token, self.config.page_size, FILE_FIELDS, self.config.shared_drives, drive
                )
            except DriveApiError as err:
                if drive is not None and err.status == 404:
                    yield from self._drive_gone(st, drive, err)
                    return
                if not _token_refused(err):
                    raise
                self._once("changes", err, f"{what} refused the start token of the re-crawl this run made")
                log.warning("source %r: %s token %s refused (%s); full re-crawl", self.name, what, token, err)
                yield from self._recrawl(st)
                pager = Pager(source=self.name, what=what, token=_token(st, drive))
                continue
            yield from self._apply(page.get("changes", []), st, drive)
            _set_token(st, drive, page.get("nextPageToken") or page.get("newStartPageToken") or token)
            yield st.checkpoint()
            if not pager.advance(page_token(page)):
                return

    def _once(self, listing: str, err: DriveApiError, again: str) -> None:
        """A refused page token restarts `listing` once a run; refused again, Drive is not
        refusing an old token but the request: the run fails with Drive's answer."""
        if listing in self._refused:
            raise DriveApiError(err.status, err.reason, f"{again} ({err.message}); not restarting it again")
        self._refused.add(listing)

    def _drive_gone(self, st: _State, drive: str, err: DriveApiError) -> Iterator[Item]:
        """A shared drive whose log answers 404 (deleted, or the user left it, before the user's log
        said so): dropped, and its documents deleted as a left drive's are; the other logs go on."""
        log.warning("source %r: shared drive %s is gone (%s); its documents are deleted", self.name, drive, err)
        st.drives.pop(drive, None)
        st.drive_tokens.pop(drive, None)
        st.members.pop(drive, None)
        yield from self._scope_skips(st)  # the drive `folders` named, gone: the run fails, deleting nothing
        yield from self._unlisted(st)
        yield st.checkpoint()

    def _recrawl(self, st: _State) -> Iterator[Item]:
        st.prev = (st.prev or set()) | st.known
        st.known = set()
        st.start_token = self.client.start_page_token()
        st.phase, st.page_token, st.folders = "crawl", None, None
        yield st.checkpoint()
        yield from self._crawl(st)

    # --- changes -----------------------------------------------------------------------------
    def _apply(self, changes: list[dict[str, Any]], st: _State, drive: str | None = None) -> Iterator[Item]:
        """A page of the log of `drive` (None: the user's)."""
        assert st.folders is not None
        files: dict[str, dict[str, Any]] = {}
        moved, left = self._drive_changes([c for c in changes if c.get("changeType") == "drive"], st)
        folders: list[tuple[str, dict[str, Any] | None]] = []  # (native, live) of the page's folders
        entries: list[tuple[str, dict[str, Any] | None]] = []  # (native, live) of its files
        for change in changes:
            if change.get("changeType", "file") != "file" or "fileId" not in change:
                continue
            if drive is None and change.get("driveId") in st.drive_tokens:
                continue  # that drive's own log has it
            native, f = change["fileId"], change.get("file")
            live = None if f is None or f.get("trashed") else f  # None: gone (a removal still readable has its file)
            if st.folders.get(native) == list(ROOT) and not (live and live.get("parents")):
                continue  # My Drive's root stays the end of paths, whatever Drive names it
            is_folder = native in st.folders or (f and f.get("mimeType") == FOLDER)
            (folders if is_folder else entries).append((native, live))
        reshaped = bool(moved) or left  # a drive renamed or gone: paths, and what `folders` names, change
        for native, live in folders:  # the tree first: the scope is checked on it before anything is deleted
            if live is None:
                reshaped = st.folders.pop(native, None) is not None or reshaped
            else:
                entry = self._folder(live, (live.get("parents") or [None])[0])  # its sharing: its files' paths
                if st.folders.get(native, entry) != entry:
                    moved.append(native)
                    reshaped = True
                st.folders[native] = entry
        if reshaped:
            yield from self._scope_skips(st)
        for native, live in entries:
            if live is None:
                files.pop(native, None)
                st.known.discard(native)
                st.retries.forget(native)
                yield Deletion(id=self.doc_id(native))
            else:
                files[native] = live
        for folder in moved:  # a renamed or moved folder (or drive) changes the path of everything below
            for f in self._children(folder, st):
                files.setdefault(f["id"], f)
        yield from self._process(list(files.values()), st)
        if left:
            yield from self._unlisted(st)

    def _drive_changes(self, changes: list[dict[str, Any]], st: _State) -> tuple[list[str], bool]:
        """Shared drives whose files must be read again (joined: Drive logs none of their files;
        renamed: their paths name it), and whether a known drive was left or deleted."""
        if not self.config.shared_drives:
            return [], False
        renamed, left = [], False
        for change in changes:
            drive_id, drive = change.get("driveId", ""), change.get("drive")
            if change.get("removed") or drive is None:
                left = st.drives.pop(drive_id, None) is not None or left
                st.drive_tokens.pop(drive_id, None)
            elif st.drives.get(drive_id) != drive["name"]:
                if drive_id not in st.drive_tokens:  # joined: its log from before its files are listed
                    st.drive_tokens[drive_id] = self.client.start_page_token(drive_id)
                st.drives[drive_id] = drive["name"]
                renamed.append(drive_id)
        return renamed, left

    def _unlisted(self, st: _State) -> Iterator[Item]:
        """After a shared drive was left (Drive names none of its files): known documents that the
        listing no longer holds are deleted, unless Drive calls the listing incomplete; those of a
        drive left that it still holds (shared with the reading identity directly) have their
        sharing read again (`AclUpdate`s), so their drive's members are followed (`outside`)."""
        listing = self._listing(f"mimeType != '{FOLDER}' and trashed = false", "id,driveId")
        files = list(listing)
        live = {f["id"] for f in files}
        kept = [
            f["id"]
            for f in files
            if f.get("driveId") and f["driveId"] not in st.drives and f["id"] in st.known and f["id"] not in st.outside
        ]
        yield from self._reacl(st, kept)
        if listing.incomplete:
            log.warning(
                "source %r: a shared drive was left, but Drive could not search every drive "
                "(incompleteSearch): its documents stay until a complete re-crawl",
                self.name,
            )
            return
        for native in sorted(st.known - live):
            st.known.discard(native)
            yield Deletion(id=self.doc_id(native))

    def _children(self, folder: str, st: _State) -> list[dict[str, Any]]:
        out, frontier = [], [folder]
        while frontier:
            listing = self._listing(f"'{frontier.pop()}' in parents and trashed = false", FILE_FIELDS)
            for f in listing:
                (frontier.append(f["id"]) if f["mimeType"] == FOLDER else out.append(f))
            if listing.incomplete:
                log.warning("source %r: the files below %s may be listed in part (incompleteSearch)", self.name, folder)
        return out

    # --- files -------------------------------------------------------------------------------
    def _process(self, files: list[dict[str, Any]], st: _State, counted: int | None = None) -> Iterator[Item]:
        """Documents (read concurrently, yielded in listing order) for in-scope files; with `counted`
        (files of the crawl gone through before these), `Progress` after each file."""
        jobs = []
        for f in files:
            parent = (f.get("parents") or [None])[0]
            self._ensure_folders(parent, st)
            path, ancestors = folder_path(parent, st.folders or {}, st.drives)
            if not in_scope(path, ancestors, self.config.folders):
                if f["id"] in st.known:
                    st.known.discard(f["id"])
                    yield Deletion(id=self.doc_id(f["id"]))
                continue
            jobs.append(f)
        if counted is not None:
            counted += len(files) - len(jobs)  # out of scope: gone through already
        context = contextvars.copy_context()  # each read in the pool sees the run's (its retries end when it stops)
        for item in self._pool.map(lambda f: context.copy().run(self._read, f, st), jobs):
            native = item.id.split(":", 1)[1]
            st.retries.note(native, item)  # a failed read is read again by every later run
            self._track(st, native)
            if isinstance(item, Deletion) and st.shared is not None:
                st.shared.pop(native, None)
            if isinstance(item, Document):
                st.known.add(native)
            elif isinstance(item, Deletion) or (not item.failed and native in st.known):
                st.known.discard(native)
                if isinstance(item, Skipped):
                    yield Deletion(id=item.id)
            yield item
            if counted is not None:
                counted += 1
                yield Progress(done=counted)
        yield from self._notices()

    def _read_again(self, native: str, st: _State) -> Iterator[Item]:
        """One file whose read failed, read as the change log would have it now (noted by `_process`)."""
        try:
            f = self.client.get_file(native, FILE_FIELDS)
        except DriveApiError as err:
            if err.status != 404:
                before = st.retries.failed[native]
                reason = f"{before.title}: {err.reason or err.status}: {err.message}"
                yield st.retries.note(native, Skipped(id=before.id, title=before.title, reason=reason))
                return
            f = {"trashed": True}  # gone, as a trashed file is
        if f.get("trashed"):
            st.known.discard(native)
            yield st.retries.note(native, Deletion(id=self.doc_id(native)))
            return
        yield from self._process([f], st)

    def _ensure_folders(self, parent: str | None, st: _State) -> None:
        """Fetch ancestors missing from the folder map: folders created after the map was built,
        and My Drive's root folder, which no listing names (the parent of the items at the top of
        My Drive), kept as `ROOT`. Drive answers without parents every item whose parent the
        reader may not see, a folder "Shared with me" too: only the folder `files.get("root")`
        names is the root (`_root`); any other is a folder at the top of its path."""
        assert st.folders is not None
        while parent and parent not in st.folders and parent not in st.drives:
            try:
                f = self.client.get_file(parent, _FOLDER_FIELDS)
                above = (f.get("parents") or [None])[0]
                root = not (above or f.get("driveId")) and parent == self._root(st)
            except DriveApiError:
                return
            st.folders[parent] = list(ROOT) if root else self._folder(f, above)
            parent = above

    def _root(self, st: _State) -> str:
        """The id of My Drive's root folder (`files.get("root")`, asked once, kept as `root`)."""
        if st.root is None:
            st.root = str(self.client.get_file("root", "id")["id"])
        return st.root

    def _misplaced_roots(self, st: _State) -> Iterator[Item]:
        """A checkpoint from before My Drive's root was asked for (`root` unset) may keep a folder
        "Shared with me" met without parents as the root (`ROOT`), its files indexed with no path:
        each such folder is named, and its files read again, once."""
        roots = [fid for fid, entry in (st.folders or {}).items() if entry == list(ROOT)]
        if st.root is not None or not roots:
            return
        try:
            misplaced = [fid for fid in roots if fid != self._root(st)]
        except DriveApiError as err:
            log.info("source %r: Drive did not name My Drive's root folder (%s)", self.name, err)
            return
        files: dict[str, dict[str, Any]] = {}
        for folder in misplaced:
            assert st.folders is not None
            del st.folders[folder]
            self._ensure_folders(folder, st)
            for f in self._children(folder, st):
                files.setdefault(f["id"], f)
        yield from self._process(list(files.values()), st)
        yield st.checkpoint()

    def _read_folder_sharing(self, st: _State) -> None:
        """A folder map from before it kept the folders' sharing takes it (one folder listing, once)."""
        folders = st.folders or {}
        old = [fid for fid, entry in folders.items() if len(entry) == 2 and entry[0] is not None]
        if not old:
            return
        fields = "id,permissions(type,role,emailAddress,domain,deleted,allowFileDiscovery)"
        shared = {f["id"]: f for f in self._listing(f"mimeType = '{FOLDER}' and trashed = false", fields)}
        for fid in old:
            name, parent = folders[fid]
            folders[fid] = self._folder({"name": name, **shared.get(fid, {})}, parent)

    def _folder(self, f: dict[str, Any], parent: str | None) -> list[Any]:
        return folder_entry(f, parent, self.config.link_shares)

    def _read(self, f: dict[str, Any], st: _State) -> Document | Deletion | Skipped:
        doc_id = self.doc_id(f["id"])
        reason = skip_reason(f, self.config.max_file_bytes)
        if reason:
            return Skipped(id=doc_id, reason=f"{f.get('name')}: {reason}", failed=False, title=f.get("name"))
        perms: list[dict[str, Any]] | None = f.get("permissions")
        try:  # the permissions first: a kept version takes them when the text cannot be read
            perms = perms if perms is not None else self._permissions(f)
            text = fetch_text(self.client, f, self.config.doc_format, self.config.max_file_bytes)
            self._outage.read()
        except RetriableError as exc:
            reason = self._outage.failed(str(f.get("name")), exc)  # raises when Drive looks down
            acl = self._acl(perms, f["id"]) if perms is not None else None
            return Skipped(id=doc_id, reason=reason, title=f.get("name"), acl=acl)
        except DriveApiError as err:
            if err.status == 404:
                return Deletion(id=doc_id)  # deleted while we were syncing
            policy = err.reason in _SKIP_REASONS
            return Skipped(
                id=doc_id,
                reason=f"{f.get('name')}: {err.reason or err.status}: {err.message}",
                failed=not policy,
                title=f.get("name"),
                acl=self._acl(perms, f["id"]) if perms is not None else None,
            )
        except TooLarge as exc:
            return Skipped(id=doc_id, reason=f"{f.get('name')}: {exc}", failed=False, title=f.get("name"))
        except ItemError as exc:
            acl = self._acl(perms, f["id"]) if perms is not None else None
            return Skipped(id=doc_id, reason=str(exc), failed=exc.failed, title=f.get("name"), acl=acl)
        return self._document(f, text, perms, st)

    def _acl(self, permissions: list[dict[str, Any]], native: str) -> ACL:
        """The file's ACL, its groups expanded to their members; the groups it names are noted for
        `_track` (this runs on the pool's threads)."""
        acl = acl_of(permissions, self.config.link_shares, self.groups.expand)
        with self._named_lock:
            self._named[native] = named_groups(permissions)
        return acl

    def _permissions(self, f: dict[str, Any]) -> list[dict[str, Any]]:
        """The file's sharing; for a file the reader may only view (Drive shows the sharing to who
        may share), its owners and the reader (`_reading_identity`), as user permissions."""
        try:
            perms = self.client.permissions(f["id"])
        except DriveApiError as err:
            if err.status != 403 or err.reason != "insufficientFilePermissions":
                raise
        else:
            with self._named_lock:  # a shared drive's file: the drive's members are among them
                self._inherits[f["id"]] = f.get("driveId") or None
            return perms
        with self._named_lock:
            self._inherits[f["id"]] = None
        readers = [o.get("emailAddress") for o in f.get("owners") or []] + [self._reading_identity()]
        log.info(
            "source %r: %s: its sharing is shown only to who may share it; indexed for %s",
            self.name,
            f.get("name"),
            ", ".join(r for r in readers if r) or "admins only",
        )
        return [{"type": "user", "role": "reader", "emailAddress": r} for r in readers if r]

    def _reading_identity(self) -> str:
        """Who the credentials read as: `subject`, the service account, or the authorized user, whom
        only Drive can name (`about.get`, asked once a run, by the first file that needs it). When
        Drive does not answer that, "" for the rest of the run (one warning): view-only files are
        indexed for their owners only, as if no reader were known, and no file asks again."""
        with self._reader_lock:
            if self._reader is None:
                client = self.client
                try:
                    self._reader = self._acting_as or client.user_email()
                except (RetriableError, DriveApiError) as exc:
                    log.warning(
                        "source %r: Drive did not say whom the credentials read as (%s); files shared "
                        "view-only with them are indexed for their owners only this run",
                        self.name,
                        exc,
                    )
                    self._reader = ""
            return self._reader

    def _document(self, f: dict[str, Any], text: str, perms: list[dict[str, Any]], st: _State) -> Document:
        """The file as a document; its folder path and shared drive are named only as far as every
        reader of the file may open them (`shown_location`)."""
        owner = owner_of(f)
        acl = self._acl(perms, f["id"])
        parent = (f.get("parents") or [None])[0]
        path, drive = shown_location(parent, st.folders or {}, st.drives, st.members, acl)
        metadata: dict[str, Any] = {"mime_type": f["mimeType"], "folder": path, "owner": owner}
        if drive is not None:
            metadata["shared_drive"] = drive
        return self.document(
            f["id"],
            title=f.get("name", ""),
            text=text,
            url=f.get("webViewLink", ""),
            author=owner,
            created_at=f.get("createdTime"),
            updated_at=f.get("modifiedTime"),
            metadata=metadata,
            acl=acl,
        )

    # --- reconciliation ----------------------------------------------------------------------
    def live_ids(self) -> list[str]:
        """Ids of every in-scope file the policy would index (a listing, no downloads);
        `IncompleteListingError` when Drive calls a listing incomplete."""
        st = _State(start_token="")
        complete = self._load_tree(st)
        self._folder_scope(st)  # a listing that matches no folder would prune everything
        listing = self._listing(f"mimeType != '{FOLDER}' and trashed = false", "id,name,mimeType,parents,size")
        out = []
        for f in listing:
            parent = (f.get("parents") or [None])[0]
            path, ancestors = folder_path(parent, st.folders or {}, st.drives)
            if in_scope(path, ancestors, self.config.folders) and not skip_reason(f, self.config.max_file_bytes):
                out.append(self.doc_id(f["id"]))
        if listing.incomplete or not complete:
            raise IncompleteListingError(
                f"source {self.name!r}: Drive could not search every shared drive (incompleteSearch), so "
                "the listing may miss files; nothing is taken for deleted until a listing is complete"
            )
        return out


def _token_refused(err: DriveApiError) -> bool:
    """Whether Drive refused a page token (expired, invalidated): 404, 410, or 400 about `pageToken`
    (or `invalid` naming no parameter). Any other 400 (a parameter refused) would be refused again
    after a re-crawl."""
    if err.status in (404, 410):
        return True
    return err.status == 400 and (err.location == "pageToken" or (not err.location and err.reason == "invalid"))


def _token(st: _State, drive: str | None) -> str | None:
    """Where the log of `drive` (None: the user's) is to be read from; None once the drive is left."""
    return (st.page_token or st.start_token) if drive is None else st.drive_tokens.get(drive)


def _set_token(st: _State, drive: str | None, token: str) -> None:
    if drive is None:
        st.page_token = token
    elif drive in st.drive_tokens:
        st.drive_tokens[drive] = token
