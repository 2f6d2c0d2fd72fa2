"""Slack change events over Socket Mode (slack_sdk's own client: no public endpoint, no extra package).

A process opens one connection per app-level token (`_Connection`), whatever the number of sources
using it: Slack hands each event to one of an app's open connections at random, so a connection
per source would give each source only a share of its events; each event goes to every source on
the connection, which keeps what its config selects (its run reads nothing of a channel it does not).
Every `events_api` envelope is acknowledged at once (Slack redelivers what is not acknowledged
within seconds), deduplicated by `event_id` (redeliveries and duplicates carry the same one), and
turned into a `Hint`. A message, edit, deletion or thread reply (`message` and its subtypes) names
`channel/event_id` and leaves its payload in `INBOX`, so the scoped run it asks for updates the one
thread from the payload (plus at most one `conversations.replies`) instead of re-reading the
channel; renames, archivals, a channel made private or public (Slack tells it as a `message` of
subtype `channel_convert_to_private` / `_public`: a notice, never a document) and membership changes
(an ACL change) name the bare channel: its info, members and recent history are read again: new
readers re-label every document of the channel from one read of its history (no thread read again),
and a changed name or visibility re-yields them all. A deleted file (`file_deleted`) names the
channels Slack says it was shared in (`channel_ids`; none given: the whole source) with its payload:
the run reads again the threads whose documents name the file (the checkpoint knows them), or the
channel's recent history when it knows none; a message whose file is now Slack's tombstone is
written again without the file's text. The bot removed from a channel (`channel_left`, `group_left`)
names it too: read as a scheduled run reads it, it is dropped; a changed id (`channel_id_changed`)
names both ids (the old one is dropped, the new one read whole). A deactivated user (`user_change`
with `deleted`) names no channel: a whole sync re-reads every channel's members, so the user leaves
every ACL. Any other `user_change` of a member names `@USER/event_id` with its payload: the run
compares the profile with the one it knew, and a changed email re-reads the members of the channels
whose readers held the old address (a status or avatar change costs nothing; see connectors/slack.py).
A payload the run cannot find (another process, a full inbox) makes it read the channel as for a
bare name, so the inbox is an optimisation, never the record. On `disconnect` the client
opens a new connection by itself; `maintain()` (every second) reports whether one is up, asking the
socket itself whether the service ended it: slack_sdk's client reads an ended socket as quiet until
its pings have failed for some 25 s, so a lost connection is closed at once (the client then opens a
new one) and `live` turns false within a second, not after that wait; `reason` then says since when
it is lost. Slack redelivers an event no connection acknowledged only a few times (three retries,
the last some 5 minutes later), then drops it, so what changed while the daemon was stopped or the
connection down may never be heard: each connection a source first sees up (at start, and every
new one after a loss, a `disconnect` or a restart) is a gap, followed by one catch-up hint naming
no channel (`EventSource.missed`): an incremental sync of the source reads each channel's recent
history, as the schedule does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import select
import threading
import time
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

from inlet.errors import CredentialsError, RetriableError

from .events import Emit, EventSource, Hint

log = logging.getLogger(__name__)

CHANNEL_EVENTS = frozenset(
    {
        "channel_rename",
        "group_rename",
        "channel_archive",
        "group_archive",
        "channel_unarchive",
        "group_unarchive",
        "channel_deleted",
        "group_deleted",
        "channel_left",  # the bot was removed: the channel is dropped, as a scheduled run would
        "group_left",
    }
)
MEMBER_EVENTS = frozenset({"member_joined_channel", "member_left_channel"})
# `message` subtypes that tell a channel's visibility changed (its id stays): the channel is read
# bare (info, members), never written from the payload
CONVERSIONS = frozenset({"channel_convert_to_private", "channel_convert_to_public"})
REFUSED = frozenset({"invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked", "account_inactive"})
EVENT_SEP = "/"  # a message hint's container: channel id, EVENT_SEP, event id
PERSON = "@"  # a member's changed profile: PERSON, user id (EVENT_SEP, event id), where a channel id would be
# poll() events of a socket the peer closed (POLLRDHUP: Linux) or reset
ENDED = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


class Inbox:
    """Message event payloads by (source, event id), from the Socket Mode thread to the scoped run
    their hint asks for, in one process; bounded: the oldest go first (their run reads the channel)."""

    def __init__(self, most: int = 10_000) -> None:
        self.most = most
        self._events: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, source: str, event_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            self._events[(source, event_id)] = event
            while len(self._events) > self.most:
                self._events.popitem(last=False)

    def take(self, source: str, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._events.pop((source, event_id), None)


INBOX = Inbox()


def split_container(container: str) -> tuple[str, str | None]:
    """(channel id, event id or None) of a hint's container."""
    channel, _, event_id = container.partition(EVENT_SEP)
    return channel, event_id or None


def hints_for(event: dict[str, Any]) -> list[Hint]:
    """The hints an Events API event gives; none for events that change no indexed document."""
    kind = event.get("type")
    at = _stamp(event.get("event_ts") or event.get("ts"))
    if kind == "message" and event.get("subtype") in CONVERSIONS:
        return [Hint(str(event["channel"]), at, acl=True)] if event.get("channel") else []
    if kind == "message":
        return [Hint(str(event["channel"]), at)] if event.get("channel") else []
    if kind == "file_deleted":  # the threads that shared it, in each channel it was shared in
        ids = [cid for cid in event.get("channel_ids") or [] if cid]
        return [Hint(str(cid), at) for cid in ids] if ids else [Hint(None, at)]
    if kind in CHANNEL_EVENTS:
        channel = event.get("channel")
        cid = channel.get("id") if isinstance(channel, dict) else channel
        return [Hint(str(cid), at)] if cid else []
    if kind == "channel_id_changed":  # the old id is read as gone (dropped), the new one as a new channel
        ids = [event.get("old_channel_id"), event.get("new_channel_id")]
        return [Hint(str(cid), at) for cid in ids if cid]
    if kind in MEMBER_EVENTS and event.get("channel"):
        return [Hint(str(event["channel"]), at, acl=True)]
    user = event.get("user") if kind == "user_change" else None
    if isinstance(user, dict) and user.get("deleted"):
        return [Hint(None, at, acl=True)]  # a deactivation: every channel's members, read by a whole sync
    if isinstance(user, dict) and user.get("id") and not user.get("is_bot"):  # the run compares the email
        return [Hint(f"{PERSON}{user['id']}", at, acl=True)]
    return []


def carries_payload(event: dict[str, Any]) -> bool:
    """Whether the scoped run writes from the event's payload (a message, edit, deletion, reply),
    or compares it with what it knows (a member's profile), rather than reading its channel."""
    if event.get("type") in ("file_deleted", "user_change"):
        return True
    return event.get("type") == "message" and event.get("subtype") not in CONVERSIONS


def _stamp(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return time.time()


class _Connection:
    """One Socket Mode connection of an app-level token in the process, shared by every source that
    uses the token: Slack hands each event to one of an app's open connections at random, so a
    connection per source would give each source only a share of its events. Each event is
    acknowledged once and handed to every source on the connection (each keeps what it reads)."""

    def __init__(self, app_token: str, base_url: str, timeout: float) -> None:
        self.app_token, self.base_url, self.timeout = app_token, base_url, timeout
        self.client: SocketModeClient | None = None
        self.sources: dict[int, SlackSocketEvents] = {}
        self.lock = threading.Lock()
        self.lost_at: float | None = None  # when the connection was last found down (epoch s), until up

    def session(self) -> str | None:
        """The id of the connection now open (a new one after each reconnect), or None."""
        client = self.client
        return client.session_id() if client is not None else None

    def why_down(self) -> str:
        """Why no connection is up, for `inlet status`."""
        if self.client is None or self.lost_at is None:
            return "no Socket Mode connection open"
        when = dt.datetime.fromtimestamp(self.lost_at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"the Socket Mode connection was lost at {when}; opening a new one"

    def join(self, events: SlackSocketEvents) -> None:
        """Hand `events` every event from now on, opening the connection for the first source."""
        with self.lock:
            if self.client is None:
                self.client = self._open(events.source)
            self.sources[id(events)] = events

    def leave(self, events: SlackSocketEvents) -> None:
        """Stop handing `events` anything; the last source to leave closes the connection."""
        with self.lock:
            self.sources.pop(id(events), None)
            client, self.client = (self.client, None) if not self.sources else (None, self.client)
        if client is not None:
            client.close()

    def _open(self, source: str) -> SocketModeClient:
        web = WebClient(base_url=self.base_url, timeout=int(max(self.timeout, 1)))
        client = SocketModeClient(self.app_token, web_client=web)
        client.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]
        try:
            client.connect()
        except SlackApiError as exc:
            client.close()
            error = str(exc.response.get("error", ""))
            if error in REFUSED:
                raise CredentialsError(
                    source,
                    f"Socket Mode refused the app token ({error}); "
                    "check app_token_env (an xapp- token with connections:write)",
                ) from None
            raise RetriableError(f"source {source!r}: apps.connections.open failed: {error}") from None
        except OSError as exc:
            client.close()
            raise RetriableError(f"source {source!r}: cannot open the Socket Mode connection: {exc}") from None
        return client

    def _on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        if request.type != "events_api":
            return
        with self.lock:
            sources = list(self.sources.values())
        for events in sources:
            events.hear(request)

    def alive(self) -> bool:
        """Whether the connection is up; one the service ended is closed at once (see the module
        docstring) so that the client opens a new one. `lost_at` says since when it is down."""
        up = self._up()
        if up:
            self.lost_at = None
        elif self.lost_at is None:
            self.lost_at = time.time()
        return up

    def _up(self) -> bool:
        client = self.client
        if client is None or not client.is_connected():
            return False
        session = client.current_session
        sock = getattr(session, "sock", None)
        if sock is None:
            return True
        poller = select.poll()
        try:
            poller.register(sock, ENDED)
            if not poller.poll(0):
                return True
        except (OSError, ValueError):  # the client closed it meanwhile
            return False
        with self.lock:
            names = ", ".join(sorted(repr(e.source) for e in self.sources.values()))
        log.warning("source %s: the Socket Mode connection was lost; opening a new one", names)
        session.close()  # type: ignore[union-attr]
        return False


_connections: dict[tuple[str, str], _Connection] = {}
_connections_lock = threading.Lock()


def _connection(app_token: str, base_url: str, timeout: float) -> _Connection:
    """The process's one connection of an app-level token (and API)."""
    key = (hashlib.sha256(app_token.encode()).hexdigest(), base_url)
    with _connections_lock:
        if key not in _connections:
            _connections[key] = _Connection(app_token, base_url, timeout)
        return _connections[key]


class SlackSocketEvents(EventSource):
    """One source's events, from the Socket Mode connection of its app token (`_Connection`: shared
    with the other sources of the same app, reopened on `disconnect` and on loss)."""

    def __init__(self, source: str, app_token: str, base_url: str, timeout: float = 30.0) -> None:
        super().__init__()
        self.source = source
        self.connection = _connection(app_token, base_url, timeout)
        self.session: str | None = None  # the connection this source last saw up (caught up since)

    def start(self, emit: Emit) -> None:
        self.emit = emit
        self.connection.join(self)
        self._check()

    def hear(self, request: SocketModeRequest) -> None:
        """One `events_api` envelope (acknowledged already): the hints it gives this source."""
        payload = request.payload or {}
        event_id = str(payload.get("event_id") or request.envelope_id)
        if not self.first_time(event_id):
            log.debug("source %r: event %s again (redelivered): ignored", self.source, event_id)
            return
        event = payload.get("event") or {}
        for hint in hints_for(event):
            container = hint.container
            if carries_payload(event) and container:  # the run takes the payload from the inbox
                INBOX.put(self.source, event_id, event)
                container = f"{container}{EVENT_SEP}{event_id}"
            self.emit(Hint(container, hint.at, hint.acl, event_id))

    def maintain(self) -> None:
        self._check()

    def _check(self) -> None:
        """Whether the connection is up (else why not); a connection not seen before is a gap."""
        self.live = self.connection.alive()
        self.reason = "" if self.live else self.connection.why_down()
        session = self.connection.session() if self.live else None
        if session is not None and session != self.session:
            log.info(
                "source %r: Socket Mode connection %s; syncing once what Slack may not redeliver",
                self.source,
                "open" if self.session is None else "open again",
            )
            self.session = session
            self.missed()

    def stop(self) -> None:
        self.live = False
        self.session = None
        self.connection.leave(self)
