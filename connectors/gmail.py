"""Gmail through a service account with domain-wide delegation: one document per e-mail.

Each configured mailbox is read as its owner (the delegation's `subject`) and kept current by
`users.history.list`:

- First (or after an expired history id): `users.getProfile` gives the history id to follow later,
  then `messages.list` (every label but SPAM and TRASH, or each configured label in turn, with the
  optional `query`: it bounds what a listing reads, never what stays indexed) is read page by page
  and the messages fetched as `format=raw` through the batch endpoint: one request per
  `batch_size` messages, 5 quota units a message with its attachments inside (`format=full`
  would cost 5 more units per attachment through `attachments.get`). A checkpoint follows every
  100 messages and each page's end (list token, offset in the page, ids seen), so a resumed
  listing repeats at most 100 messages. A resumed listing reads its saved page again from its top
  and fetches the ids not seen: an offset alone would skip a message when one before it on that
  page was deleted meanwhile.
- Then: history pages from the saved id. A message added, or whose labels changed, is fetched again
  and indexed if it is still in scope; one deleted, or moved to SPAM/TRASH or out of the configured
  labels, is deleted. Label flips that only touch UNREAD, STARRED, IMPORTANT or categories cost
  nothing. A sync with no change is one `history.list` call per mailbox.
- A history id Gmail no longer knows (404) means one listing that also deletes what the mailbox
  held before and no longer lists (checkpoint key `known`, the ids indexed per mailbox). The
  history indexes mail whatever `query`, so with a query the re-listing also lists, whatever the
  query, the mail received since `RELIST_MARGIN` before the history was last known current (key
  `synced`: when a listing took its start id, or a history read that brought changes reached the
  end; None in a checkpoint older than the key, which re-lists with the query alone), and a
  known message it did not list is deleted only if the labels' full listing (ids only) lacks it
  too. `live_ids` is that full listing: the prune deletes nothing the mailbox still has. Mail of any
  date can enter the labels (restored from the trash, labelled), which the history brings and a
  query need not select: a re-listing with `query` after an expired history (key `lost`: the history
  id it expired at) reads the messages the labels hold that are neither known nor listed whose
  own `historyId` is past `lost` (`_entered`: one `format=minimal` fetch, 5 quota units, per such
  message; nothing about the mail a query leaves out is kept between runs).
- A message whose fetch was refused, or still answers a server error after the retries (a failed
  `Skipped` naming it: a version indexed before is kept), is fetched again at the start of each
  later pass of its mailbox (`kit.retries.Retries`), since neither the history nor a listing
  resumed past it would report it again; only `kit.retries.OUTAGE_AFTER` messages in a row failing
  so mean Gmail is down, and the run fails, to resume from its checkpoint (`kit.retries.Outage`).
- A mailbox taken out of the config has its documents deleted (its `known` ids).
- A configured label a mailbox does not have is a skip by policy of each run, naming the closest
  labels; when no mailbox whose labels can be read has any of them, the run (and `live_ids`) raises
  `NothingInScopeError` before listing anything (`kit.scope`).
- A mailbox the delegation does not cover is skipped with a named error (the run is partial) while
  the others go on; when it covers none of them, or the key itself is refused, the source refused its
  credentials (exit 3).

Mailboxes are read side by side (`concurrency` worker threads, `fan_in.merged`): each has its own
quota. A checkpoint carries, for each mailbox, the state its worker had reached when the items
before it were yielded, never further.

Documents are rendered by the shared mail rendering (`mail.message_document`), like Outlook's.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator

from inlet.errors import ConfigError, CredentialsError, InletError

from .base import ConfigPath, Connector, ServiceUrl, SourceConfig
from .fan_in import merged
from .gmail_client import SCOPES, MailboxClient, MailboxRefused, delegation_refused
from .kit.checkpoint import CheckpointModel
from .kit.google import GoogleApiError, load_credentials
from .kit.paging import Pager
from .kit.retries import Outage, Retries
from .kit.retry import RetryPolicy
from .kit.scope import nothing_in_scope, unmatched, warn
from .mail import BODY_CAP, DEFAULT_MAX_ATTACHMENT_BYTES, DEFAULT_MAX_BODY_BYTES, message_document, rfc822_message
from .model import ACL, Deletion, Document, Item, Progress, Skipped, normal_user

log = logging.getLogger(__name__)

HIDDEN = frozenset({"SPAM", "TRASH"})
SAVE_EVERY = 100  # messages between a listing's save points (each saves every id seen so far)
RELIST_MARGIN = 3600  # seconds a re-listing after an expired history reaches back before the last sync it knows
# labels whose flips do not change what is indexed (read state, stars, importance, tabs)
VOLATILE = frozenset(
    {
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "CATEGORY_PERSONAL",
        "CATEGORY_SOCIAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
    }
)


class GmailConfig(SourceConfig):
    credentials_file: ConfigPath = Field(
        description="service-account key JSON with domain-wide delegation "
        "(scope https://www.googleapis.com/auth/gmail.readonly)"
    )
    mailboxes: list[str] = Field(min_length=1, description="mailbox addresses to read (each one impersonated)")
    labels: list[str] = Field(
        default_factory=list, description="label names or ids to sync; default: every label but SPAM and TRASH"
    )
    query: str | None = Field(None, description="Gmail search limiting the backfill, e.g. 'newer_than:2y'")
    api_endpoint: ServiceUrl | None = Field(
        None, description="Gmail API root, e.g. https://gmail.googleapis.com/ (tests)"
    )
    max_attachment_bytes: int = Field(DEFAULT_MAX_ATTACHMENT_BYTES, description="larger attachments are skipped")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description=BODY_CAP)
    batch_size: int = Field(
        10,
        ge=1,
        le=100,
        description="messages fetched per batch request (small batches "
        "come back sooner, so the quota window frees sooner: benchmarks/bench_gmail.py)",
    )
    page_size: int = Field(500, ge=1, le=500, description="ids per messages.list / history.list page")
    quota_units_per_second: float = Field(
        250.0,
        ge=0,
        description="per-mailbox Gmail quota to stay within (Gmail's per-user limit is 250 units/s; 0: no pacing)",
    )
    retries: int = Field(5, ge=0, le=20, description="retries of 429 / 5xx / network failures per call")
    backoff_seconds: float = Field(1.0, ge=0, description="first retry delay without Retry-After (doubles)")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP request (a stalled answer is retried)")
    concurrency: int = Field(4, ge=1, le=32, description="mailboxes read at once (each has its own quota)")

    @field_validator("mailboxes")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [normal_user(v) for v in values]


class _Listing(BaseModel):
    start: str  # the history id taken before the listing began
    at: float | None = None  # when (time.time()) that id was taken
    label: int = 0  # which pass is being listed: an entry of the label list (for each query in turn)
    token: str | None = None  # the messages.list page token of the current page
    offset: int = 0  # ids of the current page already read
    seen: list[str] = Field(default_factory=list)
    prev: list[str] | None = None  # ids known before a re-listing: those not seen (nor in the mailbox) are deleted
    after: int | None = None  # a re-listing with a query: mail received since then is listed whatever the query
    lost: str | None = None  # a re-listing after an expired history: the history id it expired at


class _Box(BaseModel):
    history: str | None = None  # follow history from here (None: list first)
    synced: float | None = None  # when the history was known current up to `history` (None: not known)
    listing: _Listing | None = None
    known: list[str] = Field(default_factory=list)  # message ids indexed
    retries: Retries = Field(default_factory=Retries)  # message ids whose fetch failed


class GmailCheckpoint(CheckpointModel):
    VERSION: ClassVar[int] = 1
    since: str | None = None
    mailboxes: dict[str, _Box] = Field(default_factory=dict)


class GmailConnector(Connector[GmailConfig]):
    """The mail of the configured Google Workspace mailboxes (read-only delegation)."""

    type: ClassVar[str] = "gmail"
    Config: ClassVar[builtins.type[SourceConfig]] = GmailConfig
    # No reconciling listing after a crash: every listing starts from a history id taken before it,
    # so whatever an interrupted run indexed and was deleted since reaches the history it resumes
    # from (a run that saved no checkpoint at all is reconciled by the engine, whatever the connector).
    deletions_from_checkpoint = False
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)
    # history cannot tell a message that left the labels (`mailboxes` it handles itself; `query`
    # limits only the backfill's listing, by design)
    scope_keys = frozenset({"labels"})

    def client(self, mailbox: str) -> MailboxClient:
        c = self.config
        creds = load_credentials(c.credentials_file, mailbox, self.name, SCOPES, subject_key=None)
        policy = RetryPolicy(attempts=c.retries + 1, backoff=c.backoff_seconds)
        return MailboxClient(
            self.name,
            mailbox,
            creds,
            c.api_endpoint,
            policy=policy,
            units_per_second=c.quota_units_per_second,
            timeout=c.timeout,
        )

    def check_local(self) -> None:
        """The credentials file is a service-account key (each mailbox is read through delegation),
        read without the network."""
        path = self.config.credentials_file
        if not path.is_file():
            raise ConfigError(f"source {self.name!r}: key 'credentials_file': {path} does not exist (or is not a file)")
        load_credentials(path, self.config.mailboxes[0], self.name, SCOPES, subject_key=None)

    def check(self) -> None:
        """Each mailbox's token: refused outright, or for every mailbox, is `CredentialsError`."""
        import google_auth_httplib2
        import httplib2
        from google.auth.exceptions import RefreshError

        refused = []
        for mailbox in self.config.mailboxes:
            creds = load_credentials(self.config.credentials_file, mailbox, self.name, SCOPES, subject_key=None)
            try:
                creds.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=self.config.timeout)))
            except RefreshError as exc:
                error = CredentialsError(self.name, f"token refused for {mailbox}: {exc}")
                error.__cause__ = exc
                if not delegation_refused(error):
                    raise error from exc
                refused.append(mailbox)
        if len(refused) == len(self.config.mailboxes):
            raise CredentialsError(
                self.name,
                f"the domain-wide delegation covers none of the mailboxes ({', '.join(refused)}) for scope {SCOPES[0]}",
            )

    def load(self, checkpoint: dict[str, Any] | None, *, since: dt.datetime | None = None) -> Iterator[Item]:
        state = GmailCheckpoint.load(checkpoint, source=self.name) or GmailCheckpoint(
            since=since.astimezone(dt.timezone.utc).isoformat() if since else None
        )
        for dropped in [m for m in state.mailboxes if m not in self.config.mailboxes]:
            box = state.mailboxes.pop(dropped)  # no longer configured: its documents go
            log.info("source %s: mailbox %s is no longer synced; deleting its documents", self.name, dropped)
            for mid in sorted({*box.known, *(box.listing.seen if box.listing else [])}):
                yield Deletion(id=self.doc_id(native_id(dropped, mid)))
            yield state.checkpoint()
        # what the checkpoints say of each mailbox: only what its worker had yielded items up to
        saved = {m: state.mailboxes.setdefault(m, _Box()).model_copy(deep=True) for m in self.config.mailboxes}
        refused: list[MailboxRefused] = []
        syncs = [_MailboxSync(self, m, state.mailboxes[m], state.since) for m in self.config.mailboxes]
        _something_in_scope(self.name, syncs)
        listing = all(b.history is None for b in saved.values())  # a first listing, new or resumed
        total = _estimate(syncs) if listing else None
        if total:  # what is left: a resumed listing has read `seen` already
            total = max(1, total - sum(len(b.listing.seen) for b in saved.values() if b.listing))
            yield Progress(total=total, done=0, unit="messages")
        done = 0
        producers = [partial(self._mailbox, sync) for sync in syncs]
        for item in merged(producers, self.config.concurrency, name=f"gmail-{self.name}"):
            if isinstance(item, _Saved):
                saved[item.mailbox] = item.box
                yield GmailCheckpoint(since=state.since, mailboxes=dict(saved)).checkpoint()
            elif isinstance(item, MailboxRefused):
                refused.append(item)
            else:
                yield item
                if total and isinstance(item, (Document, Skipped)):
                    done += 1
                    yield Progress(done=done)
        if total and done != total:  # the estimate was off: the bar ends full
            yield Progress(total=done, done=done)
        if refused and len(refused) == len(self.config.mailboxes):
            raise CredentialsError(
                self.name,
                "the domain-wide delegation covers none of the mailboxes: " + "; ".join(str(e) for e in refused),
            ) from refused[0]
        yield GmailCheckpoint(since=state.since, mailboxes=saved).checkpoint()

    def _mailbox(self, sync: "_MailboxSync") -> Iterator[Item | _Saved | MailboxRefused]:
        """One mailbox's pass (in a worker thread): its items, and a copy of its state at each save."""
        mailbox, box = sync.mailbox, sync.box
        try:
            for item in sync.run():
                yield _Saved(mailbox, box.model_copy(deep=True)) if isinstance(item, _Save) else item
        except MailboxRefused as exc:
            log.warning("source %s: %s", self.name, exc)
            yield Skipped(id=self.doc_id(f"mailbox:{mailbox}"), reason=str(exc))
            yield exc
            return
        except GoogleApiError as exc:  # this mailbox only (Gmail not enabled for the user, ...): the others go on
            log.warning("source %s: mailbox %s skipped: %s", self.name, mailbox, exc)
            yield Skipped(id=self.doc_id(f"mailbox:{mailbox}"), reason=f"mailbox {mailbox} unavailable: {exc}")
            return
        yield _Saved(mailbox, box.model_copy(deep=True))

    def live_ids(self) -> Iterator[str]:
        """Every message id the index may hold: the configured labels' mail, whatever `query` (ids
        only: messages.list). The query chose what the backfill read; what the history added since
        stays while the mailbox has it."""
        syncs = [_MailboxSync(self, mailbox, _Box(), None) for mailbox in self.config.mailboxes]
        _something_in_scope(self.name, syncs)  # labels matching nothing: a prune would delete everything
        for sync in syncs:
            for mid in sync.ids(None):
                yield self.doc_id(native_id(sync.mailbox, mid))

    def acl_for(self, mailbox: str) -> ACL:
        return ACL(users=[mailbox])


def _something_in_scope(source: str, syncs: list["_MailboxSync"]) -> None:
    """`NothingInScopeError` when no mailbox that can be read has any configured label (`kit.scope`):
    the pass would list nothing and delete all it holds. A mailbox whose labels cannot be read (outside
    the delegation) is left to its pass, which says why."""
    if not syncs or not syncs[0].config.labels:
        return
    unknown: list[Skipped] = []
    for sync in syncs:
        try:
            skips = sync.unknown_labels()
        except InletError as exc:
            log.debug("source %s: labels of %s not read: %s", source, sync.mailbox, exc)
            continue
        if len(skips) < len(set(sync.config.labels)):
            return
        unknown += skips
    if unknown:
        raise nothing_in_scope(source, unknown)


def _estimate(syncs: list["_MailboxSync"]) -> int | None:
    """Gmail's estimate of the messages first listings of these mailboxes will read (one
    `messages.list` per mailbox and label); None when a mailbox cannot say."""
    total = 0
    for sync in syncs:
        try:
            for label in sync.label_ids():
                total += int(sync.client.list_messages(label, sync.query(), None, 1).get("resultSizeEstimate", 0))
        except InletError as exc:  # e.g. a mailbox the delegation does not cover: its pass says so
            log.debug("source %s: no message count for %s: %s", sync.c.name, sync.mailbox, exc)
            return None
    return total


def native_id(mailbox: str, message_id: str) -> str:
    """Gmail ids are unique within a mailbox: the document's native id carries both."""
    return f"{mailbox}/{message_id}"


def gmail_url(mailbox: str, message_id: str) -> str:
    return f"https://mail.google.com/mail/u/{mailbox}/#all/{message_id}"


@dataclass
class _Saved:
    """A mailbox's state as of the items its worker has yielded so far."""

    mailbox: str
    box: _Box


class _Save:
    """What a mailbox pass yields where resuming from its state would lose nothing."""


_SAVE = _Save()


class _MailboxSync:
    """One pass over one mailbox: a listing or history pages; `_SAVE` where its state may be saved."""

    def __init__(self, connector: GmailConnector, mailbox: str, box: _Box, since: str | None) -> None:
        self.c, self.mailbox, self.box, self.since = connector, mailbox, box, since
        self.config = connector.config
        self.client = connector.client(mailbox)
        self._labels: dict[str, str] | None = None  # id -> name
        self.known = set(box.known)
        self.dropped: set[str] = set()  # fetched ids that turned out gone or out of scope
        self.outage = Outage(connector.name)  # messages in a row whose fetch keeps failing: Gmail is down

    # --- labels and scope -----------------------------------------------------------------------
    def label_names(self) -> dict[str, str]:
        if self._labels is None:
            self._labels = {label["id"]: label.get("name", label["id"]) for label in self.client.labels()}
        return self._labels

    def label_ids(self) -> list[str | None]:
        """The labels to list (None: all mail but SPAM/TRASH); configured labels the mailbox does not
        have are left out (`unknown_labels`)."""
        if not self.config.labels:
            return [None]
        names = self.label_names()
        by_name = {name.lower(): lid for lid, name in names.items()}
        out: list[str | None] = []
        for wanted in self.config.labels:
            lid = wanted if wanted in names else by_name.get(wanted.lower())
            if lid is not None and lid not in out:
                out.append(lid)
        return out

    def unknown_labels(self) -> list[Skipped]:
        """A skip by policy for each configured label the mailbox does not have (a typo lists
        nothing; `kit.scope`): shown by `inlet status`, the run stays ok."""
        names = self.label_names() if self.config.labels else {}
        known = set(names) | {name.lower() for name in names.values()}
        matched = {wanted for wanted in self.config.labels if wanted in known or wanted.lower() in known}
        what = f"label of mailbox {self.mailbox}"
        return unmatched(self.c, "labels", self.config.labels, matched, names.values(), what, f"mailbox:{self.mailbox}")

    def in_scope(self, labels: list[str]) -> bool:
        if HIDDEN & set(labels):
            return False
        return not self.config.labels or bool(set(labels) & {x for x in self.label_ids() if x})

    # --- the pass -------------------------------------------------------------------------------
    def run(self) -> Iterator[Item | _Save]:
        yield from warn(self.c, self.unknown_labels())
        yield from self.box.retries.replay(lambda mid: self._fetch([mid]))
        if self.box.history is not None and self.box.listing is None:
            try:
                yield from self._history()
                return
            except GoogleApiError as exc:
                if exc.status != 404:
                    raise
                log.warning(
                    "source %s: the history id of %s has expired; listing the mailbox again", self.c.name, self.mailbox
                )
                synced = self.box.synced if self.query() else None  # what the history would have brought
                after = int(synced) - RELIST_MARGIN if synced is not None else None
                lost = self.box.history
                self.box.listing = _Listing(**self._start(), prev=sorted(self.known), after=after, lost=lost)
        if self.box.listing is None:
            self.box.listing = _Listing(**self._start())
        yield from self._list()

    def _start(self) -> dict[str, Any]:
        """Where a listing's history begins: the mailbox's history id now, and when it was taken."""
        at = time.time()
        return {"start": str(self.client.profile()["historyId"]), "at": at}

    def ids(self, query: str | None) -> Iterator[str]:
        """The ids of the configured labels' messages that `query` selects (None: all of them)."""
        for label in self.label_ids():
            pager = Pager(source=self.c.name, what=f"Gmail messages.list of {self.mailbox}")
            while True:
                page = self.client.list_messages(label, query, pager.token, self.config.page_size)
                yield from (ref["id"] for ref in page.get("messages", []))
                if not pager.advance(page.get("nextPageToken")):
                    break

    def query(self) -> str | None:
        parts = [self.config.query or ""]
        if self.since:
            parts.append(f"after:{int(dt.datetime.fromisoformat(self.since).timestamp())}")
        return " ".join(p for p in parts if p) or None

    def _list(self) -> Iterator[Item | _Save]:
        listing = self.box.listing
        assert listing is not None
        queries = [self.query()] if listing.after is None else [self.query(), f"after:{listing.after}"]
        passes = [(label, query) for query in queries for label in self.label_ids()]
        seen = set(listing.seen)
        unsaved = 0
        listing.offset = 0  # a resumed page from its top: what was read is in `seen`, and not fetched again
        while listing.label < len(passes):
            label, query = passes[listing.label]
            pager = Pager(source=self.c.name, what=f"Gmail messages.list of {self.mailbox}", token=listing.token)
            while True:
                try:
                    page = self.client.list_messages(label, query, pager.token, self.config.page_size)
                except GoogleApiError as exc:
                    if exc.status != 400 or pager.token is None:
                        raise
                    log.warning(  # what was read is in `seen`: the listing starts over and skips it
                        "source %s: Gmail refused the saved page token of %s; listing it again",
                        self.c.name,
                        self.mailbox,
                    )
                    pager = Pager(source=self.c.name, what=f"Gmail messages.list of {self.mailbox}")
                    listing.token, listing.offset = None, 0
                    continue
                ids = [ref["id"] for ref in page.get("messages", [])]
                while listing.offset < len(ids):
                    chunk = ids[listing.offset : listing.offset + self.config.batch_size]
                    yield from self._fetch([m for m in chunk if m not in seen])
                    seen.update(chunk)
                    listing.offset += len(chunk)
                    unsaved += len(chunk)
                    if unsaved >= SAVE_EVERY or listing.offset >= len(ids):
                        listing.seen, unsaved = sorted(seen - self.dropped), 0
                        yield _SAVE
                if not pager.advance(page.get("nextPageToken")):
                    break
                listing.token, listing.offset = pager.token, 0
            listing.label, listing.token, listing.offset = listing.label + 1, None, 0
        labelled: set[str] = set()  # a re-listing with a query: every id the configured labels hold (ids only)
        if listing.prev is not None and self.query() is not None:
            labelled = set(self.ids(None))
            yield from self._entered(listing, labelled, seen)
        kept = seen - self.dropped
        unseen = set(listing.prev or []) - kept
        kept |= (unseen - self.dropped) & labelled  # the query chose what was read, not what stays
        for gone in sorted(unseen - kept):
            self.box.retries.forget(gone)
            yield Deletion(id=self.c.doc_id(native_id(self.mailbox, gone)))
        self.known = kept
        self.box.history, self.box.listing, self.box.known = listing.start, None, sorted(kept)
        self.box.synced = listing.at

    def _entered(self, listing: _Listing, labelled: set[str], seen: set[str]) -> Iterator[Item | _Save]:
        """A re-listing with `query`, after an expired history: the messages the configured labels
        hold now that neither the index had nor the listing read, and that changed after the history
        was lost (their `historyId` is past `lost`), entered the labels meanwhile (mail restored from
        the trash or spam, labelled since): the history would have brought them, whatever their
        date, so they are read (`seen` then holds them). The others were in the labels, left out by
        the query, all along. (`since` alone needs none: `_read` keeps no mail older than it.)"""
        if listing.lost is None or not self.config.query:
            return
        lost = int(listing.lost)
        candidates = sorted(labelled - seen - set(listing.prev or []))
        for start in range(0, len(candidates), SAVE_EVERY):
            chunk = candidates[start : start + SAVE_EVERY]
            got: dict[str, dict[str, Any] | GoogleApiError] = {}
            for part in range(0, len(chunk), self.config.batch_size):
                got.update(self.client.get_many(chunk[part : part + self.config.batch_size], "minimal"))
            entered = [
                mid
                for mid, found in got.items()
                if isinstance(found, GoogleApiError) or int(found.get("historyId") or lost + 1) > lost
            ]  # a refused metadata fetch: read it, `_fetch` notes a refusal for the retries
            if not entered:
                continue
            log.info(
                "source %s: %d messages of %s entered the labels while the history was lost; reading them",
                self.c.name,
                len(entered),
                self.mailbox,
            )
            yield from self._fetch(entered)
            seen.update(entered)
            listing.seen = sorted(seen - self.dropped)
            yield _SAVE

    def _history(self) -> Iterator[Item | _Save]:
        start = self.box.history
        assert start is not None
        pager = Pager(source=self.c.name, what=f"Gmail history.list of {self.mailbox}")
        while True:
            asked = time.time()
            page = self.client.history(start, pager.token, self.config.page_size)
            records = page.get("history", [])
            yield from self._apply(records)
            more = pager.advance(page.get("nextPageToken"))
            if records:  # (a page without records leaves the checkpoint as it was: `synced` stays earlier)
                self.box.history = str(records[-1]["id"]) if more else str(page["historyId"])
                self.box.known = sorted(self.known)
                self.box.synced = self.box.synced if more else asked  # the last page: current as asked
                yield _SAVE
            if not more:
                self.box.history = str(page.get("historyId") or self.box.history)
                return

    def _apply(self, records: list[dict[str, Any]]) -> Iterator[Item]:
        """The page's changes: per message its last state (deleted, out of scope, or to read again)."""
        fate: dict[str, str] = {}
        for record in records:
            for entry in record.get("messagesDeleted", []):
                fate[entry["message"]["id"]] = "deleted"
            for entry in record.get("messagesAdded", []):
                message = entry["message"]
                fate[message["id"]] = "read" if self.in_scope(message.get("labelIds", [])) else "never"
            for kind in ("labelsAdded", "labelsRemoved"):
                for entry in record.get(kind, []):
                    message = entry["message"]
                    if fate.get(message["id"]) == "deleted":
                        continue
                    if not self.in_scope(message.get("labelIds", [])):
                        fate[message["id"]] = "gone"
                    elif not set(entry.get("labelIds", [])) <= VOLATILE or message["id"] not in self.known:
                        fate[message["id"]] = "read"
                    else:
                        fate.setdefault(message["id"], "same")
        for mid in [m for m, f in fate.items() if f in ("deleted", "gone")]:
            self.known.discard(mid)
            self.box.retries.forget(mid)
            yield Deletion(id=self.c.doc_id(native_id(self.mailbox, mid)))
        yield from self._fetch([m for m, f in fate.items() if f == "read"])

    # --- reading messages -----------------------------------------------------------------------
    def _fetch(self, ids: list[str]) -> Iterator[Item]:
        for start in range(0, len(ids), self.config.batch_size):
            chunk = ids[start : start + self.config.batch_size]
            got = self.client.get_many(chunk, per_item=True)
            order = {
                mid: n for n, mid in enumerate(chunk)
            }  # weighed as asked: failures answered last are not "in a row"
            for mid, found in sorted(got.items(), key=lambda pair: order.get(pair[0], len(order))):
                doc_id = self.c.doc_id(native_id(self.mailbox, mid))
                if isinstance(found, GoogleApiError) and found.status != 404:
                    what = f"message {mid} of {self.mailbox}"  # a server error: unless Gmail looks down
                    reason = self.outage.failed(what, found) if found.retriable else f"{what}: {found}"
                    yield self.box.retries.note(mid, Skipped(id=doc_id, reason=reason))
                elif isinstance(found, GoogleApiError) or not self.in_scope(found.get("labelIds", [])):
                    self.known.discard(mid)  # deleted since it was listed, or out of scope
                    self.dropped.add(mid)
                    yield self.box.retries.note(mid, Deletion(id=doc_id))
                else:
                    self.outage.read()
                    yield from self._render(found)

    def _render(self, found: dict[str, Any]) -> Iterator[Item]:
        mid = found["id"]
        native = native_id(self.mailbox, mid)
        try:
            items = list(self._read(found, native))
        except InletError:  # the service's answers (labels): not the message's fault
            raise
        except Exception as exc:  # noqa: BLE001 - one malformed message must not stop the mailbox
            yield self.box.retries.note(mid, Skipped(id=self.c.doc_id(native), reason=f"cannot parse message: {exc}"))
            return
        yield from items

    def _read(self, found: dict[str, Any], native: str) -> Iterator[Item]:
        mid = found["id"]
        raw = base64.urlsafe_b64decode(found["raw"] + "=" * (-len(found["raw"]) % 4))
        msg = rfc822_message(native, raw, url=gmail_url(self.mailbox, mid))
        if found.get("internalDate"):
            msg.received = dt.datetime.fromtimestamp(int(found["internalDate"]) / 1000, dt.timezone.utc)
        since = self.since
        if since and msg.received and msg.received < dt.datetime.fromisoformat(since):
            return  # `after:` is in whole seconds
        msg.mailbox = self.mailbox
        names = self.label_names()
        msg.extra = {
            "thread_id": found.get("threadId", ""),
            "labels": sorted(names.get(x, x) for x in found.get("labelIds", []) if x not in VOLATILE),
        }
        c = self.config
        document, skipped = message_document(
            self.c, msg, self.c.acl_for(self.mailbox), c.max_attachment_bytes, c.max_body_bytes
        )
        self.known.add(mid)
        yield from skipped
        yield self.box.retries.note(mid, document)
