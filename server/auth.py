"""API keys and who a request acts as (docs/reference/api.md: keys and users).

Key values are read from the environment once, at startup, and never logged; a value shorter than
`MIN_KEY_CHARS` is a start-up warning naming the key (wrong keys are answered 401 as fast as they
come, so a short one is guessed in seconds). A presented key is
compared with every configured key in constant time (`hmac.compare_digest`), so neither the match
nor its position leaks through timing. The result is a `Caller`: the user whose ACL filters the
request, or an operator (`user` None) who sees everything.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from starlette.types import Scope

from inlet import logs
from inlet.config import ApiKey, Settings
from inlet.connectors.base import unset_env
from inlet.connectors.model import ASCII_SPACE, normal_user, well_formed_user
from inlet.errors import ConfigError

from .errors import ApiError

log = logging.getLogger(__name__)

USER_HEADER = "X-Inlet-User"  # names the user on GET routes and MCP over HTTP (on_behalf_of keys)
USER_PARAM = "user"  # ... or as a query parameter
MIN_KEY_CHARS = 16  # a key value shorter than this is warned about at start-up
KeyKind = Literal["admin", "on_behalf_of", "user"]  # a key's rights (the audit line's `kind`)


TOKEN_KEY = "oauth"  # the name of every OAuth access token's key, before its client id ("oauth:<azp>")


def key_label(name: str) -> str:
    """A key's name as a metric label: a configured key's name, or `oauth` for every access token
    (client ids are as many as clients register: one series each would grow without bound)."""
    return TOKEN_KEY if name.startswith(TOKEN_KEY + ":") else name


@dataclass(frozen=True)
class KeyEntry:
    name: str
    secret: bytes
    user: str | None
    on_behalf_of: bool
    admin: bool
    subject: str | None = None  # an OAuth access token's `sub` and `iss` (the audit log names them)
    issuer: str | None = None
    rate_limit: str | None = None  # the key's own [[server.api_keys]] rate_limit

    @property
    def kind(self) -> KeyKind:
        """The key's rights: an operator's, an agent's acting for named users, or one user's."""
        return "admin" if self.admin else "on_behalf_of" if self.on_behalf_of else "user"


@dataclass(frozen=True)
class Caller:
    """Who a request acts as. `user` None means an operator (admin key): no ACL filter."""

    key_name: str
    user: str | None
    admin: bool
    subject: str | None = None
    issuer: str | None = None
    kind: KeyKind = "user"  # the rights of the key it came with

    @property
    def label(self) -> str:
        return self.user or "operator"


class KeyRing:
    """The configured keys with their secrets, resolved from `env` at construction."""

    def __init__(self, keys: list[ApiKey], env: Mapping[str, str]) -> None:
        self.entries: list[KeyEntry] = []
        for key in keys:
            value = env.get(
                key.key_env, ""
            ).strip()  # as a request's token is read: a secret file's newline is no part of it
            if not value:
                log.warning("API key %r is disabled: %s", key.name, unset_env("key_env", key.key_env, env))
                continue
            logs.secret(value)
            twin = next((e.name for e in self.entries if hmac.compare_digest(e.secret, value.encode())), None)
            if twin is not None:
                raise ConfigError(
                    f"[server] api_keys: {key.name!r} ({key.key_env}) has the same secret as {twin!r}: "
                    "each key needs its own value, or requests of one are taken as the other's"
                )
            if len(value) < MIN_KEY_CHARS:
                log.warning(
                    "API key %r (%s) is shorter than %d characters: it can be guessed quickly; "
                    "generate one with `openssl rand -base64 32`",
                    key.name,
                    key.key_env,
                    MIN_KEY_CHARS,
                )
            self.entries.append(
                KeyEntry(key.name, value.encode(), key.user, key.on_behalf_of, key.admin, rate_limit=key.rate_limit)
            )

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str]) -> "KeyRing":
        return cls(settings.server.api_keys, env)

    def match(self, presented: str) -> KeyEntry | None:
        """The entry whose secret equals `presented`; every entry is compared (constant time)."""
        given = presented.encode()
        found: KeyEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(given, entry.secret) and found is None:
                found = entry
        return found

    def authenticate(self, authorization: str | None) -> KeyEntry:
        """The key of an `Authorization: Bearer KEY` header, else a 401."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer KEY'")
        entry = self.match(token.strip())
        if entry is None:
            raise ApiError(401, "unauthorized", "invalid API key")
        return entry


def warn_without_keys(settings: Settings, env: Mapping[str, str]) -> bool:
    """Log an error when no configured key has its environment variable set: the server would
    answer 401 to every request. True when it warned."""
    if any(env.get(key.key_env, "").strip() for key in settings.server.api_keys) or settings.server.oauth is not None:
        return False  # a key, or OAuth access tokens ([server.oauth])
    unset = "; ".join(f"key {key.name!r}: {unset_env('key_env', key.key_env, env)}" for key in settings.server.api_keys)
    log.error(
        "NO USABLE API KEY: every request but /healthz will be answered 401. %s",
        unset or "Add a [[server.api_keys]] entry (see config.example.toml) and set its key_env variable.",
    )
    return True


def named_user(scope: Scope) -> str | None:
    """The user a GET route or /mcp request names: the `X-Inlet-User` header, else `?user=` (the
    header wins, on every route). The header or the parameter repeated with different values is a
    400: a gateway appending the signed-in user to a value the client sent must not let the client
    choose."""
    header = USER_HEADER.lower().encode("latin-1")
    headers = [_utf8(v).strip(ASCII_SPACE) for k, v in scope.get("headers", []) if k.lower() == header]
    query = scope.get("query_string", b"").decode("latin-1")
    params = [v.strip(ASCII_SPACE) for k, v in parse_qsl(query, keep_blank_values=True) if k == USER_PARAM]
    for named, where in ((headers, USER_HEADER), (params, f"?{USER_PARAM}=")):
        if len(set(named)) > 1:
            raise ApiError(400, "invalid_request", f"the request names more than one user ({where} repeated)")
    return headers[0] if headers else params[0] if params else None


def _utf8(value: bytes) -> str:
    """A header's user as a gateway stamps an internationalised address: UTF-8, as the body and
    `?user=` are read (Latin-1 would make `jürgen@example.de` another user)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", f"{USER_HEADER} is not UTF-8") from None


def body_or_named_user(body_user: str | None, scope: Scope) -> str | None:
    """The user a POST names: its body's `user`, else the header or query parameter (a gateway
    that stamps the header for every route); both naming different users is a 400."""
    named = named_user(scope)
    if body_user is None or named is None:
        return body_user if body_user is not None else named
    if normal_user(body_user) != normal_user(named):
        raise ApiError(
            400, "invalid_request", f"the body's 'user' and {USER_HEADER} (or ?{USER_PARAM}=) name different users"
        )
    return body_user


def caller_for(entry: KeyEntry, requested_user: str | None) -> Caller:
    """Apply the key's rights to the user a request names (body `user`, header or query parameter).

    - a user key acts as its user; naming a user is beyond its rights (403), even its own;
    - an on_behalf_of key must name the user (400 when missing);
    - an admin key sees everything, or acts as the named user when it names one.

    A named user must pass `well_formed_user` (400 otherwise): a gateway that merges a client's
    `X-Inlet-User` into its own must not hand the client a domain's documents.
    """
    requested = requested_user.strip(ASCII_SPACE) if requested_user is not None else None
    if requested == "":
        raise ApiError(400, "invalid_request", "'user' must not be empty")
    if requested is not None and not well_formed_user(requested):
        raise ApiError(
            400,
            "invalid_request",
            f"the user named ('user', {USER_HEADER} or ?{USER_PARAM}=) is not one well-formed email address: "
            "name exactly one user",
        )
    if entry.user is not None:
        if requested is not None:
            who = "an OAuth token" if entry.subject is not None else f"key {entry.name!r}"
            raise ApiError(
                403,
                "forbidden",
                f"{who} acts as {entry.user} only: leave 'user' out (naming a user, even that one, "
                "takes an on_behalf_of or admin key)",
            )
        return Caller(entry.name, entry.user, admin=False, subject=entry.subject, issuer=entry.issuer, kind=entry.kind)
    if entry.on_behalf_of:
        if requested is None:
            raise ApiError(
                400,
                "user_required",
                f"key {entry.name!r} acts on behalf of users: name one with 'user' (the body field of "
                f"/v1/search and /v1/context) or the {USER_HEADER} header (or ?user=, on every route)",
            )
        return Caller(entry.name, requested, admin=False, kind=entry.kind)
    return Caller(entry.name, requested, admin=requested is None, kind=entry.kind)


def require_admin(entry: KeyEntry, what: str) -> Caller:
    """Operations data (every source's names, counts, errors and run times) is for operators only:
    a user key would learn about sources whose documents it cannot see (403)."""
    if not entry.admin:
        raise ApiError(403, "forbidden", f"{what} needs an admin key; key {entry.name!r} is not one")
    return Caller(entry.name, None, admin=True, kind=entry.kind)
