"""State of the emulated Microsoft Teams: teams, channels, members, messages and replies.

Every mutation goes through a method here so each channel's change log (what `messages/delta`
reads) stays consistent: a root created, edited or deleted logs the root. A reply's change does not,
by default: Graph documents delta as listing root messages "without the replies", and never says a
reply moves its root (`replies_move_root = True` has a reply's change log its root and move the
root's `lastModifiedDateTime`, as Graph has been seen to do, so a client is tested against both).
Deleting a message is a soft delete, as in Teams: it keeps its id and
gets a `deletedDateTime` and an empty body; `purge` removes a thread outright (a retention policy,
an eDiscovery purge): delta lists its root as Graph's delta lists a resource gone,
`{"id": ..., "@removed": {"reason": "deleted"}}` (or not at all, `logged=False`), and its reads answer 404.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .graph_state import graph_id


@dataclass
class Message:
    id: str
    channel_id: str
    author: str  # email
    html: str
    reply_to: str | None = None  # the root's id for a reply
    subject: str | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    deleted: dt.datetime | None = None
    mentions: list[str] = field(default_factory=list)  # emails, in <at id="n"> order
    files: list[tuple[str, str]] = field(default_factory=list)  # (name, url) reference attachments
    kind: str = "message"  # messageType: "message" or "systemEventMessage" (a member added, ...)
    cards: list[dict[str, Any]] = field(default_factory=list)  # Adaptive Cards attached (a workflow's post)
    policy: dict[str, Any] | None = None  # policyViolation: a data-loss-prevention block (`flag`)
    forwarded: dict[str, Any] | None = None  # a forwardedMessageReference attachment's content


@dataclass
class Channel:
    id: str
    team_id: str
    name: str
    kind: str = "standard"  # standard | private | shared
    members: list[str] = field(default_factory=list)  # private and shared channels: their own members
    shared_with: list[str] = field(default_factory=list)  # a shared channel: teams whose members reach it
    log: list[tuple[int, str]] = field(default_factory=list)  # (seq, root id)


@dataclass
class Team:
    id: str
    name: str
    members: list[str] = field(default_factory=list)  # emails
    channels: list[str] = field(default_factory=list)


@dataclass
class DeltaState:
    channel_id: str
    watermark: int
    pending: list[str]
    initial: bool
    top: int


class TeamsState:
    def __init__(self) -> None:
        self.teams: dict[str, Team] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, Message] = {}
        self.seq = 0
        self.deltas: dict[str, DeltaState] = {}
        # Graph's delta lists only messages of the last eight months; None: no limit (the seeds are old)
        self.delta_window: dt.timedelta | None = None
        # Whether a reply's change moves its root's lastModifiedDateTime (and lists the root in delta):
        # False is what Graph documents; True what it has been seen to do (undocumented).
        self.replies_move_root = False
        # (team id, channel id, root id, the changed message's id: the root's or a reply's)
        self.listeners: list[Callable[[str, str, str, str], None]] = []
        self.guests: set[str] = set()  # members listed with the `guest` role
        self.outsiders: dict[str, str] = {}  # member -> the id of the other tenant it is of (a shared channel's)
        self._clock = 0

    def add_team(self, name: str, members: list[str]) -> Team:
        raw = graph_id("", "team", name)
        team = Team(f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-8{raw[17:20]}-{raw[20:32]}", name, list(members))
        self.teams[team.id] = team
        return team

    def add_channel(self, team_id: str, name: str, kind: str = "standard", members: list[str] | None = None) -> Channel:
        channel_id = f"19:{graph_id('', team_id, name)[:32]}@thread.tacv2"
        channel = Channel(channel_id, team_id, name, kind, list(members or []))
        self.channels[channel.id] = channel
        self.teams[team_id].channels.append(channel.id)
        return channel

    def delete_channel(self, channel_id: str) -> None:
        """The channel and its messages are gone (listeners hear nothing: a sync finds it gone)."""
        channel = self.channels.pop(channel_id)
        self.teams[channel.team_id].channels.remove(channel_id)
        for msg_id in [m.id for m in self.messages.values() if m.channel_id == channel_id]:
            del self.messages[msg_id]

    def _now(self, when: dt.datetime | None) -> dt.datetime:
        self._clock += 1
        return when or dt.datetime.now(dt.timezone.utc) + dt.timedelta(microseconds=self._clock)

    def post(
        self,
        channel_id: str,
        author: str,
        html: str,
        reply_to: str | None = None,
        subject: str | None = None,
        when: dt.datetime | None = None,
        mentions: list[str] | None = None,
        files: list[tuple[str, str]] | None = None,
        kind: str = "message",
        cards: list[dict[str, Any]] | None = None,
    ) -> Message:
        now = self._now(when)
        msg = Message(
            str(int(now.timestamp() * 1000) * 100 + self._clock % 100),
            channel_id,
            author,
            html,
            reply_to,
            subject,
            now,
            now,
            mentions=list(mentions or []),
            files=list(files or []),
            kind=kind,
            cards=list(cards or []),
        )
        self.messages[msg.id] = msg
        self._touch(msg, now)
        return msg

    def edit(self, message_id: str, html: str) -> Message:
        msg = self.messages[message_id]
        msg.html = html
        msg.modified = self._now(None)
        self._touch(msg, msg.modified)
        return msg

    def flag(self, message_id: str, dlp_action: str, user_action: str | None = None) -> Message:
        """A data-loss-prevention policy blocks the message (`BlockAccess`, `BlockAccessExternal`),
        as Purview patches a message shortly after it is posted."""
        msg = self.messages[message_id]
        msg.policy = {
            "dlpAction": dlp_action,
            "justificationText": None,
            "policyTip": {"generalText": "This item has sensitive info.", "matchedConditionDescriptions": []},
            "userAction": user_action or "None",
            "verdictDetails": "AllowOverrideWithoutJustification",
        }
        msg.modified = self._now(None)
        self._touch(msg, msg.modified)
        return msg

    def delete(self, message_id: str) -> None:
        msg = self.messages[message_id]
        msg.deleted = msg.modified = self._now(None)
        msg.html = ""
        self._touch(msg, msg.modified)

    def purge(self, root_id: str, *, logged: bool = True) -> None:
        """The thread is gone for good: its messages answer 404; `logged`: delta lists its root as removed."""
        root = self.messages.pop(root_id)
        for reply in [m.id for m in self.messages.values() if m.reply_to == root_id]:
            del self.messages[reply]
        if logged:
            self.seq += 1
            self.channels[root.channel_id].log.append((self.seq, root_id))

    def _touch(self, msg: Message, when: dt.datetime) -> None:
        root = self.messages[msg.reply_to] if msg.reply_to else msg
        channel = self.channels[msg.channel_id]
        if root is msg or self.replies_move_root:
            root.modified = max(root.modified, when)
            self.seq += 1
            channel.log.append((self.seq, root.id))
        for listener in list(self.listeners):
            listener(channel.team_id, channel.id, root.id, msg.id)

    def roots(self, channel_id: str) -> list[Message]:
        return sorted(
            (m for m in self.messages.values() if m.channel_id == channel_id and m.reply_to is None),
            key=lambda m: m.created,
        )

    def replies(self, root_id: str) -> list[Message]:
        return sorted((m for m in self.messages.values() if m.reply_to == root_id), key=lambda m: m.created)

    def in_delta_window(self, message_id: str) -> bool:
        """Whether `messages/delta` still lists the root (last modified within `delta_window`)."""
        if self.delta_window is None or message_id not in self.messages:
            return True
        return self.messages[message_id].modified >= dt.datetime.now(dt.timezone.utc) - self.delta_window

    def members_of(self, channel: Channel) -> list[str]:
        """`/members`: a private or shared channel's direct members, a standard one's team's."""
        return channel.members if channel.kind != "standard" else self.teams[channel.team_id].members

    def all_members_of(self, channel: Channel) -> list[str]:
        """`/allMembers`: direct members and, for a shared channel, the members of the teams it is shared with."""
        indirect = [e for team in channel.shared_with for e in self.teams[team].members]
        return list(dict.fromkeys(self.members_of(channel) + indirect))

    def changed_since(self, channel_id: str, seq: int) -> list[str]:
        order: dict[str, int] = {}
        for n, root in reversed(self.channels[channel_id].log):
            if n <= seq:
                break
            order.setdefault(root, n)
        return sorted(order, key=order.__getitem__)

    def store_delta(self, state: DeltaState) -> str:
        token = secrets.token_urlsafe(18)
        self.deltas[token] = state
        return token

    def expire_delta_tokens(self) -> None:
        self.deltas.clear()


def teams_state(ws: Any) -> TeamsState:
    with ws.lock:
        if ws.teams is None:
            ws.teams = TeamsState()
        return ws.teams  # type: ignore[no-any-return]
