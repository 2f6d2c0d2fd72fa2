"""The audit log: one JSON line per retrieval request, MCP tool call and admin action.

Invariant: a line names who asked (key name, or OAuth subject and issuer) and the rights of its
key (`kind`: admin, on_behalf_of or user), the user acted for (null: none, which is an operator
only when `kind` is admin), the route or tool, the query (or its SHA-256), the document id a fetch
asked for (`GET /v1/documents/{id}`, MCP `fetch`; or its SHA-256; whatever the answer, so ids tried
in vain show too), the returned document ids (a fetch's as `sha256:` digests when the id it asked
for is hashed: the id returned is that one), the status and the latency; never a key, a token or a
passage text. Lines are queued and written by one writer thread
(`logging.handlers.QueueListener` over a size-rotated file), so a request never waits on the disk;
`"-"` sends them to the log stream (logger `inlet.audit`) instead.
A line the writer cannot write (a full disk, a file made read-only) is lost, and requests go on:
the loss is counted (`AuditLog.lost`, `/metrics` `inlet_audit_lines_lost_total`) and warned about
at most once a minute, naming the file and the cause, never the line itself (it holds a query);
the running total is said again when writing works again and when the log closes, if lines were
lost since it was last said. A folder of the file removed or moved away while in use is made again
at the path. A file that cannot be opened at start-up is a `ConfigError` naming `[server] audit_log`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import os
import queue
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inlet.config import Settings
from inlet.connectors.model import normal_user
from inlet.errors import ConfigError

from .auth import Caller, KeyEntry, body_or_named_user, caller_for, named_user
from .errors import ApiError

log = logging.getLogger(__name__)
STREAM_LOGGER = "inlet.audit"
DOCUMENTS = "/v1/documents/"  # GET /v1/documents/{id}: the rest of the path is the id asked for
AUDITED_PREFIXES = ("/v1/search", "/v1/context", DOCUMENTS, "/v1/admin/")
MCP_PATH = "/mcp"  # its tool calls write their lines in mcp.py; one refused before the tool ran, here
WARN_EVERY = 60.0  # seconds between two warnings about lost lines


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating file only its owner may read or write (0600), as every file inlet writes: the
    lines name users and hold their queries. A line it cannot write is counted in `lost` and
    warned about (at most once every `WARN_EVERY` seconds) without its text; the total is said
    again once a line is written again, and at `close`, when lines were lost since the last word;
    the part of a lost line a full disk took is ended by a newline before the next line.
    A file moved or removed under it (an external logrotate, an operator archiving it) is noticed
    at the next line, said once in the log, and a new file is opened at the path (its folder made
    again if it went too), as `WatchedFileHandler` does; a file another inlet process writing the
    same path rotated (it is now one of the backups, `audit.jsonl.1`, ...) is routine and reopened
    without a word."""

    lost = 0
    _told = 0  # `lost` as last said in the log
    _failing = False  # the last line could not be written
    _warned = float("-inf")
    _opened: tuple[int, int] | None = None  # (device, inode) of the file open now

    def _open(self) -> Any:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND  # read too: its last byte after a lost line
        try:
            fd = os.open(self.baseFilename, flags, 0o600)
        except FileNotFoundError:  # its folder was moved away or removed while in use: made again
            os.makedirs(os.path.dirname(self.baseFilename), mode=0o700, exist_ok=True)
            fd = os.open(self.baseFilename, flags, 0o600)
        found = os.fstat(fd)
        self._opened = (found.st_dev, found.st_ino)
        if self._failing and found.st_size and os.pread(fd, 1, found.st_size - 1) != b"\n":
            try:  # the part of a lost line the full disk took ends here, not in front of the next line
                os.write(fd, b"\n")
            except OSError:
                os.close(fd)
                raise
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        self._reopen_if_moved()
        failed = self.lost
        super().emit(record)
        if self.lost == failed:
            self._written()

    def _written(self) -> None:
        """A line was written: after lines were lost, say how many in all."""
        if not self._failing:
            return
        self._failing = False
        log.warning(
            "audit log %s: writing again; %d line(s) lost in all while it could not be written",
            self.baseFilename,
            self.lost,
        )
        self._told = self.lost

    def _reopen_if_moved(self) -> None:
        if self.stream is None or self._opened is None:
            return
        try:
            found = os.stat(self.baseFilename)
        except FileNotFoundError:
            found = None
        except OSError:  # cannot tell: the write says what is wrong
            return
        if found is not None and (found.st_dev, found.st_ino) == self._opened:
            return
        if self._rotated_elsewhere():
            log.debug("audit log %s was rotated by another process writing it: reopened", self.baseFilename)
        else:
            log.warning(
                "audit log %s was moved or removed while in use: writing a new file there (rotate it with "
                "[server] audit_max_bytes, not by moving it)",
                self.baseFilename,
            )
        stream, self.stream = self.stream, None
        try:
            stream.close()
        except OSError as exc:  # what was buffered went to the old file, or nowhere (counted when it failed)
            if not self._failing:
                self._lost(exc)
        # the write opens the new file: a failure there is a lost line, counted and warned about

    def _rotated_elsewhere(self) -> bool:
        """Whether the file open here is now one of the path's backups (`audit.jsonl.1`, ...): another
        inlet process writing the same path (`inlet serve` and a stdio `inlet mcp` of one
        configuration) rotated it at `audit_max_bytes`, as this one would have."""
        for n in range(1, self.backupCount + 1):
            try:
                found = os.stat(f"{self.baseFilename}.{n}")
            except OSError:
                return False
            if (found.st_dev, found.st_ino) == self._opened:
                return True
        return False

    def handleError(self, record: logging.LogRecord) -> None:
        """Called by `emit` on a failed write (logging's default prints the record, query and all).
        The file is closed (what it could not write goes with it, while the disk is still full) and
        opened again for the next line: a part of a lost line never lands before a later one."""
        self._lost(sys.exc_info()[1])
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except (OSError, ValueError):
                pass  # counted: the line it held is the one lost

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # what was buffered could not be written either (counted when it failed)
            if not self._failing:
                self._lost(exc)
        if self.lost > self._told:
            log.warning(
                "audit log %s: %d line(s) lost in all while it was open (the last ones not said before)",
                self.baseFilename,
                self.lost,
            )
            self._told = self.lost

    def _lost(self, error: BaseException | None) -> None:
        self.lost += 1
        self._failing = True
        now = time.monotonic()
        if now - self._warned < WARN_EVERY:
            return
        self._warned = now
        self._told = self.lost
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        log.warning(
            "audit log %s: cannot write (%s); %d line(s) lost so far, requests go on: make room or make it writable",
            self.baseFilename,
            cause,
            self.lost,
        )


class AuditLog:
    """Where audit lines go; `record` only formats and enqueues (never blocks on I/O)."""

    def __init__(
        self, target: str | None, queries: str = "text", max_bytes: int = 100 * 1024 * 1024, backups: int = 10
    ) -> None:
        self.target = target
        self.hash_queries = queries == "hash"
        self._listener: logging.handlers.QueueListener | None = None
        self._queue: queue.SimpleQueue[logging.LogRecord] | None = None
        self._lost_closed = 0  # lines lost by the writer `close` stopped
        if target and target != "-":
            path = Path(target).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handler = _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
            except OSError as exc:
                why = f"{path.parent} is not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
                raise ConfigError(
                    f"[server] audit_log: {path} cannot be opened for writing ({why}); "
                    "give a file in a writable folder, or '-' for the log stream"
                ) from exc
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._queue = queue.SimpleQueue()
            self._listener = logging.handlers.QueueListener(self._queue, handler)
            self._listener.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> "AuditLog":
        s = settings.server
        return cls(s.audit_log, s.audit_queries, s.audit_max_bytes, s.audit_backups)

    @property
    def enabled(self) -> bool:
        return bool(self.target)

    @property
    def lost(self) -> int:
        """Lines lost since start (a file that could not be written; none with the log stream)."""
        handlers = self._listener.handlers if self._listener is not None else ()
        return sum(h.lost for h in handlers if isinstance(h, _PrivateRotatingFile)) + self._lost_closed

    def record(
        self,
        *,
        key: KeyEntry | None,
        caller: Caller | None,
        status: int,
        ms: float,
        route: str | None = None,
        tool: str | None = None,
        query: str | None = None,
        doc_ids: Iterable[str] = (),
        user: str | None = None,
        requested_id: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        line: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        }
        name = caller.key_name if caller is not None else key.name if key is not None else None
        subject = (caller.subject if caller is not None else None) or (key.subject if key is not None else None)
        issuer = (caller.issuer if caller is not None else None) or (key.issuer if key is not None else None)
        if subject is not None:
            line["subject"] = subject
        else:
            line["key"] = name
        if issuer is not None:
            line["issuer"] = issuer
        line["user"] = (
            caller.user if caller is not None else user if user is not None else (key.user if key is not None else None)
        )
        line["kind"] = key.kind if key is not None else caller.kind if caller is not None else "user"
        line["route" if route is not None else "tool"] = route if route is not None else tool
        for field, asked in (("query", query), ("requested_id", requested_id)):
            if asked is not None:
                if self.hash_queries:
                    line[f"{field}_sha256"] = sha256_hex(asked)
                else:
                    line[field] = asked
        returned = list(dict.fromkeys(doc_ids))
        if self.hash_queries and requested_id is not None:  # a fetch: in clear, the id returned undoes the hash
            returned = [f"sha256:{sha256_hex(doc_id)}" for doc_id in returned]
        line["doc_ids"] = returned
        line["status"] = status
        line["ms"] = round(ms, 1)
        text = json.dumps(line, ensure_ascii=False)
        if self._queue is not None:
            self._queue.put_nowait(
                logging.makeLogRecord(
                    {"name": STREAM_LOGGER, "levelno": logging.INFO, "levelname": "INFO", "msg": text}
                )
            )
        else:
            logging.getLogger(STREAM_LOGGER).info("%s", text)

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        if self._listener is not None:
            self._listener.stop()
            for handler in self._listener.handlers:
                handler.close()
            self._lost_closed = self.lost
            self._listener = None
            self._queue = None


def sha256_hex(text: str) -> str:
    """The SHA-256 of `text` (UTF-8), as `audit_queries = "hash"` writes what it hides."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


async def name_refused(scope: Scope, receive: Receive | None, entry: KeyEntry, body: Any = None) -> None:
    """Put the user and query a refused request named where the audit reads them, as its route
    would have (a 429, a 403 for a token's scope or a key's rights, a 422 for a bad field): the
    body's `user` and `query` (read from `receive` when the route did not read it: a `receive`
    that `BodyLimit` bounded, for the key check's 403 too), or the user a GET route names. An MCP
    `tools/call` refused before its tool ran (/mcp: the key check, the user it names, the rate
    limit, its form) is named as the tool would have: its tool (None when it names none), its
    `query` or `id`, the user of the header or `?user=`. A request naming a user its key may not
    name leaves only the key; what a route already put there stays."""
    state = scope.setdefault("state", {})
    if body is None and receive is not None and scope.get("method") == "POST":
        message = await receive()
        try:
            body = json.loads(message.get("body", b"") or b"null")
        except (ValueError, RecursionError):
            body = None
    call = _tool_call(body) if scope.get("path") == MCP_PATH else None
    body = body if isinstance(body, dict) and call is None else {}
    requested = body.get("user") if isinstance(body.get("user"), str) else None
    if state.get("caller") is None:
        try:
            state["caller"] = caller_for(
                entry, body_or_named_user(requested, scope) if scope.get("method") == "POST" else named_user(scope)
            )
        except ApiError:
            pass
    if state.get("audit") is None:
        facts = call["arguments"] if call is not None else body
        state["audit"] = {
            "query": _text(facts.get("query")) if call is None or call["name"] == "search" else None,
            "doc_ids": [],
        }
        if call is not None:
            state["audit"]["tool"] = call["name"]
            state["audit"]["requested_id"] = _text(facts.get("id")) if call["name"] == "fetch" else None


def _tool_call(body: Any) -> dict[str, Any] | None:
    """The `name` (None: it names no tool) and `arguments` of the JSON-RPC `tools/call` in an /mcp
    body (a message, or the first of a batch), or None: a body that calls no tool (initialize,
    tools/list) writes no line."""
    for message in body if isinstance(body, list) else [body]:
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params")
            name, arguments = (
                (params.get("name"), params.get("arguments")) if isinstance(params, dict) else (None, None)
            )
            return {
                "name": name if isinstance(name, str) else None,
                "arguments": arguments if isinstance(arguments, dict) else {},
            }
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class AuditMiddleware:
    """Records one line per retrieval route and admin action once it is answered. The route puts
    what it asked and returned in `request.state.audit` (`{"query", "doc_ids"}`); the key and the
    caller come from the key check (`KeyGuard`, inside this one) and the route. A request the key
    check refused without knowing who sent it (401) gets no line; a token refused for its scope
    (403) names its subject. An /mcp request gets a line here only when it was a tool call refused
    before the tool ran (`name_refused` put a `tool` there, None for a call naming none): the tools
    write their own."""

    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.audit.enabled
            or not (path.startswith(AUDITED_PREFIXES) or path == MCP_PATH)
            or (path.startswith("/v1/admin/") and scope.get("method") in ("GET", "HEAD"))
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            state = scope.get("state", {})
            refused_call = "tool" in (state.get("audit") or {})
            # else refused by the key check (a 401 names nobody), or /mcp answered by its tools
            if state.get("key") is not None and (path != MCP_PATH or refused_call):
                self._record(scope, path, status, started)

    def _record(self, scope: Scope, path: str, status: int, started: float) -> None:
        state = scope["state"]
        facts = state.get("audit") or {}
        document = path.startswith(DOCUMENTS)
        route = DOCUMENTS + "{id}" if document else path
        self.audit.record(
            key=state.get("key"),
            caller=state.get("caller"),
            status=status,
            ms=(time.perf_counter() - started) * 1000,
            route=None if path == MCP_PATH else f"{scope.get('method')} {route}",
            tool=facts.get("tool"),
            query=facts.get("query"),
            doc_ids=facts.get("doc_ids", ()),
            # the route's {id} (or the tool's), whatever the answer
            requested_id=path[len(DOCUMENTS) :] if document else facts.get("requested_id"),
        )


# --- reading it back (`inlet audit`) ---------------------------------------------------------------
def audit_files(path: Path) -> list[Path]:
    """The audit file and its rotated predecessors, oldest first (`audit.jsonl.3`, ... `.1`, itself)."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    return rotated + ([path] if path.exists() else [])


def acted_for(line: Mapping[str, Any]) -> str:
    """Whom a line's request acted for, as `inlet audit` prints it: the user (`spelt`), else "operator"
    for an admin key, else "(no user)" (an on_behalf_of key that named none, refused). A line written
    before lines named the key's kind reads as then: no user is "operator"."""
    user = line.get("user")
    return spelt(str(user)) if user else ("operator" if line.get("kind", "admin") == "admin" else "(no user)")


# Scripts that one name mixes legitimately (Japanese: kanji, hiragana, katakana; Korean: hangul, hanja).
_ONE_SCRIPT = {"CJK": "HAN", "HIRAGANA": "HAN", "KATAKANA": "HAN", "HANGUL": "HAN", "BOPOMOFO": "HAN"}


def _script(letter: str) -> str:
    """A letter's script, as the first word of its Unicode name says it (LATIN, CYRILLIC, GREEK ...;
    FULLWIDTH and MATHEMATICAL letters are their own), the CJK scripts as one."""
    if letter.isascii():
        return "LATIN"
    word = unicodedata.name(letter, "UNNAMED").split()[0]
    return _ONE_SCRIPT.get(word, word)


def _mixed_script_letters(text: str) -> set[int]:
    """The positions of the non-ASCII letters of each word (a run of letters and combining marks) of
    `text` whose letters are of several scripts: the Cyrillic `о` of `enrоn`, the fullwidth `ｐ` of
    `ｐhillip`. A word of one script (`josé`, `иван`) has none."""
    found: set[int] = set()
    start = None
    for i, c in enumerate(text + " "):
        inside = unicodedata.category(c)[0] in "LM"
        if inside and start is None:
            start = i
        elif not inside and start is not None:
            letters = [(j, text[j]) for j in range(start, i) if unicodedata.category(text[j])[0] == "L"]
            if len({_script(c) for _, c in letters}) > 1:
                found.update(j for j, c in letters if not c.isascii())
            start = None
    return found


_WRITTEN = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escaped(c: str) -> str:
    code = ord(c)
    return _WRITTEN.get(c) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    )


def spelt(text: str) -> str:
    """`text` (a user, subject, key name, tool or route from a line) on one line, as a reader tells it
    apart from another: written `\\n`, `\\t`, `\\xNN`, `\\uXXXX` (and a backslash `\\\\`, so none is
    forged) are control characters (a `sub` with a newline forges no audit line), format and other
    invisible characters (U+200B ZERO WIDTH SPACE, a bidirectional mark), separators but the ASCII
    space, a letter that looks like another one (the KELVIN SIGN beside `k`, the ANGSTROM SIGN
    beside `å`: `normal_user` keeps them apart, and letters whose compatibility form is another
    character, as the fullwidth `ｐ`), and a non-ASCII letter in a word of mixed scripts (the
    Cyrillic `о` of `enrоn.com`). `\\u212aate@example.com` does not read as kate@example.com's
    line; `josé@example.com` and `иван@example.com` read as they are."""
    mixed = _mixed_script_letters(text)
    return "".join(_escaped(c) if i in mixed or _unreadable(c) else c for i, c in enumerate(text))


def _unreadable(c: str) -> bool:
    """Whether `c` is to be escaped whatever surrounds it (see `spelt`)."""
    if c.isascii():
        return c in _WRITTEN or unicodedata.category(c) == "Cc"
    return unicodedata.category(c)[0] in "CZ" or normal_user(c) != c.lower() or unicodedata.normalize("NFKC", c) != c


def read_audit(path: Path, user: str | None = None, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Each line of the audit files, oldest first, for `user` (case-insensitive) from `since` on;
    a line that is not a JSON object (a torn write, a hand edit) is skipped with a warning, and no
    file at all is warned about (never written, or moved or removed)."""
    wanted = normal_user(user) if user else None
    files = audit_files(path)
    if not files:
        log.warning("audit log %s does not exist: no server wrote it yet, or it was moved or removed", path)
    for file in files:
        with file.open(encoding="utf-8", errors="replace") as lines:
            for number, text in enumerate(lines, 1):
                try:
                    line = json.loads(text)
                except ValueError:
                    line = None
                if not isinstance(line, dict):
                    log.warning("%s:%d is not an audit line; skipped", file, number)
                    continue
                if wanted is not None and normal_user(str(line.get("user") or "")) != wanted:
                    continue
                if since is not None and _time(line.get("time")) < since:
                    continue
                yield line


def _time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
