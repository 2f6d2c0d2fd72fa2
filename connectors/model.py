"""The document model every service meets at (docs/reference/api.md shows it as the API returns it).

Connectors build these, the sync engine indexes them, the server returns them. Nothing here knows
about any service. Every string an item carries (but a checkpoint's opaque state) is well-formed
Unicode: a lone UTF-16 surrogate, which JSON allows (`"\\ud83d"`, what a bot written in JavaScript
posts when it cuts a string between the two halves of an emoji) and no UTF-8 encoder, tokenizer or
database takes, is replaced by U+FFFD as the item is built (`well_formed`), whichever connector
built it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MetadataValue = Union[str, int, float, bool, list[str]]
REPLACEMENT = "\ufffd"  # what stands for a character that cannot be read (U+FFFD)
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a Python str, every one is lone: a pair decodes to one character


def well_formed(value: Any) -> Any:
    """`value` (a string, or a dict, list or tuple of them, nested) with every lone UTF-16
    surrogate replaced by U+FFFD (`REPLACEMENT`); anything else as it is."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [well_formed(v) for v in value]
    if isinstance(value, tuple):
        return tuple(well_formed(v) for v in value)
    return value


class _WellFormed(BaseModel):
    """An item whose strings are made `well_formed` as it is built (by keywords or `model_validate`)."""

    @model_validator(mode="before")
    @classmethod
    def _well_formed(cls, data: Any) -> Any:
        return well_formed(data) if isinstance(data, dict) else data


class ACL(_WellFormed):
    """Who may see a document. Empty `users` and `domains` with `public=False` means admins only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    public: bool = False
    users: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)

    @field_validator("users", "domains")
    @classmethod
    def _normalise(cls, values: list[str]) -> list[str]:
        # Emails and domains compare as `normal_user` folds them; sorted so equal ACLs hash equally.
        return sorted({normal_user(v) for v in values if v and v.strip()})

    def principals(self) -> list[str]:
        """Flat tokens stored with every chunk: `*`, `u:<email>`, `d:<domain>`."""
        tokens = ["*"] if self.public else []
        return tokens + [f"u:{u}" for u in self.users] + [f"d:{d}" for d in self.domains]


ASCII_SPACE = " \t\r\n"  # what a header, a form or a secret file adds around a value; no other white space


def normal_user(user: str) -> str:
    """A user (or a domain) as ACLs compare it: one person, one spelling. Whatever keys a user (the
    ACL tokens a connector writes and a caller is given, a rate-limit bucket, the audit reader) goes
    through this.

    Case folds only within a letter: ASCII letters to their lower case, and a non-ASCII character
    to its lower case only when that is one non-ASCII character whose upper case is it again (`Ü`
    to `ü`, a final `Σ` to `ς`). Any other character is kept as it is, so two different addresses
    never fold into one: `\u212aate@example.com` (KELVIN SIGN) stays itself, not kate@example.com, and
    neither the ANGSTROM SIGN nor a Turkish `İ` becomes another letter. What str.lower() gives is
    unchanged for every other address (all-ASCII ones above all): stored ACLs need no rewrite.
    Only ASCII spaces and line ends around it are dropped (`ASCII_SPACE`): an ideographic space or
    a separator control is part of another string, refused as an address, never `kate@example.com`."""
    user = user.strip(ASCII_SPACE)
    folded = user.lower()
    if len(folded) == len(user) and all(map(_same_letter, user, folded)):
        return folded
    return "".join(c.lower() if _same_letter(c, c.lower()) else c for c in user)


def _same_letter(char: str, lower: str) -> bool:
    """Whether `lower`, `char`'s lower case, is the same letter (see `normal_user`)."""
    if char == lower or char.isascii():
        return True
    return len(lower) == 1 and not lower.isascii() and lower.upper() == char


# One address: a local part, one "@", a host of non-empty labels; nothing that separates or wraps
# addresses (white space, commas, semicolons, angle brackets, quotes). Not stricter: internationalised
# addresses (RFC 6531) and single-label hosts name one user as well.
_PART = r"[^\s@,;:<>()\[\]\\\"]"
_LABEL = r"[^\s@,;:<>()\[\]\\\".]+"
EMAIL = re.compile(rf"{_PART}+@{_LABEL}(?:\.{_LABEL})*")


def well_formed_user(user: str, address: bool = False) -> bool:
    """The one rule for a user named from outside (an OAuth claim, or a user an on_behalf_of or
    admin key names): a value holding an `@` (or, with `address`, any value) must be one
    well-formed email address, since ACL domains are matched on what follows its `@`
    (`eve@evil.com@corp.example`, `eve@x, bob@corp.example`, `@corp.example` are not). A value
    without an `@` names a user with no domain (`u:` ACL entries only)."""
    if not address and "@" not in user:
        return True
    return EMAIL.fullmatch(user) is not None


def principals_for(user: str | None) -> list[str] | None:
    """The ACL tokens a user matches; `None` (no user) means an operator who sees everything."""
    if user is None:
        return None
    email = normal_user(user)
    tokens = ["*", f"u:{email}"]
    if "@" in email:
        tokens.append(f"d:{email.rsplit('@', 1)[1]}")
    return tokens


def utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC; everything is stored in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


# Metadata naming who took part (`Document.people`). `participant_full_names` and `participant_emails`
# name the `participants` again as a question may (a chat shows a handle: "doubledeez" is Hermione
# Granger, doubledeez@example.com), entry by entry: position i of each is one person ("" where that
# name is unknown), which is how the index knows the three are one (`Document.identities`).
ALSO_NAMED = ("participant_full_names", "participant_emails")
PEOPLE_KEYS = ("participants", "participant_full_names", "participant_emails", "sender", "owner")


def iso_time(value: datetime) -> str:
    """A time as inlet shows it (API, CLI, `interpreted`): UTC, `Z`, to the millisecond at most (a
    service's microseconds, like Slack's `...40.000100`, are noise to a reader)."""
    value = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds").replace("+00:00", "Z")


class Document(_WellFormed):
    """One retrievable unit: a Slack thread, a Drive file, an e-mail, a file on disk."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: str
    source_type: str
    title: str = ""
    text: str
    url: str = ""
    author: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    acl: ACL = Field(default_factory=ACL)
    # The connector made `text` plain itself (Slack's mrkdwn, a Teams message's HTML): an angle
    # bracket in it is what someone typed, so the index does not read it as HTML (index/clean.py).
    plain_text: bool = False

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value)

    def people(self) -> list[str]:
        """Who wrote it or took part, lower-cased, sorted: the author and the metadata's
        `participants` (with their `participant_full_names` and `participant_emails`, when a
        service shows people by another name), `sender` and `owner` (recipients are not listed: a
        mail to a whole list does not make every member a participant). What a question naming a
        person is matched to."""
        found = {self.author} if self.author else set()
        for key in PEOPLE_KEYS:
            value = self.metadata.get(key)
            if isinstance(value, str):
                found.add(value)
            elif isinstance(value, list):
                found.update(v for v in value if isinstance(v, str))
        return sorted({normal_user(p) for p in found if p and p.strip()})

    def identities(self) -> dict[str, str]:
        """Which of `people` are one person: for each participant named more than one way (the
        `participants` entry and the `participant_full_names` / `participant_emails` entries at
        the same position), each of those names -> the person's identifier, their address when
        the document has it, else the `participants` entry. A name two of its participants share
        (two members both shown as "sam") is linked to neither: the document does not say which
        one a question means (each one's full name and address still name them). A document whose
        lists are not of one length (unaligned, as written before they were kept aligned) links no
        one: which name is whose is then not known."""
        lists = {key: self.metadata.get(key) for key in ("participants", *ALSO_NAMED) if key in self.metadata}
        shown = lists.get("participants")
        if len(lists) < 2 or not isinstance(shown, list):
            return {}
        if any(not isinstance(v, list) or len(v) != len(shown) for v in lists.values()):
            return {}
        linked: dict[str, set[str]] = {}
        for i in range(len(shown)):
            names = [v[i] if isinstance(v[i], str) else "" for v in lists.values()]  # type: ignore[index]
            keys = [normal_user(n) for n in names if n.strip()]  # the participants entry, then the email last
            if len(set(keys)) > 1:
                address = normal_user(names[-1]) if "participant_emails" in lists and names[-1].strip() else ""
                for key in keys:
                    linked.setdefault(key, set()).add(address or keys[0])
        return {key: next(iter(ids)) for key, ids in linked.items() if len(ids) == 1}

    def content_hash(self) -> str:
        """Hash of what gets embedded: an unchanged hash means no re-embedding."""
        return _digest({"title": self.title, "text": self.text})

    def meta_hash(self) -> str:
        """Hash of everything else: a change here updates chunk metadata in place."""
        return _digest(
            {
                "url": self.url,
                "author": self.author,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "metadata": self.metadata,
                "acl": self.acl.model_dump(),
            }
        )


class Deletion(_WellFormed):
    """The document with this id is gone from the source."""

    model_config = ConfigDict(frozen=True)

    id: str


class Checkpoint(BaseModel):
    """Opaque, JSON-serialisable connector state; saved only once everything before it is indexed
    (a state that is not JSON fails the run as a connector bug, `not_json` saying where)."""

    state: dict[str, Any]


def not_json(value: Any, path: str = "state", *, exact: bool = True) -> str | None:
    """Where `value` (a checkpoint's state) is not JSON, and why (`state['seen'] is a set ({1, 2})`);
    None if it is. `exact`: also where it would not come back equal from a JSON round trip (a
    tuple, a key that is not a string), as the conformance suite requires; without it, only what
    cannot be written as JSON at all, as the engine requires."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str) and (exact or not (key is None or isinstance(key, (int, float, bool)))):
                return f"{path} has the key {key!r}, a {type(key).__name__} (JSON keys are strings)"
            if (found := not_json(inner, f"{path}[{key!r}]", exact=exact)) is not None:
                return found
        return None
    if isinstance(value, list) or (isinstance(value, tuple) and not exact):
        return next(
            (f for n, v in enumerate(value) if (f := not_json(v, f"{path}[{n}]", exact=exact)) is not None), None
        )
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    return f"{path} is a {type(value).__name__} ({value!r:.80})"


class Skipped(_WellFormed):
    """One item not indexed, with its reason: logged, counted, listed in `inlet status`, and the run
    goes on. `failed=True` (could not be read) makes the run `partial`; a skip by policy
    (`failed=False`: too large, a type not extracted, out of scope) leaves it `ok`. A failed skip
    keeps the document indexed before; with `folder=True` its id is a prefix (`source:folder/`) and
    every document whose id starts with it is kept (a folder the process may not list). A failed
    skip that carries `acl` (the permissions were read, the content was not) gives the kept version
    that ACL: a user removed from an item's sharing never keeps it through a failed read."""

    id: str
    reason: str
    failed: bool = True  # False: skipped by policy (an image, over the size cap), not an error
    title: str | None = None  # what an operator recognises it by (a file name); default: the id
    folder: bool = False  # the id is a container that could not be listed: documents under it are kept
    acl: ACL | None = None  # its current permissions, when the source could read them: a kept version takes them


class AclUpdate(_WellFormed):
    """A document still at the source whose permissions changed while its content did not (a
    shared drive's members changed): the index re-writes its ACL and keeps its text and vectors,
    and the document counts as seen. An id the index does not hold is ignored. For a connector that
    can read a document's permissions without its content: re-yielding the `Document` does the same,
    at the cost of reading the content again."""

    model_config = ConfigDict(frozen=True)

    id: str
    acl: ACL


class Progress(_WellFormed):
    """Optional: how far the pass is, in the connector's own unit (files, channels, messages).

    Yield `Progress(total=N, unit="files")` once N is known (a folder's file count, a listing) and
    `Progress(done=n)` as items are gone through; the engine shows a total and a time left from
    them (`inlet backfill`'s bar, `inlet status`). Connectors that yield none keep working."""

    done: int | None = None
    total: int | None = None
    unit: str | None = None


Item = Union[Document, Deletion, Checkpoint, Skipped, Progress, AclUpdate]
ITEMS = (Document, Deletion, Skipped, Checkpoint, Progress, AclUpdate)  # what `Connector.load` may yield


def not_an_item(item: object) -> str | None:
    """What `item`, yielded by a connector, is when it is not one of inlet's `ITEMS`, and the slip
    that usually makes it (`yield` for `yield from`, a method not called, a checkpoint's bare
    state); None for an item. The engine fails a run on one, the conformance suite a test."""
    if isinstance(item, ITEMS):
        return None
    if isinstance(item, Iterator):
        slip = "`yield` written for `yield from`?"
    elif callable(item):
        slip = "a method yielded without calling it (`state.checkpoint` for `state.checkpoint()`)?"
    elif isinstance(item, Mapping):
        slip = "a checkpoint's state yielded without `Checkpoint(state=...)`?"
    else:
        slip = "only inlet's items are applied"
    expected = ", ".join(t.__name__ for t in ITEMS)
    return f"{type(item).__name__} ({item!r:.80}), not an inlet item (expected {expected}): {slip}"


def _digest(payload: Any) -> str:
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(raw).hexdigest()
