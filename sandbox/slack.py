"""The emulated Slack Web API: channels, threads, files, a bot token, and Slack's ways of failing.

Speaks the wire format slack_sdk's `WebClient` expects (form-encoded POSTs to `/api/<method>`, a
Bearer token, HTTP 200 with `{"ok": false, "error": ...}` for API errors, `missing_scope` with the
`needed` and `provided` scopes for a token granted fewer (`set_scopes`; without `users:read.email`
users come without `profile.email`, as from Slack), HTTP 429 with an integer
`Retry-After`), so the connector is tested with the real SDK. Files are Slack-hosted (downloads
need the token) or external (`mode` "external", `url_private` the other service's link). State lives in `SlackState` on
`ws.slack`; tests and the admin routes change it through the mutation functions below, each
firing the Events API event Slack sends for it, in Slack's shape: `message` (a reply with
`thread_ts` and `parent_user_id`, a shared file as `file_share` with its `files`),
`message_changed` with the new `message` and the `previous_message`, `message_deleted` with
`deleted_ts` and the `previous_message` (a thread's parent with its `reply_count`), a channel made
private or public as Slack's notice message (`channel_convert_to_private`, `_public`) heard with
the new `channel_type`, and a deleted file as `file_deleted` with its `channel_ids` (messages then
show the file as a tombstone).
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import re
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .documents import make_docx
from .faults import BrokenAnswer, Faults
from .slack_socket import APP_TOKEN, SocketHub
from .workspace import Workspace

TOKEN = "xoxb-sandbox-0000000001-inlet"
BOT_ID = "B0SANDBOX1"
BOT_USER = "U0SANDBOT1"

# Published rate-limit tiers (calls per minute) of the methods the sandbox serves.
TIERS: dict[str, float] = {
    "auth.test": 100,
    "conversations.history": 50,
    "conversations.replies": 50,
    "conversations.list": 20,
    "conversations.members": 100,
    "conversations.info": 50,
    "users.list": 20,
    "users.info": 100,
    "files.info": 100,
}


def tier_limits(faults: Faults, scale: float = 1.0) -> None:
    """Arm Slack's published per-method limits (times `scale`); `Faults.time_scale` shrinks the minute."""
    for method, per_minute in TIERS.items():
        faults.rate_limit("slack", method, per_minute * scale)


# --- state ----------------------------------------------------------------------------------------


def _key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    return int(sec), int((frac or "0").ljust(6, "0")[:6])


@dataclass
class File:
    id: str
    name: str
    mimetype: str
    content: bytes
    user: str
    created: int
    title: str = ""
    check_file_info: bool = False  # message carries only a stub: call files.info (as Slack sometimes does)
    external_url: str = ""  # a file kept elsewhere (Google Drive...): Slack gives that link as url_private
    external_type: str = ""  # "gdrive", "dropbox", ...
    moved_to: str = ""  # its download answers a redirect here
    deleted: bool = False  # deleted by its owner: messages show Slack's tombstone, the download is gone


@dataclass
class Message:
    ts: str
    text: str
    user: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    username: str | None = None
    edited: dict[str, str] | None = None
    files: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Channel:
    id: str
    name: str
    created: int
    creator: str
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    is_archived: bool = False
    members: list[str] = field(default_factory=list)
    purpose: str = ""
    messages: list[Message] = field(default_factory=list)  # top level, ascending ts
    keys: list[tuple[int, int]] = field(default_factory=list)  # _key(ts) of `messages`
    replies: dict[str, list[Message]] = field(default_factory=dict)  # by parent ts, ascending

    def find(self, ts: str) -> Message | None:
        i = bisect.bisect_left(self.keys, _key(ts))
        if i < len(self.keys) and self.keys[i] == _key(ts):
            return self.messages[i]
        return None


@dataclass
class SlackState:
    channels: dict[str, Channel] = field(default_factory=dict)
    files: dict[str, File] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=lambda: {TOKEN: BOT_USER})  # token -> user id
    scopes: dict[str, set[str]] = field(default_factory=dict)  # token -> its scopes; absent: every scope
    caller: str = ""  # the token of the call being answered (under the workspace lock)
    revoked: set[str] = field(default_factory=set)
    cursor_epoch: int = 0  # bumped by expire_cursors(): older cursors become invalid
    last_ts: float = 0.0
    bots: dict[str, str] = field(default_factory=dict)  # bot id -> app name (bot_profile.name)
    team_url: str = "https://sandbox.slack.com/"
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)  # Events API
    socket: Any = None  # slack_socket.SocketHub, once Socket Mode is served


def state(ws: Workspace) -> SlackState:
    with ws.lock:
        if ws.slack is None:
            ws.slack = SlackState()
            ws.add_user(f"inlet-bot@{ws.domain}", "inlet", "inlet bot", user_id=BOT_USER, is_bot=True)
        return ws.slack


def hub(ws: Workspace, faults: Faults) -> SocketHub:
    """The workspace's Socket Mode hub, created and wired to the Slack state on first use."""
    st = state(ws)
    with ws.lock:
        if st.socket is None:
            st.socket = SocketHub(ws, faults)
            st.listeners.append(st.socket.publish)
        hub_: SocketHub = st.socket
        return hub_


# --- mutations (Python API; the admin routes call these) --------------------------------------------


def _next_ts(ws: Workspace, st: SlackState, ts: str | None) -> str:
    if ts is not None:
        return ts
    now = max(ws.clock(), st.last_ts + 0.000001)
    st.last_ts = now
    return f"{now:.6f}"


def _emit(ws: Workspace, chan: Channel, event: dict[str, Any]) -> None:
    """Fire an Events API event, as Slack does for channels the app's bot is a member of."""
    st = state(ws)
    if BOT_USER in chan.members or chan.is_im:
        event = {**event, "event_ts": event.get("event_ts") or _next_ts(ws, st, None)}
        for listener in list(st.listeners):
            listener(event)


def _channel_type(chan: Channel) -> str:
    return "im" if chan.is_im else "mpim" if chan.is_mpim else "group" if chan.is_private else "channel"


def add_channel(
    ws: Workspace,
    name: str,
    members: list[str],
    *,
    private: bool = False,
    im: bool = False,
    mpim: bool = False,
    archived: bool = False,
    channel_id: str | None = None,
    created: int | None = None,
) -> Channel:
    st = state(ws)
    with ws.lock:
        prefix = "D" if im else "G" if (private or mpim) else "C"
        cid = channel_id or f"{prefix}{len(st.channels) + 1:08d}"
        chan = Channel(
            cid,
            name,
            created or int(ws.clock()),
            members[0] if members else BOT_USER,
            is_private=private or im or mpim,
            is_im=im,
            is_mpim=mpim,
            is_archived=archived,
            members=list(dict.fromkeys(members)),
        )
        st.channels[cid] = chan
        return chan


def add_file(
    ws: Workspace,
    name: str,
    content: bytes,
    mimetype: str,
    user: str,
    *,
    title: str = "",
    check_file_info: bool = False,
    external_url: str = "",
    external_type: str = "gdrive",
    moved_to: str = "",
) -> File:
    """A file to share; `external_url`: one kept outside Slack (`mode` "external"), `moved_to`: its
    download redirects there."""
    st = state(ws)
    with ws.lock:
        fid = f"F{len(st.files) + 1:08d}"
        st.files[fid] = File(
            fid,
            name,
            mimetype,
            content,
            user,
            int(ws.clock()),
            title or name,
            check_file_info,
            external_url,
            external_type if external_url else "",
            moved_to,
        )
        return st.files[fid]


def post_message(
    ws: Workspace,
    channel: str,
    text: str,
    user: str | None = None,
    *,
    thread_ts: str | None = None,
    ts: str | None = None,
    files: list[str] | None = None,
    bot: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    subtype: str | None = None,
) -> str:
    """Post a message (a reply when `thread_ts` is given); returns its ts. `bot` names a bot sender."""
    st = state(ws)
    with ws.lock:
        chan = st.channels[channel]
        msg = Message(
            _next_ts(ws, st, ts),
            text,
            user,
            thread_ts,
            subtype,
            files=list(files or []),
            attachments=list(attachments or []),
        )
        if bot:
            msg.subtype, msg.bot_id, msg.username, msg.user = "bot_message", f"B0{bot.upper()[:8]}", bot, None
        if thread_ts:
            if chan.find(thread_ts) is None:
                raise KeyError(f"no parent {thread_ts} in {channel}")
            chan.find(thread_ts).thread_ts = thread_ts  # type: ignore[union-attr]
            replies = chan.replies.setdefault(thread_ts, [])
            bisect.insort(replies, msg, key=lambda m: _key(m.ts))
        else:
            i = bisect.bisect_left(chan.keys, _key(msg.ts))
            chan.keys.insert(i, _key(msg.ts))
            chan.messages.insert(i, msg)
        event = _event_message(ws, chan, msg)
        if msg.files and not msg.subtype:
            event["subtype"] = "file_share"
        _emit(ws, chan, {**event, "channel": channel, "channel_type": _channel_type(chan), "event_ts": msg.ts})
        return msg.ts


def edit_message(ws: Workspace, channel: str, ts: str, text: str) -> None:
    with ws.lock:
        chan = state(ws).channels[channel]
        msg = _locate(chan, ts)
        before = _event_message(ws, chan, msg)
        msg.text = text
        msg.edited = {"user": msg.user or BOT_USER, "ts": _next_ts(ws, state(ws), None)}
        _emit(
            ws,
            chan,
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": channel,
                "channel_type": _channel_type(chan),
                "hidden": True,
                "ts": msg.edited["ts"],
                "event_ts": msg.edited["ts"],
                "message": _event_message(ws, chan, msg),
                "previous_message": before,
            },
        )


def delete_message(ws: Workspace, channel: str, ts: str) -> None:
    """Delete like Slack: a parent with replies leaves a tombstone; the tombstone goes with its last reply."""
    with ws.lock:
        chan = state(ws).channels[channel]
        before = _event_message(ws, chan, _locate(chan, ts))
        _delete(ws, channel, ts)
        at = _next_ts(ws, state(ws), None)
        _emit(
            ws,
            chan,
            {
                "type": "message",
                "subtype": "message_deleted",
                "channel": channel,
                "channel_type": _channel_type(chan),
                "hidden": True,
                "deleted_ts": ts,
                "ts": at,
                "event_ts": at,
                "previous_message": before,
            },
        )


def _delete(ws: Workspace, channel: str, ts: str) -> None:
    with ws.lock:
        chan = state(ws).channels[channel]
        parent = chan.find(ts)
        if parent is not None:
            if chan.replies.get(ts):
                parent.subtype, parent.text, parent.user, parent.files = (
                    "tombstone",
                    "This message was deleted.",
                    "USLACKBOT",
                    [],
                )
            else:
                _remove_top(chan, ts)
            return
        for pts, replies in chan.replies.items():
            for reply in replies:
                if reply.ts == ts:
                    replies.remove(reply)
                    top = chan.find(pts)
                    if not replies:
                        del chan.replies[pts]
                        if top is not None and top.subtype == "tombstone":
                            _remove_top(chan, pts)
                        elif top is not None:
                            top.thread_ts = None
                    return
        raise KeyError(f"no message {ts} in {channel}")


def _event_message(ws: Workspace, chan: Channel, m: Message) -> dict[str, Any]:
    """A message as the Events API carries it (`message`, `message_changed.message`,
    `message_deleted.previous_message`): as history shows it, files described in place."""
    out = _message_json("", ws, chan, m, chan.find(m.ts) is m)
    st = state(ws)
    if m.files:
        out["files"] = [
            {"id": fid, "mode": "tombstone"}
            if st.files[fid].deleted
            else {"id": fid, "name": st.files[fid].name, "mimetype": st.files[fid].mimetype, "mode": "hosted"}
            for fid in m.files
            if fid in st.files
        ]
    if m.user and not m.subtype:
        out["client_msg_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{chan.id}/{m.ts}"))
    return out


def _remove_top(chan: Channel, ts: str) -> None:
    i = bisect.bisect_left(chan.keys, _key(ts))
    del chan.keys[i], chan.messages[i]


def _locate(chan: Channel, ts: str) -> Message:
    msg = chan.find(ts)
    if msg is None:
        msg = next((r for rs in chan.replies.values() for r in rs if r.ts == ts), None)
    if msg is None:
        raise KeyError(f"no message {ts} in {chan.id}")
    return msg


def join_channel(ws: Workspace, channel: str, user: str) -> None:
    with ws.lock:
        chan = state(ws).channels[channel]
        if user not in chan.members:
            chan.members.append(user)
            _emit(
                ws,
                chan,
                {
                    "type": "member_joined_channel",
                    "user": user,
                    "channel": channel,
                    "channel_type": "G" if chan.is_private else "C",
                    "team": ws.team_id,
                },
            )


def leave_channel(ws: Workspace, channel: str, user: str) -> None:
    """`user` leaves (or is removed from) the channel; the bot itself hears `channel_left` or
    `group_left` ("you left a channel"), not `member_left_channel`."""
    with ws.lock:
        chan = state(ws).channels[channel]
        if user in chan.members:
            if user == BOT_USER:
                left = {"type": "group_left" if chan.is_private else "channel_left", "channel": channel}
                _emit(ws, chan, {**left, "actor_id": chan.creator})
            else:
                _emit(
                    ws,
                    chan,
                    {
                        "type": "member_left_channel",
                        "user": user,
                        "channel": channel,
                        "channel_type": "G" if chan.is_private else "C",
                        "team": ws.team_id,
                    },
                )
            chan.members.remove(user)


def deactivate_user(ws: Workspace, user: str, deleted: bool = True) -> None:
    """Deactivate (or reactivate) a user: users.list says `deleted`, members lists still name them;
    every app hears `user_change` with the user as users.info gives it."""
    with ws.lock:
        ws.users[user].deleted = deleted
        _user_changed(ws, user)


def change_email(ws: Workspace, user: str, email: str) -> None:
    """Change a user's email (a rebrand, a new name); every app hears `user_change`."""
    with ws.lock:
        ws.users[user].email = email
        _user_changed(ws, user)


def user_change_event(ws: Workspace, user: str) -> dict[str, Any]:
    """The `user_change` event Slack sends for `user` as it is now (any profile change)."""
    with ws.lock:
        return {"type": "user_change", "user": _user_json(ws, user), "cache_ts": int(ws.clock())}


def _user_changed(ws: Workspace, user: str) -> None:
    event = user_change_event(ws, user)
    st = state(ws)
    event["event_ts"] = _next_ts(ws, st, None)
    for listener in list(st.listeners):
        listener(event)


def delete_file(ws: Workspace, file_id: str) -> None:
    """Delete a shared file like Slack: every message that shared it shows `{"id", "mode": "tombstone"}`,
    its download and files.info are gone, and every app hears `file_deleted` with the `channel_ids`
    it was shared in."""
    with ws.lock:
        st = state(ws)
        f = st.files[file_id]
        f.deleted, f.content = True, b""
        shared = [
            c.id
            for c in st.channels.values()
            if any(file_id in m.files for m in [*c.messages, *(r for rs in c.replies.values() for r in rs)])
        ]
        event = {"type": "file_deleted", "file_id": file_id, "channel_ids": shared, "event_ts": _next_ts(ws, st, None)}
        for listener in list(st.listeners):
            listener(event)


def convert_channel(ws: Workspace, channel: str, private: bool, user: str) -> str:
    """Make a channel private (or public) like Slack: it keeps its id and members, and its history
    gets Slack's notice, a `message` of subtype `channel_convert_to_private` (`_public`), heard with
    the new `channel_type`. Returns the notice's ts."""
    with ws.lock:
        state(ws).channels[channel].is_private = private
        if private:
            subtype, text = (
                "channel_convert_to_private",
                "made this channel *private*. Now, it can only be viewed or joined by invitation.",
            )
        else:
            subtype, text = (
                "channel_convert_to_public",
                "made this channel *public*. Any member in this workspace can see and join it.",
            )
        return post_message(ws, channel, text, user, subtype=subtype)


def rename_channel(ws: Workspace, channel: str, name: str) -> None:
    with ws.lock:
        chan = state(ws).channels[channel]
        chan.name = name
        _emit(
            ws,
            chan,
            {
                "type": "channel_rename" if not chan.is_private else "group_rename",
                "channel": {"id": channel, "name": name, "created": chan.created},
            },
        )


def archive_channel(ws: Workspace, channel: str) -> None:
    """Archive a channel: like Slack, this ejects every bot from it (`is_member: false`, its history
    `not_in_channel`; an archived channel cannot be joined); people stay members."""
    with ws.lock:
        chan = state(ws).channels[channel]
        chan.is_archived = True
        _emit(
            ws,
            chan,
            {
                "type": "channel_archive" if not chan.is_private else "group_archive",
                "channel": channel,
                "user": chan.creator,
            },
        )
        chan.members = [u for u in chan.members if u not in ws.users or not ws.users[u].is_bot]


def revoke_token(ws: Workspace, token: str = TOKEN) -> None:
    with ws.lock:
        state(ws).revoked.add(token)


def set_scopes(ws: Workspace, scopes: set[str], token: str = TOKEN) -> None:
    """Grant `token` only `scopes`: a method needing another answers `missing_scope` as Slack does."""
    with ws.lock:
        state(ws).scopes[token] = set(scopes)


def expire_cursors(ws: Workspace) -> None:
    with ws.lock:
        state(ws).cursor_epoch += 1


# --- wire format ----------------------------------------------------------------------------------


class _SlackJSON(JSONResponse):
    """An answer's JSON with every non-ASCII character escaped (`\\u00e9`), which JSON allows: so a
    lone UTF-16 surrogate in a message (what a bot written in JavaScript posts when it cuts a string
    between the two halves of an emoji) reaches a client as Slack sends it, the escape `\\ud83d`
    (as UTF-8 it could not be sent at all)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _ok(**body: Any) -> JSONResponse:
    return _SlackJSON({"ok": True, **body})


def _err(error: str, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return _SlackJSON({"ok": False, "error": error}, status_code=status, headers=headers)


class _Fail(Exception):
    def __init__(self, error: str) -> None:
        self.error = error


def _cursor(st: SlackState, kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}:{st.cursor_epoch}".encode()).decode()


def _uncursor(st: SlackState, kind: str, raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        got, value, epoch = base64.b64decode(raw.encode(), validate=True).decode().rsplit(":", 2)
    except (ValueError, UnicodeDecodeError):
        raise _Fail("invalid_cursor") from None
    if got != kind or int(epoch) != st.cursor_epoch:
        raise _Fail("invalid_cursor")
    return value


def _limit(args: dict[str, str], default: int, most: int) -> int:
    try:
        value = int(args.get("limit") or default)
    except ValueError:
        raise _Fail("invalid_limit") from None
    return max(1, min(value, most))


def _user_json(ws: Workspace, uid: str) -> dict[str, Any]:
    """A user as users.list/users.info give it; without users:read.email Slack leaves `profile.email`
    out (no error)."""
    user = ws.users[uid]
    profile = {
        "real_name": user.real_name,
        "display_name": user.name if not user.is_bot else "",
        "real_name_normalized": user.real_name,
        "display_name_normalized": user.name,
        "team": ws.team_id,
    }
    granted = state(ws).scopes.get(state(ws).caller)
    if granted is None or "users:read.email" in granted:
        profile["email"] = user.email
    if user.is_bot:
        profile["bot_id"] = BOT_ID
    return {
        "id": uid,
        "team_id": ws.team_id,
        "name": user.name,
        "deleted": user.deleted,
        "real_name": user.real_name,
        "is_bot": user.is_bot,
        "is_app_user": False,
        "tz": "Etc/UTC",
        "updated": 0,
        "profile": profile,
    }


def _file_json(ctx_url: str, ws: Workspace, f: File, stub: bool = False) -> dict[str, Any]:
    if f.deleted:  # as Slack shows a deleted file in the message that shared it
        return {"id": f.id, "mode": "tombstone"}
    if stub and f.check_file_info:
        return {"id": f.id, "mode": "file_access", "file_access": "check_file_info"}
    base = f"{ctx_url}/files-pri/{ws.team_id}-{f.id}"
    team_url = state(ws).team_url
    common = {
        "id": f.id,
        "created": f.created,
        "timestamp": f.created,
        "name": f.name,
        "title": f.title,
        "mimetype": f.mimetype,
        "filetype": f.name.rsplit(".", 1)[-1],
        "user": f.user,
        "is_public": True,
        "permalink": f"{team_url}files/{f.user}/{f.id}/{f.name}",
    }
    if f.external_url:  # kept in another service: Slack names it and links there, holds no bytes
        return {
            **common,
            "mode": "external",
            "is_external": True,
            "external_type": f.external_type,
            "url_private": f.external_url,
        }
    return {
        **common,
        "size": len(f.content),
        "mode": "hosted",
        "is_external": False,
        "url_private": f"{base}/{f.name}",
        "url_private_download": f"{base}/download/{f.name}",
    }


def _message_json(ctx_url: str, ws: Workspace, chan: Channel, m: Message, top: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
    if m.user:
        out["user"] = m.user
        out["team"] = ws.team_id
    for key in ("subtype", "bot_id", "username", "edited"):
        if getattr(m, key):
            out[key] = getattr(m, key)
    if m.bot_id and m.subtype == "bot_message":
        name = state(ws).bots.get(m.bot_id) or m.username or m.bot_id
        out["bot_profile"] = {"id": m.bot_id, "name": name, "deleted": False}
    if m.attachments:
        out["attachments"] = m.attachments
    if m.files:
        st = state(ws)
        out["files"] = [_file_json(ctx_url, ws, st.files[fid], stub=True) for fid in m.files if fid in st.files]
    if m.subtype == "tombstone":
        out["hidden"] = True
    replies = chan.replies.get(m.ts) if top else None
    if m.thread_ts:
        out["thread_ts"] = m.thread_ts
    if replies:
        users = list(dict.fromkeys(r.user or r.bot_id or "" for r in replies))
        out.update(
            reply_count=len(replies),
            reply_users_count=len(users),
            reply_users=users[:5],
            latest_reply=replies[-1].ts,
            is_locked=False,
            subscribed=False,
        )
    elif not top:
        parent = chan.find(m.thread_ts or "")
        out["parent_user_id"] = parent.user if parent else None
    return out


def _channel_json(chan: Channel, uid: str) -> dict[str, Any]:
    if chan.is_im:
        other = next((u for u in chan.members if u != uid), uid)
        return {
            "id": chan.id,
            "created": chan.created,
            "is_im": True,
            "is_org_shared": False,
            "user": other,
            "is_user_deleted": False,
            "priority": 0,
        }
    return {
        "id": chan.id,
        "name": chan.name,
        "name_normalized": chan.name,
        "created": chan.created,
        "creator": chan.creator,
        "is_channel": not chan.is_private,
        "is_group": chan.is_private and not chan.is_mpim,
        "is_im": False,
        "is_mpim": chan.is_mpim,
        "is_private": chan.is_private,
        "is_archived": chan.is_archived,
        "is_general": False,
        "is_shared": False,
        "is_ext_shared": False,
        "is_org_shared": False,
        "is_member": uid in chan.members,
        "num_members": len(chan.members),
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": chan.purpose, "creator": "", "last_set": 0},
    }


def _visible(chan: Channel, uid: str) -> bool:
    """Public channels are visible to all; private ones, DMs and group DMs only to members."""
    return not chan.is_private or uid in chan.members


def _history_window(args: dict[str, str]) -> tuple[tuple[int, int], tuple[int, int], bool]:
    inclusive = args.get("inclusive") in ("1", "true", "True")
    oldest = _key(args.get("oldest") or "0")
    latest = _key(args["latest"]) if args.get("latest") else (10**12, 0)
    return oldest, latest, inclusive


def _api(ctx: Any) -> dict[str, Any]:
    ws: Workspace = ctx.ws

    def channel_for(args: dict[str, str], uid: str, *, member: bool) -> Channel:
        chan = state(ws).channels.get(args.get("channel", ""))
        if chan is None or not _visible(chan, uid):
            raise _Fail("channel_not_found")
        if member and uid not in chan.members:
            raise _Fail("not_in_channel")
        return chan

    def auth_test(args: dict[str, str], uid: str) -> JSONResponse:
        user = ws.users[uid]
        return _ok(
            url=state(ws).team_url,
            team=ws.team_name,
            user=user.name,
            team_id=ws.team_id,
            user_id=uid,
            bot_id=BOT_ID if user.is_bot else None,
            is_enterprise_install=False,
        )

    def conversations_list(args: dict[str, str], uid: str) -> JSONResponse:
        st = state(ws)
        types = set((args.get("types") or "public_channel").split(","))
        wanted = [
            c
            for c in st.channels.values()
            if _visible(c, uid)
            and _type(c) in types
            and not (c.is_archived and args.get("exclude_archived") in ("1", "true", "True"))
        ]
        page, cursor = _page(st, "offset", wanted, args, 100, 1000)
        return _ok(channels=[_channel_json(c, uid) for c in page], response_metadata={"next_cursor": cursor})

    def conversations_members(args: dict[str, str], uid: str) -> JSONResponse:
        chan = channel_for(args, uid, member=False)
        page, cursor = _page(state(ws), "member", chan.members, args, 100, 1000)
        return _ok(members=page, response_metadata={"next_cursor": cursor})

    def conversations_info(args: dict[str, str], uid: str) -> JSONResponse:
        return _ok(channel=_channel_json(channel_for(args, uid, member=False), uid))

    def conversations_history(args: dict[str, str], uid: str) -> JSONResponse:
        st = state(ws)
        chan = channel_for(args, uid, member=True)
        oldest, latest, inclusive = _history_window(args)
        after = _uncursor(st, "next_ts", args.get("cursor"))
        hi = bisect.bisect_right(chan.keys, latest) if inclusive else bisect.bisect_left(chan.keys, latest)
        if after is not None:
            hi = min(hi, bisect.bisect_right(chan.keys, _key(after)))
        lo = bisect.bisect_left(chan.keys, oldest) if inclusive else bisect.bisect_right(chan.keys, oldest)
        limit = _limit(args, 100, 999)
        start = max(lo, hi - limit)
        page = [_message_json(ctx.http_url, ws, chan, m, True) for m in reversed(chan.messages[start:hi])]
        has_more = start > lo
        cursor = _cursor(st, "next_ts", chan.messages[start - 1].ts) if has_more else ""
        return _ok(
            messages=page,
            has_more=has_more,
            pin_count=0,
            channel_actions_ts=None,
            channel_actions_count=0,
            response_metadata={"next_cursor": cursor},
        )

    def conversations_replies(args: dict[str, str], uid: str) -> JSONResponse:
        st = state(ws)
        chan = channel_for(args, uid, member=True)
        ts = args.get("ts") or ""
        parent = chan.find(ts)
        if parent is None:
            owner = next((p for p, rs in chan.replies.items() if any(r.ts == ts for r in rs)), None)
            parent = chan.find(owner) if owner else None
            if parent is None:
                raise _Fail("thread_not_found")
        replies = chan.replies.get(parent.ts, [])
        oldest, latest, inclusive = _history_window(args)
        keep = [r for r in replies if (oldest <= _key(r.ts) <= latest if inclusive else oldest < _key(r.ts) < latest)]
        start = int(_uncursor(st, "reply", args.get("cursor")) or 0)
        limit = _limit(args, 10, 1000)
        page = keep[start : start + limit]
        more = start + limit < len(keep)
        messages = [_message_json(ctx.http_url, ws, chan, parent, True)]
        messages += [_message_json(ctx.http_url, ws, chan, r, False) for r in page]
        return _ok(
            messages=messages,
            has_more=more,
            response_metadata={"next_cursor": _cursor(st, "reply", str(start + limit)) if more else ""},
        )

    def users_list(args: dict[str, str], uid: str) -> JSONResponse:
        st = state(ws)
        page, cursor = _page(st, "user", sorted(ws.users), args, 100, 1000)
        return _ok(
            members=[_user_json(ws, u) for u in page],
            cache_ts=int(ws.clock()),
            response_metadata={"next_cursor": cursor},
        )

    def users_info(args: dict[str, str], uid: str) -> JSONResponse:
        if args.get("user") not in ws.users:
            raise _Fail("user_not_found")
        return _ok(user=_user_json(ws, args["user"]))

    def files_info(args: dict[str, str], uid: str) -> JSONResponse:
        f = state(ws).files.get(args.get("file", ""))
        if f is None:
            raise _Fail("file_not_found")
        if f.deleted:
            raise _Fail("file_deleted")
        return _ok(file=_file_json(ctx.http_url, ws, f), comments=[], response_metadata={"next_cursor": ""})

    return {
        "auth.test": auth_test,
        "conversations.list": conversations_list,
        "conversations.members": conversations_members,
        "conversations.info": conversations_info,
        "conversations.history": conversations_history,
        "conversations.replies": conversations_replies,
        "users.list": users_list,
        "users.info": users_info,
        "files.info": files_info,
    }


def _type(chan: Channel) -> str:
    if chan.is_im:
        return "im"
    if chan.is_mpim:
        return "mpim"
    return "private_channel" if chan.is_private else "public_channel"


def _page(
    st: SlackState, kind: str, items: list[Any], args: dict[str, str], default: int, most: int
) -> tuple[list[Any], str]:
    start = int(_uncursor(st, kind, args.get("cursor")) or 0)
    limit = _limit(args, default, most)
    more = start + limit < len(items)
    return items[start : start + limit], _cursor(st, kind, str(start + limit)) if more else ""


def _fault_response(faults: Faults, route: str, channel: str = "") -> Response | None:
    fault = faults.check("slack", route, channel)
    if fault is None:
        return None
    if fault.network:
        return BrokenAnswer(fault)
    if fault.status == 429:
        wait = fault.retry_after if fault.retry_after is not None else 1
        return _err("ratelimited", 429, {"Retry-After": str(math.ceil(wait))})
    if fault.status >= 500:
        return _err(fault.reason or "internal_error", fault.status)
    return _err(fault.reason or "fatal_error")


# Scopes by conversation type: (to list and describe it, to read its messages).
_TYPE_SCOPES = {
    "public_channel": ("channels:read", "channels:history"),
    "private_channel": ("groups:read", "groups:history"),
    "mpim": ("mpim:read", "mpim:history"),
    "im": ("im:read", "im:history"),
}
_METHOD_SCOPES = {"users.list": "users:read", "users.info": "users:read", "files.info": "files:read"}


def _needed(st: SlackState, method: str, args: dict[str, str]) -> list[str]:
    """The scopes a call needs: by the `types` it lists or the type of its `channel`."""
    if method == "conversations.list":
        types = (args.get("types") or "public_channel").split(",")
        return [_TYPE_SCOPES[t][0] for t in types if t in _TYPE_SCOPES]
    if method.startswith("conversations."):
        chan = st.channels.get(args.get("channel", ""))
        reads = method in ("conversations.history", "conversations.replies")
        return [_TYPE_SCOPES[_type(chan)][reads]] if chan is not None else []
    return [_METHOD_SCOPES[method]] if method in _METHOD_SCOPES else []


def _scope_error(st: SlackState, token: str, method: str, args: dict[str, str]) -> JSONResponse | None:
    """Slack's `missing_scope` answer (`needed`, `provided`) when the token lacks a scope the call needs."""
    granted = st.scopes.get(token)
    lacking = [s for s in _needed(st, method, args) if granted is not None and s not in granted]
    if not lacking:
        return None
    body = {"ok": False, "error": "missing_scope", "needed": lacking[0], "provided": ",".join(sorted(granted or ()))}
    return _SlackJSON(body)


def _given_token(request: Request, args: dict[str, str]) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else args.get("token", "")


def _token(ws: Workspace, request: Request, args: dict[str, str]) -> str | None:
    """The user id the request's token acts as; raises _Fail for a missing, unknown or revoked token."""
    token = _given_token(request, args)
    st = state(ws)
    if not token:
        raise _Fail("not_authed")
    if token in st.revoked:
        raise _Fail("token_revoked")
    if token not in st.tokens:
        raise _Fail("invalid_auth")
    return st.tokens[token]


def _connections_open(ctx: Any, request: Request, args: dict[str, str]) -> Response:
    """`apps.connections.open`: only an app-level token may open a Socket Mode connection."""
    token = _given_token(request, args)
    if not token:
        return _err("not_authed")
    if not token.startswith("xapp-"):
        return _err("not_allowed_token_type")
    if token != APP_TOKEN or token in state(ctx.ws).revoked:
        return _err("invalid_auth")
    return _ok(url=hub(ctx.ws, ctx.faults).open_url(ctx.http_url))


async def _args(request: Request) -> dict[str, str]:
    args = dict(request.query_params)
    if request.method == "POST":
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            args.update({k: str(v) for k, v in (await request.json()).items()})
        elif kind:
            args.update({k: str(v) for k, v in (await request.form()).items()})
    return args


def routes(ctx: Any) -> list[BaseRoute]:
    ws: Workspace = ctx.ws
    state(ws)
    methods = _api(ctx)

    async def api(request: Request) -> Response:
        method = request.path_params["method"]
        args = await _args(request)
        failed = _fault_response(ctx.faults, method, args.get("channel", ""))
        if failed is not None:
            return failed
        if method == "apps.connections.open":
            return _connections_open(ctx, request, args)
        handler = methods.get(method)
        if handler is None:
            return _err("unknown_method", 404)
        try:
            with ws.lock:
                uid = _token(ws, request, args)
                state(ws).caller = _given_token(request, args)
                refused = _scope_error(state(ws), _given_token(request, args), method, args)
                return refused or handler(args, uid)
        except _Fail as exc:
            return _err(exc.error)

    async def download(request: Request) -> Response:
        failed = _fault_response(ctx.faults, "files.download")
        if failed is not None:
            return failed
        st = state(ws)
        try:
            _token(ws, request, {})
            if "files:read" not in st.scopes.get(_given_token(request, {}), {"files:read"}):
                raise _Fail("missing_scope")
        except _Fail:  # like Slack: no error status, the sign-in page instead of the file
            return Response("<html><body>Sign in to Slack</body></html>", media_type="text/html")
        fid = request.path_params["ref"].rsplit("-", 1)[-1]
        f = st.files.get(fid)
        if f is None or f.deleted:
            return Response("file not found", status_code=404)
        if f.moved_to and request.query_params.get("moved") is None:
            return Response(status_code=302, headers={"Location": f.moved_to})
        return Response(f.content, media_type=f.mimetype)

    return [
        Route("/api/{method}", api, methods=["GET", "POST"]),
        Route("/files-pri/{ref}/download/{name}", download),
        Route("/files-pri/{ref}/{name}", download),
        Route("/_admin/slack/{action}", _admin(ctx), methods=["POST"]),
        WebSocketRoute("/_socket/slack/link", hub(ws, ctx.faults).serve),
    ]


def _admin(ctx: Any) -> Any:
    ws: Workspace = ctx.ws

    async def admin(request: Request) -> Response:
        action = request.path_params["action"]
        body = await request.json() if await request.body() else {}
        try:
            if action == "post":
                return _ok(
                    ts=post_message(
                        ws, body["channel"], body["text"], body.get("user"), thread_ts=body.get("thread_ts")
                    )
                )
            if action == "edit":
                edit_message(ws, body["channel"], body["ts"], body["text"])
            elif action == "delete":
                delete_message(ws, body["channel"], body["ts"])
            elif action == "join":
                join_channel(ws, body["channel"], body["user"])
            elif action == "leave":
                leave_channel(ws, body["channel"], body["user"])
            elif action == "rename":
                rename_channel(ws, body["channel"], body["name"])
            elif action == "archive":
                archive_channel(ws, body["channel"])
            elif action == "convert":
                return _ok(ts=convert_channel(ws, body["channel"], bool(body["private"]), body["user"]))
            elif action == "delete_file":
                delete_file(ws, body["file"])
            elif action == "socket_disconnect":
                return _ok(asked=hub(ws, ctx.faults).disconnect())
            elif action == "revoke":
                revoke_token(ws, body.get("token", TOKEN))
            elif action == "expire_cursors":
                expire_cursors(ws)
            elif action == "scopes":
                set_scopes(ws, set(body["scopes"]), body.get("token", TOKEN))
            else:
                return _err("unknown_action", 404)
        except KeyError as exc:
            return _err(f"not_found: {exc}", 404)
        return _ok()

    return admin


# --- seeding --------------------------------------------------------------------------------------


def seed_sample(ws: Workspace, path: Path | None = None) -> None:
    """The shipped export (two public channels, bot messages, file snippets) plus what it lacks:
    threads, a private channel, a DM, channels the bot is not in, readable files of several kinds."""
    st = state(ws)
    path = path or Path(__file__).parent / "data" / "slack-export-sample.zip"
    with zipfile.ZipFile(path) as zf:
        for u in json.loads(zf.read("users.json")):
            ws.add_user(
                f"{u['name']}@{ws.domain}",
                u["name"],
                u.get("real_name") or u["name"],
                user_id=u["id"],
                is_bot=bool(u.get("is_bot")),
            )
        for c in json.loads(zf.read("channels.json")):
            chan = add_channel(ws, c["name"], c["members"] + [BOT_USER], channel_id=c["id"], created=int(c["created"]))
            days = sorted(n for n in zf.namelist() if n.startswith(c["name"] + "/") and n.endswith(".json"))
            for day in days:
                for m in json.loads(zf.read(day)):
                    _seed_export_message(ws, chan, m)
    _seed_extras(ws, st)


def _seed_export_message(ws: Workspace, chan: Channel, m: dict[str, Any]) -> None:
    files = []
    if m.get("file"):
        f = m["file"]
        body = (f.get("preview") or f.get("title") or f["name"]).encode()
        files = [
            add_file(
                ws, f["name"], body, f.get("mimetype", "text/plain"), f.get("user", ""), title=f.get("title", "")
            ).id
        ]
    user = m.get("user") or (m.get("comment") or {}).get("user")
    ts = post_message(
        ws,
        chan.id,
        m.get("text", ""),
        user,
        ts=m["ts"],
        files=files,
        attachments=m.get("attachments"),
        subtype=m.get("subtype"),
    )
    msg = chan.find(ts)
    if m.get("bot_id") and msg is not None:
        msg.bot_id = m["bot_id"]
        if m.get("subtype") == "bot_message":
            msg.username, msg.user = m.get("username"), None
    if m.get("subtype") == "bot_add" and m.get("bot_id"):  # "added an integration ...|github>"
        label = re.search(r"\|([^>|]+)>", m.get("text", ""))
        state(ws).bots[m["bot_id"]] = label[1] if label else m["bot_id"]


def _seed_extras(ws: Workspace, st: SlackState) -> None:
    users = {u.name: u.id for u in ws.users.values()}
    hamza, harry, hermione, hero = (users[n] for n in ("hamza", "abilinski", "doubledeez", "heroeshannibal"))
    enrique = "C0JGLMMNX"
    # A thread on an existing message, and a new one with several replies and a snippet.
    parent = next(m.ts for m in st.channels[enrique].messages if m.subtype is None)
    post_message(
        ws,
        enrique,
        "Which cooling schedule did you settle on for the annealer?",
        harry,
        thread_ts=parent,
        ts=_after(parent, 30),
    )
    post_message(
        ws,
        enrique,
        "Geometric, alpha 0.995; see the <#C0JL6CGQ2> numbers :tada:",
        hamza,
        thread_ts=parent,
        ts=_after(parent, 95),
    )
    base = "1459200000.000100"
    post_message(ws, enrique, "Release checklist for enrique 0.2 <!here>: please review :eyes:", hamza, ts=base)
    notes = add_file(
        ws,
        "release-notes.md",
        b"# enrique 0.2\n\n- simulated annealing executor\n- TSP benchmark with 1000 cities\n",
        "text/markdown",
        hamza,
    )
    for i, (who, text) in enumerate(
        [
            (harry, "Tests pass on the mesos cluster :+1:"),
            (hermione, "Added the <https://github.com/mesos-magellan/enrique|repo link>"),
            (hamza, "Release notes attached"),
        ],
        1,
    ):
        post_message(
            ws, enrique, text, who, thread_ts=base, ts=_after(base, 60 * i), files=[notes.id] if i == 3 else None
        )
    ops = add_channel(
        ws, "private-ops", [hamza, hermione, BOT_USER], private=True, channel_id="G0PRIVOPS1", created=1459000000
    )
    runbook = add_file(
        ws,
        "runbook.txt",
        b"Rotate the cluster credentials every 90 days.\nPage the on-call engineer for executor crashes.\n",
        "text/plain",
        hermione,
        check_file_info=True,
    )
    deck = add_file(
        ws,
        "budget.docx",
        make_docx("Budget 2016", ["Compute credits: 4000 dollars for the cluster."]),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        hamza,
    )
    logo = add_file(ws, "logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png", hamza)
    t = post_message(
        ws,
        ops.id,
        "Credentials rotation plan for the mesos cluster",
        hermione,
        ts="1459300000.000100",
        files=[runbook.id],
    )
    post_message(ws, ops.id, "Approved. <@%s> owns it." % hermione, hamza, thread_ts=t, ts=_after(t, 120))
    post_message(ws, ops.id, "Budget for next term attached", hamza, ts="1459300500.000100", files=[deck.id, logo.id])
    post_message(ws, ops.id, "Deploy finished: enrique 0.2 on 12 nodes", None, ts="1459300900.000100", bot="deploybot")
    dm = add_channel(ws, "", [BOT_USER, harry], im=True, channel_id="D0DMHARRY1", created=1459000000)
    post_message(ws, dm.id, "Hi bot, can you index the enrique docs?", harry, ts="1459301000.000100")
    rnd = add_channel(ws, "random", [hamza, hero], channel_id="C0RANDOM01", created=1452837318)
    post_message(ws, rnd.id, "The bot is not in here: nothing here may be indexed", hero, ts="1459000100.000100")
    hr = add_channel(ws, "secret-hr", [hamza], private=True, channel_id="G0SECRETHR", created=1452837318)
    post_message(ws, hr.id, "Salary bands: confidential", hamza, ts="1459000200.000100")
    old = add_channel(ws, "old-project", [hamza, BOT_USER], archived=True, channel_id="C0OLDPROJ1", created=1452000000)
    post_message(ws, old.id, "Archiving this channel, moved to #enrique", hamza, ts="1452000100.000100")


def _after(ts: str, seconds: int) -> str:
    sec, frac = _key(ts)
    return f"{sec + seconds}.{frac:06d}"


_WORDS = (
    "deploy build cluster latency incident review design schema migration cache queue index "
    "budget roadmap customer release test flaky alert dashboard metric rollout canary backup "
    "replica shard token permission search ranking embedding vector pipeline retry timeout"
).split()
_EMOJI = (":tada:", ":+1:", ":eyes:", ":rocket:", ":fire:", ":white_check_mark:")


def seed_generated(ws: Workspace, channels: int = 20, messages: int = 2000, **_: Any) -> None:
    """A synthetic workspace from `ws.rng`: ~8% of top-level messages start threads (a few with
    hundreds of replies), ~1/4 of channels private, one channel the bot is not in. History ends a
    fixed 2023 date, so a look-back window of recent days holds nothing."""
    rng = ws.rng
    st = state(ws)
    people = [u.id for u in ws.users.values() if not u.is_bot] or [
        ws.add_user(f"user{n:04d}@{ws.domain}", f"user{n:04d}", f"User {n:04d}").id for n in range(20)
    ]
    chans = []
    for n in range(channels):
        members = rng.sample(people, k=min(len(people), rng.randint(3, 15)))
        private = n % 4 == 3
        bot_in = n != channels - 1 or channels == 1
        chans.append(
            add_channel(
                ws,
                f"gen-{n:03d}",
                members + ([BOT_USER] if bot_in else []),
                private=private,
                channel_id=f"{'G' if private else 'C'}{n:08d}",
                created=1_650_000_000,
            )
        )
    end, span = 1_700_000_000, 365 * 86400
    tops = int(messages * 0.8)
    stamps = sorted(rng.sample(range(span * 10), tops))
    parents: list[tuple[Channel, str]] = []
    for i, stamp in enumerate(stamps):
        chan = chans[rng.randrange(len(chans))]
        ts = f"{end - span + stamp // 10}.{stamp % 10:01d}{i % 100000:05d}"
        who = rng.choice(chan.members[:-1] or chan.members)
        if rng.random() < 0.03:
            post_message(ws, chan.id, _sentence(rng, people, chans), None, ts=ts, bot="alertbot")
        else:
            post_message(ws, chan.id, _sentence(rng, people, chans), who, ts=ts)
        if rng.random() < 0.08:
            parents.append((chan, ts))
    left = messages - tops
    sizes = [rng.choice((1, 2, 3, 5, 8)) for _ in parents]
    for k in rng.sample(range(len(parents)), k=min(len(parents), 8)):
        sizes[k] = rng.randint(150, 400)
    scale = left / max(sum(sizes), 1)
    counts = [max(1, round(size * scale)) for size in sizes]
    if parents:  # make the total exact: the rounding remainder goes to the largest thread
        counts[max(range(len(counts)), key=counts.__getitem__)] += left - sum(counts)
    for (chan, pts), count in zip(parents, counts):
        for r in range(max(0, min(count, left))):
            who = rng.choice(chan.members[:-1] or chan.members)
            post_message(ws, chan.id, _sentence(rng, people, chans), who, thread_ts=pts, ts=_after(pts, 7 + r * 13))
            left -= 1
    st.last_ts = float(end)


def _sentence(rng: Any, people: list[str], chans: list[Channel]) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 24))
    if rng.random() < 0.1:
        words.insert(0, f"<@{rng.choice(people)}>")
    if rng.random() < 0.05:
        words.append(f"<#{rng.choice(chans).id}>")
    if rng.random() < 0.05:
        words.append(f"<https://example.com/{rng.choice(_WORDS)}|{rng.choice(_WORDS)} doc>")
    if rng.random() < 0.1:
        words.append(rng.choice(_EMOJI))
    text = " ".join(words)
    return text[0].upper() + text[1:]


def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    block = (
        "[[sources]]\n"
        'name = "sandbox-slack"\n'
        'type = "slack"\n'
        'every = "15m"\n'
        'token_env = "INLET_SANDBOX_SLACK_TOKEN"\n'
        'app_token_env = "INLET_SANDBOX_SLACK_APP_TOKEN"   # set events = true for Socket Mode\n'
        f'base_url = "{ctx.http_url}/api/"\n'
    )
    return block, {"INLET_SANDBOX_SLACK_TOKEN": TOKEN, "INLET_SANDBOX_SLACK_APP_TOKEN": APP_TOKEN}
