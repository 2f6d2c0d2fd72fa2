"""Microsoft Teams channel conversations through Microsoft Graph: one document per thread.

Each run lists the teams (display-name globs), their channels (channel-name globs; standard,
private and shared) and the members that make each channel's ACL: the team's members for a
standard channel, the channel's own for a private one, and for a shared one `allMembers` (its
direct members and those of the teams it is shared with), one `$batch` per 20 lists. A channel
no longer listed has its threads deleted; one whose members cannot be read (refused, not found, or
a server error the retries did not clear) is a failed skip that keeps its threads, and the other
channels go on. A team whose channel list Graph refuses (403, 404: a team being deleted, or not
provisioned yet) or keeps failing (5xx) is a failed skip too: its channels the
checkpoint knows are kept as they are (folder skips, no subscription), and the other teams go on;
so is a channel whose messages Graph refuses. A refusal's skip names the permission the call needs
(`permissions`). When Graph refuses every team and channel and the run reads no channel's
messages (`ChannelMessage.Read.All` or the app's consent withdrawn), the run fails with
`AccessRefusedError`, deleting nothing (`kit.refusals`); so does a refused `GET /teams`.
A configured `teams` or `channels` glob that matches nothing listed is a skip by policy of each
run; when none of a key's globs matches, the run (and `live_ids`) raises `NothingInScopeError`
before a channel is dropped (`kit.scope`).

Each channel is followed with its own `messages/delta` round, checkpointed after every page. Graph
documents a round as listing the root messages created, edited or deleted "without the replies",
and never says that a reply's change lists its root (it has been seen to): the connector is right
either way. The roots a round lists have their replies read (`$batch`, 20 threads a call) and the
whole thread re-rendered: root and replies as "author (time): text", HTML turned into plain text,
mentions as the names they show, files and links kept as names and URLs, cards as their text;
system messages (a member added, a channel renamed) are not threads. Then, in a scheduled run, the
replies delta does not report are read (`_sweep`): those of the threads active within
`lookback_days` of the channel's newest activity (`Seen.last`), one `$batch` per 20 threads, or,
once `reconcile_every` has passed since the channel was last listed whole, those of every thread
of the channel's full listing (which also deletes the known threads it no longer lists). A thread
is yielded again only if its replies as rendered (or its root) changed (`Seen`), so a quiet
channel yields nothing. A deleted root with replies leaves the thread without it, as Teams still
shows the replies under the deleted post (soft-deleted with `deletedDateTime`; the title is then
the channel's name and the first reply's first line); a thread with nothing left to show is
deleted, and so is one listed as `@removed`, or whose replies or root answer 404 (purged), whether
or not the checkpoint lists it (a killed run may have indexed it after its last saved checkpoint);
a deleted reply leaves the thread without it. A message a data-loss-prevention policy blocks
(`policyViolation`) is as Teams shows it: `BlockAccess` hides it from everyone (left out),
`BlockAccessExternal` from readers outside the organization, so its thread is readable only by the
channel's members who are neither guests (`roles`) nor of another tenant (`tenantId` other than
the tenant's id: `tenant_id`, or where that is a domain the app token's `tid`); a sender's
override (`userAction` `Override`) lifts the block.
`dlpAction` is a set of flags in any case; one inlet does not know blocks for everyone. A root
hidden from everyone names nothing (the title comes from the first reply shown), and a failed
read's skip takes only the members inside the organization: never wider than the thread may be.
A forwarded message shows the message it forwards (`forwardedMessageReference`). A first delta
round lists no deleted roots; the full listing that ends it does, and `live_ids` (which the engine
compares with the index after an unfinished run) names a deleted root's thread only while a reply
of it is shown. A membership change (the ACL's
fingerprint differs from the checkpoint's) re-reads the whole channel, so every thread is yielded
with the new ACL and the same text: the index re-writes ACLs and re-embeds nothing. A renamed team
or channel is re-read the same way (its threads carry both names). An expired delta
link (410) re-reads the channel and deletes the threads it does not list again. A thread whose
replies could not be read (a failed `Skipped`: its indexed version is kept) is read again, root and
replies with the channel's current ACL, at the start of each later round of its channel in a whole
run (`kit.retries.Retries`; an event's scoped run leaves it to the next one, so the change it
announces is not held up by the retries of another thread), so neither a new thread nor a
membership change is lost to one failed read. Replies (or a member list, a team's channel list)
that still answer a server error after the retries are such a failed read, named by the thread's
title (the channel, the team), unless `kit.retries.OUTAGE_AFTER` reads in a row fail so (Graph is
down: the run fails, naming the last call, and the next resumes from its checkpoint;
`kit.retries.Outage`).
A change notification on a channel asks for a scoped run (`load_scope`) of that channel only; one
that names a message (`.../messages('ROOT')`, or a reply of it) asks for that thread too
(`CHANNEL/ROOT`), which the scoped run reads again after the channel's round, whether or not delta
listed its root (delta leaves out roots older than eight months: their edits and deletions reach
the index this way, or by the channel's next reconcile). A scoped run reads no other replies.

Delta lists only the messages of the last eight months. So a round that starts over (the first, or
a re-read) ends with the channel's full listing (`GET .../messages`): the roots delta did not list
and the checkpoint does not have (older threads), or that the re-read has not met again, are read
like delta's; only a thread missing from that listing is deleted. That listing is the channel's
reconcile too (`ChannelState.reconciled`). `live_ids` reads the same full listing, never delta.

Each channel a sync reads has a Graph subscription (`events`, with `notifications_url`): those listed
when the daemon starts, then those of each checkpoint a run saves (`checkpoint_resources`: its
channels but those whose members, or whose team's channel list, the run could not read, `unread`),
so a channel or team a run found new is subscribed to, and one it dropped is not, without a restart.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, Field

from .base import Interval, ServiceUrl, parse_duration
from .events import EventSource
from .extract import html_to_text
from .kit.graph_batch import batch_get
from .kit.checkpoint import CheckpointModel
from .kit.graph_source import GraphConnector, GraphSourceConfig
from .kit.graph_webhooks import Resource
from .kit.graph import GraphClient, GraphError, before, graph_time, is_guid, refusal
from .kit.paging import Pager
from .kit.refusals import Refusals
from .kit.retries import Outage, Retries
from .kit.scope import check_scope, warn
from .microsoft_files_acl import acl_key
from .model import ACL, Deletion, Document, Item, Skipped, normal_user
from inlet.errors import RetriableError

log = logging.getLogger(__name__)

MESSAGES_PERMISSION = "ChannelMessage.Read.All"
REFUSED_ADVICE = (
    "check that the app still holds the application permissions Team.ReadBasic.All, Channel.ReadBasic.All, "
    "TeamMember.Read.All, ChannelMember.Read.All and ChannelMessage.Read.All, with admin consent"
)


class TeamsConfig(GraphSourceConfig):
    MAX_SUBSCRIPTION_LIFETIME = (60, "Teams channel messages (one hour)")
    teams: list[str] = Field(["*"], description="team display-name globs (default: every team)")
    channels: list[str] = Field(["*"], description="channel-name globs (default: every channel)")
    notifications_url: ServiceUrl | None = Field(
        None,
        description="public HTTPS URL of this source's hook "
        "(.../hooks/teams/NAME): Graph change notifications (daemon)",
    )
    subscription_lifetime: Interval = Field(
        "50m",
        description="how long each channel subscription lasts before "
        "renewal (Graph allows up to one hour for channel messages)",
    )
    page_size: int = Field(50, ge=1, le=50, description="root messages per delta page")
    lookback_days: float = Field(
        7,
        ge=0,
        description="threads active within this many days of their channel's newest activity have "
        "their replies re-read each sync (delta lists roots, not replies)",
    )
    reconcile_every: Interval = Field(
        "24h",
        description="how often each channel's threads are all listed and their replies re-read "
        "(late replies to older threads, threads gone)",
    )


class Seen(BaseModel):
    """What a thread's document was last made of: a re-read that finds the same yields nothing."""

    last: str = ""  # the newest time in the thread (a message created, edited or deleted)
    root: str = ""  # the root's lastModifiedDateTime
    replies: str = ""  # digest of the replies as rendered


class ChannelState(BaseModel):
    team_id: str = ""
    team: str = ""
    name: str = ""
    kind: str = "standard"
    link: str | None = None  # nextLink (mid-round) or deltaLink
    acl: str = ""  # fingerprint of the ACL the channel's documents carry
    threads: list[str] = Field(default_factory=list)  # root ids of the indexed threads
    resync: list[str] | None = None  # during a re-read: threads not listed again yet
    full: bool = False  # a round started over (first or re-read): it ends with GET .../messages
    retries: Retries = Field(default_factory=Retries)  # root ids of threads whose read failed
    seen: dict[str, Seen] = Field(default_factory=dict)  # root id -> what its document was made of
    reconciled: float = 0.0  # epoch seconds of the channel's last full listing (0: never)


class TeamsCheckpoint(CheckpointModel):
    VERSION: ClassVar[int] = 1
    since: str | None = None
    channels: dict[str, ChannelState] = Field(default_factory=dict)
    unread: list[str] = Field(default_factory=list)  # channels whose members the last full run could not read


class TeamsConnector(GraphConnector[TeamsConfig]):
    """Channel threads of Microsoft Teams (application permissions ChannelMessage.Read.All,
    Team.ReadBasic.All, Channel.ReadBasic.All, TeamMember.Read.All, ChannelMember.Read.All)."""

    type = "teams"
    Config = TeamsConfig
    user_agent = "inlet-teams/0.1"
    permissions = (  # docs/connectors/teams.md's table
        (r"^/teams$", "Team.ReadBasic.All"),
        (r"^/teams/[^/]+/channels$", "Channel.ReadBasic.All"),
        (r"^/teams/[^/]+/members$", "TeamMember.Read.All"),
        (r"^/teams/[^/]+/channels/[^/]+/(allMembers|members)$", "ChannelMember.Read.All"),
        (r"/messages", MESSAGES_PERMISSION),
    )
    recent_first = True  # `since` skips reading older items (the listing covers all): Connector.recent_first
    # A first delta round lists no deleted roots, so a round restarted after a kill cannot report a
    # thread the killed run indexed past its last checkpoint and the source deleted since: the
    # engine settles it with `live_ids` (Connector.deletions_from_checkpoint).
    deletions_from_checkpoint = True

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        """As `GraphConnector`'s, with `clock` (tests)."""
        super().__init__(*args, **kwargs)
        self.clock = clock  # epoch seconds: when a channel's reconcile is due (`reconcile_every`)

    def load(self, checkpoint: dict[str, Any] | None, *, since: dt.datetime | None = None) -> Iterator[Item]:
        st = TeamsCheckpoint.load(checkpoint, source=self.name) or TeamsCheckpoint(since=_iso(since))
        yield from self.with_client(lambda client: _Run(self, client, st).run())
        yield st.checkpoint()

    def load_scope(self, checkpoint: dict[str, Any], scope: frozenset[str]) -> Iterator[Item]:
        """Only the delta rounds of the channels in `scope` (`CHANNEL` or `CHANNEL/ROOT`: that thread
        read again too), with their ACLs as last read."""
        st = TeamsCheckpoint.load(checkpoint, source=self.name)
        threads: dict[str, list[str]] = {}
        for entry in sorted(scope):
            cid, _, root = entry.partition("/")
            threads.setdefault(cid, []).extend([root] if root else [])
        if st is None or not set(threads) <= set(st.channels):
            yield from self.load(checkpoint)
            return
        yield from self.with_client(lambda client: _Run(self, client, st).channels(threads))
        yield st.checkpoint()

    def live_ids(self) -> Iterator[str]:
        yield from self.with_client(self._listed_ids)

    def _listed_ids(self, client: GraphClient) -> Iterator[str]:
        run = _Run(self, client, TeamsCheckpoint())
        found = run.discover()
        for name, exc in run.refused.values():
            raise RetriableError(
                f"source {self.name!r}: the channels of team {name} cannot be listed, so no deletion is decided ({exc})"
            )
        for cid, ch, acl in found:
            if isinstance(acl, GraphError):
                raise RetriableError(
                    f"source {self.name!r}: the members of channel {ch.team}/{ch.name} cannot be read, so no "
                    f"deletion is decided ({acl})"
                )
            try:
                for page in run.listing(cid, ch):
                    for root_id in run.live_roots(cid, ch, page):
                        yield self.doc_id(f"{cid}:{root_id}")
            except GraphError as exc:
                if exc.status not in (403, 404):
                    raise
                # an unreadable channel proves nothing gone (a sync skips it and keeps its threads)
                raise RetriableError(
                    f"source {self.name!r}: channel {ch.team}/{ch.name} cannot be read, so no deletion "
                    f"is decided ({exc})"
                ) from exc

    def events(self) -> EventSource | None:
        """A Graph subscription on each synced channel's messages."""
        return self.webhooks(
            self.channel_resources,
            "created,updated,deleted",
            what="subscription for channel",
            refine=_thread_of,
            watched=self.checkpoint_resources,
        )

    def channel_resources(self, client: GraphClient) -> dict[str, str]:
        return {
            cid: _messages_of(ch, cid)
            for cid, ch, acl in _Run(self, client, TeamsCheckpoint()).discover()
            if not isinstance(acl, GraphError)
        }

    def checkpoint_resources(self, checkpoint: dict[str, Any]) -> dict[str, str]:
        """The same, of the channels a checkpoint says the runs sync (no call): a channel or team a
        run found new gets its subscription, one it dropped loses it."""
        st = TeamsCheckpoint.load(checkpoint, source=self.name) or TeamsCheckpoint()
        unread = set(st.unread)
        return {cid: _messages_of(ch, cid) for cid, ch in st.channels.items() if cid not in unread}


def _messages_of(ch: ChannelState, channel_id: str) -> Resource:
    """The Graph resource of a channel's messages (what a subscription watches), labelled by the
    channel's team and name."""
    return Resource(f"/teams/{ch.team_id}/channels/{channel_id}/messages", f"{ch.team}/{ch.name}")


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_MESSAGE = re.compile(r"messages\('([^']+)'\)", re.IGNORECASE)


def _thread_of(channel_id: str, resource: str) -> str:
    """`CHANNEL/ROOT` for a notification naming a message (`.../messages('ROOT')`, or one of its
    replies), else the channel: delta need not list that root (a reply's, or one over eight months old)."""
    found = _MESSAGE.search(resource)
    return f"{channel_id}/{found[1]}" if found else channel_id


def _matches(name: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), g.lower()) for g in globs)


def _emails(answer: dict[str, Any]) -> list[str]:
    return sorted({normal_user(str(m.get("email") or "")) for m in answer.get("value", []) if m.get("email")})


def _external(members: list[dict[str, Any]], tenant: str | None) -> set[str]:
    """The members outside the organization: guests, and members of another tenant (known only
    when `tenant`, the tenant's id, is: `_Run.tenant`)."""
    tenant = (tenant or "").lower()
    return {
        normal_user(str(m["email"]))
        for m in members
        if m.get("email")
        and ("guest" in (m.get("roles") or []) or (tenant and str(m.get("tenantId") or tenant).lower() != tenant))
    }


def _members_path(cid: str, ch: ChannelState) -> str:
    """Where a channel's readers are listed: the team's members, a private channel's own, and a
    shared channel's `allMembers` (`members` holds only its direct ones)."""
    if ch.kind == "standard":
        return f"/teams/{ch.team_id}/members"
    return f"/teams/{ch.team_id}/channels/{cid}/{'allMembers' if ch.kind == 'shared' else 'members'}"


def _reread(ch: ChannelState) -> None:
    """Start the channel's delta over: every thread is listed and yielded again (new names, a new
    ACL), and those the new round does not list are deleted at its end."""
    ch.resync, ch.link = sorted(set(ch.resync or []) | set(ch.threads)), None


class _Run:
    def __init__(self, conn: TeamsConnector, client: GraphClient, st: TeamsCheckpoint) -> None:
        self.c, self.client, self.st = conn, client, st
        self.refused: dict[str, tuple[str, GraphError]] = {}  # team id -> (name, why its channels are not listed)
        self.read: set[tuple[str, str]] = set()  # (channel, root) of the threads this run read
        self.unmatched: list[Skipped] = []  # a skip by policy per `teams` / `channels` glob that matched nothing
        self.refusals = Refusals(conn.name, "team or channel", REFUSED_ADVICE)  # a full run read none: it fails
        self.external: dict[str, set[str]] = {}  # channel id -> its members outside the organization
        self.server_failed: set[tuple[str, str]] = set()  # (channel, root) whose replies kept answering 5xx
        self.outage = Outage(conn.name)  # reads that keep answering server errors: past a few in a row, Graph is down
        self._tenant: list[str | None] = []  # the tenant's id, once known (`tenant`)

    @property
    def tenant(self) -> str | None:
        """The tenant's id, which members of another tenant (a shared channel's) differ from:
        `tenant_id` when it is one, else (one of its domains) the app token's `tid`, read once per
        run; None, said once, when neither gives it (then only guests are known to be outside)."""
        if not self._tenant:
            configured = self.c.config.tenant_id
            found = configured.lower() if is_guid(configured) else self.client.tenant()
            if found is None:
                log.warning(
                    "source %r: tenant_id %r is no tenant id and the app token names none: members of "
                    "another tenant in a shared channel are not known to be outside the organization "
                    "(messages blocked for outsiders stay readable to them); set tenant_id to the "
                    "tenant's id (Entra admin center, Overview)",
                    self.c.name,
                    configured,
                )
            self._tenant.append(found)
        return self._tenant[0]

    def discover(self) -> list[tuple[str, ChannelState, ACL | GraphError]]:
        """(channel id, its state, its ACL) of every channel the config selects; in place of the
        ACL, the error of a member list Graph refused (403, 404) or kept failing (a server error,
        `Outage`). A team whose channel list Graph refuses (403, 404: a team being deleted or not
        provisioned yet) or keeps failing is left in `refused`."""
        cfg = self.c.config
        every = [
            t for page in self.client.pages("/teams", {"$select": "id,displayName"}) for t in page.get("value", [])
        ]
        teams = [t for t in every if _matches(str(t.get("displayName", "")), cfg.teams)]
        self.unmatched = self._scope("teams", [str(t.get("displayName", "")) for t in every], "team")
        answers = batch_get(
            self.client,
            self.c.policy,
            [p for t in teams for p in (f"/teams/{t['id']}/channels", f"/teams/{t['id']}/members?$top=999")],
            per_item=True,
        )
        for team in teams:
            name = f"team {team.get('displayName', '')}"
            self._weigh(answers[f"/teams/{team['id']}/channels"], f"{name}: its channels")
            self._weigh(answers[f"/teams/{team['id']}/members?$top=999"], f"{name}: its members")
        found: list[tuple[str, ChannelState]] = []
        for team in teams:
            listing = answers[f"/teams/{team['id']}/channels"]
            if isinstance(listing, GraphError):
                if listing.status not in (403, 404) and not listing.retriable:
                    raise listing
                self.refused[team["id"]] = (str(team.get("displayName", "")), listing)
                continue
            for ch in listing.get("value", []):
                if _matches(str(ch.get("displayName", "")), cfg.channels):
                    found.append(
                        (
                            ch["id"],
                            ChannelState(
                                team_id=team["id"],
                                team=team["displayName"],
                                name=ch["displayName"],
                                kind=ch.get("membershipType") or "standard",
                            ),
                        )
                    )
        if not self.refused:  # a team whose channels are unknown may hold what an entry names
            names = [
                str(ch.get("displayName", ""))
                for team in teams
                for ch in answers[f"/teams/{team['id']}/channels"].get("value", [])  # type: ignore[union-attr]
            ]
            self.unmatched += self._scope("channels", names, "channel of the teams read")
        own = {
            f"{_members_path(cid, st)}?$top=999": f"channel {st.team}/{st.name}"
            for cid, st in found
            if st.kind != "standard"
        }
        answers.update(batch_get(self.client, self.c.policy, own, per_item=True))
        for path, what in own.items():
            self._weigh(answers[path], f"{what}: its members")
        out: list[tuple[str, ChannelState, ACL | GraphError]] = []
        for cid, st in found:
            answer = answers[f"{_members_path(cid, st)}?$top=999"]
            if isinstance(answer, GraphError) and answer.status not in (403, 404) and not answer.retriable:
                raise answer
            if not isinstance(answer, GraphError):
                self.external[cid] = _external(answer.get("value", []), self.tenant)
            out.append((cid, st, answer if isinstance(answer, GraphError) else ACL(users=_emails(answer))))
        return out

    def _weigh(self, answer: dict[str, Any] | GraphError, what: str) -> None:
        """One read of the run (`what`: whose, for the error that ends the run) told to `Outage`: a
        server error the retries did not clear counts, an answer read resets the count."""
        if not isinstance(answer, GraphError):
            self.outage.read()
        elif answer.retriable:
            self.outage.failed(what, answer)  # raises when Graph looks down

    def _scope(self, key: str, names: list[str], what: str) -> list[Skipped]:
        """The skips of the `key` globs the config sets that match none of `names` (`kit.scope`);
        `NothingInScopeError` when none matches. The default (every team, every channel) is not checked."""
        globs: list[str] = getattr(self.c.config, key) if key in self.c.config.model_fields_set else []
        matched = {g for g in globs if any(_matches(name, [g]) for name in names)}
        return check_scope(self.c, key, globs, matched, names, what)

    def run(self) -> Iterator[Item]:
        found = self.discover()
        yield from warn(self.c, self.unmatched)
        yield from self._refused()
        wanted = {cid for cid, _, _ in found}
        kept = {cid for cid, ch in self.st.channels.items() if ch.team_id in self.refused}
        for cid in [c for c in self.st.channels if c not in wanted and c not in kept]:
            gone = self.st.channels.pop(cid)
            log.info("source %r: channel %s/%s is no longer read", self.c.name, gone.team, gone.name)
            for root in gone.threads:
                yield Deletion(id=self.c.doc_id(f"{cid}:{root}"))
            yield self.st.checkpoint()
        self.st.unread = sorted(kept | {cid for cid, _, acl in found if isinstance(acl, GraphError)})
        for cid, fresh, acl in found:
            if isinstance(acl, GraphError):  # its threads stay as they are, with the ACL they have
                what = f"channel {fresh.team}/{fresh.name}"
                reason = refusal(what, acl, self.c.permission(acl.call), "its members cannot be read")
                self.refusals.skip(cid, reason, refused=acl.refused)
                yield Skipped(id=self.c.doc_id(f"{cid}:"), title=what, reason=reason, folder=True)
                continue
            ch = self.st.channels.setdefault(cid, fresh)
            if (ch.team, ch.name) != (fresh.team, fresh.name):
                log.info(
                    "source %r: %s/%s is now %s/%s; re-reading it",
                    self.c.name,
                    ch.team,
                    ch.name,
                    fresh.team,
                    fresh.name,
                )
                _reread(ch)
            ch.team, ch.name, ch.kind = fresh.team, fresh.name, fresh.kind
            yield from self.channel(cid, acl, sweep=True)
        self.refusals.check()  # every team and channel refused, none read: the run fails, deleting nothing

    def _refused(self) -> Iterator[Skipped]:
        """A failed skip for each team whose channels Graph would not list, and a folder skip for
        each of its channels the checkpoint knows: their threads stay as indexed (not pruned)."""
        for team_id, (name, exc) in self.refused.items():
            reason = refusal(f"team {name}", exc, self.c.permission(exc.call), "its channels cannot be listed")
            self.refusals.skip(f"team:{team_id}", reason, refused=exc.refused)
            yield Skipped(id=self.c.doc_id(f"team:{team_id}"), title=f"team {name}", reason=reason)
            for cid, ch in self.st.channels.items():
                if ch.team_id == team_id:
                    yield Skipped(
                        id=self.c.doc_id(f"{cid}:"),
                        title=f"channel {ch.team}/{ch.name}",
                        reason=f"channel {ch.team}/{ch.name}: its team's channels cannot be listed ({exc})",
                        folder=True,
                    )

    def _first(self, cid: str, ch: ChannelState) -> tuple[str, dict[str, Any]]:
        """A round that starts over: it ends with the full listing (`_beyond_delta`)."""
        ch.full = True
        return f"/teams/{ch.team_id}/channels/{cid}/messages/delta", {"$top": self.c.config.page_size}

    def listing(self, cid: str, ch: ChannelState) -> Iterator[list[dict[str, Any]]]:
        """The channel's live root messages, a page at a time (`GET .../messages`: unlike delta,
        not limited to the last eight months)."""
        for page in self.client.pages(f"/teams/{ch.team_id}/channels/{cid}/messages", {"$top": 50}):
            yield [m for m in page.get("value", []) if not m.get("replyToId")]  # a deleted root's replies may live on

    def live_roots(self, cid: str, ch: ChannelState, roots: list[dict[str, Any]]) -> list[str]:
        """The ids of these roots whose threads have something to show: a deleted root's only while
        a reply is left (read by `$batch`; a thread whose replies cannot be read raises)."""
        paths = {r["id"]: _replies_path(ch, cid, r["id"]) for r in roots if r.get("deletedDateTime")}
        answers = batch_get(self.client, self.c.policy, list(paths.values())) if paths else {}
        kept = set()
        for root_id, path in paths.items():
            answer = answers[path]
            if isinstance(answer, GraphError):
                if answer.status != 404:
                    raise answer
            elif _shown(answer.get("value", [])):
                kept.add(root_id)
        return [r["id"] for r in roots if not r.get("deletedDateTime") or r["id"] in kept]

    def _beyond_delta(self, cid: str, ch: ChannelState, acl: ACL, every: bool = False) -> Iterator[Item]:
        """After a round that started over: the live roots it did not list (older than delta's eight
        months) and the checkpoint lacks or the re-read has not met again, read like delta's (a new
        thread whose read was refused moments ago is read once more; one that kept answering a
        server error waits for the next run).
        `every` (a reconcile): also the replies of every other thread, yielded only if it changed,
        and the known threads the listing lacks are deleted."""
        listed: set[str] = set()
        for page in self.listing(cid, ch):
            listed.update(m["id"] for m in page)
            unmet, known = set(ch.resync or []), set(ch.threads)
            fresh = [m for m in page if (cid, m["id"]) not in self.server_failed]  # its 5xx: not twice a run
            older = [m for m in fresh if m["id"] in unmet or m["id"] not in known]
            settled = known - unmet if every else set()
            again = [m for m in page if m["id"] in settled and (cid, m["id"]) not in self.read]
            if older or again:
                yield from self._roots(cid, ch, acl, older)
                yield from self._roots(cid, ch, acl, again, only_changed=True)
                yield self.st.checkpoint()
        for root in [r for r in ch.threads if every and r not in listed and (cid, r) not in self.read]:
            yield self._gone(cid, ch, root)

    def channels(self, threads: dict[str, list[str]]) -> Iterator[Item]:
        """The delta rounds of these known channels only ({channel: the roots of threads to read
        again after its round}), with their ACLs as last read."""
        for cid, roots in threads.items():
            yield from self.channel(cid, None, roots)

    def channel(
        self, cid: str, acl: ACL | None, threads: list[str] | None = None, *, sweep: bool = False
    ) -> Iterator[Item]:
        """One delta round of a channel, then the threads of `threads` read again; `acl` None: as
        the checkpoint last had it (a scoped run). `sweep` (a whole run, not an event's scoped one):
        first the threads whose read failed (`Retries.replay`: a scoped run leaves them to the next
        whole run, so an event's change is searchable without waiting out their retries), then, after
        the round, the replies delta does not report, of the recently active threads or, when due, of
        all (`_sweep`)."""
        ch = self.st.channels[cid]
        if acl is None:
            acl = self._acl(cid, ch)
        key = acl_key(acl)
        if ch.acl and ch.acl != key:
            log.info("source %r: members of %s/%s changed; re-reading its threads", self.c.name, ch.team, ch.name)
            _reread(ch)
        ch.acl = key
        url, params = (ch.link, None) if ch.link else self._first(cid, ch)
        pager = Pager(source=self.c.name, what=f"delta of channel {ch.name!r}", token=ch.link)
        if sweep:
            yield from ch.retries.replay(lambda root_id: self._retry(cid, ch, acl, root_id))
        while True:
            try:
                page = self.client.get(url, params)
            except GraphError as exc:
                if exc.status == 410 or exc.code == "SyncStateNotFound":
                    log.warning("source %r: delta link of %s/%s expired; re-reading it", self.c.name, ch.team, ch.name)
                    _reread(ch)
                    url, params = self._first(cid, ch)
                    pager = Pager(source=self.c.name, what=f"delta of channel {ch.name!r}")
                    continue
                if exc.status in (401, 403, 404):
                    cannot = "the app may not read it" if exc.refused else "not found"
                    reason = refusal(f"channel {ch.team}/{ch.name}", exc, MESSAGES_PERMISSION, cannot)
                    self.refusals.skip(cid, reason, refused=exc.refused)
                    yield Skipped(id=self.c.doc_id(f"channel:{cid}"), reason=reason)
                    return
                raise
            self.refusals.readable(cid)
            yield from self._roots(cid, ch, acl, page.get("value", []))
            next_link = page.get("@odata.nextLink")
            if pager.advance(next_link):
                ch.link, url, params = next_link, str(next_link), None
                yield self.st.checkpoint()
                continue
            if ch.full:
                yield from self._beyond_delta(cid, ch, acl)
                ch.reconciled = self.c.clock()
            for root in ch.resync or []:
                yield self._gone(cid, ch, root)
            ch.resync, ch.link, ch.full = None, page.get("@odata.deltaLink"), False
            yield from self._threads(cid, ch, acl, threads or [])
            yield self.st.checkpoint()
            if sweep:
                yield from self._sweep(cid, ch, acl)
            return

    def _sweep(self, cid: str, ch: ChannelState, acl: ACL) -> Iterator[Item]:
        """The replies delta does not report (Graph documents it as listing roots "without the
        replies"): when `reconcile_every` has passed, every thread's (`_beyond_delta`, deleting
        those no longer listed); else those of the threads active within `lookback_days` of the
        channel's newest activity. Either way a thread is yielded only if it changed."""
        if self.c.clock() - ch.reconciled >= parse_duration(self.c.config.reconcile_every):
            yield from self._beyond_delta(cid, ch, acl, every=True)
            ch.reconciled = self.c.clock()
        else:
            yield from self._recent(cid, ch, acl)
        yield self.st.checkpoint()

    def _recent(self, cid: str, ch: ChannelState, acl: ACL) -> Iterator[Item]:
        """The replies of the threads active within `lookback_days` of the newest activity the
        channel has seen (not of now: a quiet channel's last conversations are where late replies
        come, and a tenant whose messages carry old times is read the same way), one `$batch` per
        20 threads; those whose replies changed have their root read too (a second `$batch`), and so
        have those whose replies could not be read, whose replies are then read once more (failing
        again, a failed skip: the thread kept, with the channel's members as just read, and retried)."""
        times = {r: graph_time(ch.seen[r].last) for r in ch.threads if r in ch.seen}
        known = [t for t in times.values() if t is not None]
        if not known:
            return
        start = max(known) - dt.timedelta(days=self.c.config.lookback_days)
        roots = [r for r, t in times.items() if t is not None and t >= start and (cid, r) not in self.read]
        paths = {r: _replies_path(ch, cid, r) for r in roots}
        answers = batch_get(self.client, self.c.policy, paths.values(), per_item=True)  # a failure: read again
        changed: list[str] = []
        read: dict[str, Any] = {}  # the replies of those, by path
        for root_id, path in paths.items():
            answer = answers[path]
            if isinstance(answer, GraphError) or _replies_digest(answer) != ch.seen[root_id].replies:
                changed.append(root_id)  # its root is read (a 404: the thread is deleted), then the thread
                read.update({} if isinstance(answer, GraphError) else {path: answer})  # a failure: read again
        yield from self._threads(cid, ch, acl, changed, read)

    def _threads(
        self, cid: str, ch: ChannelState, acl: ACL, roots: list[str], replies: dict[str, Any] | None = None
    ) -> Iterator[Item]:
        """These threads read again (a notification named one of their messages, or their replies
        changed: `replies`, by path, those already read); a root Graph no longer has is deleted
        (delta lists no deletion of a root over eight months old)."""
        paths = {r: f"/teams/{ch.team_id}/channels/{cid}/messages/{quote(r, safe='')}" for r in dict.fromkeys(roots)}
        answers = batch_get(self.client, self.c.policy, paths.values())
        found = []
        for path in paths.values():
            answer = answers[path]
            if isinstance(answer, GraphError):
                if answer.status != 404:
                    raise answer
                yield self._gone(cid, ch, path.rsplit("/", 1)[1])
            else:
                found.append(answer)
        yield from self._roots(cid, ch, acl, found, replies=replies)

    def _inside(self, cid: str, acl: ACL) -> ACL:
        """`acl` without the channel's members outside the organization (`external`)."""
        outside = self.external.get(cid, set())
        return acl.model_copy(update={"users": [u for u in acl.users if u not in outside]}) if outside else acl

    def _acl(self, cid: str, ch: ChannelState) -> ACL:
        members = [
            m for page in self.client.pages(_members_path(cid, ch), {"$top": 999}) for m in page.get("value", [])
        ]
        self.external[cid] = _external(members, self.tenant)
        return ACL(users=_emails({"value": members}))

    def _retry(self, cid: str, ch: ChannelState, acl: ACL, root_id: str) -> Iterator[Item]:
        """A thread whose last read failed: its root and replies read again, with the current ACL."""
        try:
            root = self.client.get(f"/teams/{ch.team_id}/channels/{cid}/messages/{quote(root_id, safe='')}")
        except (GraphError, RetriableError) as exc:
            if isinstance(exc, GraphError) and exc.status == 404:
                yield self._gone(cid, ch, root_id)
            else:
                failure = ch.retries.failed[root_id]
                what = f"{failure.title or root_id}: root unreadable"
                reason = self.outage.failed(what, exc) if isinstance(exc, RetriableError) else f"{what}: {exc}"
                skipped = Skipped(id=failure.id, reason=reason, title=failure.title, acl=self._inside(cid, acl))
                yield ch.retries.note(root_id, skipped)
            return
        yield from self._roots(cid, ch, acl, [root])

    def _gone(self, cid: str, ch: ChannelState, root_id: str) -> Deletion:
        """A deleted thread, deleted even if the checkpoint never knew it: a killed run may have
        indexed it after its last saved checkpoint."""
        if root_id in ch.threads:
            ch.threads.remove(root_id)
        ch.retries.forget(root_id)
        ch.seen.pop(root_id, None)
        return Deletion(id=self.c.doc_id(f"{cid}:{root_id}"))

    def _roots(
        self,
        cid: str,
        ch: ChannelState,
        acl: ACL,
        roots: list[dict[str, Any]],
        *,
        only_changed: bool = False,
        replies: dict[str, Any] | None = None,
    ) -> Iterator[Item]:
        """These roots' threads read (replies by `$batch`) and yielded; a deleted root (soft-deleted,
        `@removed`, or whose replies answer 404) deletes its thread. `only_changed`: a thread read
        as it was last (`Seen`) is not yielded again; `replies`: answers already read, by path."""
        live = []
        for root in roots:
            if root.get("replyToId"):
                continue
            if not _is_message(root):  # a member added, a channel renamed: not a conversation
                if root["id"] in ch.threads:
                    yield self._gone(cid, ch, root["id"])
                continue
            if ch.resync is not None and root["id"] in ch.resync:
                ch.resync.remove(root["id"])
            self.read.add((cid, root["id"]))
            if "@removed" in root:
                yield self._gone(cid, ch, root["id"])
            elif before(root.get("lastModifiedDateTime"), self.st.since):
                continue
            else:
                live.append(root)
        paths = {r["id"]: _replies_path(ch, cid, r["id"]) for r in live}
        replies = dict(replies or {})
        asked = [p for p in paths.values() if p not in replies]
        replies.update(batch_get(self.client, self.c.policy, asked, per_item=True))
        for root in live:
            answer = replies[paths[root["id"]]]
            if isinstance(answer, GraphError):
                if answer.status == 404:  # the message is gone (deleted, purged by a retention policy)
                    yield self._gone(cid, ch, root["id"])
                    continue
                title = _title(ch, root) if _shown([root]) else f"{ch.name}: a thread"  # a hidden root names nothing
                what = f"{title}: replies unreadable"  # a server error: unless Graph looks down
                if answer.retriable:
                    self.server_failed.add((cid, root["id"]))
                reason = self.outage.failed(what, answer) if answer.retriable else f"{what}: {answer}"
                skipped = Skipped(
                    id=self.c.doc_id(f"{cid}:{root['id']}"),
                    reason=reason,
                    title=title,
                    acl=self._inside(cid, acl),  # the kept version takes them: never wider than it may be
                )
                yield ch.retries.note(root["id"], skipped)
                continue
            self.outage.read()
            seen = _seen(root, answer)
            if only_changed and root["id"] in ch.threads and ch.seen.get(root["id"]) == seen:
                continue
            document = self._document(cid, ch, acl, root, answer.get("value", []))
            if document is None:  # a deleted root and no reply left to show
                yield self._gone(cid, ch, root["id"])
                continue
            if root["id"] not in ch.threads:
                ch.threads.append(root["id"])
            ch.seen[root["id"]] = seen
            yield ch.retries.note(root["id"], document)

    def _document(
        self, cid: str, ch: ChannelState, acl: ACL, root: dict[str, Any], replies: list[dict[str, Any]]
    ) -> Document | None:
        """The thread's document: its root and replies as Teams shows them (None: nothing is shown);
        readable by the channel's members, those inside the organization only when a message shown
        is blocked for external readers."""
        messages = _shown([root]) + _shown(replies)
        if not messages:
            return None
        if any(_blocked(m) == "BlockAccessExternal" for m in messages):
            acl = self._inside(cid, acl)
        lines, people = [], []
        for msg in messages:
            name = _author(msg)
            if name and name not in people:
                people.append(name)
            lines.append(_line(msg))
        title = _title(ch, root if root is messages[0] else messages[0])  # a hidden root names nothing
        updated = max(str(m.get("lastModifiedDateTime") or m.get("createdDateTime") or "") for m in messages)
        return self.c.document(
            f"{cid}:{root['id']}",
            title=title,
            text="\n\n".join(lines),
            url=root.get("webUrl") or "",
            author=_author(messages[0]),
            created_at=root.get("createdDateTime"),
            updated_at=updated or None,
            metadata={"team": ch.team, "channel": ch.name, "participants": people},
            acl=acl,
            plain_text=True,
        )


def _replies_path(ch: ChannelState, cid: str, root_id: str) -> str:
    return f"/teams/{ch.team_id}/channels/{cid}/messages/{quote(root_id, safe='')}/replies?$top=50"


def _shown(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages a thread's document shows, oldest first: not deleted ones, not system events,
    not those a policy hides from everyone (`_blocked`)."""
    return sorted(
        (m for m in messages if not m.get("deletedDateTime") and _is_message(m) and _blocked(m) != "BlockAccess"),
        key=lambda m: str(m.get("createdDateTime")),
    )


def _blocked(msg: dict[str, Any]) -> str | None:
    """The data-loss-prevention block on a message (`BlockAccess`, `BlockAccessExternal`), unless
    its sender overrode it. Graph's `dlpAction` is a set of flags ("NotifySender, BlockAccess", in
    any case): one naming an action inlet does not know is taken as a block for everyone."""
    violation = msg.get("policyViolation") or {}
    if not isinstance(violation, dict) or str(violation.get("userAction") or "").lower() == "override":
        return None
    flags = {f.strip().lower() for f in str(violation.get("dlpAction") or "").split(",")} - {"", "none", "notifysender"}
    if not flags:
        return None
    return "BlockAccessExternal" if flags == {"blockaccessexternal"} else "BlockAccess"


def _line(msg: dict[str, Any]) -> str:
    return f"{_author(msg)} ({str(msg.get('createdDateTime') or '')[:16].replace('T', ' ')}): {_text(msg)}"


def _replies_digest(answer: dict[str, Any]) -> str:
    """A thread's replies as its document shows them (and who may read them: a reply blocked for
    outsiders is marked), hashed: what a re-read compares."""
    lines = "\n".join(_line(r) + (f" [{_blocked(r)}]" if _blocked(r) else "") for r in _shown(answer.get("value", [])))
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def _seen(root: dict[str, Any], answer: dict[str, Any]) -> Seen:
    """What a thread's document is made of, and its newest time (its activity, for `lookback_days`)."""
    times = [
        graph_time(m.get(key))
        for m in [root, *answer.get("value", [])]
        for key in ("createdDateTime", "lastModifiedDateTime", "deletedDateTime")
    ]
    newest = max((t for t in times if t is not None), default=None)
    return Seen(
        last=_iso(newest) or "",
        root=str(root.get("lastModifiedDateTime") or ""),
        replies=_replies_digest(answer),
    )


def _title(ch: ChannelState, root: dict[str, Any]) -> str:
    """The root's subject, or the channel's name and the root's first line."""
    first = _text(root).splitlines()[0] if _text(root) else ""
    return str(root.get("subject") or f"{ch.name}: {first[:80]}")


def _author(msg: dict[str, Any]) -> str:
    sender = msg.get("from") or {}
    who = sender.get("user") or sender.get("application") or {}
    return str(who.get("displayName") or "")


def _is_message(msg: dict[str, Any]) -> bool:
    """A message people (or apps) wrote, not a system event (`systemEventMessage`)."""
    return msg.get("messageType", "message") == "message"


def _text(msg: dict[str, Any]) -> str:
    """The body as plain text (mentions read as the names they show), its cards' text, and its
    files as name and URL."""
    body = msg.get("body") or {}
    content = str(body.get("content") or "")
    text = html_to_text(content) if body.get("contentType") == "html" else content
    attachments = msg.get("attachments") or []
    cards = [_card_text(a.get("content")) for a in attachments if "card" in str(a.get("contentType") or "")]
    forwards = [_forwarded(a.get("content")) for a in attachments if a.get("contentType") == FORWARDED]
    files = [f"[{a.get('name') or 'file'}]({a['contentUrl']})" for a in attachments if a.get("contentUrl")]
    return "\n".join(p for p in [text.strip(), *forwards, *cards, *files] if p)


FORWARDED = "forwardedMessageReference"  # an attachment holding the message a post forwards


def _forwarded(content: Any) -> str:
    """A forwarded message as Teams shows it inside the post: "Forwarded from NAME: text"."""
    try:
        original = json.loads(content) if isinstance(content, str) else content
    except ValueError:
        return ""
    if not isinstance(original, dict):
        return ""
    body = str(original.get("originalMessageContent") or "")
    text = html_to_text(body).strip() if "<" in body else body.strip()
    sender = original.get("originalMessageSender")
    who = (sender.get("user") or sender.get("application")) if isinstance(sender, dict) else None
    name = str(who.get("displayName") or "") if isinstance(who, dict) else ""
    return f"Forwarded from {name}: {text}" if name else f"Forwarded: {text}" if text else ""


# Adaptive Card TextBlocks, hero and thumbnail cards; an Office 365 connector card's sections (what
# incoming webhooks and connectors such as GitHub or Jira post) head theirs with `activity*`
_CARD_TEXT = ("title", "subtitle", "text", "activityTitle", "activitySubtitle", "activityText")


def _card_text(content: Any) -> str:
    """The words a card shows: its texts and titles, and its facts as "title: value" lines."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            return ""
    lines: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            if node.get("type") == "FactSet":
                lines.extend(_fact(f) for f in node.get("facts") or [])
                return
            lines.extend(str(node[key]).strip() for key in _CARD_TEXT if isinstance(node.get(key), str))
            if isinstance(node.get("facts"), list):  # a connector card's section: facts of `name` and `value`
                lines.extend(_fact(f) for f in node["facts"])
            for key, value in node.items():
                if isinstance(value, (dict, list)) and key != "facts":
                    walk(value)

    walk(content)
    return "\n".join(line for line in lines if line)


def _fact(fact: Any) -> str:
    """A card's fact as "title: value" (Adaptive Cards name it `title`, connector cards `name`)."""
    if not isinstance(fact, dict):
        return ""
    return f"{fact.get('title') or fact.get('name') or ''}: {fact.get('value', '')}"
