"""The connector contract: a pydantic config model and one generator.

A connector reads one service and yields `Document`s, `Deletion`s, `Skipped` items and
`Checkpoint`s, and optionally `Progress` (a total in its own unit once known, and how many are
done) so the engine can show a total and a time left; a connector that yields none still works.
It never touches the index, the state database or global configuration: the engine passes its
config and the environment in, and decides what to do with what it yields.
Copy `connectors/files.py` to start a new one.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from types import UnionType
from urllib.parse import urlsplit
from typing import Annotated, Any, BinaryIO, ClassVar, Generic, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from inlet.errors import ConfigError
from inlet import logs
from inlet.logs import shown_url

from .events import EventSource
from .model import ACL, Document, Item

_NAME = re.compile(r"^[a-z0-9-]+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")  # what an `*_env` value is echoed as: anything else may be a secret


def unset_env(key: str, var: str | None, env: Mapping[str, str] | None = None) -> str:
    """Why config key `key` (e.g. `token_env`) gives no secret: the variable `var` it names is
    unset, or set but empty in `env` (what `export X=$(cat missing-file)` leaves), or, when `var`
    does not look like a variable's name (a secret pasted in its place), that the key must name
    one; such a value is never echoed."""
    if var and _ENV_NAME.match(var):
        state = "is set but empty" if env is not None and var in env else "is not set"
        return f"environment variable {var!r} (named by key {key!r}) {state}"
    example = key.removesuffix("_env").upper() or "MY_SECRET"
    return (
        f"key {key!r} must name an environment variable (such as {example}) that holds the secret, "
        "not hold the secret itself (its value is not shown)"
    )


MAX_DURATION = 36500 * 86400.0  # 100 years: no schedule or window is longer, and a date past it may not exist


def parse_duration(value: str) -> float:
    """'90s', '15m', '1h', '2d' -> seconds; ValueError for anything else, or for more than
    `MAX_DURATION` (a time that far ahead overflows a date: `every = "3000000d"` would stop the
    daemon), so every duration key is refused when the config is read."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like '30s', '15m', '1h' or '2d'")
    seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    if not seconds <= MAX_DURATION:
        raise ValueError(f"{value!r} is longer than '36500d' (100 years), the longest duration accepted")
    return seconds


def recent_window(value: str) -> float:
    """A `recent_first` value -> seconds: a duration like '7d', or '0' (also '0d', 'off') to turn it off."""
    if value.strip().lower() in ("0", "off"):
        return 0.0
    return parse_duration(value)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else Path(base) / value


def folder_problem(source: str, path: Path) -> str:
    """The message for a source whose `path` key does not name a folder (missing, or a file)."""
    what = "is a file, not a folder" if path.exists() else "does not exist (or cannot be read)"
    return f"source {source!r}: key 'path': {path} {what}"


def loop_free(path: Path) -> Path:
    """`path` resolved (absolute, its symbolic links followed); ValueError naming it when its links
    form a loop (`lp1` -> `lp2` -> `lp1`), which pathlib raises as a bare RuntimeError (Python 3.11)
    or an OSError (ELOOP). The one check of a configured or given path that inlet resolves."""
    try:
        return path.resolve()
    except RuntimeError:
        pass
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    raise ValueError(f"{path} is a loop of symbolic links (each one leads to another, none to a file or folder)")


def not_a_folder(path: Path) -> str | None:
    """Why no folder can be at `path`, or None: `path`, or the nearest of its parents that exists,
    is a file. For a folder inlet creates when missing (`[index] path`), checked with the config
    and again when it is created (storage/private.py)."""
    for at in (path, *path.parents):
        try:
            if not at.exists():
                continue
            if at.is_dir():
                return None
        except OSError:  # not readable: creating the folder says why
            return None
        return f"{path} is a file, not a folder" if at == path else f"{path} cannot be a folder: {at} is a file"
    return None


class _MustExist:
    """Marks a `ConfigPath`: `missing_paths` reports it when nothing is there."""


def _named(value: Any) -> Any:
    """An empty string is no path (a template's unset variable), not the configuration's folder,
    which `Path("")` would make it: that is `"."`, said on purpose."""
    if isinstance(value, str) and not value.strip():
        raise ValueError('is empty: name a path ("." for the configuration file\'s own folder)')
    return value


NamedPath = Annotated[Path, BeforeValidator(_named)]
"""A path in the config file that may not be empty."""

ConfigPath = Annotated[NamedPath, AfterValidator(_relative_to_config), _MustExist()]
"""A path in the config file that must exist (a folder, a CA bundle, a credentials file):
relative paths are taken from the config file's folder, and a missing one is a configuration
error naming the key, the source and the path, reported before any command runs."""


def certificates(value: Path) -> Path:
    """A CA bundle that exists must be a readable PEM file of certificates (a folder or an empty
    file would fail only at the first request, without naming the key)."""
    if not value.exists():
        return value  # reported by `missing_paths`, with the other missing paths
    try:
        text = value.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ValueError(f"{value} cannot be read ({exc.strerror or exc})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"{value} is not a PEM file of certificates ('-----BEGIN CERTIFICATE-----' blocks)")
    return value


CaBundle = Annotated[ConfigPath, AfterValidator(certificates)]
"""An extra trusted CA bundle: a `ConfigPath` that, when it exists, must hold PEM certificates."""


def loopback_host(hostname: str | None) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1)."""
    import ipaddress

    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname or "").is_loopback
    except ValueError:
        return False


def url_problem(
    value: str, *, https_only: bool = False, https_unless_loopback: bool = False, query_allowed: bool = False
) -> str | None:
    """Why `value` is not a URL inlet can call, or None: it must be an absolute http(s) URL with a
    host, without a query or fragment unless `query_allowed`; only https:// with `https_only`; plain
    http only on a loopback host with `https_unless_loopback` (keys and tokens never travel in clear).
    The one check of every URL-valued key: a source's service URLs (`ServiceUrl`), `authority_url`,
    `[server.oauth]`'s (`check_url`), so a malformed one is a configuration error naming the key
    before anything runs, not a library's error at the first request. The value is shown through
    `shown_url` (never a password or token written into it)."""
    shown = shown_url(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number, or out of range, raises here
    except ValueError as exc:
        return f"{shown!r} cannot be read as a URL ({exc})"
    if https_only and (parts.scheme != "https" or not parts.hostname):
        return f"{shown!r} must be an https:// URL with a host"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown!r} must be an absolute http(s) URL, with its scheme and host (such as https://host/path)"
    if not query_allowed and (parts.query or parts.fragment):
        return f"{shown!r} must not have a query (?...) or fragment (#...)"
    if https_unless_loopback and parts.scheme == "http" and not loopback_host(parts.hostname):
        return f"{shown!r} must be an https:// URL (plain http only on a loopback address)"
    return None


def _service_url(value: str) -> str:
    problem = url_problem(value.strip())
    if problem:
        raise ValueError(problem)
    return value.strip()


ServiceUrl = Annotated[str, AfterValidator(_service_url)]
"""A URL-valued source key (an API's base URL, a webhook's public address): an absolute http(s)
URL with a host and no query (`url_problem`), else a configuration error naming the key."""


def _must_exist(annotation: Any) -> bool:
    """True when `annotation` is, or holds (Optional, list), a `ConfigPath`."""
    if get_origin(annotation) is Annotated and any(isinstance(m, _MustExist) for m in annotation.__metadata__):
        return True
    return any(_must_exist(arg) for arg in get_args(annotation))


def missing_paths(config: BaseModel) -> list[tuple[str, Path]]:
    """(key, path) of every `ConfigPath` field of `config` whose path does not exist."""
    return missing_keys(type(config), dict(config), None)


def missing_keys(model: type[BaseModel], values: Mapping[str, Any], base_dir: Path | None) -> list[tuple[str, Path]]:
    """(key, path) of every `ConfigPath` key of `model` in `values` (a config's fields, or the table
    of a source whose validation failed) whose path does not exist; a relative path is taken from
    `base_dir`, as validation takes it. A value that is not a path is left to validation."""
    out = []
    for key, info in model.model_fields.items():
        if not _must_exist(info.annotation) and not any(isinstance(m, _MustExist) for m in info.metadata):
            continue
        value = values.get(key)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(item, (str, Path)) or not str(item).strip():  # none, or empty: validation says
                continue
            path = Path(item) if base_dir is None or Path(item).is_absolute() else base_dir / item
            if not path.exists():
                out.append((key, path))
    return out


def _valid_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_valid_duration)]
"""A duration key like '30s', '15m', '1h' or '2d' (checked when the config is read)."""

MIN_INTERVAL = 1.0
"""Seconds: the shortest `Interval` accepted."""


def _valid_interval(value: str) -> str:
    if parse_duration(value) < MIN_INTERVAL:
        raise ValueError(
            f"{value!r} is shorter than '1s', the shortest interval accepted "
            "(zero would repeat the work, and its calls to the service, without a pause)"
        )
    return value


Interval = Annotated[str, AfterValidator(_valid_interval)]
"""A duration key that sets how often something repeats or how long it lasts before it is done
again (`every`, `prune_every`, `reconcile_every`, a subscription's lifetime, `[daemon] lease`):
at least `MIN_INTERVAL`, so a typo ('0s' for '60s') cannot make a loop without pause. A duration
where zero means something (`[daemon] jitter`) is a plain `Duration`."""


def _valid_window(value: str) -> str:
    recent_window(value)
    return value


RecentWindow = Annotated[str, AfterValidator(_valid_window)]
"""A `recent_first` key: a duration like '7d', or '0' to turn the recent pass off."""


# Scalar key types, as a config error names them ("must be a number", "must be true or false").
_SCALARS: dict[Any, str] = {int: "a whole number", float: "a number", bool: "true or false"}


def _scalar(annotation: Any) -> Any:
    """The scalar type (int, float, bool) a key's annotation wants, also through `X | None` and
    `Annotated[X, ...]`; else None."""
    if get_origin(annotation) is Annotated:
        return _scalar(get_args(annotation)[0])
    if annotation in _SCALARS:
        return annotation
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return _scalar(args[0])
    return None


def _wrong_kind(annotation: Any, value: Any) -> str | None:
    """Why `value`, as TOML gave it, is not of the kind `annotation` wants, or None. TOML has
    typed values: a number or true/false written as a string ("50"), true/false where a number is
    wanted, a number where true/false is, is each a mistake to name, not a value to convert (pydantic
    would read `true` as 1, so `max_file_bytes = true` would skip every file). A whole number where
    any number is wanted (`5` for `5.0`) is a number. The values of a table (`dict[str, float]`) and
    the items of an array are checked alike."""
    wanted = _scalar(annotation)
    if wanted is None:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is dict and len(args) == 2 and isinstance(value, dict):
            for key, item in value.items():
                problem = _wrong_kind(args[1], item)
                if problem:
                    return f"{key!r}: {problem}"
        if origin is list and len(args) == 1 and isinstance(value, list):
            for number, item in enumerate(value, 1):
                problem = _wrong_kind(args[0], item)
                if problem:
                    return f"item {number}: {problem}"
        return None
    kind = _SCALARS[wanted]
    if isinstance(value, str):
        return f"must be {kind}, not the string {value!r}"
    if wanted is not bool and isinstance(value, bool):
        return f"must be {kind}, not {str(value).lower()}"
    if wanted is bool and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"must be {kind}, not the number {value!r}"
    return None


class TypedConfig(BaseModel):
    """A table of the config file: an unknown key is refused, and so is a value of the wrong kind
    that pydantic would convert (a number or true/false written as a string, true/false for a
    number, a number for true/false; `_wrong_kind`), in the sources' tables and `[index]`,
    `[server]`, `[daemon]` alike. A connector's sub-table (`[sources.retry]`) is one too: a plain
    `BaseModel` there is refused when the connector is loaded (`config_problem`)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _typed(cls, value: Any, info: ValidationInfo) -> Any:
        """TOML has typed values: one of the wrong kind is a mistake to name, not a value to convert."""
        field = cls.model_fields.get(info.field_name or "")
        problem = _wrong_kind(field.annotation, value) if field is not None else None
        if problem:
            raise ValueError(problem)
        return value


class SourceConfig(TypedConfig):
    """Keys every `[[sources]]` entry has; a connector's `Config` subclasses this."""

    name: str = Field(description="the source's name, unique, [a-z0-9-]+: in commands, filters and document ids")
    type: str
    schedule: str | None = Field(None, description="cron expression, e.g. '*/15 * * * *'")
    every: Interval | None = Field(None, description="interval, e.g. '15m' (used when no schedule); at least '1s'")
    prune_every: Interval = Field("24h", description="how often to look for deleted items")
    recent_first: RecentWindow | None = Field(
        None,
        description="a backfill indexes this recent window first, e.g. '7d'; '0' turns it off "
        "(default: [index] recent_first)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must match [a-z0-9-]+")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(value)  # ValueError names the bad field
        return value


def config_problem(config: Any) -> str | None:
    """Why `config`, a connector's `Config`, cannot read a `[[sources]]` table as inlet reads every
    table, or None: it must be a `SourceConfig` (the keys every source has: `name`, `type`, the
    schedule), and every sub-table among its keys a `TypedConfig` (a plain pydantic `BaseModel`
    would ignore an unknown key and read `true` as 1). Checked when a connector class is loaded, so
    a plug-in that breaks it is refused before any config is read, naming the class."""
    if not (isinstance(config, type) and issubclass(config, SourceConfig)):
        named = config.__qualname__ if isinstance(config, type) else repr(config)
        kind = "a plain pydantic BaseModel" if isinstance(config, type) and issubclass(config, BaseModel) else "not"
        return (
            f"its Config ({named}) is {kind} a SourceConfig: subclass inlet.connectors.SourceConfig "
            "(or FolderConfig, StaticACLConfig), which holds the keys every source has and refuses unknown keys"
        )
    return _plain_table(config, "", set())


def _plain_table(model: type[BaseModel], prefix: str, seen: set[type]) -> str | None:
    """The first key of `model` (a `TypedConfig`), its sub-tables' too, whose table is a plain
    pydantic `BaseModel`, as `config_problem` words it; None when there is none."""
    seen.add(model)
    for key, field in model.model_fields.items():
        for table in _models_in(field.annotation):
            if not issubclass(table, TypedConfig):
                return (
                    f"key '{prefix}{key}' of its Config ({model.__qualname__}) is a table read by "
                    f"{table.__qualname__}, a plain pydantic BaseModel: subclass inlet.connectors.TypedConfig "
                    "instead, so that an unknown key or a value of the wrong kind in it is refused, as in the "
                    "source's own keys"
                )
            if table not in seen and (problem := _plain_table(table, f"{prefix}{key}.", seen)):
                return problem
    return None


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models `annotation` holds (itself, or inside `X | None`, `list[X]`,
    `dict[str, X]`, `Annotated[X, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _public_and_listed(public: Any, users: Any, domains: Any) -> str | None:
    """The problem of `public = true` written together with `users` or `domains`, or None."""
    listed = [key for key, value in (("users", users), ("domains", domains)) if value]
    if public is not True or not listed:
        return None
    keys = " and ".join(map(repr, listed))
    return (
        f"key 'public': true (every item visible to everyone) cannot be set with {keys}: remove "
        f"'public = true' to show the items only to those listed (the next sync labels the items already "
        f"indexed again), or remove {keys}"
    )


def _one_more(exc: ValidationError, problem: str, data: Any) -> ValidationError:
    """`exc` with `problem` (a rule of several keys, so no key of its own) said after its errors,
    each kept as it was (type, key, message)."""
    lines: list[Any] = [
        {
            "type": PydanticCustomError(e["type"], "{message}", {"message": e["msg"]}),
            "loc": e["loc"],
            "input": e["input"],
        }
        for e in exc.errors()
    ]
    lines.append({"type": "value_error", "loc": (), "input": data, "ctx": {"error": ValueError(problem)}})
    return ValidationError.from_exception_data(exc.title, lines)


class StaticACLConfig(SourceConfig):
    """For sources whose items carry no permissions (a folder, a mail archive): one ACL for all.
    `public = true` (everyone) together with `users` or `domains` (only them) is refused: the
    permissive reading would give a source meant to be restricted to everyone. The refusal is said
    with the table's other errors, not only once they are fixed (every problem at once)."""

    public: bool | None = Field(
        None, description="visible to every user (default when no users/domains; not with users/domains)"
    )
    users: list[str] = Field(default_factory=list, description="emails that may see every item")
    domains: list[str] = Field(default_factory=list, description="domains whose users may see every item")

    @model_validator(mode="wrap")
    @classmethod
    def _public_or_listed(cls, data: Any, handler: ModelWrapValidatorHandler[StaticACLConfig]) -> StaticACLConfig:
        # a wrap validator, not an "after" one: pydantic skips those when any key failed
        try:
            config = handler(data)
        except ValidationError as exc:
            raw = data if isinstance(data, Mapping) else {}
            problem = _public_and_listed(raw.get("public"), raw.get("users"), raw.get("domains"))
            if problem is None:
                raise
            raise _one_more(exc, problem, data) from None
        problem = _public_and_listed(config.public, config.users, config.domains)
        if problem is not None:
            raise ValueError(problem)
        return config

    ACL_KEYS: ClassVar[frozenset[str]] = frozenset({"public", "users", "domains"})
    """A connector whose sync yields only what changed lists these in its `scope_keys`, so a
    changed ACL reaches the items already indexed (read whole once) instead of only new ones."""

    def acl(self) -> ACL:
        public = self.public if self.public is not None else not (self.users or self.domains)
        return ACL(public=public, users=self.users, domains=self.domains)


class FolderConfig(StaticACLConfig):
    """For sources that read one local folder (`path`)."""

    path: ConfigPath = Field(description="the folder to read")


class LivePrefix(str):
    """A `live_ids` entry vouching for every document id that starts with it: documents the source
    still holds but no longer lets the connector list one by one (an archived Slack channel, which
    ejected the bot). A prune keeps them."""


ConfigT = TypeVar("ConfigT", bound=SourceConfig)
FolderConfigT = TypeVar("FolderConfigT", bound=FolderConfig)


class Connector(ABC, Generic[ConfigT]):
    """Reads one source. Subclasses set `type` and `Config` and implement `load`."""

    type: ClassVar[str]
    Config: ClassVar[builtins.type[SourceConfig]]  # builtins: `type` is the attribute above
    # True when `load` finds deletions by comparing the source with what its checkpoint remembers
    # (a folder, a mail archive): what an interrupted run indexed after its last checkpoint is then
    # forgotten, and the engine settles it with `live_ids_after` once the resumed full pass ends.
    deletions_from_checkpoint: ClassVar[bool] = False
    # True when `load(None, since=...)` lists only what changed since then, at a cost that shrinks
    # with the window (the service filters by time: Slack `oldest`, a Drive `modifiedTime` query,
    # a mail `after:` search, a file's mtime): a fresh backfill then first indexes the recent
    # window (`[index] recent_first`), so it is searchable before the full pass goes further back.
    recent_first: ClassVar[bool] = False
    # The config keys that choose what `load` reads (channels, labels, folders, path globs) and
    # whose change its incremental sync cannot see: it reads what changed at the source since its
    # checkpoint, so the threads of a channel dropped from the config stay indexed, and a folder
    # added is not read. The engine keeps a digest of their values (`scope_fingerprint`) with the
    # source's state; when it differs, the next sync reads the source whole once, as a backfill
    # does, and deletes what that pass did not see. A static ACL (`StaticACLConfig.ACL_KEYS`) is
    # such a key too: unchanged items are not yielded again, so they would keep the old ACL. Leave
    # out a key whose change `load` applies itself (a mailbox no longer configured has its
    # documents deleted, a new one is read whole).
    scope_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ConfigT, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env: Mapping[str, str] = env if env is not None else {}

    @property
    def name(self) -> str:
        return self.config.name

    def scope_fingerprint(self) -> dict[str, str]:
        """A short digest of the configured value of each of `scope_keys`, by key."""
        values = {key: json.dumps(getattr(self.config, key), sort_keys=True, default=str) for key in self.scope_keys}
        return {key: hashlib.sha256(value.encode()).hexdigest()[:16] for key, value in sorted(values.items())}

    def doc_id(self, native_id: str) -> str:
        return f"{self.name}:{native_id}"

    def document(self, native_id: str, **fields: Any) -> Document:
        """A `Document` with id, source and source type filled in."""
        return Document(id=self.doc_id(native_id), source=self.name, source_type=self.type, **fields)

    def secret(self, key: str) -> str:
        """The value of the environment variable that config key `key` (e.g. `token_env`) names."""
        var = getattr(self.config, key)
        value = self.env.get(var) if var else None
        if not value:
            raise ConfigError(f"source {self.name!r}: {unset_env(key, var, self.env)}")
        return logs.secret(value)

    def check(self) -> None:
        """Validate credentials cheaply; raise `CredentialsError` naming the source if refused."""

    def check_local(self) -> None:
        """Optional: what can be checked without the network (a folder exists), before any run
        starts (`inlet backfill`, `sync`, `daemon`); raise `ConfigError` naming the key."""

    @abstractmethod
    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        """Yield documents, deletions, skips and checkpoints.

        `checkpoint` is the last state this connector yielded (None: start from scratch). From
        scratch, yield everything (modified after `since` when given); from a checkpoint, yield
        what changed since. Yield a `Checkpoint` whenever resuming from it would lose nothing.
        """

    def load_scope(self, checkpoint: dict[str, Any], scope: frozenset[str]) -> Iterator[Item]:
        """An event-driven sync of only the containers in `scope` (channel, folder or drive ids, as
        this connector's event hints name them), from a checkpoint of a finished backfill.

        Optional: by default it is the whole incremental sync, which is always correct, only not
        cheaper. A connector that overrides it must (1) read only those containers, resuming each
        from its own part of `checkpoint`; (2) yield checkpoints that leave every other container's
        state exactly as it was (an interrupted scoped run must not make the next run skip or redo
        anything elsewhere); (3) yield deletions only of documents in those containers: a scoped
        run lists nothing else, so it can prove nothing else gone. The scheduled sync stays the
        reconciling pass. A container it does not know (new since the last full sync) is reason
        enough to fall back to `load`.
        """
        return self.load(checkpoint)

    def recheck(self, checkpoint: dict[str, Any] | None, ids: list[str]) -> Iterator[Item]:
        """The documents of `ids`, indexed before a full pass that has just listed the source to
        its end (`checkpoint`: its last) without meeting them, read again where the source still
        has them: as `load` yields them (a `Document`, a `Skipped`, a `Deletion`; a `Checkpoint`
        when its state changed). The pass's prune then deletes every one not yielded as a
        `Document` or an unreadable `Skipped`. Optional: by default nothing is yielded, right
        for a listing that cannot pass over an item; one paged by position (an offset behind its
        page token) passes over as many as were deleted before the position mid-pass, so a
        connector listing so asks the service about each one (Drive: `files.get`). A prune, and
        the reconciling after a resumed run, ask it too about what `live_ids` did not name: there
        what it yields is not applied, an id yielded as a `Document`, an `AclUpdate` or an
        unreadable `Skipped` is only kept (the change feed still follows it)."""
        return iter(())

    def live_ids(self) -> Iterable[str]:
        """Every document id that still exists, for reconciliation (prune); a `LivePrefix` among them
        vouches for every id it starts. Optional."""
        raise NotImplementedError

    def live_ids_after(self, checkpoint: dict[str, Any] | None) -> Iterable[str]:
        """`live_ids` for the reconciling at the end of a run that resumed an unfinished one from
        `checkpoint` (the last one that run saved; None: it saved none): what the unfinished run
        can have indexed after saving it must be listed as `live_ids` lists it; the rest may be
        vouched for with `LivePrefix`es instead of listed (what the checkpoint says was finished:
        the next sync finds its deletions as it would without the crash). Optional: by default the
        whole listing, which is always right."""
        return self.live_ids()

    def events(self) -> EventSource | None:
        """Where to hear about changes as they happen (see `events.py`), or None. Optional."""
        return None


class FolderConnector(Connector[FolderConfigT]):
    """A connector over a local folder: checking it, with or without the network, is seeing that
    `path` names a readable folder (a `ConfigError` naming the source and the key otherwise). A
    file caught in the middle of a save is read again after a pause (`read_settled`)."""

    READS = 3  # reads of a file that changes while it is read (or reads empty where it had content)
    settle_seconds = 0.25  # pause before reading such a file again

    def check(self) -> None:
        self.check_local()

    def check_local(self) -> None:
        if not self.config.path.is_dir():
            raise ConfigError(folder_problem(self.name, self.config.path))

    def read_settled(
        self,
        path: Path,
        stat: os.stat_result,
        had_content: bool,
        read: Callable[[], bytes | None],
        limit: int | None = None,
    ) -> tuple[bytes | None, os.stat_result | None]:
        """(what `read` returned, the file's stat as read) once a read saw it hold still: same mtime
        and size before and after, as many bytes as its size (its first `limit` bytes: what `read`
        reads of it) and, for a file that had content and reads empty, empty at a second read too (a
        file is truncated before it is written again: caught between the two, it is not emptied). A
        file still changing after `READS` reads is what the last read saw (a log being appended to),
        with the stat from before that read (the next run reads it again); an empty one that had
        content has no stat (None): what was indexed from it is kept as it was. `stat` is the file's
        before the first read. (None, ...) when `read` returns None (nothing to read)."""
        empty_before = False
        before = stat
        data: bytes | None = b""
        for attempt in range(self.READS):
            if attempt:
                time.sleep(self.settle_seconds)  # let a writer caught in the middle of a save finish
            data = read()
            if data is None:
                return None, stat
            after = path.stat()
            whole = stat.st_size if limit is None else min(stat.st_size, limit)
            steady = after.st_mtime_ns == stat.st_mtime_ns and after.st_size == stat.st_size and len(data) == whole
            if steady and (data or not had_content or empty_before):
                return data, after
            empty_before = steady and not data
            before, stat = stat, after
        return data, (before if data else None)


# an open that returns at once whatever the name now is (a pipe without a writer, a terminal)
_OPEN_NOW = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def open_regular(path: Path) -> BinaryIO | None:
    """A folder's file opened for reading, or None when the name is not a regular file (a pipe, a
    device, a socket), also one put there since the folder was listed. The open never waits: a
    pipe that no one writes to would hold it, and the run, for ever. `OSError` as `open` raises
    (`IsADirectoryError` for a folder)."""
    fd = os.open(path, os.O_RDONLY | _OPEN_NOW)
    try:
        mode = os.fstat(fd).st_mode
        if S_ISDIR(mode):  # as `open` says of a folder
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if S_ISREG(mode):
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None
