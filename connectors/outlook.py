"""Outlook mail through Microsoft Graph: one document per message, synced folder by folder with delta.

For each configured mailbox, the mail folders to sync (all but Junk Email, Deleted Items and
Drafts by default) are each followed with their own `messages/delta` round. The checkpoint keeps,
per folder, the link to resume from (`@odata.nextLink` mid-round, `@odata.deltaLink` between
rounds) and the ids of the messages the folder holds, so that:

- an interrupted backfill resumes mid-folder, losing and repeating nothing;
- a 410 `SyncStateNotFound` re-syncs that folder from scratch and deletes what did not come back;
- a folder that vanishes (or becomes excluded) has its messages deleted, and so has a mailbox
  the config no longer lists; a configured `folders` entry that matches no folder of a mailbox is a
  skip by policy of each run, and one that matches none in any mailbox read makes the run (and
  `live_ids`) raise `NothingInScopeError` before any folder is dropped (`kit.scope`);
- a folder whose path changed (renamed, or moved) is listed again whole, like a 410, so every
  message's document names its folder as it is now;
- a mailbox whose readers changed (`acl_users`: checkpoint key `acl`) has its folders listed again
  whole, like a 410, so every message gets the new ACL (the index re-embeds nothing);
- a mailbox Graph refuses (403: `Mail.Read` or the app's consent withdrawn, an application access
  policy) or does not find (404) is a failed skip naming it and what to grant, its documents kept;
  when every mailbox is unavailable and one at least refused, the run fails with
  `AccessRefusedError` before reading anything (`kit.refusals`); `live_ids` raises
  `IncompleteListingError` while any mailbox is unavailable (none of its messages is taken for gone).

A message whose attachments could not be listed or read (a 4xx, or a server error the retries did
not clear) is indexed without them, with a failed skip naming it by its subject, and remembered in
its mailbox's checkpoint (`kit.retries.Retries`): every later full run reads it again by id first,
until its attachments come (or the message is gone or out of the synced folders). Only when
`kit.retries.OUTAGE_AFTER` messages in a row keep answering server errors is Graph taken for down:
the run fails, naming the last call, and the next resumes from its checkpoint (`kit.retries.Outage`).

Attachments are listed without their bytes; a file attachment is read alone, only when inlet reads
its type and it is within `max_attachment_bytes`, so a large one is never downloaded. An attached mail
(an item attachment) is read with its item expanded and indexed as a text attachment, as the mail
archive does an attached `message/rfc822`; a reference attachment (a link to a cloud file) is a name.
A message's attachments are read once a backfill: what a pass with `since` (the recent pass) built of a
message with attachments is kept in the connector (`_Built`, `BUILT_CHARS` of text at most), and a later
pass of the same connector (the full pass) yields it as built then when the message is unchanged since
(same `lastModifiedDateTime` and folder), without listing or reading its attachments again.

Ids are immutable ids (`Prefer: IdType="ImmutableId"`), so a message moved between folders keeps
its document id; an `@removed` entry is checked with one GET before it becomes a `Deletion`, so a
message moved to another synced folder is never deleted, whichever folder is read first.

Progress: every mailbox's folders are listed before any message is read, and the folders' own
`totalItemCount` gives the total, in messages, of the rounds that read a folder whole (a first sync,
a backfill, a folder new to the sync; a resumed round counts what its saved ids do not hold yet). A
delta round of changes has no count, so an incremental sync reports no total; nor does a backfill
with `--since`, whose filter the folders' counts ignore. The total is corrected to what was read
when the last whole round ends.

A change notification asks for a scoped run (`load_scope`): only the notified folders' delta
rounds, from their own links in the checkpoint, with the folder list the last full run saved (no
folder listing); other folders' entries are left as they were. Only when a message leaves a notified
folder for one that list does not hold (created since) are the mailbox's folders listed: a new folder
the config includes is synced by that run, after the notified ones, so the message is not deleted.

Each folder a sync reads has a Graph subscription (`events`, with `notifications_url`): those listed
when the daemon starts, then those of each checkpoint a run saves (`checkpoint_resources`), so a
folder a run found new (either way) is subscribed to, and one it dropped is not, without a restart.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field, field_validator, model_validator

from .base import Interval, ServiceUrl
from .events import EventSource
from .extract import kind_of
from .mail import BODY_CAP, DEFAULT_MAX_ATTACHMENT_BYTES, DEFAULT_MAX_BODY_BYTES, MailAttachment, MailMessage
from .mail import attached_message, message_document
from .kit import CheckpointModel, Pager, RetryPolicy, next_link
from .kit.graph_source import GraphConnector, GraphSourceConfig
from .kit.graph_webhooks import Resource
from .kit.graph import GraphClient, GraphError, refusal
from .kit.refusals import Refusals
from .kit.retries import Outage, Retries
from .kit.scope import nothing_in_scope, unmatched, warn
from .model import ACL, Deletion, Document, Item, Progress, Skipped, normal_user
from inlet.errors import IncompleteListingError, RetriableError

log = logging.getLogger(__name__)

SELECT = (
    "subject,body,from,sender,toRecipients,ccRecipients,receivedDateTime,sentDateTime,"
    "lastModifiedDateTime,webLink,conversationId,hasAttachments,parentFolderId,internetMessageId"
)
ATTACHMENT_FIELDS = "id,name,contentType,size,isInline"  # no contentBytes; each entry keeps its @odata.type
EXPAND_ITEM = "microsoft.graph.itemattachment/item"  # an item attachment with the message it holds
REFUSED_ADVICE = (
    "check that the app still holds the application permission Mail.Read with admin consent, and that no "
    "application access policy leaves these mailboxes out"
)
BUILT_CHARS = 32_000_000  # text of the messages a recent pass built that the full pass may reuse (`_Built`)
WELL_KNOWN = frozenset(
    {
        "inbox",
        "sentitems",
        "deleteditems",
        "junkemail",
        "drafts",
        "archive",
        "outbox",
        "conversationhistory",
        "clutter",
        "scheduled",
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
    }
)


class OutlookConfig(GraphSourceConfig):
    MAX_SUBSCRIPTION_LIFETIME = (10080, "Outlook mail (7 days)")
    mailboxes: list[str] = Field(min_length=1, description="mailbox addresses (or user ids) to sync")
    notifications_url: ServiceUrl | None = Field(
        None,
        description="public HTTPS URL of this source's hook "
        "(.../hooks/outlook/NAME): Graph change notifications (daemon)",
    )
    subscription_lifetime: Interval = Field(
        "2d", description="how long each Graph subscription lasts before renewal (Graph allows up to 7 days for mail)"
    )
    folders: list[str] = Field(
        ["*"],
        description="folder paths (globs, e.g. 'Inbox/*') or well-known "
        "names to sync; a folder brings its child folders",
    )
    exclude_folders: list[str] = Field(
        ["junkemail", "deleteditems", "drafts"], description="folder paths or well-known names never synced"
    )
    acl_users: list[str] | dict[str, list[str]] = Field(
        default_factory=list, description="extra readers: a list for every mailbox, or {mailbox: [users]}"
    )
    max_attachment_bytes: int = Field(DEFAULT_MAX_ATTACHMENT_BYTES, description="larger attachments are skipped")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description=BODY_CAP)
    attachments: bool = Field(
        True, description="read attachments (one call per message with any, one more per attachment read)"
    )
    page_size: int = Field(100, ge=1, le=1000, description="messages per delta page")

    @field_validator("mailboxes")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [normal_user(v) for v in values]

    @model_validator(mode="after")
    def _acl_mailboxes(self) -> "OutlookConfig":
        """`acl_users` by mailbox names mailboxes as `mailboxes` does (case aside), and only those."""
        if isinstance(self.acl_users, dict):
            self.acl_users = {normal_user(k): v for k, v in self.acl_users.items()}
            unknown = sorted(set(self.acl_users) - set(self.mailboxes))
            if unknown:
                raise ValueError(f"acl_users names mailboxes that mailboxes does not list: {', '.join(unknown)}")
        return self


class _State(CheckpointModel):
    """The checkpoint: per mailbox, the well-known folder ids, per folder {path, ids, link, whole,
    resync}, and the messages whose attachments failed (`retries`, when any). Folder entries and
    `retries` are replaced, their lists never mutated, so `dump` copies them shallowly."""

    since: str | None = None
    mailboxes: dict[str, dict[str, Any]] = {}

    def dump(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "since": self.since,
            "mailboxes": {
                name: {
                    "wellknown": dict(box.get("wellknown", {})),
                    "folders": {fid: dict(entry) for fid, entry in box.get("folders", {}).items()},
                    **({"retries": box["retries"]} if box.get("retries") else {}),
                    **({"acl": box["acl"]} if box.get("acl") else {}),
                    **({"owner": box["owner"]} if box.get("owner") else {}),
                }
                for name, box in self.mailboxes.items()
            },
        }


@dataclass
class _Folder:
    id: str
    path: str
    ancestors: list[tuple[str, str]] = field(default_factory=list)  # (id, path) from the root
    items: int = 0  # its totalItemCount


@dataclass
class _Built:
    """Messages with attachments a pass with `since` (a backfill's recent pass) built, for the later
    passes of the same connector (the full pass): one unchanged since (same `lastModifiedDateTime`,
    same folder path) is yielded as built then, its attachments not read again. Each is recalled
    once (then forgotten); past `BUILT_CHARS` of text in all, no more are kept."""

    items: dict[tuple[str, str], tuple[str, str, list[Item]]] = field(default_factory=dict)
    chars: int = 0

    def keep(self, mailbox: str, item: dict[str, Any], path: str, built: list[Item], document: Document) -> None:
        modified = item.get("lastModifiedDateTime")
        if modified and self.chars + len(document.text) <= BUILT_CHARS:
            self.items[(mailbox, item["id"])] = (str(modified), path, built)
            self.chars += len(document.text)

    def recall(self, mailbox: str, item: dict[str, Any], path: str) -> list[Item] | None:
        """What was built of the message, when it is unchanged since; None otherwise."""
        found = self.items.pop((mailbox, item.get("id") or ""), None)
        if found is None or found[:2] != (item.get("lastModifiedDateTime"), path):
            return None
        return found[2]


@dataclass
class _Tally:
    """Messages the whole-folder rounds of a run will read (None: no total is known) and have read."""

    total: int | None = 0
    done: int = 0


class OutlookConnector(GraphConnector[OutlookConfig]):
    """Mail of the configured mailboxes (application permission Mail.Read)."""

    type = "outlook"
    Config = OutlookConfig
    user_agent = "inlet-outlook/0.1"
    permissions = ((r"^/users/[^/]+$", "User.Read.All"), (r"^/users/", "Mail.Read"))  # docs/connectors/outlook.md
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)

    def __init__(
        self,
        config: OutlookConfig,
        env: Any = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, env, transport=transport, policy=RetryPolicy(cap=60.0, jitter=0.0, sleep=sleep))
        self.prefer_headers = {"Prefer": f'odata.maxpagesize={config.page_size}, IdType="ImmutableId"'}
        self.built = _Built()  # what a recent pass read, for the full pass after it

    def load(self, checkpoint: dict[str, Any] | None, *, since: dt.datetime | None = None) -> Iterator[Item]:
        state = _State.load(checkpoint, source=self.name) or _fresh_state(since)
        yield from self.with_client(lambda client: self._mailboxes(client, state))
        yield state.checkpoint()

    def _mailboxes(self, client: GraphClient, state: _State) -> Iterator[Item]:
        for gone in [m for m in state.mailboxes if m not in self.config.mailboxes]:
            box = state.mailboxes.pop(gone)
            log.info("source %s: mailbox %s is no longer synced", self.name, gone)
            held = {
                m
                for entry in box.get("folders", {}).values()
                for m in [*entry.get("ids", []), *entry.get("resync", [])]
            }
            for mid in sorted(held):
                yield Deletion(id=self.doc_id(mid))
            yield state.checkpoint()
        tally, outage = _Tally(), Outage(self.name)
        syncs = [_MailboxSync(self, client, mailbox, state, tally, outage) for mailbox in self.config.mailboxes]
        refusals = Refusals(self.name, "mailbox", REFUSED_ADVICE)
        for sync in syncs:
            sync.list_folders()
            if isinstance(sync.folders, GraphError):
                refusals.skip(sync.mailbox, sync.unavailable(), refused=sync.folders.refused)
            else:
                refusals.readable(sync.mailbox)
        refusals.check()  # every mailbox unavailable, one refused at least: the run fails, reading nothing
        self._something_in_scope(syncs)
        if tally.total and not state.since:
            yield Progress(total=tally.total, done=0, unit="messages")
        else:
            tally.total = None
        for sync in syncs:
            yield from sync.run()
        if tally.total is not None and tally.done != tally.total:
            yield Progress(total=tally.done, done=tally.done)

    def load_scope(self, checkpoint: dict[str, Any], scope: frozenset[str]) -> Iterator[Item]:
        """Only the delta rounds of the folders (ids) in `scope`; all of them when one is unknown."""
        state = _State.load(checkpoint, source=self.name)
        boxes = state.mailboxes if state is not None else {}
        targets = {
            mailbox: [fid for fid in sorted(scope) if fid in boxes.get(mailbox, {}).get("folders", {})]
            for mailbox in self.config.mailboxes
        }
        if state is None or sum(map(len, targets.values())) < len(scope):
            yield from self.load(checkpoint)  # a folder the last full run did not sync: list them all
            return
        outage = Outage(self.name)
        yield from self.with_client(
            lambda client: (
                item
                for mailbox, folder_ids in targets.items()
                if folder_ids
                for item in _MailboxSync(self, client, mailbox, state, outage=outage).run_folders(folder_ids)
            )
        )
        yield state.checkpoint()

    def live_ids(self) -> Iterator[str]:
        """Every message id in the synced folders: one id-only delta round per folder, for prune."""
        yield from self.with_client(self._listed_ids)

    def _listed_ids(self, client: GraphClient) -> Iterator[str]:
        syncs = [_MailboxSync(self, client, mailbox, _fresh_state(None)) for mailbox in self.config.mailboxes]
        for sync in syncs:
            sync.folders = sync.readable_folders()
        self._something_in_scope(syncs)
        for sync in syncs:
            yield from sync.live_ids()

    def _something_in_scope(self, syncs: list["_MailboxSync"]) -> None:
        """`NothingInScopeError` when the `folders` entries match no folder of any mailbox that could
        be read (`kit.scope`): the run would read nothing and drop every folder it synced."""
        readable = [s for s in syncs if isinstance(s.folders, list)]
        entries = set(self.config.folders)
        if readable and all(len(s.unmatched) == len(entries) for s in readable):
            raise nothing_in_scope(self.name, [skip for s in readable for skip in s.unmatched])

    def synced_folders(self, client: GraphClient) -> list[tuple[str, "_Folder"]]:
        """(mailbox, folder) of every folder a sync reads (unavailable mailboxes left out)."""
        found = []
        for mailbox in self.config.mailboxes:
            try:
                folders = _MailboxSync(self, client, mailbox, _fresh_state(None))._synced_folders()
            except GraphError as exc:
                if exc.status not in (403, 404):
                    raise
                continue
            found += [(mailbox, f) for f in folders]
        return found

    def events(self) -> EventSource | None:
        return self.webhooks(
            self.folder_resources,
            "created,updated,deleted",
            what="subscription for folder",
            watched=self.checkpoint_resources,
        )

    def folder_resources(self, client: GraphClient) -> dict[str, str]:
        """{folder id: its messages' resource path} of every folder a sync reads (a subscription each)."""
        return {f.id: _messages_of(mailbox, f.id, f.path) for mailbox, f in self.synced_folders(client)}

    def checkpoint_resources(self, checkpoint: dict[str, Any]) -> dict[str, str]:
        """The same, of the folders a checkpoint says the runs sync (no call): a folder a run found
        new (a scheduled sync, or an event run a message moved into it) gets its subscription."""
        state = _State.load(checkpoint, source=self.name)
        boxes = state.mailboxes if state is not None else {}
        return {
            folder: _messages_of(mailbox, folder, entry.get("path", ""))
            for mailbox in self.config.mailboxes
            for folder, entry in boxes.get(mailbox, {}).get("folders", {}).items()
        }

    def acl_for(self, mailbox: str, owner: str | None = None) -> ACL:
        """The mailbox's readers: its owner's address (`owner`, for a mailbox named by user id) and
        `acl_users`."""
        extra = self.config.acl_users
        users = extra.get(mailbox, []) if isinstance(extra, dict) else extra
        return ACL(users=[owner or mailbox, *users])


def _messages_of(mailbox: str, folder: str, path: str) -> Resource:
    """The Graph resource of a folder's messages (what a subscription watches), labelled by the
    mailbox and the folder's path (`a@b.com/Inbox/Projects`), else its id."""
    return Resource(f"/users/{mailbox}/mailFolders('{folder}')/messages", f"{mailbox}/{path or folder}")


def _fresh_state(since: dt.datetime | None) -> _State:
    return _State(since=_iso(since) if since else None)


def _list_again(entry: dict[str, Any]) -> None:
    """The folder's next round reads it whole, as after a 410 (what does not come back is deleted)."""
    entry["resync"] = sorted(set(entry.get("resync", [])) | set(entry.get("ids", [])))
    entry["ids"] = []
    entry.pop("link", None)


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _MailboxSync:
    """One pass over one mailbox: folders, then each folder's delta round."""

    def __init__(
        self,
        connector: OutlookConnector,
        client: GraphClient,
        mailbox: str,
        state: _State,
        tally: _Tally | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.c = connector
        self.tally = tally or _Tally(total=None)
        self.outage = outage or Outage(connector.name)  # the run's: messages in a row whose reads keep failing
        self.client = client
        self.mailbox = mailbox
        self.state = state
        self.box = state.mailboxes.setdefault(mailbox, {"wellknown": {}, "folders": {}})
        self.retries = Retries.model_validate(self.box.get("retries") or {})  # messages whose attachments failed
        self.user = f"/users/{quote(mailbox, safe='@')}"
        self.wanted: set[str] = set()
        self.folders: list[_Folder] | GraphError | None = None  # None: not listed yet
        self.owner: str | None = self.box.get("owner")  # the address of a mailbox named by user id
        self.found: list[_Folder] = []  # folders new since the last full run, met by a scoped run
        self.unmatched: list[Skipped] = []  # a skip by policy per `folders` entry that matches no folder here

    def list_folders(self) -> None:
        """The folders to sync, and the messages their whole rounds will read added to the tally."""
        try:
            self.folders = self._synced_folders()
            if "@" not in self.mailbox:  # a user id: its documents are for the address its owner signs in with
                user = self.client.get(self.user, {"$select": "mail,userPrincipalName"})
                owner = str(user.get("mail") or user.get("userPrincipalName") or self.mailbox)
                self.owner = self.box["owner"] = normal_user(owner)
        except GraphError as exc:  # the mailbox (or, named by id, its owner) cannot be read: a named skip
            if exc.status not in (403, 404):
                raise
            self.folders = exc
            return
        self._relabel()
        self._repath(self.folders)
        for folder in self.folders:
            entry = self.box["folders"].get(folder.id, {})
            if self.tally.total is not None and (not entry.get("link") or entry.get("whole")):
                self.tally.total += max(folder.items - len(entry.get("ids", [])), 0)

    def run(self) -> Iterator[Item]:
        if self.folders is None:
            self.list_folders()
        if isinstance(self.folders, GraphError):
            log.warning("source %s: %s", self.c.name, self.unavailable())
            yield Skipped(id=self.c.doc_id(f"mailbox:{self.mailbox}"), reason=self.unavailable())
            return
        yield from warn(self.c, self.unmatched)
        wanted = self.folders or []
        self.wanted = {f.id for f in wanted}
        by_id = {f.id: f for f in wanted}
        yield from self.retries.replay(lambda mid: self._read_again(mid, by_id))
        self._keep_retries()  # the replay forgets, unnoted, what left the synced folders
        yield from self._drop_folders()
        for folder in wanted:
            yield from self._sync_folder(folder)

    def unavailable(self) -> str:
        """Why the mailbox cannot be read (its listing's error), and what to grant when refused."""
        assert isinstance(self.folders, GraphError)
        return refusal(f"mailbox {self.mailbox}", self.folders, self.c.permission(self.folders.call), "unavailable")

    def _relabel(self) -> None:
        """When the mailbox's readers changed, every folder is listed again whole (as after a 410)."""
        key = ",".join(self.c.acl_for(self.mailbox, self.owner).users)
        if self.box.get("acl", key) != key:
            log.info("source %s: the readers of %s changed; listing its folders again", self.c.name, self.mailbox)
            for entry in self.box["folders"].values():
                _list_again(entry)
        self.box["acl"] = key

    def _repath(self, folders: list[_Folder]) -> None:
        """A folder whose path changed (it, or a folder above it, was renamed or moved) is listed again
        whole: each of its documents says which folder it is in."""
        for folder in folders:
            entry = self.box["folders"].get(folder.id)
            if entry and entry.get("path", folder.path) != folder.path:
                log.info("source %s: folder %s of %s is now %s", self.c.name, entry["path"], self.mailbox, folder.path)
                _list_again(entry)

    def run_folders(self, folder_ids: list[str]) -> Iterator[Item]:
        """Only these folders' delta rounds (a scoped run), against the folders the last full run saved."""
        self.wanted = set(self.box["folders"])
        for fid in folder_ids:
            yield from self._sync_folder(_Folder(fid, self.box["folders"][fid].get("path", "")))
        while self.found:
            yield from self._sync_folder(self.found.pop(0))

    def readable_folders(self) -> list[_Folder] | GraphError:
        """`_synced_folders`, or the error of a mailbox that cannot be read (403, 404)."""
        try:
            return self._synced_folders()
        except GraphError as exc:
            if exc.status not in (403, 404):
                raise
            return exc

    def live_ids(self) -> Iterator[str]:
        wanted = self.folders if self.folders is not None else self.readable_folders()
        if isinstance(wanted, GraphError):  # an unavailable mailbox proves nothing gone: keep its documents
            self.folders = wanted
            raise IncompleteListingError(f"source {self.c.name!r}: {self.unavailable()}, so no deletion is decided")
        for folder in wanted:
            url, params = self._first_request(folder)
            params["$select"] = "id"
            for item in self._pages(url, params, self.c.prefer_headers):
                if "@removed" not in item:
                    yield self.c.doc_id(item["id"])

    # --- folders ------------------------------------------------------------------------------
    def _synced_folders(self) -> list[_Folder]:
        """The mailbox's folders the config includes (GraphError 403/404: mailbox unavailable)."""
        folders = self._folders()
        self._resolve_well_known()
        entries = self.c.config.folders if "folders" in self.c.config.model_fields_set else []
        matched = {p for p in entries if any(self._matches(f, [p]) for f in folders)}
        names = [f.path for f in folders] + sorted(WELL_KNOWN)
        what = f"folder of mailbox {self.mailbox}"
        self.unmatched = unmatched(self.c, "folders", entries, matched, names, what, f"mailbox:{self.mailbox}")
        return [f for f in folders if self._included(f)]

    def _folders(self) -> list[_Folder]:
        found: list[_Folder] = []

        def walk(url: str, parent: _Folder | None) -> None:
            for item in self._pages(url, {"$top": 100}):
                path = f"{parent.path}/{item['displayName']}" if parent else item["displayName"]
                ancestors = [*parent.ancestors, (parent.id, parent.path)] if parent else []
                folder = _Folder(item["id"], path, ancestors, int(item.get("totalItemCount") or 0))
                found.append(folder)
                if item.get("childFolderCount"):
                    walk(f"{self.user}/mailFolders/{quote(folder.id, safe='')}/childFolders", folder)

        walk(f"{self.user}/mailFolders", None)
        return found

    def _pages(
        self, url: str, params: dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        for page in self.client.pages(url, params, headers):
            yield from page.get("value", [])

    def _resolve_well_known(self) -> None:
        """Ids of the well-known names the config uses (Graph v1.0 folders do not carry them)."""
        known = self.box.setdefault("wellknown", {})
        for name in {p.lower() for p in [*self.c.config.folders, *self.c.config.exclude_folders]} & WELL_KNOWN:
            if name in known:
                continue
            try:
                known[name] = self.client.get(f"{self.user}/mailFolders/{name}", {"$select": "id"})["id"]
            except GraphError as exc:
                if exc.status != 404:
                    raise
                known[name] = None

    def _matches(self, folder: _Folder, patterns: list[str]) -> bool:
        known = self.box["wellknown"]
        lineage = [*folder.ancestors, (folder.id, folder.path)]
        for pattern in patterns:
            p = pattern.lower()
            if p in WELL_KNOWN:
                if known.get(p) and any(fid == known[p] for fid, _ in lineage):
                    return True
            elif any(fnmatch.fnmatchcase(path.lower(), p) for _, path in lineage):
                return True
        return False

    def _included(self, folder: _Folder) -> bool:
        cfg = self.c.config
        return self._matches(folder, cfg.folders) and not self._matches(folder, cfg.exclude_folders)

    def _drop_folders(self) -> Iterator[Item]:
        """Folders gone or no longer synced: their messages go, unless another synced folder has them."""
        for fid in [f for f in self.box["folders"] if f not in self.wanted]:
            entry = self.box["folders"].pop(fid)
            held = {m for e in self.box["folders"].values() for m in e.get("ids", [])}
            log.info("source %s: folder %s of %s no longer synced", self.c.name, entry.get("path"), self.mailbox)
            for mid in sorted((set(entry.get("ids", [])) | set(entry.get("resync", []))) - held):
                yield Deletion(id=self.c.doc_id(mid))
            yield self.state.checkpoint()

    # --- one folder ---------------------------------------------------------------------------
    def _first_request(self, folder: _Folder) -> tuple[str, dict[str, Any]]:
        params = {"$select": SELECT}
        if self.state.since:
            params["$filter"] = f"receivedDateTime ge {self.state.since}"
        return f"{self.user}/mailFolders/{quote(folder.id, safe='')}/messages/delta", params

    def _sync_folder(self, folder: _Folder) -> Iterator[Item]:
        entry = self.box["folders"].setdefault(folder.id, {"ids": []})
        entry["path"] = folder.path
        ids = set(entry.get("ids", []))
        url, params = (entry["link"], None) if entry.get("link") else self._first_request(folder)
        whole = not entry.get("link") or bool(entry.get("whole"))  # counted in the tally's total
        pager = Pager(source=self.c.name, what="messages/delta")
        while True:
            try:
                page = self.client.get(url, params, self.c.prefer_headers)
            except GraphError as exc:
                if exc.status == 410 or exc.code == "SyncStateNotFound":
                    log.warning(
                        "source %s: sync state of %s/%s expired, re-syncing the folder",
                        self.c.name,
                        self.mailbox,
                        folder.path,
                    )
                    entry["resync"] = sorted(set(entry.get("resync", [])) | ids)
                    ids = set()
                    entry.pop("link", None)
                    url, params = self._first_request(folder)
                    pager = Pager(source=self.c.name, what="messages/delta")
                    continue
                if exc.status == 404:
                    log.warning(
                        "source %s: folder %s/%s vanished during the sync", self.c.name, self.mailbox, folder.path
                    )
                    return
                raise
            for item in page.get("value", []):
                if "@removed" in item:
                    ids.discard(item["id"])
                    yield from self._removed(item["id"])
                else:
                    ids.add(item["id"])
                    yield from self._message(item, folder)
                    if whole and self.tally.total is not None:
                        self.tally.done += 1
                        yield Progress(done=self.tally.done)
            if pager.advance(next_link(page)):
                url, params = str(pager.token), None
                entry.update(link=url, ids=sorted(ids), whole=whole)
                yield self.state.checkpoint()
                continue
            for mid in sorted(set(entry.pop("resync", [])) - ids):
                yield from self._removed(mid)
            entry.pop("whole", None)
            entry.update(link=page["@odata.deltaLink"], ids=sorted(ids))
            yield self.state.checkpoint()
            return

    def _removed(self, message_id: str) -> Iterator[Item]:
        """Delete unless the message now lives in another synced folder (a move). A check that still
        answers a server error after the retries is the message's failed skip (kept as indexed),
        remembered: the next full run's replay decides, deleting it if it is gone or left the
        synced folders."""
        try:
            found = self.client.get(
                f"{self.user}/messages/{quote(message_id, safe='')}",
                {"$select": "parentFolderId"},
                self.c.prefer_headers,
            )
        except RetriableError as exc:
            what = f"message {message_id}: not checked for a move or a deletion (kept until it is)"
            skipped = Skipped(id=self.c.doc_id(message_id), reason=self.outage.failed(what, exc))
            yield self._noted(message_id, skipped)
            return
        except GraphError as exc:
            if exc.status != 404:
                raise
            found = {}
        self.outage.read()  # the check answered: the failures before it were not in a row
        folder = found.get("parentFolderId")
        if folder not in self.wanted and not self._new_folder(folder):
            yield Deletion(id=self.c.doc_id(message_id))

    def _new_folder(self, folder_id: str | None) -> bool:
        """Whether a folder a scoped run does not know (created since the last full run) is one to
        sync; if so, the run syncs it after the notified folders. The mailbox's folders are listed
        for it, once a run, unless the folder is a well-known one the config names (Deleted Items)."""
        if not folder_id or folder_id in self.box["wellknown"].values():
            return False
        if self.folders is None:
            self.folders = self._synced_folders()
        new = next((f for f in self.folders if f.id == folder_id), None) if isinstance(self.folders, list) else None
        if new is None:
            return False
        self.wanted.add(new.id)
        self.found.append(new)
        return True

    def _read_again(self, message_id: str, folders: dict[str, _Folder]) -> Iterator[Item]:
        """A remembered message read again by id (`Retries.replay`): a deletion when it is gone or
        has left the synced folders (a move its folder's delta reported while it could not be
        checked, `_removed`)."""
        try:
            item = self.client.get(
                f"{self.user}/messages/{quote(message_id, safe='')}", {"$select": SELECT}, self.c.prefer_headers
            )
        except RetriableError as exc:  # still a server error: failed again, unless Graph looks down
            before = self.retries.failed[message_id]
            reason = self.outage.failed(f"message {before.title or message_id!r}: not read again", exc)
            yield self._noted(message_id, Skipped(id=before.id, title=before.title, reason=reason))
            return
        except GraphError as exc:
            if exc.status != 404:
                raise
            yield self._noted(message_id, Deletion(id=self.c.doc_id(message_id)))
            return
        self.outage.read()
        folder = folders.get(item.get("parentFolderId") or "")
        if folder is None:
            yield self._noted(message_id, Deletion(id=self.c.doc_id(message_id)))
        else:
            yield from self._message(item, folder)

    def _message(self, item: dict[str, Any], folder: _Folder) -> Iterator[Item]:
        reading = bool(item.get("hasAttachments") and self.c.config.attachments)
        if not reading:
            self.outage.read()  # a message read whole (its attachments' read counts when there is one)
        built = self.c.built.recall(self.mailbox, item, folder.path) if reading else None
        if built is not None:  # the recent pass read its attachments, and it is unchanged since
            self._noted(item["id"], built[-1])
            yield from built
            return
        msg = graph_message(item, self.mailbox, folder.path)
        cap = self.c.config.max_attachment_bytes
        failed: Skipped | None = None
        if reading:
            try:
                msg.attachments, error = self._attachments(msg.native_id, cap)
            except (GraphError, RetriableError) as exc:
                error = exc
            if error is None:
                self.outage.read()
            else:
                what = (
                    f"message {msg.subject or '(no subject)'!r}: attachments not read "
                    "(indexed without them, read again next run)"
                )
                failed = Skipped(
                    id=self.c.doc_id(msg.native_id) + "#attachments",
                    title=msg.subject or None,
                    # a server error the retries did not clear: the message's, unless Graph looks down
                    reason=self.outage.failed(what, error) if isinstance(error, RetriableError) else f"{what}: {error}",
                )
        document, skipped = message_document(
            self.c, msg, self.c.acl_for(self.mailbox, self.owner), cap, self.c.config.max_body_bytes
        )
        yield from skipped
        if failed is not None:
            yield self._noted(msg.native_id, failed)
        else:
            self._noted(msg.native_id, document)
            if reading and self.state.since:
                self.c.built.keep(self.mailbox, item, folder.path, [*skipped, document], document)
        yield document

    def _attachments(
        self, message_id: str, cap: int
    ) -> tuple[list[MailAttachment], GraphError | RetriableError | None]:
        """The message's attachments, listed without their bytes, then read one by one (`_attachment`),
        and the first error reading one (a refusal, or a server error the retries did not clear): an
        attachment that could not be read is only a name."""
        url = f"{self.user}/messages/{quote(message_id, safe='')}/attachments"
        listing = self.client.get(url, {"$select": ATTACHMENT_FIELDS}, self.c.prefer_headers)
        found: list[MailAttachment] = []
        error: GraphError | RetriableError | None = None
        for meta in listing.get("value", []):
            try:
                att = self._attachment(url, meta, cap)
            except (GraphError, RetriableError) as exc:
                error = error or exc
                att = MailAttachment(str(meta.get("name") or "attachment"), "", None, name_only=True)
            if att is not None:
                found.append(att)
        return found, error

    def _attachment(self, url: str, meta: dict[str, Any], cap: int) -> MailAttachment | None:
        """A file attachment with its bytes when inlet reads its type and `cap` admits it (one call),
        an attached mail as a text attachment (one call, its item expanded: the size Graph gives
        counts the mail's own attachments, which the expanded item does not carry), a reference
        attachment (a link to a cloud file) as a name with no bytes."""
        kind = str(meta.get("@odata.type", "")).rsplit(".", 1)[-1]
        name, ctype = str(meta.get("name") or "attachment"), str(meta.get("contentType") or "")
        size, one = int(meta.get("size") or 0), f"{url}/{quote(str(meta.get('id')), safe='')}"
        if kind == "itemAttachment":
            item = self.client.get(one, {"$expand": EXPAND_ITEM}, self.c.prefer_headers).get("item") or {}
            inner = graph_message(item, self.mailbox, "")
            if not (inner.subject or inner.text or inner.html):  # a contact, or an item with nothing to read
                return MailAttachment(name, "", None, name_only=True)
            return attached_message(inner, name)
        if kind == "referenceAttachment":
            return MailAttachment(name, ctype, None, size, name_only=True)
        if kind != "fileAttachment":
            return None
        wanted = size <= cap and kind_of(name, ctype) is not None
        if wanted and "contentBytes" not in meta:  # a server that ignored $select sent them already
            meta = self.client.get(one, None, self.c.prefer_headers)
        data = _decoded(meta) if wanted else None
        return MailAttachment(name, ctype, data, size, bool(meta.get("isInline")))

    def _noted(self, message_id: str, item: Item) -> Item:
        """`Retries.note`, kept in the mailbox's checkpoint entry."""
        self.retries.note(message_id, item)
        self._keep_retries()
        return item

    def _keep_retries(self) -> None:
        if self.retries.failed:
            self.box["retries"] = self.retries.model_dump()
        else:
            self.box.pop("retries", None)


def _address(value: dict[str, Any] | None) -> tuple[str, str] | None:
    email = (value or {}).get("emailAddress") or {}
    address = normal_user(str(email.get("address") or ""))
    return (str(email.get("name") or ""), address) if address else None


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def graph_message(item: dict[str, Any], mailbox: str, folder: str) -> MailMessage:
    """A Graph `message` resource as a `MailMessage`."""
    body = item.get("body") or {}
    html = body.get("content") if body.get("contentType") == "html" else None
    return MailMessage(
        native_id=item.get("id") or "",
        subject=item.get("subject") or "",
        html=html,
        text=None if html is not None else body.get("content"),
        sender=_address(item.get("from") or item.get("sender")),
        to=[a for a in map(_address, item.get("toRecipients") or []) if a],
        cc=[a for a in map(_address, item.get("ccRecipients") or []) if a],
        received=_when(item.get("receivedDateTime")),
        sent=_when(item.get("sentDateTime")),
        modified=_when(item.get("lastModifiedDateTime")),
        url=item.get("webLink") or "",
        conversation_id=item.get("conversationId") or "",
        message_id=item.get("internetMessageId") or "",
        folder=folder,
        mailbox=mailbox,
    )


def _decoded(attachment: dict[str, Any]) -> bytes:
    """A file attachment's `contentBytes` (b"" when they are not base64)."""
    try:
        return base64.b64decode(attachment.get("contentBytes") or "")
    except (binascii.Error, ValueError):
        return b""
