"""The `slack` connector: one document per thread from every channel the bot is a member of.

Sync model (state in the checkpoint, per channel):
- `newest`: the newest parent ts seen; a run re-reads history from min(newest, now - lookback), so
  new messages, new replies to recent threads, and edits and deletions in the look-back window
  are caught with (usually) one `conversations.history` call per channel;
- `threads`: for each parent with replies, a fingerprint (reply_count, latest_reply, edit, and
  the parent's files by id and mode: a deleted file turns to Slack's `tombstone` without an edit;
  single messages in the window keep one too, in `recent`): a thread is re-read with
  `conversations.replies` only when its fingerprint changes or its last reply is inside the
  look-back window;
- every `reconcile_every`, history is read from the beginning (parents only) to catch late
  replies to old threads and threads deleted long ago; history shows nothing of an edited reply
  (or a file deleted from one), so with `reread_threads_every` each reconcile also reads whole its
  share of the channel's threads, the next after `reread_after` in ts order (wrapping round):
  every thread is read again about once a period, changed or not (off by default: it costs a
  `conversations.replies` call per thread and period); `live_ids()` lets the engine prune the
  rest (threads of one deleted outside the window, channels gone).
A scan goes newest to oldest and checkpoints after every page with the `latest` bound reached, so an
interrupted backfill resumes mid-channel; the resumed run then also reads the channels joined since
it was planned (after the planned ones), not those it finished. The engine's listing after the
resumed run (`live_ids_after`) lists only the channels that were left to read (`unsettled`): what
the interrupted run wrote after its last checkpoint is there; the finished ones are vouched for.
Private channels' members are read every run. When only who reads a channel changed (its members,
`domains`), one read of its history
re-labels every document of it (`AclUpdate`s, committed page by page: no thread is read again,
nothing embedded again; until the channel's read ends its entry's `acl` is `UNLABELLED`, so a pass
cut short by a crash, a failure or Slack's error, a failed skip of the channel, is done again by the
next run, and an event run reads the channel bare; an expired cursor resumes it), then the run goes
on as usual; a changed name or visibility (a public
channel made private keeps its id) re-yields all the channel's documents, after that re-labelling
when the readers changed too, so the new ACL never waits for the threads. A member or DM partner
Slack calls deactivated (`deleted`) is no reader. Slack's notice of a visibility change
(`channel_convert_to_private`/`_public`) is no document. A channel Slack calls gone (`SKIP_CHANNEL`:
archived or deleted mid-run) is a skip with that reason whether its history or a thread's
`conversations.replies` says so: the rest of the channel is not read, the other channels are.

Slack ejects the bot from a channel when it is archived (`is_archived`, not `is_member`; its
history answers `not_in_channel`). With `include_archived`, such a channel the checkpoint knows is
kept `frozen`: never read, its entry (name, ACL, threads) left as it is, nothing deleted, and
`live_ids` vouches for all its documents with a `LivePrefix` (it cannot list them: old single
messages are in no checkpoint). Without `include_archived`, or never indexed, it is dropped.

A change event asks for a scoped run (`load_scope`). A message, edit, deletion or reply event (scope
entry `channel/event_id`, its payload in the events inbox) updates just its thread: a new or edited
single message from the payload itself, a deleted one as a deletion, anything inside a thread (a
reply, its edit or deletion, a parent with replies, a shared file) with one `conversations.replies`;
the channel's name and ACL come from its checkpoint entry, so neither `conversations.info` nor
`conversations.members` is called, unless an event's `channel_type` says the channel's kind changed
(made private or public): it is then read as a bare channel. A `file_deleted` event re-reads the
threads whose documents name the file (checkpoint key `files`: thread -> file ids), or the channel
as a bare one when none is known. Such a run only adds to the checkpoint: each thread it wrote is
marked so the next scheduled run re-reads it, the channel's `newest` is left alone (so that run
skips nothing), and a thread it deleted is forgotten. What the payloads say of every channel of the
run (single messages written, deletions) is yielded first and checkpointed, so the engine commits
it before any thread is read: a burst's new messages never wait for the replies tier. Slack sends
an event again when its acknowledgement was lost, and does not order them, so each message an event wrote or deleted is
remembered for `EVENT_MEMORY` (checkpoint key `events`: ts -> the edit it holds, or `deleted`): an
older edit, or any event of a deleted message, changes nothing. A channel the config no longer
selects (`channels`, `include_dms`, `include_private`) is read as a bare channel, which drops it. A
bare channel (membership, rename, archival, visibility events; or a payload the run cannot find) is
read as the schedule would read it: `conversations.info` (and its members when private) instead of
listing the workspace, then its recent history from its own checkpoint entry. People are looked up
one by one (`users.info`) unless a run of this process has met them; channel names in mentions come
from the names the last full run saved. A scoped run never yields a checkpoint with a run in
progress, so an interrupted one leaves the scheduled pass exactly as it was; it deletes only threads
of the channels it read (or all of a channel it finds deleted or left).

A token without the scope one kind of conversation needs (`groups:*` private channels, `mpim:*`
group DMs, `im:*` DMs: Slack's `missing_scope` and its `needed`) costs only that kind: the listing
is asked again without it, and the kind (or a channel whose history is refused) is a failed skip
naming the scope and the setting that turns the kind off; what was indexed of it is kept (its
checkpoint entries are not dropped) and `live_ids` refuses to vouch for a complete listing. Any
other missing scope is a credentials error; so is a token without `users:read.email` once a private
channel or DM is read (Slack then leaves every email out without an error: `_check_emails` sees
people but no address, and every such ACL would be empty). Files kept outside Slack (`is_external`) are never
downloaded: the thread names them with their link (see slack_client for where the token may go).
A thread with a file that could not be downloaded goes in without that file's text and is read
again, whole, at the start of each later run (`kit.retries.Retries`, checkpoint key `retries`),
until it is read, deleted or its channel dropped; so is a thread whose replies still answer a server
error after the retries (a failed skip naming it; its indexed version kept). Only
`kit.retries.OUTAGE_AFTER` such reads in a row (downloads, threads) mean Slack is down: the run
fails, to resume from its checkpoint (`kit.retries.Outage`).

A `channels` entry that matches no conversation listed is a skip by policy of each run, naming the
closest channel names; when none matches, the run (and `live_ids`) raises `NothingInScopeError`
before reading or deleting anything (`kit.scope`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from inlet.errors import ConfigError, CredentialsError, IncompleteListingError, ItemError, RetriableError

from .base import Connector, Interval, LivePrefix, ServiceUrl, SourceConfig, parse_duration
from .events import EventSource
from .extract import extract_text, kind_of
from .kit import CheckpointModel, Outage, Pager, Retries, RetryPolicy, cursor
from .kit.scope import check_scope, warn
from .model import ACL, AclUpdate, Checkpoint, Deletion, Item, Progress, Skipped
from .slack_client import TIERS, MissingScope, SlackAPI, SlackError
from .slack_events import CONVERSIONS, INBOX, PERSON, SlackSocketEvents, split_container
from .slack_export import SlackExportConnector
from .slack_render import ChannelInfo, Directory, Person, files_of, is_external, is_parent, thread_doc

log = logging.getLogger(__name__)

__all__ = ["SlackConfig", "SlackConnector", "SlackExportConnector"]

# Slack's answers that a channel is gone or no longer readable by the bot: a skip of the channel, with what it means
SKIP_CHANNEL: dict[str, str] = {
    "not_in_channel": "the bot is no longer in it (archived, or the bot removed)",
    "channel_not_found": "Slack no longer finds it (deleted, or the bot removed from a private channel)",
    "is_archived": "archived",
    "access_denied": "Slack denies the bot access",
}
LIST_USERS_AFTER = 50  # a scoped run looks people up one by one (users.info), then lists them all
EVENT_MARK = "event"  # a thread fingerprint no message has: the next scheduled run re-reads the thread
EVENT_MEMORY = 3600.0  # seconds an event's write or deletion is remembered (Slack retries within minutes)
DELETED = "deleted"
UNLABELLED = "unlabelled"  # a channel's `acl` while its documents are being re-labelled (`_Crawl._relabel`)
# an event's `channel_type` -> the kind of conversation it says the channel is
CHANNEL_TYPES = {"channel": "public_channel", "group": "private_channel", "mpim": "mpim", "im": "im"}
# Each kind of conversation: what an operator calls it, and the setting that stops reading it.
KINDS: dict[str, tuple[str, str]] = {
    "private_channel": ("private channels", "include_private = false"),
    "mpim": ("group DMs", "include_dms = false"),
    "im": ("DMs", "include_dms = false"),
}


class SlackConfig(SourceConfig):
    token_env: str = Field(description="environment variable holding the bot token (xoxb-...)")
    channels: list[str] = Field(
        default_factory=list, description="channel name (or id) globs; default: every channel the bot is in"
    )
    base_url: ServiceUrl = Field("https://slack.com/api/", description="Web API base URL (GovSlack, tests)")
    lookback_days: float = Field(7, ge=0, description="days of history re-read each sync for edits/deletions")
    reconcile_every: Interval = Field("24h", description="how often to re-read all history for late replies")
    reread_threads_every: Interval | None = Field(
        None,
        description="about how often every thread is read again whole, however quiet: each reconcile reads "
        "its share (catches edits and deleted files in replies, which history does not show; costs a "
        "conversations.replies call per thread each period); default: never",
    )
    page_size: int = Field(200, ge=1, le=999, description="messages per history/replies call")
    pace: dict[str, float] = Field(
        default_factory=dict,
        description="calls per minute by API method, over the published tiers "
        "(0: unpaced), e.g. {'conversations.history' = 1}",
    )
    pace_scale: float = Field(
        1.0,
        gt=0,
        description="multiplies every pace: the pacer's minute lasts 60/pace_scale s "
        "(custom limits, time-scaled tests)",
    )
    include_files: bool = Field(True, description="fold text of files shared in threads into the document")
    max_file_bytes: int = Field(10_000_000, ge=0, description="files larger than this are not downloaded")
    include_dms: bool = Field(True, description="index DMs and group DMs the bot is part of")
    include_private: bool = Field(True, description="index private channels the bot is a member of")
    include_archived: bool = Field(True, description="index archived channels")
    domains: list[str] = Field(
        default_factory=list,
        description="who reads public channels: people of these email domains (default: public, every "
        "user of inlet; Slack guests read only the channels they are in)",
    )
    max_retries: int = Field(6, ge=0, description="retries of a rate-limited or failing call")
    retry_backoff: float = Field(0.5, ge=0, description="first backoff in seconds for 5xx (doubles)")
    timeout: float = Field(30.0, gt=0, description="HTTP timeout in seconds")
    events: bool = Field(False, description="hear changes over Socket Mode: syncs within seconds (daemon)")
    app_token_env: str | None = Field(
        None,
        description="environment variable holding the app-level token "
        "(xapp-..., connections:write); needed with events",
    )

    @field_validator("base_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    def paces(self) -> dict[str, float]:
        """Calls per minute by method (`pace_scale` is applied by the pacer: it shortens the minute)."""
        return {**TIERS, **self.pace}

    def retry_policy(self) -> RetryPolicy:
        # Slack's Retry-After for a tier's window is up to a minute: honoured in full.
        return RetryPolicy(attempts=self.max_retries + 1, backoff=self.retry_backoff, cap=60.0)


class SlackConnector(Connector[SlackConfig]):
    """Slack Web API via slack_sdk; see the module docstring for the sync model."""

    type = "slack"
    Config = SlackConfig
    deletions_from_checkpoint = True  # a thread is deleted when the checkpoint knew it and history no longer has it
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)
    # what the scheduled sync lists; the threads of a channel that left them stay unless read whole
    scope_keys = frozenset({"channels", "include_dms", "include_private", "include_archived"})

    def __init__(
        self, config: SlackConfig, env: Mapping[str, str] | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(config, env)
        self.clock = clock
        self.api: SlackAPI | None = None

    def client(self) -> SlackAPI:
        if self.api is None:
            cfg = self.config
            self.api = SlackAPI(
                self.name,
                self.secret("token_env"),
                cfg.base_url,
                pace=cfg.paces(),
                policy=cfg.retry_policy(),
                timeout=cfg.timeout,
                pace_scale=cfg.pace_scale,
            )
        return self.api

    def check(self) -> None:
        self.client().call("auth.test")

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        crawl = _Crawl(self, checkpoint, since)
        yield from crawl.run()

    def load_scope(self, checkpoint: dict[str, Any], scope: frozenset[str]) -> Iterator[Item]:
        """Sync only the channels in `scope` (see the module docstring)."""
        crawl = _Crawl(self, checkpoint, None)
        if crawl.fresh or crawl.state.run is not None:  # a full run to finish first: it covers these too
            yield from crawl.run()
            return
        touched = crawl.people_changed(scope)
        if touched is None:  # a member's readers changed where no checkpoint tells: every channel's members
            yield from crawl.run()
        else:
            yield from crawl.run_scope(scope - {c for c in scope if c.startswith(PERSON)}, touched)

    def events(self) -> EventSource | None:
        if not self.config.events:
            return None
        if not self.config.app_token_env:
            raise ConfigError(f"source {self.name!r}: events = true needs app_token_env (an xapp- token)")
        return SlackSocketEvents(self.name, self.secret("app_token_env"), self.config.base_url, self.config.timeout)

    def live_ids(self) -> Iterable[str]:
        """Every thread's id, channel by channel; an archived channel the bot was ejected from
        vouches for all its documents (`LivePrefix`). A channel that is gone (`SKIP_CHANNEL`) lists
        nothing; one that answers another error, as a full run skips it, makes the listing
        incomplete: its documents are not known to be gone."""
        return self._listing(None)

    def live_ids_after(self, checkpoint: dict[str, Any] | None) -> Iterable[str]:
        """After a resumed run: only the channels the unfinished run had not finished by
        `checkpoint` (its plan's `todo`, and the `unsettled` ones of the runs it resumed before)
        are listed; what it wrote after saving the checkpoint is in them. Every other channel
        listed now is vouched for (`LivePrefix`): its deletions are the next sync's, as without
        the crash. A checkpoint with no run in progress (or none): the whole listing."""
        state = _State.load(checkpoint, source=self.name) if checkpoint else None
        if state is None or state.run is None:
            return self._listing(None)
        return self._listing(set(state.run["todo"]) | set(state.run.get("unsettled", [])))

    def _listing(self, only: set[str] | None) -> Iterator[str]:
        """`live_ids`, listing only the channels in `only` (None: all) and vouching for the others."""
        crawl = _Crawl(self, None, None)
        crawl.listing = True
        crawl.start()
        failed: list[str] = []
        for chan in crawl.channels.values():
            if chan.id in crawl.frozen or (only is not None and chan.id not in only):
                yield LivePrefix(self.doc_id(f"{chan.id}:"))  # archived: nobody can change it; or finished
                continue
            try:
                for page in crawl.api.pages("conversations.history", channel=chan.id, limit=self.config.page_size):
                    for msg in page.get("messages", []):
                        if is_parent(msg):
                            yield self.doc_id(f"{chan.id}:{msg['ts']}")
            except MissingScope as exc:
                crawl.lack(exc, [chan.kind])
            except SlackError as exc:
                if exc.error not in SKIP_CHANNEL:
                    failed.append(f"channel {chan.name}: {exc.error}")
                    continue
                log.warning(
                    "source %r: channel %s unreadable (%s): its documents are gone", self.name, chan.name, exc.error
                )
        if crawl.missing or failed:
            lacking = [crawl.lacking(kind) for kind in sorted(crawl.missing)]
            raise IncompleteListingError(f"source {self.name!r}: " + "; ".join(lacking + failed))


class _State(CheckpointModel):
    """The checkpoint. `channels`: per channel id {acl, newest, threads, recent, name, kind, public,
    users} (the last three: the ACL, for event runs; entries without them are read as before);
    `run`: the run in progress ({todo, planned, reconcile, scan, unsettled}; `planned`: every
    channel it meant to read, so a resumed run tells one joined since; `unsettled`: the channels
    left to read when it was resumed, each time, for `live_ids_after`), None between runs;
    `names`: channel names for mentions, `private`: which of them are private (named only to members)."""

    channels: dict[str, dict[str, Any]] = {}
    run: dict[str, Any] | None = None
    reconciled_at: float = 0.0
    names: dict[str, str] = {}
    private: list[str] | None = None  # the ids in `names` of private channels (None: from before)
    team_url: str = ""
    retries: Retries = Field(default_factory=Retries)  # "CHANNEL:TS" of threads with a file not read
    files: dict[str, list[str]] = {}  # "CHANNEL:TS" -> the files its document names (for `file_deleted`)


def _fingerprint(msg: Mapping[str, Any]) -> str:
    """What history shows of a message that its document depends on: replies, edit, subtype, and
    its files by id and mode (a deleted file turns to mode `tombstone` and no edit is made)."""
    edited = (msg.get("edited") or {}).get("ts", "")
    fp = f"{msg.get('reply_count', 0)}|{msg.get('latest_reply', '')}|{edited}|{msg.get('subtype', '')}"
    files = ",".join(f"{f.get('id', '')}:{f.get('mode', '')}" for f in files_of(msg))
    return f"{fp}|{files}" if files else fp  # a message without files keeps the fingerprint it had


def _acl_key(chan: ChannelInfo) -> str:
    raw = f"{chan.name}|{chan.kind}|{chan.acl.public}|{','.join(chan.acl.users)}"
    raw += f"|{','.join(chan.acl.domains)}" if chan.acl.domains else ""  # keys from before `domains` stay
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


_people: dict[tuple[str, str], dict[str, Person]] = {}  # (source, base URL) -> people runs have met
_people_lock = threading.Lock()


def _met(conn: SlackConnector) -> dict[str, Person]:
    with _people_lock:
        return dict(_people.get((conn.name, conn.config.base_url), {}))


def _remember(conn: SlackConnector, people: Mapping[str, Person]) -> None:
    known = {uid: p for uid, p in people.items() if p.email or p.name != uid}  # not the failed lookups
    with _people_lock:
        _people.setdefault((conn.name, conn.config.base_url), {}).update(known)


def _known_channel(cid: str, cs: Mapping[str, Any] | None) -> ChannelInfo | None:
    """The channel as its checkpoint entry describes it (None: an entry from before events knew it)."""
    if not cs or "kind" not in cs:
        return None
    acl = ACL(public=cs["public"], users=cs["users"], domains=cs.get("domains", []))
    chan = ChannelInfo(cid, cs["name"], cs["kind"], acl)
    return chan if _acl_key(chan) == cs["acl"] else None


def _readers(cs: Mapping[str, Any]) -> tuple[bool, list[str], list[str]]:
    """Who reads a channel's documents, as its checkpoint entry last had it."""
    return bool(cs["public"]), sorted(cs["users"]), sorted(cs.get("domains", []))


def _readers_of(acl: ACL) -> tuple[bool, list[str], list[str]]:
    return acl.public, sorted(acl.users), sorted(acl.domains)


def _same_kind(chan: ChannelInfo, events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the events' `channel_type` agrees with the channel's kind in the checkpoint; a channel
    made private (or public) whose notice was missed is never written with its old ACL."""
    return all(CHANNEL_TYPES.get(e.get("channel_type", ""), chan.kind) == chan.kind for e in events)


def _human(person: Person) -> bool:
    """A person Slack described (not a failed lookup) who can hold an email: no bot, not Slackbot,
    not deactivated."""
    return person.name != person.id and not person.is_bot and not person.deleted and person.id != "USLACKBOT"


def _edit_of(msg: Mapping[str, Any]) -> float:
    """When this version of a message was written: its last edit, else the message itself."""
    return float((msg.get("edited") or {}).get("ts") or msg.get("ts") or 0)


class _EventPlan:
    """What a channel's message events change: single messages to write from their payload,
    threads to re-read (one `conversations.replies` each), top-level messages deleted."""

    def __init__(self, holders: Callable[[str], list[str]]) -> None:
        self.holders = holders  # a file's id -> the threads (parent ts) of this channel that name it
        self.messages: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, None] = {}  # ordered set of parent ts
        self.deleted: dict[str, None] = {}

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]], holders: Callable[[str], list[str]]) -> _EventPlan | None:
        """The plan, or None when an event does not say enough (the channel is read instead)."""
        plan = cls(holders)
        for event in sorted(events, key=lambda e: float(e.get("event_ts") or e.get("ts") or 0)):
            if not plan._add(event):
                return None
        for ts in plan.threads:
            plan.messages.pop(ts, None)
            plan.deleted.pop(ts, None)
        return plan

    def _add(self, event: Mapping[str, Any]) -> bool:
        subtype = event.get("subtype")
        if subtype in CONVERSIONS:  # the channel's visibility changed: its info and members are read
            return False
        if event.get("type") == "file_deleted":  # the threads that named the file are read again
            holders = self.holders(str(event.get("file_id") or ""))
            self.threads.update(dict.fromkeys(holders))
            return bool(holders)  # a file no document is known to name: the channel's recent history
        if subtype == "message_deleted":
            ts, before = event.get("deleted_ts"), event.get("previous_message")
            if not ts or not isinstance(before, Mapping):
                return False
            if not self._in_thread({**before, "ts": ts}):
                self.messages.pop(ts, None)
                self.deleted[ts] = None
            return True
        msg = event.get("message") if subtype in ("message_changed", "message_replied") else event
        if not isinstance(msg, Mapping) or not msg.get("ts"):
            return False
        if not self._in_thread(msg) and is_parent(msg):
            self.messages[msg["ts"]] = {
                k: v for k, v in msg.items() if k not in ("channel", "channel_type", "event_ts", "hidden")
            }
            self.deleted.pop(msg["ts"], None)
        return True

    def _in_thread(self, msg: Mapping[str, Any]) -> bool:
        """Note the thread `msg` belongs to (a reply, a parent with replies, a shared file: read whole)."""
        ts, parent = msg["ts"], msg.get("thread_ts")
        if parent and parent != ts:
            self.threads[parent] = None
        elif parent or msg.get("reply_count") or files_of(msg) or msg.get("subtype") == "file_share":
            self.threads[ts] = None
        else:
            return False
        return True


class _Crawl:
    """One load(): the client, the user directory, the channel list, and the state being advanced."""

    def __init__(self, conn: SlackConnector, checkpoint: dict[str, Any] | None, since: datetime | None) -> None:
        self.conn = conn
        self.cfg = conn.config
        self.api = conn.client()
        self.fresh = checkpoint is None
        self.state = _State.load(checkpoint, source=conn.name) or _State()
        self.floor = since.timestamp() if since else 0.0
        self.directory = Directory(lookup=self._lookup_user)
        self.channels: dict[str, ChannelInfo] = {}
        self.team_url = ""
        self.scoped = False  # a scoped run: its checkpoints never carry a run in progress
        self.lookups = 0  # users.info calls made (a scoped run lists users after LIST_USERS_AFTER)
        self.users_listed = False
        self.missing: dict[str, str] = {}  # kind of conversation -> the scopes Slack says it needs
        self.emails_seen = False  # Slack has shown a person's email (the token has users:read.email)
        self.listing = False  # live_ids: every archived channel is vouched for, whatever the checkpoint
        self.frozen: set[str] = set()  # archived channels the bot was ejected from: kept as they are, not read
        self.matched: set[str] = set()  # `channels` entries that matched a conversation read
        self.unmatched: list[Skipped] = []  # a skip by policy per `channels` entry that matched none
        self.outage = Outage(conn.name)  # reads in a row that keep answering server errors: Slack is down

    def lacking(self, kind: str) -> str:
        """Why a kind of conversation is not read: the scope Slack asked for and the setting."""
        label, setting = KINDS[kind]
        return (
            f"{label} not read: Slack says the token lacks the {self.missing[kind]} scope; "
            f"add it to the app and reinstall it, or set {setting}"
        )

    def lack(self, exc: MissingScope, kinds: Iterable[str], asked: Iterable[str] = KINDS) -> None:
        """Note that the token may not read `kinds` (Slack's `exc` names the scope); a kind that was not
        `asked` for (leaving it out cannot help) is a credentials error."""
        kinds = set(kinds)
        if not kinds or not kinds <= set(asked) or not kinds <= set(KINDS):
            raise CredentialsError(
                self.conn.name, f"Slack answered 'missing_scope' to {exc.method} (scope needed: {exc.needed})"
            )
        for kind in kinds:
            self.missing[kind] = exc.needed

    def _missing_skips(self) -> Iterator[Skipped]:
        for kind in sorted(self.missing):
            yield Skipped(id=self.conn.doc_id(kind), reason=self.lacking(kind), title=KINDS[kind][0])

    # --- setup ------------------------------------------------------------------------------------
    def start(self) -> None:
        auth = self.api.call("auth.test")
        self.team_url = auth.get("url") or "https://slack.com/"
        self._list_users()
        self.channels = self._list_channels()
        if not self.missing:  # else an entry may name a kind the token may not list: that skip says so
            self.unmatched = check_scope(
                self.conn,
                "channels",
                self.cfg.channels,
                self.matched,
                self.directory.channels.values(),
                "channel the bot is a member of",
            )
        self.state.names = dict(sorted(self.directory.channels.items()))  # for scoped runs' mentions
        self.state.private = sorted(self.directory.private)
        self.state.team_url = self.team_url

    def _list_users(self) -> None:
        for page in self.api.pages("users.list", limit=200):
            for user in page.get("members", []):
                self.directory.add_user(user)
        self.users_listed = True

    def _lookup_user(self, uid: str) -> Person | None:
        if not self.users_listed and self.lookups >= LIST_USERS_AFTER:  # a big private channel
            self._list_users()
            if uid in self.directory.people:
                return self.directory.people[uid]
        self.lookups += 1
        try:
            return self.directory.add_user(self.api.call("users.info", user=uid)["user"])
        except SlackError:
            return None

    def _kinds(self) -> list[str]:
        """The kinds of conversation to list: those configured, less those the token may not read."""
        kinds = ["public_channel"] + (["private_channel"] if self.cfg.include_private else [])
        kinds += ["mpim", "im"] if self.cfg.include_dms else []
        return [k for k in kinds if k not in self.missing]

    def _list_channels(self) -> dict[str, ChannelInfo]:
        """Every conversation to read; a kind the token lacks a scope for is left out (`missing`)."""
        while True:
            kinds = self._kinds()
            try:
                return self._list_kinds(",".join(kinds))
            except MissingScope as exc:
                self.lack(exc, exc.kinds, kinds)

    def _list_kinds(self, types: str) -> dict[str, ChannelInfo]:
        """The conversations of `types` to read. Archived ones are listed whether or not they are
        indexed (one listing, no call more): without `include_archived` they are only named, so a
        mention of an archived public channel shows its name (`Directory.channel`)."""
        found: dict[str, ChannelInfo] = {}
        for page in self.api.pages("conversations.list", types=types, limit=200, exclude_archived=False):
            for c in page.get("channels", []):
                if c.get("name"):
                    self.directory.channels[c["id"]] = c["name"]
                if c.get("is_archived") and not self.cfg.include_archived:
                    self._note_private(c, None)  # named for mentions only: not read, its members not asked
                    continue
                info = self._channel_info(c)
                self._note_private(c, info)
                if info is not None and self._wanted(info):
                    found[info.id] = info
        return dict(sorted(found.items()))

    def _note_private(self, c: Mapping[str, Any], info: ChannelInfo | None) -> None:
        """Mentions of a private channel (DM, group DM) name it only to its members (`Directory.channel`)."""
        if c.get("is_private") or c.get("is_mpim") or c.get("is_im"):
            self.directory.private[c["id"]] = info.acl if info is not None and info.kind != "public_channel" else None

    def _channel_info(self, c: Mapping[str, Any]) -> ChannelInfo | None:
        if c.get("is_im"):
            person = self.directory.person(c.get("user", ""))
            self._check_emails()
            reads = person.email and not person.is_bot and not person.deleted  # a deactivated user reads nothing
            return ChannelInfo(c["id"], "@" + person.name, "im", ACL(users=[person.email] if reads else []))
        if not c.get("is_member"):
            return self._archived(c) if c.get("is_archived") else None
        kind = "mpim" if c.get("is_mpim") else "private_channel" if c.get("is_private") else "public_channel"
        if kind == "public_channel":
            return ChannelInfo(c["id"], c["name"], kind, self._public())
        emails = []
        for page in self.api.pages("conversations.members", channel=c["id"], limit=1000):
            for uid in page.get("members", []):
                person = self.directory.person(uid)
                if person.email and not person.is_bot and not person.deleted:  # a deactivated member reads nothing
                    emails.append(person.email)
        self._check_emails()
        return ChannelInfo(c["id"], c["name"], kind, ACL(users=emails))

    def _public(self) -> ACL:
        """A public channel's readers: the configured `domains`, else everyone."""
        return ACL(domains=list(self.cfg.domains)) if self.cfg.domains else ACL(public=True)

    def _archived(self, c: Mapping[str, Any]) -> ChannelInfo | None:
        """An archived channel Slack ejected the bot from, kept unread (`frozen`) as its checkpoint
        entry knows it: its last name, visibility and members (nobody can change it any more; an
        entry from before entries kept them: a public channel is public, a private one is dropped).
        None when the bot never indexed it or archived channels are not indexed. For `live_ids`
        (`listing`, no checkpoint): every archived channel, its ACL left empty (nothing is written)."""
        if not self.cfg.include_archived:
            return None
        cid, cs = c["id"], self.state.channels.get(c["id"])
        name = c.get("name") or (cs or {}).get("name") or cid
        chan = _known_channel(cid, cs)
        if chan is None and self.listing:
            chan = ChannelInfo(cid, name, "public_channel", ACL())
        elif chan is None and cs is not None and not c.get("is_private"):
            chan = ChannelInfo(cid, name, "public_channel", self._public())
        if chan is not None:
            self.frozen.add(chan.id)
        return chan

    def _check_emails(self) -> None:
        """Fail when Slack shows no person's email: the token lacks users:read.email (Slack then leaves
        `profile.email` out without an error), and every private channel and DM would be indexed
        readable by nobody."""
        if self.emails_seen:
            return
        people = [p for p in self.directory.people.values() if _human(p)]
        self.emails_seen = any(p.email for p in people)
        if people and not self.emails_seen:
            raise CredentialsError(
                self.conn.name,
                "Slack shows no member's email address, so private channels and DMs would be readable by "
                "nobody: the token lacks the users:read.email scope; add it to the app and reinstall it, "
                "or set include_private = false and include_dms = false",
            )

    def _wanted(self, chan: ChannelInfo) -> bool:
        """Whether a `channels` entry selects `chan` (all do when none is set); the entries that do
        are noted in `matched`."""
        if not self.cfg.channels:
            return True
        name, cid = chan.name.lower(), chan.id.lower()
        hits = [
            entry
            for entry in self.cfg.channels
            if fnmatch.fnmatchcase(name, glob := entry.lstrip("#").lower()) or fnmatch.fnmatchcase(cid, glob)
        ]
        self.matched.update(hits)
        return bool(hits)

    # --- the run ------------------------------------------------------------------------------------
    def run(self) -> Iterator[Item]:
        try:
            self.start()
            yield from self._missing_skips()
            yield from warn(self.conn, self.unmatched)
            yield from self.state.retries.replay(self._read_again, given_up_now=False)  # the scan may delete them
            state = self.state
            if state.run is None:
                yield from self._begin()
            else:  # resumed: what the run wrote after its last checkpoint is in the channels left
                state.run["unsettled"] = sorted(set(state.run.get("unsettled", [])) | set(state.run["todo"]))
                self._add_joined()
            run = self._run
            todo = list(run["todo"])
            yield Progress(total=len(todo), unit="channels")  # left in this run (all of them unless resumed)
            for done, cid in enumerate(todo):
                yield Progress(done=done)
                if cid in self.channels:
                    yield from self._channel(self.channels[cid])
                run["todo"].remove(cid)
                run["scan"] = None
                yield self._checkpoint()
            yield Progress(done=len(todo))
            if run["reconcile"] or self.fresh:
                state.reconciled_at = self.conn.clock()
            yield from state.retries.given_up()
            state.run = None
            yield self._checkpoint()
        finally:
            _remember(self.conn, self.directory.people)
            log.info("source %r: API calls %s", self.conn.name, self.api.calls)

    def people_changed(self, scope: frozenset[str]) -> set[str] | None:
        """The channels whose readers the members' profile changes in `scope` (`@USER/event_id`:
        `user_change`) change, from the checkpoint: those whose readers hold an email that changed
        (none for a status or avatar change, or a bot); None when the checkpoint cannot tell (a
        member of this workspace this process never met, whose address reads no channel it knows;
        one reactivated or given a first email; a payload not found): then every channel's members
        are read (a whole run; once met, a member costs no more). The directory takes the new
        profiles."""
        for uid, person in _met(self.conn).items():
            self.directory.people.setdefault(uid, person)
        touched: set[str] = set()
        for container in sorted(c for c in scope if c.startswith(PERSON)):
            _, event_id = split_container(container)
            event = INBOX.take(self.conn.name, event_id) if event_id else None
            user = event.get("user") if event else None
            if not isinstance(user, dict) or not user.get("id"):
                return None
            before = self.directory.people.get(user["id"])
            after = self.directory.add_user(user)
            if after.is_bot or before is not None and (before.email, before.deleted) == (after.email, after.deleted):
                continue
            if before is None and (self._reader_anywhere(after.email) or not self._ours(after.id)):
                continue  # the ACLs know the address already; or a member of another workspace of the app
            if before is None or before.deleted or not before.email:
                return None
            log.info(
                "source %r: the email of %s changed: re-reading their channels' members", self.conn.name, after.name
            )
            touched.update(cid for cid, cs in self.state.channels.items() if before.email in cs.get("users", ()))
        return touched

    def _reader_anywhere(self, email: str) -> bool:
        """Whether `email` reads a channel the checkpoint knows (by its members)."""
        return bool(email) and any(email in cs.get("users", ()) for cs in self.state.channels.values())

    def _ours(self, uid: str) -> bool:
        """Whether Slack describes `uid` to this source's token (`users.info`): an app in two
        workspaces hears each one's members."""
        try:
            self.api.call("users.info", user=uid)
        except SlackError as exc:
            if exc.error in ("user_not_found", "users_not_found"):
                return False
            raise
        return True

    def _private_from_state(self) -> None:
        """The private channels the last full run listed, with the readers their entries keep; a
        checkpoint from before it listed them: every named channel not recorded as public."""
        private = self.state.private
        if private is None:
            entries = self.state.channels
            private = [cid for cid in self.state.names if not (entries.get(cid) or {}).get("public")]
        for cid in private:
            chan = _known_channel(cid, self.state.channels.get(cid))
            self.directory.private.setdefault(cid, chan.acl if chan is not None else None)

    def run_scope(self, scope: frozenset[str], touched: Iterable[str] = ()) -> Iterator[Item]:
        """Only the channels in `scope`, each from its own checkpoint entry, and those `touched` by a
        member's changed email, read bare; nothing else is read."""
        self.scoped = True
        try:
            self.team_url = self.state.team_url or self.api.call("auth.test").get("url") or "https://slack.com/"
            self.directory.channels.update(self.state.names)
            self._private_from_state()
            for uid, person in _met(self.conn).items():  # a profile `people_changed` took stays
                self.directory.people.setdefault(uid, person)
            run = self.state.run = {"todo": [], "reconcile": False, "scan": None}
            planned: dict[str, tuple[ChannelInfo, _EventPlan] | None] = dict.fromkeys(touched)  # None: read bare
            for cid, events in sorted(self._events_by_channel(scope).items()):
                plan = _EventPlan.of(events, self._holders(cid)) if events is not None else None
                chan = _known_channel(cid, self.state.channels.get(cid)) if plan is not None else None
                if chan is not None and not self._selected(chan):
                    chan = None  # read as a bare channel: the config dropped it since it was indexed
                if chan is not None and not _same_kind(chan, events or []):
                    chan = None  # made private or public since: read bare, its members are the ACL
                if cid not in planned:  # a channel `touched` is read bare: its members are read again
                    planned[cid] = (chan, plan) if plan is not None and chan is not None else None
            # What the payloads hold needs no call: written, and committed (the checkpoint), before
            # any thread of the batch is read at the replies tier.
            for both in planned.values():
                if both is not None:
                    yield from self._unless_gone(both[0], self._apply(*both))
            yield self._checkpoint()
            for cid, both in sorted(planned.items()):
                if both is None:
                    yield from self._scan_channel(cid)
                elif both[1].threads:
                    yield from self._unless_gone(both[0], self._reread(*both))
                else:
                    continue
                run["scan"] = None
                yield self._checkpoint()
            self.state.run = None
        finally:
            _remember(self.conn, self.directory.people)
            log.info(
                "source %r: API calls %s (channels %s)",
                self.conn.name,
                self.api.calls,
                ", ".join(sorted({split_container(c)[0] for c in scope})),
            )

    def _events_by_channel(self, scope: frozenset[str]) -> dict[str, list[dict[str, Any]] | None]:
        """Each channel's event payloads from the inbox; None: read the channel (a bare channel in
        the scope, or a payload not found)."""
        found: dict[str, list[dict[str, Any]] | None] = {}
        taken: dict[str, dict[str, Any] | None] = {}  # an event naming several channels is taken once
        for container in sorted(scope):
            cid, event_id = split_container(container)
            if event_id and event_id not in taken:
                taken[event_id] = INBOX.take(self.conn.name, event_id)
            event = taken[event_id] if event_id else None
            events = found.setdefault(cid, [])
            if event is None:
                found[cid] = None
            elif events is not None:
                events.append(event)
        return found

    def _holders(self, cid: str) -> Callable[[str], list[str]]:
        """A file's id -> the threads (parent ts) of channel `cid` whose documents name it."""

        def holders(file_id: str) -> list[str]:
            natives = (n for n, ids in self.state.files.items() if file_id in ids)
            return sorted(ts for c, _, ts in (n.partition(":") for n in natives) if c == cid)

        return holders

    def _scan_channel(self, cid: str) -> Iterator[Item]:
        try:
            chan = self._one_channel(cid)
        except MissingScope as exc:
            self.lack(exc, exc.kinds)
            why = "; ".join(self.lacking(kind) for kind in sorted(exc.kinds))
            yield Skipped(id=self.conn.doc_id(cid), reason=f"channel {cid}: {why}")
            return
        if chan is not None:
            yield from self._channel(chan)
        elif cid in self.state.channels:
            yield from self._drop_channel(cid)

    def _apply(self, chan: ChannelInfo, plan: _EventPlan) -> Iterator[Item]:
        """What a channel's message events say by their payloads alone: single messages written,
        top-level messages deleted, and the threads to read marked (`_reread` reads them); the
        checkpoint only learns of them (see the module docstring)."""
        cs = self.state.channels[chan.id]
        now = self.conn.clock()
        memory = {ts: seen for ts, seen in cs.get("events", {}).items() if now - seen[1] < EVENT_MEMORY}
        for ts, msg in plan.messages.items():
            before = memory.get(ts)
            if before is not None and (before[0] == DELETED or float(before[0]) > _edit_of(msg)):
                log.info("source %r: an older event of message %s in %s left out", self.conn.name, ts, chan.name)
                continue
            memory[ts] = [str(_edit_of(msg)), now]
            cs["recent"][ts] = EVENT_MARK
            yield from self._document(chan, [msg])
        for ts in plan.deleted:
            memory[ts] = [DELETED, now]
            cs["threads"].pop(ts, None)
            cs["recent"].pop(ts, None)
            yield self._deleted(chan.id, ts)
        for ts in plan.threads:  # an interrupted run leaves them to the next scheduled run
            cs["threads"][ts] = EVENT_MARK
        cs["events"] = memory

    def _reread(self, chan: ChannelInfo, plan: _EventPlan) -> Iterator[Item]:
        """The threads a channel's message events touched, one `conversations.replies` each."""
        for ts in plan.threads:
            yield from self._thread(chan, {"ts": ts}, known=False)

    def _selected(self, chan: ChannelInfo) -> bool:
        """Whether the config selects the channel now (its kind, its name)."""
        if chan.kind in ("im", "mpim") and not self.cfg.include_dms:
            return False
        if chan.kind == "private_channel" and not self.cfg.include_private:
            return False
        return self._wanted(chan)

    def _one_channel(self, cid: str) -> ChannelInfo | None:
        """The channel as a full run would list it, or None when a full run would not index it."""
        try:
            c = self.api.call("conversations.info", channel=cid)["channel"]
        except SlackError as exc:
            if exc.error in SKIP_CHANNEL:
                return None
            raise
        if c.get("name"):
            self.directory.channels[cid] = c["name"]
        self._note_private(c, None)
        if (c.get("is_im") or c.get("is_mpim")) and not self.cfg.include_dms:
            return None
        if c.get("is_private") and not c.get("is_mpim") and not self.cfg.include_private:
            return None
        if c.get("is_archived") and not self.cfg.include_archived:
            return None
        info = self._channel_info(c)
        return info if info is not None and self._wanted(info) else None

    def _deleted(self, cid: str, ts: str) -> Deletion:
        """The thread's deletion; a file of it that failed to read is no longer reported."""
        self.state.retries.forget(f"{cid}:{ts}")
        self.state.files.pop(f"{cid}:{ts}", None)
        return Deletion(id=self.conn.doc_id(f"{cid}:{ts}"))

    def _drop_channel(self, cid: str) -> Iterator[Item]:
        """Every document of a channel no longer indexed (gone, left, excluded)."""
        gone = self.state.channels.pop(cid)
        log.info("source %r: channel %s is gone or no longer indexed", self.conn.name, gone.get("name"))
        for ts in sorted(set(gone["threads"]) | set(gone["recent"])):
            yield self._deleted(cid, ts)
        for native in [n for n in self.state.retries.failed if n.partition(":")[0] == cid]:
            self.state.retries.forget(native)  # the prune removes its document
        for native in [n for n in self.state.files if n.partition(":")[0] == cid]:
            del self.state.files[native]

    def _begin(self) -> Iterator[Item]:
        state = self.state
        due = self.conn.clock() - state.reconciled_at >= parse_duration(self.cfg.reconcile_every)
        todo, reconcile = list(self.channels), bool(due and not self.fresh)
        state.run = {"todo": todo, "planned": list(todo), "reconcile": reconcile, "scan": None}
        for cid in [c for c in state.channels if c not in self.channels and self._gone(state.channels[c])]:
            yield from self._drop_channel(cid)
        yield self._checkpoint()

    def _add_joined(self) -> None:
        """A resumed run also reads the channels listed now that its plan did not name (joined
        since), after the planned ones; what the plan finished is not read again."""
        run = self._run
        planned = run.setdefault("planned", list(self.channels))  # a plan saved without the key: none added
        joined = [cid for cid in self.channels if cid not in planned]
        run["todo"] += joined
        planned += joined

    def _gone(self, cs: Mapping[str, Any]) -> bool:
        """Whether an unlisted channel is gone, not just of a kind the token may not read now (its
        documents are kept until it may; an entry that does not know its kind is kept then too)."""
        if "kind" not in cs:
            return not self.missing
        return cs["kind"] not in self.missing

    def _checkpoint(self) -> Checkpoint:
        state = self.state.dump()  # a deep copy: the crawl goes on mutating its own
        if self.scoped:
            state["run"] = None  # resuming never continues a scoped run: the next run plans afresh
        return Checkpoint(state=state)

    def _plan(self, chan: ChannelInfo, cs: dict[str, Any] | None) -> dict[str, Any]:
        now = self.conn.clock()
        window = now - self.cfg.lookback_days * 86400
        reread: list[str] = []
        relabel = cs is not None and "kind" in cs and (_readers(cs) != _readers_of(chan.acl) or cs["acl"] == UNLABELLED)
        same = cs is not None and "kind" in cs and (cs["name"], cs["kind"]) == (chan.name, chan.kind)
        if cs is None or (cs["acl"] != _acl_key(chan) and not (relabel and same)):
            oldest, force = self.floor, True  # new, renamed, made private or public: every document again
        elif self._run["reconcile"]:
            oldest, force = self.floor, False
            reread = self._reread_share(cs)
        else:
            oldest, force = max(self.floor, min(float(cs["newest"] or 0), window)), False
        return {
            "channel": chan.id,
            "oldest": oldest,
            "window": window,
            "force": force,
            "latest": None,
            "top": None,
            "seen": [],
            "recent": {},
            "reread": reread,
            "relabel": relabel,
        }

    def _reread_share(self, cs: Mapping[str, Any]) -> list[str]:
        """The threads (parent ts) this reconcile reads again whole, unchanged or not: with
        `reread_threads_every`, the next share of the channel's threads after the last one read so
        (`reread_after`), wrapping round, so every thread is read again about once a period."""
        if not self.cfg.reread_threads_every:
            return []
        threads = sorted(cs["threads"], key=float)
        ratio = parse_duration(self.cfg.reconcile_every) / parse_duration(self.cfg.reread_threads_every)
        share = min(len(threads), math.ceil(len(threads) * ratio))
        after = float(cs.get("reread_after") or 0)
        following = [ts for ts in threads if float(ts) > after]
        return (following + [ts for ts in threads if float(ts) <= after])[:share]

    @property
    def _run(self) -> dict[str, Any]:
        """The run in progress ({todo, planned, reconcile, scan})."""
        assert self.state.run is not None, "no run in progress"
        return self.state.run

    def _channel(self, chan: ChannelInfo) -> Iterator[Item]:
        yield from self._unless_gone(chan, self._read_channel(chan))

    def _unless_gone(self, chan: ChannelInfo, items: Iterator[Item]) -> Iterator[Item]:
        """`items`, read from `chan`, until Slack says the channel is gone or the bot out of it
        (`SKIP_CHANNEL` from a thread's `conversations.replies`: archived or deleted meanwhile):
        then the rest of the channel is a skip with that reason, as when its history says so."""
        try:
            yield from items
        except SlackError as exc:
            if isinstance(exc, MissingScope) or exc.error not in SKIP_CHANNEL:
                raise
            yield self._skip_channel(chan, exc)

    def _read_channel(self, chan: ChannelInfo) -> Iterator[Item]:
        if chan.id in self.frozen:  # archived, the bot ejected: its documents stay as they are
            log.info("source %r: channel %s is archived: its documents are kept as they are", self.conn.name, chan.name)
            return
        run = self._run
        cs = self.state.channels.get(chan.id)
        scan = run["scan"] if run["scan"] and run["scan"]["channel"] == chan.id else None
        if scan is None:
            scan = run["scan"] = self._plan(chan, cs)
        if scan.get("relabel"):
            try:
                yield from self._relabel(chan, cs)
            except MissingScope as exc:
                self.lack(exc, [chan.kind])  # the channel's read below says so
            except SlackError as exc:
                if exc.error in SKIP_CHANNEL:
                    raise
                yield self._unlabelled(chan, exc)
                return
            scan["relabel"] = False
        if cs is None:
            cs = {"acl": "", "newest": None, "threads": {}, "recent": {}}
        seen = set(scan["seen"])
        pages = self._history(chan, scan["oldest"], scan["latest"])
        while True:
            if chan.kind in self.missing:
                yield Skipped(id=self.conn.doc_id(chan.id), reason=f"channel {chan.name}: {self.lacking(chan.kind)}")
                return
            try:
                page = next(pages, None)
            except MissingScope as exc:
                self.lack(exc, [chan.kind])
                continue
            except SlackError as exc:
                yield self._skip_channel(chan, exc)
                return
            if page is None:
                break
            messages = page.get("messages", [])
            if messages and scan["top"] is None:
                scan["top"] = messages[0]["ts"]
            reread = set(scan.get("reread") or ())
            for msg in messages:
                if is_parent(msg):
                    yield from self._parent(chan, msg, cs, scan, seen, reread)
            if messages:
                scan["latest"] = messages[-1]["ts"]
            scan["seen"] = sorted(seen)
            if page.get("has_more"):
                self.state.channels[chan.id] = cs
                yield self._checkpoint()
        yield from self._finish(chan, cs, scan, seen)

    def _history(self, chan: ChannelInfo, oldest: float, latest: str | None) -> Iterator[dict[str, Any]]:
        """The channel's history pages, newest first, from `latest` (excluded; None: now) back to
        `oldest` (0: the beginning). A cursor Slack no longer takes (`invalid_cursor`: it expired
        during a long pass) starts the paging again below the last message read, losing nothing;
        the error is raised when no message was read since the last such start (no progress)."""
        pager = Pager(source=self.conn.name, what="conversations.history")
        bound = latest
        progress = True  # a message was read since the paging last started again
        while True:
            try:
                page = self.api.call(
                    "conversations.history",
                    channel=chan.id,
                    limit=self.cfg.page_size,
                    oldest=f"{oldest:.6f}" if oldest else None,
                    latest=bound,
                    inclusive=False,
                    cursor=pager.token,
                )
            except SlackError as exc:
                if exc.error != "invalid_cursor" or not pager.token or not progress:
                    raise
                progress = False
                log.info("source %r: cursor expired in %s; resuming from %s", self.conn.name, chan.name, latest)
                bound, pager = latest, Pager(source=self.conn.name, what="conversations.history")
                continue
            messages = page.get("messages", [])
            yield page
            if messages:
                latest, progress = messages[-1]["ts"], True
            if not pager.advance(cursor(page) if page.get("has_more") else None):
                return

    def _relabel(self, chan: ChannelInfo, cs: dict[str, Any] | None) -> Iterator[Item]:
        """Every document of the channel takes its new readers, before anything else of it is read:
        one `AclUpdate` per parent in its history, threads and single messages alike (nothing
        re-read or embedded again; an id the index does not hold is ignored), committed page by
        page. Until the channel's read ends (`_finish`) its checkpoint entry says `UNLABELLED`, so
        a pass cut short (stopped, failed, or an error of Slack: `_unlabelled`) is done again,
        whole, by the next run, and an event run reads the channel's members instead of trusting
        the entry's old ones."""
        log.info("source %r: the readers of %s changed; re-labelling its documents", self.conn.name, chan.name)
        if cs is not None:
            cs["acl"] = UNLABELLED
        for page in self._history(chan, self.floor, None):
            for msg in page.get("messages", []):
                if is_parent(msg):
                    yield AclUpdate(id=self.conn.doc_id(f"{chan.id}:{msg['ts']}"), acl=chan.acl)
            yield self._checkpoint()

    def _unlabelled(self, chan: ChannelInfo, exc: SlackError) -> Skipped:
        """The channel's re-labelling stopped on Slack's error `exc`: a failed skip of the channel (the
        run is partial; the engine logs it and `inlet status` lists it); the next run re-labels it, whole."""
        reason = (
            f"channel {chan.name}: re-labelling stopped ({exc.error}): some of its documents keep their old "
            "readers until the next sync re-labels them"
        )
        return Skipped(id=self.conn.doc_id(chan.id), reason=reason)

    def _parent(
        self,
        chan: ChannelInfo,
        msg: dict[str, Any],
        cs: dict[str, Any],
        scan: dict[str, Any],
        seen: set[str],
        reread: set[str],
    ) -> Iterator[Item]:
        ts = msg["ts"]
        threads: dict[str, str] = cs["threads"]
        fp = _fingerprint(msg)
        if msg.get("reply_count") or msg.get("latest_reply"):
            seen.add(ts)
            active = float(msg.get("latest_reply") or ts) >= scan["window"]
            if scan["force"] or active or threads.get(ts) != fp or ts in reread:
                yield from self._thread(chan, msg)
            threads[ts] = fp
            return
        if ts in threads or ts in cs["recent"]:
            seen.add(ts)
        threads.pop(ts, None)
        if float(ts) >= scan["window"]:
            scan["recent"][ts] = fp
        if msg.get("subtype") != "tombstone" and (scan["force"] or cs["recent"].get(ts) != fp):
            yield from self._document(chan, [msg])

    def _thread(self, chan: ChannelInfo, parent: dict[str, Any], known: bool = True) -> Iterator[Item]:
        """The thread's document from `conversations.replies`; `known`: `parent` is the message itself
        (from history), else only its ts (an event), and a thread without its parent is gone."""
        found: dict[str, dict[str, Any]] = {}
        try:
            for page in self.api.pages(
                "conversations.replies", channel=chan.id, ts=parent["ts"], limit=self.cfg.page_size
            ):
                for msg in page.get("messages", []):
                    found[msg["ts"]] = msg
        except SlackError as exc:
            if isinstance(exc, MissingScope):
                self.lack(exc, [chan.kind])
                yield Skipped(id=self.conn.doc_id(f"{chan.id}:{parent['ts']}"), reason=self.lacking(chan.kind))
                return
            if exc.error == "thread_not_found":
                yield self._deleted(chan.id, parent["ts"])
                return
            if exc.error == "invalid_cursor":  # expired mid-thread: the next run re-reads it
                yield Skipped(id=self.conn.doc_id(f"{chan.id}:{parent['ts']}"), reason=str(exc))
                return
            raise  # SKIP_CHANNEL: the caller skips the channel (`_unless_gone`)
        except RetriableError as exc:  # still a server error: this thread's failed read, unless Slack looks down
            native = f"{chan.id}:{parent['ts']}"
            title = f"#{chan.name} thread {parent['ts']}"
            skipped = Skipped(id=self.conn.doc_id(native), reason=self.outage.failed(title, exc), title=title)
            yield self.state.retries.note(native, skipped)  # read again, whole, by the next run
            return
        self.outage.read()
        if not known and parent["ts"] not in found:
            yield self._deleted(chan.id, parent["ts"])
            return
        found.setdefault(parent["ts"], parent)
        messages = sorted(found.values(), key=lambda m: float(m["ts"]))
        messages.remove(found[parent["ts"]])
        yield from self._document(chan, [found[parent["ts"]], *messages])

    def _read_again(self, native: str) -> Iterator[Item]:
        """A thread (or message) whose file could not be read, read again whole (noted by `_document`)."""
        cid, ts = native.split(":", 1)
        if cid in self.channels and cid not in self.frozen:  # else not read any more: the replay forgets it
            chan = self.channels[cid]
            yield from self._unless_gone(chan, self._thread(chan, {"ts": ts}, known=False))

    def _document(self, chan: ChannelInfo, messages: list[dict[str, Any]]) -> Iterator[Item]:
        """The thread's document; a file of it that could not be read is a failed skip, and the
        thread is read again by the next run (`Retries`): the document goes in without that text."""
        texts: dict[str, str] = {}
        native = f"{chan.id}:{messages[0]['ts']}"
        doc_id = self.conn.doc_id(native)
        unread: list[Skipped] = []
        if self.cfg.include_files:
            resolved = []
            for msg in messages:
                if files_of(msg):
                    files = []
                    for f in files_of(msg):
                        f = yield from self._file(doc_id, f, texts, unread)
                        files.append(f)
                    msg = {**msg, "files": files, "file": None}
                resolved.append(msg)
            messages = resolved
        if unread:
            self.state.retries.note(native, unread[0])
        else:
            self.state.retries.forget(native)
        named = [f["id"] for msg in messages for f in files_of(msg) if f.get("id") and f.get("mode") != "tombstone"]
        if named:
            self.state.files[native] = named
        else:
            self.state.files.pop(native, None)
        t = thread_doc(chan, messages, self.directory, self.team_url, texts)
        yield self.conn.document(
            t.native_id,
            title=t.title,
            text=t.text,
            url=t.url,
            author=t.author,
            created_at=t.created_at,
            updated_at=t.updated_at,
            metadata=t.metadata,
            acl=chan.acl,
            plain_text=True,
        )

    def _file(
        self, doc_id: str, f: dict[str, Any], texts: dict[str, str], unread: list[Skipped]
    ) -> Generator[Skipped, None, dict[str, Any]]:
        """Reads one shared file into `texts`; returns its full description (files.info when needed).
        A file that could not be read is yielded as a failed skip and added to `unread`."""
        fid = f.get("id", "")
        skip_id = f"{doc_id}#file-{fid}"
        title = f.get("name") or f.get("title") or fid
        if f.get("file_access") == "check_file_info":
            try:
                f = self.api.call("files.info", file=fid)["file"]
            except SlackError as exc:
                unread.append(Skipped(id=skip_id, reason=f"files.info: {exc.error}", title=title))
                yield unread[-1]
                return f
        if f.get("mode") in ("tombstone", "hidden_by_limit") or not f.get("name") or is_external(f):
            return f  # an external file (Google Drive, Dropbox...): named with its link, never fetched
        name, mime = f["name"], f.get("mimetype") or ""
        if kind_of(name, mime) is None:
            return f  # images, archives...: named in the thread, not read
        if f.get("size", 0) > self.cfg.max_file_bytes:
            reason = f"{name}: {f.get('size')} bytes is over max_file_bytes"
            yield Skipped(id=skip_id, reason=reason, failed=False, title=name)
            return f
        url = f.get("url_private_download") or f.get("url_private")
        try:
            if not url:
                raise ItemError(f"{name}: Slack gave no download URL")
            data = self.api.download(url, self.cfg.max_file_bytes, mime)
            self.outage.read()
            texts[fid] = extract_text(data, name, mime).strip()
        except RetriableError as exc:  # a server error: this file's failed read, unless Slack looks down
            unread.append(Skipped(id=skip_id, reason=self.outage.failed(name, exc), title=name))
            yield unread[-1]
        except ItemError as exc:  # one unreadable file never costs its thread
            skipped = Skipped(id=skip_id, reason=str(exc), failed=exc.failed, title=name)
            if skipped.failed:
                unread.append(skipped)
            yield skipped
        return f

    def _finish(self, chan: ChannelInfo, cs: dict[str, Any], scan: dict[str, Any], seen: set[str]) -> Iterator[Item]:
        oldest = scan["oldest"]
        known = set(cs["threads"]) | set(cs["recent"])
        gone = sorted(ts for ts in known if float(ts) > oldest and ts not in seen)
        for ts in gone:
            cs["threads"].pop(ts, None)
            yield self._deleted(chan.id, ts)
        window = scan["window"]
        cs["recent"] = {
            ts: fp
            for ts, fp in sorted({**cs["recent"], **scan["recent"]}.items())
            if float(ts) >= window and ts not in gone
        }
        tops = [t for t in (cs["newest"], scan["top"]) if t]
        cs["newest"] = max(tops, key=float) if tops else None
        cs["acl"] = _acl_key(chan)
        if scan.get("reread"):
            cs["reread_after"] = scan["reread"][-1]
        cs.update(
            name=chan.name,
            kind=chan.kind,
            public=chan.acl.public,
            users=list(chan.acl.users),
            domains=list(chan.acl.domains),
        )
        self.state.channels[chan.id] = cs

    def _skip_channel(self, chan: ChannelInfo, exc: SlackError) -> Skipped:
        if exc.error in SKIP_CHANNEL:
            log.warning("source %r: skipping channel %s (%s): %s", self.conn.name, chan.name, chan.id, exc.error)
            reason = f"channel {chan.name}: {exc.error}: {SKIP_CHANNEL[exc.error]}"
            return Skipped(id=self.conn.doc_id(chan.id), reason=reason, failed=False)
        log.error("source %r: channel %s failed: %s", self.conn.name, chan.name, exc)
        return Skipped(id=self.conn.doc_id(chan.id), reason=f"channel {chan.name}: {exc.error}")
