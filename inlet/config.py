"""Loading and validating the TOML configuration (docs/reference/configuration.md, generated from these models).

Every problem is reported before anything runs, naming the file, the source and the key.
"""

from __future__ import annotations

import hashlib
import ipaddress

import difflib
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inlet.connectors.base import (
    Connector,
    Duration,
    Interval,
    NamedPath,
    RecentWindow,
    SourceConfig,
    TypedConfig,
    certificates,
    loop_free,
    loopback_host as loopback_host,  # re-exported: server/oauth.py names hosts by the same rule
    missing_keys,
    missing_paths,
    not_a_folder,
    recent_window,
    unset_env,
    url_problem,
)
from inlet.connectors.model import ASCII_SPACE, well_formed_user
from inlet.connectors.registry import connector_class, origin
from inlet.errors import ConfigError

log = logging.getLogger(__name__)


def _postgres_url(url: str | None) -> str | None:
    """`url` when psycopg can read it as a PostgreSQL URL or connection string; the error never
    shows it (a password may be written into it)."""
    if url is None:
        return None
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)  # a postgresql:// URL or a "host=... dbname=..." string
    except Exception:
        raise ValueError(
            "cannot be read as a PostgreSQL URL: write it as postgresql://user@host:port/database "
            "(the value is not shown: it may hold a password)"
        ) from None
    return url


class IndexConfig(TypedConfig):
    path: NamedPath = Field(Path(".inlet"), description="embedded store: Chroma files + state database")
    chroma_url: str | None = Field(None, description="use a Chroma server instead of the embedded store")
    database_url: Annotated[str | None, AfterValidator(_postgres_url)] = Field(
        None, description="PostgreSQL for catalog, state and leases (needs chroma_url)"
    )
    database_password_env: str | None = Field(None, description="environment variable holding its password")
    model: str = Field("all-MiniLM-L6-v2", description="model name or local path")
    chunk_tokens: int = Field(200, ge=32, le=512, description="target chunk size in model tokens")
    chunk_overlap: int = Field(32, ge=0, le=128, description="tokens repeated between chunks")
    batch_size: int = Field(64, ge=1, le=4096, description="chunks embedded per batch")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8", description="how vectors are computed (benchmarks/README.md: fastest that keeps quality)"
    )
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="auto: CUDA when the backend has it")
    ef_search: int = Field(
        200,
        ge=1,
        le=10000,
        description="HNSW candidates kept per dense query: higher finds more true neighbours, and costs more "
        "per query (200: dense recall@10 0.97 at 1M chunks, docs/several-hosts.md)",
    )
    recent_first: RecentWindow = Field(
        "7d",
        description="a fresh backfill first indexes what changed in this recent window, then goes "
        "further back; '0' turns it off (a source's own recent_first overrides it)",
    )

    @model_validator(mode="after")
    def _database_needs_chroma(self) -> "IndexConfig":
        if self.database_url and not self.chroma_url:
            raise ValueError("database_url needs chroma_url: with a database, vectors live in a Chroma server")
        return self


RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str, key: str) -> float:
    """'20/s' -> 20.0 requests per second ('N/s', 'N/m' or 'N/h'); a ValueError naming `key`."""
    count, _, unit = text.strip().partition("/")
    try:
        rate = float(count) / RATE_UNITS[unit.strip()]
    except (ValueError, KeyError):
        raise ValueError(f"{key} must look like '20/s', '300/m' or '1000/h', got {text!r}") from None
    if rate <= 0:
        raise ValueError(f"{key} must be above zero, got {text!r}")
    return rate


def _valid_rate(text: str) -> str:
    parse_rate(text, "the rate")
    return text


RateLimit = Annotated[str, AfterValidator(_valid_rate)]
"""A rate key like '20/s', '300/m' or '1000/h' (checked when the config is read)."""


class ApiKey(TypedConfig):
    name: str = Field(description="names the key in the audit log, metrics and rate limits; unique")
    key_env: str = Field(
        description="the environment variable holding the key's value (clients send 'Authorization: Bearer VALUE'); "
        "unique"
    )
    user: str | None = Field(None, description="a user key: every request sees what this user (an email) may see")
    on_behalf_of: bool = Field(
        False, description="a service's key: each request names its user ('user' in the body, or X-Inlet-User)"
    )
    admin: bool = Field(
        False, description="an operator's key: sees everything (or as a request's 'user'), and the admin routes"
    )
    rate_limit: RateLimit | None = Field(
        None, description="this key's own rate limit ('100/s'); default [server] rate_limit"
    )
    rate_burst: int | None = Field(
        None,
        ge=1,
        description="this key's requests allowed at once; default: with its own rate_limit, twice that per-second "
        "rate (at least 1), else [server] rate_burst",
    )

    @field_validator("user")
    @classmethod
    def _one_user(cls, value: str | None) -> str | None:
        """A user key acts as one user: the rule for a user named anywhere else (a request's
        `user`, an OAuth claim), since ACL domains are matched on what follows the `@`."""
        if value is not None and (not value.strip(ASCII_SPACE) or not well_formed_user(value.strip(ASCII_SPACE))):
            raise ValueError(f"{value!r} is not one user: write one email address (or one name without an '@')")
        return value

    @model_validator(mode="after")
    def _one_role(self) -> "ApiKey":
        roles = sum([self.user is not None, self.on_behalf_of, self.admin])
        if roles != 1:
            raise ValueError("set exactly one of 'user', 'on_behalf_of = true' or 'admin = true'")
        return self


class OAuthConfig(TypedConfig):
    """`[server.oauth]`: accept JWT access tokens from one identity provider (docs/agents.md: remote agents)."""

    issuer: str = Field(description="must equal the token's iss; HTTPS unless on a loopback address")
    audience: str | None = Field(
        None,
        description="must appear in the token's aud (the resource, RFC 8707); "
        "default: the resource's own URL (resource_url, else the listening address)",
    )
    user_claim: str = Field("email", description="the claim naming the user (Entra: preferred_username)")
    scopes: list[str] = Field(default_factory=list, description="required scopes (scope or scp claim)")
    jwks_url: str | None = Field(
        None,
        description="default: jwks_uri from the issuer's discovery document; either HTTPS unless on a loopback address",
    )
    resource_url: str | None = Field(None, description="public base URL, for protected-resource metadata")
    ca_bundle: Path | None = Field(None, description="extra trusted CA (PEM) for the issuer's HTTPS")
    require_email_verified: bool = Field(
        True, description="with an email user_claim: refuse tokens whose email_verified claim is false"
    )

    @model_validator(mode="after")
    def _urls(self) -> "OAuthConfig":
        check_url("issuer", self.issuer, https_unless_loopback=True)
        if self.jwks_url is not None:
            check_url("jwks_url", self.jwks_url, https_unless_loopback=True)
        if self.resource_url is not None:
            check_url("resource_url", self.resource_url, https_unless_loopback=False)
            self.resource_url = self.resource_url.rstrip("/")
        if not self.user_claim.strip() or (self.audience is not None and not self.audience.strip()):
            raise ValueError("'user_claim' and 'audience' must not be empty")
        return self


def check_url(key: str, value: str, https_unless_loopback: bool, query_allowed: bool = False) -> None:
    """`connectors.base.url_problem` as a `ValueError` naming `key`: the rule for `[server.oauth]`'s
    issuer and jwks_url, and for the jwks_uri an issuer's discovery document names (server/oauth.py,
    which allows a query there: Azure AD B2C's has one)."""
    problem = url_problem(value, https_unless_loopback=https_unless_loopback, query_allowed=query_allowed)
    if problem:
        raise ValueError(f"{key!r}: {problem}")


def proxy_network(value: str) -> str:
    """One `[server] trusted_proxies` entry: an IP address or network (`10.0.0.0/8`), written as
    `ipaddress` reads it. `ValueError` for anything else, `*` among them (every client would be
    trusted to name itself)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(
            f"{value!r} must be the IP address or network of a reverse proxy (127.0.0.1, 10.0.0.0/8); "
            "forwarding headers from any other peer are ignored"
        ) from None


def normalise_origin(value: str) -> str:
    """`value` as a browser serialises an origin (RFC 6454 §6.1): lower-case `scheme://host`, an
    internationalised host in its ASCII (`xn--`) form, the port only when not the scheme's default,
    no path or trailing slash. The one reading of
    `[server] cors_origins`, used by the CORS layer and by the /mcp Origin check alike (and on the
    `Origin` header a request carries). `ValueError` for anything that is not one origin: `*` among
    them (list each browser origin; a wildcard would also lift /mcp's DNS-rebinding protection)."""
    text = value.strip()
    if text == "*":
        raise ValueError(
            "'*' is not accepted: list each browser origin that may call the API, as scheme://host[:port] "
            "(a wildcard would also let any web page past /mcp's DNS-rebinding check)"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} cannot be read as an origin ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{value!r} must be an origin: http:// or https://, a host, maybe a port (https://app.example)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} must be an origin, scheme://host[:port], without a path, query or user")
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else _ascii_host(value, parts.hostname)
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _ascii_host(value: str, host: str) -> str:
    """An internationalised host name in the ASCII form a browser's `Origin` header carries (the
    WHATWG URL Standard's "domain to ASCII": UTS #46 non-transitional, underscores and symbols
    allowed): mapped, then label by label punycode, `bücher.example` is `xn--bcher-kva.example`,
    `a_b.bücher.example` keeps `a_b`, `ß☃.example` keeps its ß (`xn--zca031q.example`)."""
    if host.isascii():
        return host
    import idna

    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        labels = [
            label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
            for label in mapped.split(".")
        ]
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{value!r} cannot be read as an origin: its host is no domain name ({exc})") from None
    if "" in labels[:-1] or labels == [""]:
        raise ValueError(f"{value!r} cannot be read as an origin: its host has an empty label")
    return ".".join(labels)


Origin = Annotated[str, AfterValidator(normalise_origin)]
ProxyNetwork = Annotated[str, AfterValidator(proxy_network)]


class ServerConfig(TypedConfig):
    host: str = Field(
        "127.0.0.1",
        description="the address the API (`inlet serve`, `inlet daemon --serve`) listens on (0.0.0.0: every "
        "interface); --host overrides",
    )
    port: int = Field(8484, ge=0, le=65535, description="the port it listens on; --port overrides")
    api_keys: list[ApiKey] = Field(default_factory=list)
    cors_origins: list[Origin] = Field(
        default_factory=list,
        description="browser origins (scheme://host[:port]) allowed to call the API and /mcp; CORS is off unless "
        "listed; '*' is refused",
    )
    recency_half_life_days: float = Field(180, ge=0, description="0 turns the recency preference off")
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="larger request bodies are refused with 413 (a webhook's: 404)"
    )
    header_timeout: float = Field(10.0, gt=0, le=300, description="seconds a client has to send a request's headers")
    idle_timeout: float = Field(5.0, gt=0, le=300, description="seconds an idle keep-alive connection stays open")
    body_timeout: float = Field(
        30.0, gt=0, le=300, description="seconds a request body may stall; the whole body within twice this"
    )
    send_timeout: float = Field(
        30.0, gt=0, le=300, description="seconds an answer may wait for a client that reads none of it"
    )
    trusted_proxies: list[ProxyNetwork] = Field(
        default_factory=list,
        description="reverse proxies whose X-Forwarded-For/-Proto name the client and scheme; default none",
    )
    metrics_public: bool = Field(False, description="serve /metrics without a key")
    oauth: OAuthConfig | None = Field(None, description="accept OAuth access tokens beside API keys")
    audit_log: str | None = Field(
        None, description="a JSON-lines file of who asked what, or '-' for the log stream; default off"
    )
    audit_queries: Literal["text", "hash"] = Field(
        "text", description="'hash': the query's SHA-256, not its text (a fetch's: the document id's)"
    )
    audit_max_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="the audit file is rotated at this size")
    audit_backups: int = Field(10, ge=1, le=1000, description="rotated audit files kept")
    rate_limit: RateLimit | None = Field(
        None, description="requests per key name or OAuth user, as 'N/s', 'N/m' or 'N/h'; default off"
    )
    rate_burst: int | None = Field(
        None,
        ge=1,
        description="requests allowed at once under [server] rate_limit (default: twice the per-second rate, at "
        "least 1); a key with its own rate_limit has its own burst",
    )

    @model_validator(mode="after")
    def _burst_with_a_rate(self) -> "ServerConfig":
        for key in self.api_keys:
            if key.rate_burst is not None and key.rate_limit is None and self.rate_limit is None:
                raise ValueError(
                    f"api key {key.name!r} sets rate_burst but no rate limit applies to it: set its rate_limit "
                    "(or [server] rate_limit)"
                )
        return self


class DaemonConfig(TypedConfig):
    max_parallel: int = Field(2, ge=1, le=64, description="sources syncing at the same time")
    jitter: Duration = Field("30s", description="random delay added to each scheduled run")
    retry_max: Interval = Field("30m", description="cap of the backoff after failed runs")
    lease: Interval = Field("60s", description="a source whose daemon stopped renewing is taken over after this")


class Settings(BaseModel):
    """The whole configuration, with each source validated by its connector's `Config`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    file: Path | None = None
    index: IndexConfig = Field(default_factory=IndexConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    sources: list[SourceConfig] = Field(default_factory=list)

    def fingerprint(self) -> str:
        """A digest of what is configured (not of where the file is, nor of the address the server
        listens on: `--host` / `--port` override those): equal settings, equal digests."""
        mine = self.model_dump_json(exclude={"file": True, "sources": True, "server": {"host": True, "port": True}})
        parts = [mine, *(s.model_dump_json() for s in self.sources)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def source_names(self) -> list[str]:
        """The names of the configured sources, in the file's order."""
        return [s.name for s in self.sources]

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError(f"{self.file or 'config'}: no source named {name!r} (configured: {known})")

    def recent_window(self, name: str) -> float:
        """Seconds of the window a fresh backfill of source `name` indexes first (0: none)."""
        own = self.source(name).recent_first
        return recent_window(own if own is not None else self.index.recent_first)

    def connector(self, name: str, env: Mapping[str, str] | None = None) -> Connector:
        source = self.source(name)
        return connector_class(source.type)(source, env if env is not None else os.environ)


def find_config(explicit: str | Path | None) -> Path:
    """--config, else $INLET_CONFIG, else ./config.toml."""
    path = Path(explicit or os.environ.get("INLET_CONFIG") or "config.toml")
    if path.is_dir():
        raise ConfigError(f"configuration file {path} is a folder, not a file (pass --config or set INLET_CONFIG)")
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found (pass --config or set INLET_CONFIG)")
    return path


def load_config(path: str | Path, *, check_paths: bool = False) -> Settings:
    """The file's settings (`parse_config`); with `check_paths`, the paths it names that must exist too."""
    path = Path(path).absolute()  # relative paths in it are taken from its folder: make that absolute
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark (Windows editors) is no error
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return parse_config(raw, path, check_paths=check_paths)


def parse_config(raw: dict[str, Any], path: Path | None = None, *, check_paths: bool = False) -> Settings:
    """Every problem of the file at once (one `ConfigError`, one line each), before anything runs.
    With `check_paths`, every configured path that must exist (a source's `ConfigPath` keys: `path`,
    `ca_bundle`, `credentials_file`, ...; `[server.oauth] ca_bundle`) is checked too, also in a
    source whose other keys are wrong, and reported with the rest (every command does this)."""
    where = str(path or "config")
    problems: list[str] = []
    for key in sorted(set(raw) - set(SECTIONS)):
        problems.append(f"unknown section or key {key!r}{_did_you_mean(key, SECTIONS)}")
    parts: dict[str, Any] = {"file": path}
    for section, model in SECTIONS.items():
        if model is None:
            continue
        try:
            parts[section] = model.model_validate(raw.get(section, {}))
        except ValidationError as exc:
            problems += [f"[{section}] {line}" for line in _errors(exc, model)]
    index = parts.get("index")
    placed = len(problems)
    if index is not None:
        index.path = _placed(path, index.path, "[index] key 'path'", problems)
    server = parts.get("server")
    if server is not None:
        problems += _key_clashes(server.api_keys)
        if server.audit_log not in (None, "-"):
            audit = Path(server.audit_log).expanduser()
            server.audit_log = str(_placed(path, audit, "[server] key 'audit_log'", problems))
    oauth = server.oauth if server is not None else None
    if oauth is not None and oauth.ca_bundle is not None:
        oauth.ca_bundle = _placed(path, oauth.ca_bundle, "[server.oauth] key 'ca_bundle'", problems)
    check_paths = check_paths and len(problems) == placed  # a loop of links is told once, not again as missing
    blocked = not_a_folder(index.path) if check_paths and index is not None and not index.database_url else None
    if blocked:  # created when missing, but a file cannot become the index folder
        problems.append(f"[index] key 'path': {blocked}")
    if check_paths and oauth is not None and oauth.ca_bundle is not None:
        try:  # a folder, an empty file or a key is no CA bundle: told here, not as a traceback at serve
            if not certificates(oauth.ca_bundle).exists():
                problems.append(f"[server.oauth] key 'ca_bundle': {oauth.ca_bundle} does not exist")
        except ValueError as exc:
            problems.append(f"[server.oauth] key 'ca_bundle': {exc}")
    sources = raw.get("sources", [])
    if not isinstance(sources, list):
        problems.append("'sources' must be an array of tables ([[sources]])")
        sources = []
    parts["sources"] = []
    for n, entry in enumerate(sources, 1):
        source, errors = _source(entry, n, path, check_paths)
        problems += errors
        if source is not None:
            parts["sources"].append(source)
    names = [s.name for s in parts["sources"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"source name {name!r} is used twice; names must be unique")
    if problems:
        raise ConfigError(_report(where, problems))
    return Settings(**parts)


def _placed(config: Path | None, value: Path, key: str, problems: list[str]) -> Path:
    """`value`, the path config key `key` (`[index] key 'path'`) gives, a relative one taken from the
    folder of the configuration file (when read from one) and resolved; a loop of symbolic links
    (`lp1` -> `lp2` -> `lp1`) is added to `problems` naming the key, and `value` returned as given."""
    there = value if value.is_absolute() or config is None else config.parent / value
    try:
        resolved = loop_free(there)
    except ValueError as exc:
        problems.append(f"{key}: {exc}")
        return value
    return value if there is value else resolved


def _key_clashes(keys: list[ApiKey]) -> list[str]:
    """Two `[[server.api_keys]]` with one name (they would share a rate limit and an audit name) or
    one `key_env` (one secret: the first entry would take every request of the second)."""
    problems = []
    for field in ("name", "key_env"):
        values = [getattr(key, field) for key in keys]
        for value in sorted({v for v in values if values.count(v) > 1}):
            problems.append(
                f"[server] api_keys: {field} {value!r} is used by {values.count(value)} keys; it must be unique"
            )
    return problems


SECTIONS: dict[str, type[BaseModel] | None] = {
    "index": IndexConfig,
    "server": ServerConfig,
    "daemon": DaemonConfig,
    "sources": None,
}


def _report(where: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


def _source(entry: Any, number: int, path: Path | None, check_paths: bool) -> tuple[SourceConfig | None, list[str]]:
    """The source's config, else None; the problems of its keys (and its missing paths, with
    `check_paths`), each named `source 'NAME': key ...` as every later check names them."""
    if not isinstance(entry, dict):
        return None, [f"[[sources]] #{number} must be a table"]
    label = f"source {entry['name']!r}" if isinstance(entry.get("name"), str) else f"[[sources]] #{number}"
    if "type" not in entry:
        return None, [f"{label}: key 'type' is required"]
    try:
        cls = connector_class(str(entry["type"]))
    except ConfigError as exc:
        return None, [f"{label}: key 'type': {exc}"]
    base_dir = path.parent if path else Path.cwd()
    config: SourceConfig | None = None
    problems: list[str] = []
    try:
        config = cls.Config.model_validate(entry, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = [f"{label}: {line}" for line in _errors(exc, cls.Config)]
    except Exception as exc:  # a validator raising what pydantic does not collect: a bug in the connector
        log.debug("%s: its Config's validation raised", label, exc_info=True)
        kind = str(entry["type"])
        problems = [
            f"{label}: a bug in connector type {kind!r} ({origin(kind)}): validating its keys raised "
            f"{type(exc).__name__}: {exc} (a validator refuses a value with ValueError; -vv logs the traceback)"
        ]
    if check_paths:
        missing = missing_paths(config) if config is not None else missing_keys(cls.Config, entry, base_dir)
        problems += [f"{label}: key {key!r}: {gone} does not exist" for key, gone in missing]
    return (config if not problems else None), problems


def _errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per error: the key, what is wrong (without pydantic's "Value error, "), and for an
    unknown key the nearest valid one."""
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc[-1], _keys(model, loc[:-1]))
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"key {'.'.join(loc)!r}: {message}" if loc else message)  # a rule of several keys names them
    return lines


def _keys(model: type[BaseModel], path: list[str]) -> list[str]:
    """The valid keys at `path` inside `model` (nested models, lists of models)."""
    for part in path:
        if part.isdigit():  # an index into a list of tables
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        inner = field.annotation
        for arg in getattr(inner, "__args__", ()):  # list[ApiKey], Optional[...]
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                inner = arg
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return list(model.model_fields)


def _did_you_mean(key: str, valid: Any) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_index_secret(settings: Settings, env: Mapping[str, str]) -> None:
    """The index's database password, when the configuration names a variable for it, is set: a
    `ConfigError` (exit 2) naming the file and key otherwise, before the database is tried."""
    var = settings.index.database_password_env
    if settings.index.database_url and var and not env.get(var):
        problem = f"[index] {unset_env('database_password_env', var, env)}"
        raise ConfigError(_report(str(settings.file or "config"), [problem]))


def _secret_keys(source: SourceConfig) -> list[tuple[str, str]]:
    """(key, variable) of each `*_env` key the source sets: the variables holding its secrets."""
    return [(k, v) for k, v in source.model_dump().items() if k.endswith("_env") and isinstance(v, str)]


def source_secrets(settings: Settings, names: list[str], env: Mapping[str, str]) -> dict[str, str]:
    """The variables named by the `*_env` keys of sources `names` that `env` sets, with their values:
    what a command forwarded to the process holding the index sends, so that its runs use the
    secrets of the shell it was typed in, as they would when run alone."""
    return {var: env[var] for name in names for _, var in _secret_keys(settings.source(name)) if env.get(var)}


def preflight(settings: Settings, names: list[str], env: Mapping[str, str]) -> None:
    """What can be known wrong before a run starts, for the sources `names`, all at once: an
    environment variable named by a `*_env` key is unset, or a local check of the connector fails
    (a `path` that is not a folder). `ConfigError` (exit 2). A local check that raises anything
    else is a bug in the connector, not a configuration problem: it stops no command here; the
    source's run calls `check_local()` first and fails on it, alone (logged with its traceback
    naming the source and its type, recorded for `inlet status`), while the other sources run."""
    problems: list[str] = []
    if not settings.sources:
        problems.append("no [[sources]] configured: nothing to sync (config.example.toml documents each type)")
    for name in names:
        for key, var in _secret_keys(settings.source(name)):
            if not env.get(var):
                problems.append(f"source {name!r}: {unset_env(key, var, env)}")
        try:
            settings.connector(name, env).check_local()
        except ConfigError as exc:
            problems.append(str(exc))
        except Exception:  # a connector bug: the source's run meets it again and fails on it alone
            log.debug("source %r: check_local() failed (its run reports it)", name, exc_info=True)
    if problems:
        raise ConfigError(_report(str(settings.file or "config"), problems))
