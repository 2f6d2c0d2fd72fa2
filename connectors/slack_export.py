"""The `slack_export` connector: a workspace export ZIP, no token, same thread documents as `slack`.

An export holds `users.json`, `channels.json` (public), optionally `groups.json` (private),
`mpims.json` and `dms.json`, and one folder of day files per conversation. Private conversations
list their members' emails as the ACL (`private_members`); public ones take the static ACL keys.
The export has no file contents: a shared text file contributes its `preview`, and a preview Slack
cut is said to be one, in the text and as a skip by policy. Links are the workspace's permalinks
(`team_url`, else the first workspace URL the export holds: never one of Slack's own hosts, such
as files.slack.com); a writer `users.json` lacks (a Slack Connect partner) is named by the profile
their messages carry.

A damaged day file (truncated JSON, not a list of messages, a ZIP member that does not unpack), or
one holding messages that are not as Slack writes them (a value of another type where Slack writes a
string, a timestamp, an object or a list of objects: `_unlike_slack`; those messages are left out,
the rest of the day read), is a
failed skip naming the file inside the export: the rest is indexed, the run is `partial`, the
conversation's documents indexed before are kept (a folder skip: which threads the day held is
unknown), its listing for deletions is incomplete, and the export is read again on every run until it
is replaced. An export that cannot be read as a whole (not a ZIP, cut short by a half-finished copy,
a damaged `users.json` or conversation listing) fails the run with a `ConfigError` naming the source
and its path.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field

from inlet.errors import ConfigError, IncompleteListingError

from .base import ConfigPath, Connector, ServiceUrl, StaticACLConfig
from .extract import kind_of
from .kit.scope import check_scope, warn
from .model import ACL, Checkpoint, Item, Skipped
from .slack_render import NOISE, ChannelInfo, Directory, empty_huddle, files_of, thread_doc

log = logging.getLogger(__name__)

_TEAM_URL = re.compile(r"https://([a-z0-9-]+)\.slack\.com/")
# Slack's own hosts an export names (file downloads, webhooks, the API, the web app): no workspace's
_NOT_WORKSPACES = frozenset({"files", "files-edge", "slack-files", "hooks", "api", "app", "status", "www", "edgeapi"})
_NO_TEAM_URL = "https://slack.com/"
_LABEL = re.compile(r"\|([^>|]+)>")
# what reading one member of a damaged export raises: bad JSON or UTF-8 (ValueError), a bad CRC or
# a truncated deflate stream (BadZipFile, zlib.error, EOFError), an unreadable disk block (OSError)
_DAMAGED = (ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError)


class SlackExportConfig(StaticACLConfig):
    path: ConfigPath = Field(description="the export ZIP")
    channels: list[str] = Field(default_factory=list, description="channel name globs (default: all)")
    team_url: ServiceUrl | None = Field(None, description="e.g. https://acme.slack.com/ (default: found in the export)")
    private_members: bool = Field(True, description="private channels and DMs: ACL = their members' emails")
    include_dms: bool = Field(True, description="index DMs and group DMs in the export")


class SlackExportConnector(Connector[SlackExportConfig]):
    type = "slack_export"
    # an unchanged export is not read again (nor its ACL applied), and a changed one yields no deletions
    scope_keys = frozenset({"path", "channels", "include_dms", "private_members"}) | SlackExportConfig.ACL_KEYS
    Config = SlackExportConfig

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        digest = self._digest()
        if checkpoint and checkpoint.get("digest") == digest and checkpoint.get("complete"):
            return  # the export has not changed since the last complete pass
        done = set(checkpoint.get("done", [])) if checkpoint and checkpoint.get("digest") == digest else set()
        damaged = False
        with self._open() as zf:
            export = self._export(zf)
            for chan, folder in export.conversations():
                if chan.id in done:
                    continue
                for doc in export.threads(chan, folder):
                    for name in export.previews.pop(doc.native_id, []):
                        yield Skipped(
                            id=self.doc_id(f"{doc.native_id}#{name}"),
                            reason=f"the export holds only the first lines of {name} (Slack's preview): the rest "
                            "of the file is not read",
                            failed=False,
                            title=name,
                        )
                    if since is None or doc.updated_at >= since:
                        yield self.document(
                            doc.native_id,
                            title=doc.title,
                            text=doc.text,
                            url=doc.url,
                            author=doc.author,
                            created_at=doc.created_at,
                            updated_at=doc.updated_at,
                            metadata=doc.metadata,
                            acl=chan.acl,
                            plain_text=True,
                        )
                for day, reason in export.damaged:
                    damaged = True
                    yield Skipped(
                        id=self.doc_id(f"{chan.id}:"),
                        reason=f"{day} in the export {reason}; the rest of {chan.name} is "
                        "indexed and what was indexed of it before is kept",
                        title=f"{self.config.path.name}: {day}",
                        folder=True,
                    )
                export.damaged.clear()
                done.add(chan.id)
                yield Checkpoint(state={"digest": digest, "done": sorted(done), "complete": False})
            yield from warn(self, export.scope_skips(self))
        # a damaged day file is read (and reported) again by every run, until the export is replaced
        yield Checkpoint(state={"digest": digest, "done": [], "complete": not damaged})

    def live_ids(self) -> Iterable[str]:
        with self._open() as zf:
            export = self._export(zf)
            for chan, folder in export.conversations():
                for doc in export.threads(chan, folder):
                    yield self.doc_id(doc.native_id)
                if export.damaged:  # the threads only it held would be taken for deleted
                    day, reason = export.damaged[0]
                    raise IncompleteListingError(
                        f"source {self.name!r}: {day} in the export {self.config.path} {reason}, "
                        "so no deletion is decided"
                    )
            export.scope_skips(self)  # a listing of a typo's nothing must not prune the source empty

    def _open(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.config.path)
        except zipfile.BadZipFile as exc:
            raise ConfigError(
                f"source {self.name!r}: the export {self.config.path} is not a readable ZIP ({exc}): "
                "a copy still in progress or cut short? Replace it with the complete export"
            ) from None
        except OSError as exc:
            raise ConfigError(f"source {self.name!r}: cannot read export {self.config.path}: {exc}") from exc

    def _export(self, zf: zipfile.ZipFile) -> _Export:
        """The export's directory; a damaged listing (`users.json`, `channels.json`...) is the
        whole export's failure, naming the file."""
        try:
            return _Export(zf, self.config)
        except _ExportDamaged as exc:
            raise ConfigError(f"source {self.name!r}: the export {self.config.path}: {exc}") from None

    def _digest(self) -> str:
        try:
            with open(self.config.path, "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            raise ConfigError(f"source {self.name!r}: cannot read export {self.config.path}: {exc}") from exc


class _ExportDamaged(Exception):
    """A file of the export every conversation needs cannot be read."""


class _Export:
    def __init__(self, zf: zipfile.ZipFile, config: SlackExportConfig) -> None:
        self.zf = zf
        self.config = config
        self.files = set(zf.namelist())
        self.names: list[str] = []  # the conversations' names, as `conversations` met them
        self.matched: set[str] = set()  # the `channels` globs that matched one
        self.directory = Directory()
        # day files `threads` could not read, or read leaving messages out: (name, what is wrong with it)
        self.damaged: list[tuple[str, str]] = []
        self.previews: dict[str, list[str]] = {}  # thread -> files the export holds a cut preview of
        for user in self._json("users.json"):
            self.directory.add_user(user)
        self.team_url = config.team_url or self._find_team_url()
        if self.team_url == _NO_TEAM_URL:
            log.warning(
                "source %r: the export names no workspace URL: links are %sarchives/...; set team_url "
                "(https://<workspace>.slack.com/) for links that open",
                config.name,
                _NO_TEAM_URL,
            )

    def _json(self, name: str) -> list[dict[str, Any]]:
        """A listing of the export (users, conversations); `_ExportDamaged` naming it if unreadable."""
        if name not in self.files:
            return []
        try:
            return _objects(self.zf, name)
        except _DAMAGED as exc:
            raise _ExportDamaged(f"{name} cannot be read ({_why(exc)})") from None

    def _find_team_url(self) -> str:
        """The workspace's URL (`https://acme.slack.com/`): the first in the export's JSON files
        that is a workspace's, not one of Slack's own hosts (a shared file's `url_private` is on
        files.slack.com, before its `permalink` on the workspace's)."""
        for name in sorted(self.files):
            if name.endswith(".json"):
                text = self.zf.read(name).decode("utf-8", "replace").replace("\\/", "/")
                for found in _TEAM_URL.finditer(text):
                    if found[1] not in _NOT_WORKSPACES:
                        return found[0]
        return _NO_TEAM_URL

    def conversations(self) -> Iterator[tuple[ChannelInfo, str]]:
        kinds = [("channels.json", "public_channel"), ("groups.json", "private_channel")]
        if self.config.include_dms:
            kinds += [("mpims.json", "mpim"), ("dms.json", "im")]
        for listing, kind in kinds:
            for c in self._json(listing):
                self.directory.channels[c["id"]] = c.get("name") or c["id"]
                if kind != "public_channel":  # named only to its members (`Directory.channel`)
                    self.directory.private[c["id"]] = self._acl(c, kind)
        for listing, kind in kinds:
            for c in sorted(self._json(listing), key=lambda c: c["id"]):
                name = c.get("name") or self._dm_name(c)
                self.names.append(name)
                hits = [g for g in self.config.channels if fnmatch.fnmatchcase(name.lower(), g.lstrip("#").lower())]
                self.matched.update(hits)
                if self.config.channels and not hits:
                    continue
                yield ChannelInfo(c["id"], name, kind, self._acl(c, kind)), c.get("name") or c["id"]

    def scope_skips(self, connector: Connector) -> list[Skipped]:
        """After `conversations`: a skip per `channels` glob that matched no conversation of the
        export (`NothingInScopeError` when none matched: a typo must not empty the source)."""
        return check_scope(connector, "channels", self.config.channels, self.matched, self.names, "conversation")

    def _dm_name(self, c: dict[str, Any]) -> str:
        return "@" + ", ".join(self.directory.person(u).name for u in c.get("members", []))

    def _acl(self, c: dict[str, Any], kind: str) -> ACL:
        if kind == "public_channel" or not self.config.private_members:
            return self.config.acl()
        emails = [self.directory.person(u).email for u in c.get("members", [])]
        return ACL(users=[e for e in emails if e])

    def threads(self, chan: ChannelInfo, folder: str) -> Iterator[Any]:
        by_thread: dict[str, list[dict[str, Any]]] = defaultdict(list)
        days = sorted(n for n in self.files if PurePosixPath(n).parent.as_posix() == folder and n.endswith(".json"))
        for day in days:
            try:
                day_messages = _objects(self.zf, day)
            except _DAMAGED as exc:
                self.damaged.append((day, f"cannot be read ({_why(exc)})"))
                continue
            left_out: list[str] = []  # why each message not as Slack writes it is left out
            for msg in day_messages:
                if (why := _unlike_slack(msg)) is not None:
                    left_out.append(why)
                    continue
                self._learn_writer(msg)
                if msg.get("subtype") == "bot_add" and msg.get("bot_id"):  # names the integration
                    label = _LABEL.search(msg.get("text", ""))
                    self.directory.bots.setdefault(msg["bot_id"], label[1] if label else msg["bot_id"])
                if msg.get("subtype") in NOISE or "ts" not in msg:
                    continue
                by_thread[msg.get("thread_ts") or msg["ts"]].append(msg)
            if left_out:
                self.damaged.append((day, _left_out(left_out)))
        for _, messages in sorted(by_thread.items(), key=lambda kv: float(kv[0])):
            messages.sort(key=lambda m: float(m["ts"]))
            if len(messages) == 1 and empty_huddle(messages[0]):  # a huddle nobody wrote in: no content
                continue
            shared = [
                f
                for m in messages
                for f in files_of(m)
                if f.get("preview") and f.get("id") and kind_of(f.get("name", ""), f.get("mimetype"))
            ]
            texts = {f["id"]: _preview(f) for f in shared}
            doc = thread_doc(chan, messages, self.directory, self.team_url, texts)
            cut = [f.get("title") or f.get("name") or f["id"] for f in shared if f.get("preview_is_truncated")]
            if cut:
                self.previews[doc.native_id] = cut
            yield doc

    def _learn_writer(self, msg: dict[str, Any]) -> None:
        """A writer `users.json` does not list (a Slack Connect partner, a member removed before the
        export) named by the profile their message carries (`user_profile`), as the client names
        them, in their lines and in the mentions of them."""
        uid, profile = msg.get("user"), msg.get("user_profile")
        if not uid or not isinstance(profile, dict):
            return
        known = self.directory.people.get(uid)
        if known is None or known.name == uid:
            user = {"id": uid, "name": profile.get("name"), "profile": profile}
            self.directory.add_user(user)


def _preview(f: dict[str, Any]) -> str:
    """A shared file's text as the export holds it: Slack's preview of its first lines, said so
    when cut (`preview_is_truncated`)."""
    if f.get("preview_is_truncated"):
        return f"(preview: the first lines only)\n{f['preview']}"
    return str(f["preview"])


def _objects(zf: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    """The JSON list of objects `name` holds; ValueError when it holds anything else."""
    value = json.loads(zf.read(name))
    if not isinstance(value, list) or not all(isinstance(each, dict) for each in value):
        kinds = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean"}
        held = "a list of other values" if isinstance(value, list) else f"a JSON {kinds.get(type(value), 'null')}"
        raise ValueError(f"it holds {held} where a list of objects belongs")
    return value


_TS = re.compile(r"\d{1,10}(?:\.\d{1,6})?")  # a Slack timestamp: seconds (before 2286), microseconds
# What Slack writes in the fields a message is read by (a value absent or null is always taken):
# "ts" a timestamp, `str` a string, a dict an object of such fields, a one-element list a list of them.
_FILE = {"id": str, "name": str, "title": str, "mimetype": str}
_MESSAGE: dict[str, Any] = {
    "ts": "ts",
    "thread_ts": "ts",
    "text": str,
    "user": str,
    "username": str,
    "bot_id": str,
    "subtype": str,
    "edited": {"ts": "ts", "user": str},
    "bot_profile": {"name": str},
    "comment": {"user": str},
    "user_profile": {"name": str, "real_name": str, "display_name": str, "email": str},
    "file": _FILE,
    "files": [_FILE],
    "attachments": [{"pretext": str, "title": str, "text": str, "fallback": str, "fields": [{}]}],
}
_KINDS = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def _unlike_slack(msg: dict[str, Any]) -> str | None:
    """Why `msg`, a message of a day file, is not one as Slack writes it (`_MESSAGE`), naming its
    ts and the field (`ts 1704300000.000300: its attachments[0] is a string ("x"), not an object`);
    None when it is. A message without a ts is taken (and left out as no thread's) as before."""
    if "ts" in msg and msg["ts"] is None:
        return "its ts is null, not a Slack timestamp"
    why = _unlike(msg, _MESSAGE, "")
    if why is None:
        return None
    ts = msg.get("ts")
    return f"ts {ts}: {why}" if isinstance(ts, str) and _TS.fullmatch(ts) else why


def _unlike(value: Any, spec: Any, where: str) -> str | None:
    """Where and how `value` (found at `where`) is not what `spec` says Slack writes; None if it is."""
    if value is None:
        return None
    if spec == "ts":
        return (
            None
            if isinstance(value, str) and _TS.fullmatch(value)
            else f"its {where} is {_shown(value)}, not a Slack timestamp"
        )
    if spec is str:
        return None if isinstance(value, str) else f"its {where} is {_shown(value)}, not a string"
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"its {where} is {_shown(value)}, not a list"
        return next((why for n, v in enumerate(value) if (why := _unlike(v, spec[0], f"{where}[{n}]"))), None)
    if not isinstance(value, dict):
        return f"its {where or 'message'} is {_shown(value)}, not an object"
    fields = ((key, f"{where}.{key}" if where else key) for key in spec)
    return next((why for key, at in fields if (why := _unlike(value.get(key), spec[key], at))), None)


def _shown(value: Any) -> str:
    """A JSON value as a reason shows it: its kind and (the start of) its text."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{_KINDS.get(type(value), 'a value')} ({text if len(text) <= 40 else text[:39] + '…'})"


def _left_out(whys: list[str]) -> str:
    """What a day file holding messages not as Slack writes them (`whys`) is said to hold."""
    if len(whys) == 1:
        return f"holds a message not as Slack writes one, left out ({whys[0]})"
    return f"holds {len(whys)} messages not as Slack writes them, left out (the first: {whys[0]})"


def _why(exc: BaseException) -> str:
    """What is wrong with a member, for a skip's reason."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; truncated?"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc) or type(exc).__name__
