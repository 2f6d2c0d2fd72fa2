"""Slack messages to readable thread documents; shared by the `slack` and `slack_export` connectors.

Slack text is "mrkdwn" with angle-bracket entities (`<@U123>`, `<#C123|name>`, `<https://x|label>`,
`<!here>`), HTML-escaped `& < >`, emphasis marks (`*bold*`, `_italic_`, `~strike~`) and `:emoji:`
short codes; an app's message is its Block Kit `blocks`, its `text` only the notification's
fallback. An index is read by people and embedding models, so everything is rendered as a person
would read it in the Slack client: names, labelled links, emoji, no emphasis marks, the blocks.

A thread names its people as the client shows them (display name, else full name, else handle):
in its text, `author` and metadata `participants`, one entry per writer (a member by user id, an
app by its own identity: `writer`), so a shown name two writers share is listed for each. The
members the directory describes are also named by their profile's full name and email
(`participant_full_names`, `participant_emails`, each
entry the same member as the `participants` entry at its position, "" where the directory has
none), in metadata only, so a question naming someone by either ("Hermione Granger", doubledeez@example.com)
finds the threads that show her as "doubledeez" (`Document.people`). Both come from the same
`users.list` / `users.info` answers (an export's `users.json`) as the names: no call of their own.

A channel mention is named only as every reader of the document may see it (`Directory.channel`):
a private channel, DM or group DM in its own threads or where all the thread's readers are its
members, else "#private-channel", as the client shows it to a non-member; a public one the run
lists always. A channel not known to be public (a private one the bot is no member of, an export
without it) is taken for private, whatever name its mention carries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .model import ACL, normal_user

# Subtypes that carry no content worth a document (Slack renders them as grey system lines).
NOISE = frozenset(
    {
        "channel_join",
        "channel_leave",
        "group_join",
        "group_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "group_topic",
        "group_purpose",
        "group_name",
        "bot_add",
        "bot_remove",
        "pinned_item",
        "unpinned_item",
        "reminder_add",
        "channel_archive",
        "channel_unarchive",
        "group_archive",
        "group_unarchive",
        "channel_convert_to_private",  # the visibility change itself: the channel's ACL says it
        "channel_convert_to_public",
    }
)

HUDDLE = "huddle_thread"  # a huddle's notice in its channel: its chat is the thread under it (`empty_huddle`)

_ENTITY = re.compile(r"<([^<>]+)>")
_EMOJI = re.compile(r":([a-z0-9_+\-']+):(?::skin-tone-\d:)?")
_EMOJIS = {
    "+1": "👍",
    "thumbsup": "👍",
    "-1": "👎",
    "thumbsdown": "👎",
    "smile": "😄",
    "slightly_smiling_face": "🙂",
    "grinning": "😀",
    "joy": "😂",
    "laughing": "😆",
    "sweat_smile": "😅",
    "wink": "😉",
    "heart": "❤️",
    "tada": "🎉",
    "eyes": "👀",
    "fire": "🔥",
    "rocket": "🚀",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "warning": "⚠️",
    "rotating_light": "🚨",
    "pray": "🙏",
    "clap": "👏",
    "raised_hands": "🙌",
    "ok_hand": "👌",
    "wave": "👋",
    "thinking_face": "🤔",
    "sob": "😭",
    "100": "💯",
    "bug": "🐛",
    "memo": "📝",
    "point_right": "👉",
    "construction": "🚧",
    "sparkles": "✨",
    "star": "⭐",
    "zap": "⚡",
    "bulb": "💡",
    "muscle": "💪",
    "party_popper": "🎉",
    "calendar": "📅",
    "lock": "🔒",
    "link": "🔗",
    "hourglass": "⌛",
    "coffee": "☕",
    "see_no_evil": "🙈",
    "facepalm": "🤦",
}


PRIVATE_CHANNEL = "private-channel"  # a private channel's mention where a reader is not its member


@dataclass(frozen=True)
class Person:
    id: str
    name: str  # what the Slack client shows: display name, else real name, else handle
    email: str = ""
    is_bot: bool = False
    deleted: bool = False  # deactivated: no longer reads the workspace
    full_name: str = ""  # the profile's real name ("Hermione Granger"), also when the client shows another


@dataclass
class Directory:
    """Who and what ids stand for; `lookup` fetches a user missing from the list (users.info)."""

    people: dict[str, Person] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # id -> name
    bots: dict[str, str] = field(default_factory=dict)  # bot id -> app name (exports)
    lookup: Callable[[str], Person | None] | None = None
    # Private channels, DMs and group DMs by id -> their readers (None: not known to this run).
    private: dict[str, ACL | None] = field(default_factory=dict)
    # The document being rendered: its channel and readers (`seen_from`); None names no private channel.
    here: ChannelInfo | None = None

    def seen_from(self, channel: ChannelInfo) -> Directory:
        """This directory as `channel`'s documents show it (the same people and names, shared)."""
        return replace(self, here=channel)

    def channel(self, cid: str, label: str = "") -> str:
        """A channel mention's name as every reader of the document may see it: a public channel
        the run lists always; a private channel (DM, group DM) only in its own documents or where
        all their readers are its members; a channel not known to be public (one the bot may not
        list, one an export does not hold), whatever name its mention carries, only in its own
        documents; else "private-channel", as the Slack client shows it to a non-member."""
        if (cid in self.channels and cid not in self.private) or self._all_members(cid):
            return label or self.channels.get(cid, cid)
        return PRIVATE_CHANNEL

    def _all_members(self, cid: str) -> bool:
        here, members = self.here, self.private.get(cid)
        if here is None:
            return False
        if here.id == cid:
            return True
        readers = here.acl
        return (
            members is not None
            and not readers.public
            and not readers.domains
            and set(readers.users) <= set(members.users)
        )

    def add_user(self, user: Mapping[str, Any]) -> Person:
        profile = user.get("profile") or {}
        full_name = (profile.get("real_name") or user.get("real_name") or "").strip()
        name = profile.get("display_name") or full_name or user.get("name") or user["id"]
        person = Person(
            user["id"],
            name,
            normal_user(profile.get("email") or ""),
            bool(user.get("is_bot")),
            bool(user.get("deleted")),
            full_name,
        )
        self.people[person.id] = person
        return person

    def person(self, uid: str) -> Person:
        if uid not in self.people:
            found = self.lookup(uid) if self.lookup else None
            self.people[uid] = found or Person(uid, uid)
        return self.people[uid]


def render(text: str, directory: Directory) -> str:
    """Slack mrkdwn as a person reads it: names for ids, labelled links, emoji characters."""

    def entity(match: re.Match[str]) -> str:
        inner = match[1]
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or directory.person(target[1:]).name)
        if target.startswith("#"):
            return "#" + directory.channel(target[1:], label)
        if target.startswith("!"):
            return _special(target[1:], label)
        if target.startswith("mailto:"):
            return label or target[7:]
        if label and label != target:
            return f"{label} ({target})"
        return target

    def emoji(plain: str) -> str:  # between entities only: a link's `/:fire:/` is part of its address
        return plain_marks(_EMOJI.sub(lambda m: _EMOJIS.get(m[1], m[0]), plain))

    parts, end = [], 0
    for match in _ENTITY.finditer(text):
        parts += [emoji(text[end : match.start()]), entity(match)]
        end = match.end()
    text = "".join(parts) + emoji(text[end:])
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# mrkdwn emphasis (*bold*, _italic_, ~strike~) as Slack reads it: a mark before a word's first
# character and after its last, neither inside a word (`snake_case_name`, `2*3*4`), on one line;
# and code (`...`), in which Slack reads no marks
_EMPHASIS = re.compile(r"(?<![\w`])([*_~])(?![\s*_~])([^\n]*?[^\s*_~])\1(?!\w)")
_CODE = re.compile(r"(`+)[^`\n]+?\1")


def plain_marks(text: str) -> str:
    """mrkdwn text without its emphasis marks, as the client shows it: `*wagtail*` is "wagtail"
    (in bold there); what is inside code spans stays as written."""
    if not any(mark in text for mark in "*_~"):
        return text
    out, end = [], 0
    for code in _CODE.finditer(text):
        out += [_unmarked(text[end : code.start()]), code[0]]
        end = code.end()
    return "".join(out) + _unmarked(text[end:])


def _unmarked(text: str) -> str:
    for _ in range(3):  # nested: *_bold italic_*
        text, found = _EMPHASIS.subn(r"\2", text)
        if not found:
            break
    return text


def _special(command: str, label: str) -> str:
    if label:  # <!subteam^S123|@oncall>, <!date^1392734382^{date}|Feb 18, 2014>
        return label
    name, _, rest = command.partition("^")
    if name == "subteam":  # a user group without its handle: its id is what there is
        return "@" + (rest or "group")
    return "@" + name if name in ("here", "channel", "everyone") else name


def message_body(msg: Mapping[str, Any], directory: Directory) -> str:
    """The text of one message as the client shows it: its Block Kit blocks when they say more than
    its `text` (an app's `text` is only the notification's fallback: `with_blocks`), and its
    attachments (bot posts: their fields, or their own blocks, else their fallback)."""
    if msg.get("subtype") == "tombstone":
        return "(message deleted)"
    if msg.get("subtype") == HUDDLE and _wordless(msg):  # the huddle's chat is its thread's replies
        return "started a huddle"
    parts = [with_blocks(render(msg.get("text") or "", directory), msg.get("blocks"), directory)]
    for att in msg.get("attachments") or []:
        bits = [att.get(k) for k in ("pretext", "title", "text")]
        bits += [f"{f.get('title', '')}: {f.get('value', '')}" for f in att.get("fields") or []]
        shown = [render(b, directory) for b in bits if b]
        if att.get("blocks"):
            shown = [with_blocks("\n".join(shown), att["blocks"], directory)]
        shown = [b for b in shown if b] or [render(att.get("fallback") or "", directory)]
        parts += [b for b in shown if b]
    return "\n".join(p for p in parts if p).strip()


def with_blocks(text: str, blocks: Any, directory: Directory) -> str:
    """A message's rendered `text` and its blocks (`blocks_text`): the blocks when `text` is empty
    or they hold all it says (a person's message: its `rich_text` block is its text), the text
    then the blocks when the blocks say more (an app's post: `text` is the notification's
    fallback, "New incident opened", and the blocks the message people read), else the text."""
    shown = blocks_text(blocks, directory) if isinstance(blocks, list) else ""
    if not shown or shown == text:
        return text
    if not text or _words(text) <= _words(shown):
        return shown
    return text if _words(shown) <= _words(text) else f"{text}\n{shown}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def blocks_text(blocks: list[Any], directory: Directory) -> str:
    """Block Kit blocks as the client shows them, a line per block: a header, a section's text and
    fields, a context's texts, rich text (its runs joined as written: a word half in bold is one
    word; mentions, channels and links as `render` shows them), lists and quotes; buttons, images
    and dividers hold no text of the message."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("header", "section"):
            lines += [_object_text(block.get("text"), directory)]
            lines += [_object_text(f, directory) for f in block.get("fields") or []]
        elif kind == "context":
            lines.append(" ".join(t for t in (_object_text(e, directory) for e in block.get("elements") or []) if t))
        elif kind == "rich_text":
            lines += [_rich_text(e, directory) for e in block.get("elements") or []]
    return "\n".join(line for line in lines if line).strip()


def _object_text(obj: Any, directory: Directory) -> str:
    """A Block Kit text object: mrkdwn rendered (`render`), plain text as it is."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return ""
    return render(obj["text"], directory) if obj.get("type") == "mrkdwn" else obj["text"]


def _rich_text(element: Any, directory: Directory) -> str:
    """A rich_text block's element: a section's runs joined as written, a list's items a line each,
    a quote as `> ` lines, preformatted text as it is."""
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind == "rich_text_list":
        items = [_rich_text(item, directory) for item in element.get("elements") or []]
        ordered = element.get("style") == "ordered"
        return "\n".join(f"{n}. {item}" if ordered else f"- {item}" for n, item in enumerate(items, 1) if item)
    text = "".join(_inline(e, directory) for e in element.get("elements") or [] if isinstance(e, dict))
    if kind == "rich_text_quote":
        return "\n".join(f"> {line}" for line in text.split("\n"))
    return text


def _inline(element: Mapping[str, Any], directory: Directory) -> str:
    """One run of rich text as `render` shows its mrkdwn form (`<@U1>`, `<#C1>`, `<url|label>`)."""
    kind = element.get("type")
    if kind == "text":
        return str(element.get("text") or "")
    if kind == "user":
        return "@" + directory.person(str(element.get("user_id") or "")).name
    if kind == "channel":
        cid = str(element.get("channel_id") or "")
        return "#" + directory.channel(cid)
    if kind == "link":
        url, label = str(element.get("url") or ""), str(element.get("text") or "")
        return f"{label} ({url})" if label and label != url else url
    if kind == "emoji":
        name = str(element.get("name") or "")
        return _EMOJIS.get(name) or str(element.get("unicode") and _codepoints(element["unicode"]) or f":{name}:")
    if kind == "broadcast":
        return "@" + str(element.get("range") or "here")
    if kind == "usergroup":
        return "@" + str(element.get("usergroup_id") or "group")
    return str(element.get("text") or "")


def _codepoints(hex_points: str) -> str:
    try:
        return "".join(chr(int(point, 16)) for point in hex_points.split("-"))
    except ValueError:
        return ""


def member(msg: Mapping[str, Any], directory: Directory) -> Person | None:
    """The workspace member who wrote `msg` (None: a deleted message, or a bot's or an app's post
    under a name of its own)."""
    if msg.get("subtype") == "tombstone":
        return None
    user = msg.get("user") or (msg.get("comment") or {}).get("user")
    return directory.person(user) if user and not msg.get("username") else None


def author(msg: Mapping[str, Any], directory: Directory) -> str:
    """The name a message's line shows: what the Slack client shows for its writer."""
    if msg.get("subtype") == "tombstone":
        return "(deleted)"
    person = member(msg, directory)
    if person is not None:
        return person.name
    profile = msg.get("bot_profile") or {}
    bot = msg.get("bot_id") or ""
    return msg.get("username") or profile.get("name") or directory.bots.get(bot) or bot or msg.get("user") or "unknown"


def writer(msg: Mapping[str, Any], directory: Directory) -> str:
    """Who wrote a message, one key per person: a member by their user id (shown names are not
    unique: two members may both show as "sam"), a bot's or app's post by its own bot id and the
    name it posts under (an app posting as "alice" is not the member alice)."""
    person = member(msg, directory)
    if person is not None:
        return f"user:{person.id}"
    return f"app:{msg.get('bot_id') or ''}:{author(msg, directory)}"


def ts_time(ts: str) -> datetime:
    """A Slack ts ("1459200000.000100") as an exact UTC datetime (no float rounding)."""
    sec, _, frac = ts.partition(".")
    return datetime.fromtimestamp(int(sec), tz=timezone.utc) + timedelta(microseconds=int(frac[:6].ljust(6, "0")))


def is_external(f: Mapping[str, Any]) -> bool:
    """A file kept outside Slack (Google Drive, Dropbox...): `url_private` is that service's link."""
    return bool(f.get("is_external")) or f.get("mode") == "external"


def files_of(msg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Files shared in a message: `files` (current API) or `file` (older exports)."""
    files = list(msg.get("files") or [])
    if msg.get("file"):
        files.append(msg["file"])
    return files


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str  # "eng", or "@alice" for a DM
    kind: str  # public_channel, private_channel, mpim, im
    acl: ACL


@dataclass
class ThreadDoc:
    """Everything a connector needs to build the Document of one thread."""

    native_id: str
    title: str
    text: str
    url: str
    author: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]


def permalink(team_url: str, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
    """Slack's permalink shape, built without a chat.getPermalink call per message."""
    link = f"{team_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel_id}"
    return link


def thread_doc(
    channel: ChannelInfo,
    messages: Sequence[Mapping[str, Any]],
    directory: Directory,
    team_url: str,
    file_texts: Mapping[str, str] | None = None,
) -> ThreadDoc:
    """One document for a parent and its replies, in order: a line per message with author and time."""
    file_texts = file_texts or {}
    directory = directory.seen_from(channel)
    parent = messages[0]
    lines: list[str] = []
    writers: list[str] = []  # one key per person (`writer`), in the order they first wrote
    names: list[str] = []  # each writer's shown name: two people may share one ("sam")
    # The same people by the other names a question may give them, position by position ("" where
    # the directory has none, or for an app: its name is all there is of it).
    full_names: list[str] = []
    emails: list[str] = []
    updated = ts_time(parent["ts"])
    for i, msg in enumerate(messages):
        who = author(msg, directory)
        key = writer(msg, directory)
        if msg.get("subtype") != "tombstone" and key not in writers:
            writers.append(key)
            names.append(who)
            person = member(msg, directory)
            described = person if person is not None and not person.is_bot else None
            full_names.append(described.full_name if described else "")
            emails.append(described.email if described else "")
        when = ts_time(msg["ts"])
        edited = (msg.get("edited") or {}).get("ts")
        updated = max(updated, when, ts_time(edited) if edited else when)
        prefix = "" if i == 0 else "  ↳ "
        lines.append(f"{prefix}[{when:%Y-%m-%d %H:%M} UTC] {who}: {message_body(msg, directory)}")
        for f in files_of(msg):
            if f.get("mode") == "tombstone":  # deleted by its owner: neither its text nor its name stays
                continue
            name = f.get("title") or f.get("name") or f.get("id", "file")
            body = file_texts.get(f.get("id", ""))
            link = f.get("url_private") if is_external(f) else None
            label = f"[file: {name} ({link})]" if link else f"[file: {name}]"
            lines.append(f"{label}\n{body}" if body else label)
    first = message_body(parent, directory) or "(no text)"
    label = f"#{channel.name}" if channel.kind != "im" else f"DM with {channel.name.lstrip('@')}"
    return ThreadDoc(
        native_id=f"{channel.id}:{parent['ts']}",
        title=f"{label}: {_first_words(first)}",
        text="\n".join(lines),
        url=permalink(team_url, channel.id, parent["ts"]),
        author=author(parent, directory),
        created_at=ts_time(parent["ts"]),
        updated_at=updated,
        metadata={
            "channel": channel.name,
            "channel_id": channel.id,
            "channel_type": channel.kind,
            "thread_ts": parent["ts"],
            "participants": names,
            **({"participant_full_names": full_names} if any(full_names) else {}),
            **({"participant_emails": emails} if any(emails) else {}),
            "reply_count": len(messages) - 1,
        },
    )


def _first_words(text: str, most: int = 60) -> str:
    line = " ".join(text.split())
    if len(line) <= most:
        return line
    cut = line[:most].rsplit(" ", 1)[0]
    return (cut or line[:most]) + "…"


def is_parent(msg: Mapping[str, Any]) -> bool:
    """A message that starts a thread document (not a reply shown in the channel, not a system line,
    not a huddle's notice with nothing said: `empty_huddle`)."""
    thread = msg.get("thread_ts")
    return (not thread or thread == msg.get("ts")) and msg.get("subtype") not in NOISE and not empty_huddle(msg)


def empty_huddle(msg: Mapping[str, Any]) -> bool:
    """A huddle's notice (`huddle_thread`: Slack posts it, without text, when a huddle starts) that
    nobody replied to: no content. With replies (the huddle's chat) it starts a thread like any
    message, its line reading "started a huddle"."""
    replied = msg.get("reply_count") or msg.get("latest_reply")
    return msg.get("subtype") == HUDDLE and not replied and _wordless(msg)


def _wordless(msg: Mapping[str, Any]) -> bool:
    """No text, attachment or file of its own."""
    return not (msg.get("text") or "").strip() and not msg.get("attachments") and not files_of(msg)
