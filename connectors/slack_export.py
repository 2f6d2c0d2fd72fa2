"""The `slack_export` connector: a workspace export ZIP, no token, same thread documents as `slack`.

An export holds `users.json`, `channels.json` (public), optionally `groups.json` (private),
`mpims.json` and `dms.json`, and one folder of day files per conversation. Private conversations
list their members' emails as the ACL (`private_members`); public ones take the static ACL keys.
The export has no file contents: a shared text file contributes its `preview`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field

from inlet.errors import ConfigError

from .base import ConfigPath, Connector, ServiceUrl, StaticACLConfig
from .extract import kind_of
from .kit.scope import check_scope, warn
from .model import ACL, Checkpoint, Item, Skipped
from .slack_render import NOISE, ChannelInfo, Directory, empty_huddle, files_of, thread_doc

_TEAM_URL = re.compile(r"https://([a-z0-9-]+)\.slack\.com/")
_LABEL = re.compile(r"\|([^>|]+)>")


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
        with zipfile.ZipFile(self.config.path) as zf:
            export = _Export(zf, self.config)
            for chan, folder in export.conversations():
                if chan.id in done:
                    continue
                for doc in export.threads(chan, folder):
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
                done.add(chan.id)
                yield Checkpoint(state={"digest": digest, "done": sorted(done), "complete": False})
            yield from warn(self, export.scope_skips(self))
        yield Checkpoint(state={"digest": digest, "done": [], "complete": True})

    def live_ids(self) -> Iterable[str]:
        with zipfile.ZipFile(self.config.path) as zf:
            export = _Export(zf, self.config)
            for chan, folder in export.conversations():
                for doc in export.threads(chan, folder):
                    yield self.doc_id(doc.native_id)
            export.scope_skips(self)  # a listing of a typo's nothing must not prune the source empty

    def _digest(self) -> str:
        try:
            with open(self.config.path, "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            raise ConfigError(f"source {self.name!r}: cannot read export {self.config.path}: {exc}") from exc


class _Export:
    def __init__(self, zf: zipfile.ZipFile, config: SlackExportConfig) -> None:
        self.zf = zf
        self.config = config
        self.files = set(zf.namelist())
        self.names: list[str] = []  # the conversations' names, as `conversations` met them
        self.matched: set[str] = set()  # the `channels` globs that matched one
        self.directory = Directory()
        for user in self._json("users.json"):
            self.directory.add_user(user)
        self.team_url = config.team_url or self._find_team_url()

    def _json(self, name: str) -> list[dict[str, Any]]:
        return json.loads(self.zf.read(name)) if name in self.files else []

    def _find_team_url(self) -> str:
        for name in sorted(self.files):
            if name.endswith(".json"):
                found = _TEAM_URL.search(self.zf.read(name).decode("utf-8", "replace").replace("\\/", "/"))
                if found:
                    return found[0]
        return "https://slack.com/"

    def conversations(self) -> Iterator[tuple[ChannelInfo, str]]:
        kinds = [("channels.json", "public_channel"), ("groups.json", "private_channel")]
        if self.config.include_dms:
            kinds += [("mpims.json", "mpim"), ("dms.json", "im")]
        for listing, _kind in kinds:
            for c in self._json(listing):
                self.directory.channels[c["id"]] = c.get("name") or c["id"]
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
            for msg in json.loads(self.zf.read(day)):
                if msg.get("subtype") == "bot_add" and msg.get("bot_id"):  # names the integration
                    label = _LABEL.search(msg.get("text", ""))
                    self.directory.bots.setdefault(msg["bot_id"], label[1] if label else msg["bot_id"])
                if msg.get("subtype") in NOISE or "ts" not in msg:
                    continue
                by_thread[msg.get("thread_ts") or msg["ts"]].append(msg)
        for _, messages in sorted(by_thread.items(), key=lambda kv: float(kv[0])):
            messages.sort(key=lambda m: float(m["ts"]))
            if len(messages) == 1 and empty_huddle(messages[0]):  # a huddle nobody wrote in: no content
                continue
            texts = {
                f["id"]: f["preview"]
                for m in messages
                for f in files_of(m)
                if f.get("preview") and f.get("id") and kind_of(f.get("name", ""), f.get("mimetype"))
            }
            yield thread_doc(chan, messages, self.directory, self.team_url, texts)
