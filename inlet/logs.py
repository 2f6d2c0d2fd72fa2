"""Log configuration of the `inlet` command (library code only ever calls `getLogger(__name__)`).

What an operator reads at the default level is inlet's own: the client libraries (httpx, urllib3,
googleapiclient, msal, chromadb, ...) log every request at INFO, with page tokens, delta links and
cursors in the URLs, so they are kept at WARNING unless `-vv`. Whatever is logged, a URL's query
string, anything shaped like a Slack token and every secret value a connector or the index read
from the environment (`secret`: a Graph client secret, a database password) are redacted on the
way out, tracebacks included; an error naming a URL shows it through `shown_url` (no user info,
no query values). A record's message is one line: line breaks in it (a file name's) are written
escaped, so synced text cannot forge a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = (
    "httpx",
    "httpcore",
    "urllib3",
    "googleapiclient",
    "google_auth_httplib2",
    "google.auth",
    "msal",
    "chromadb",
    "sentence_transformers",
    "apscheduler",
    "mcp",
    "uvicorn.access",
)
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"<>]+)\?[^\s'\"<>]*", re.IGNORECASE)
_SLACK_TOKEN = re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+")


SECRET_MIN = 8  # a shorter value is too likely to be ordinary text to be blanked wherever it stands
_secrets: tuple[str, ...] = ()  # longest first; replaced whole, so a line being redacted sees one
_registering = threading.Lock()


def secret(value: str) -> str:
    """`value`, a secret read from the environment, from now on redacted wherever a log line holds
    it, also as a JSON string writes it (a request that carries it); one under SECRET_MIN
    characters is not (such a secret is guessable anyway)."""
    global _secrets
    if len(value) >= SECRET_MIN:
        with _registering:
            _secrets = tuple(sorted({*_secrets, value, json.dumps(value)[1:-1]}, key=len, reverse=True))
    return value


def redact(text: str) -> str:
    """`text` without URL query strings (tokens, cursors, delta links), Slack tokens or the values
    `secret` registered."""
    text = _SLACK_TOKEN.sub("xox?-[redacted]", _URL_QUERY.sub(r"\1?[redacted]", text))
    for value in _secrets:
        text = text.replace(value, "[redacted]")
    return text


def shown_url(url: str, *, query_names: bool = False) -> str:
    """`url` as a message may show it: scheme, host, port and path, without the user info, query or
    fragment, where a password or a token may be written (`https://u:pw@h:1/p?token=t` ->
    `https://h:1/p`). The one rule for every URL inlet names in an error (a configured service URL,
    `[index] chroma_url`, a service's next-page link); a value that does not parse as a URL is not
    shown. `query_names`: the query's parameter names are kept, each value replaced by `…`
    (`https://h/p?token=…&page=…`), to tell two links of one listing apart without their values."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(a value that does not parse as a URL: not shown)"
    path = parts.path if parts.netloc else parts.path.rpartition("@")[2]  # "user:pw@host" without a scheme
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)] if query_names else []
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", "")) + (
        "?" + "&".join(f"{name}=…" for name in names) if names else ""
    )


# a log record is one line: a line break in what it quotes (a file name, a reason a service sent)
# would forge a line of its own, in inlet's format (CWE-117); a traceback after it keeps its lines
_LINE_BREAKS = str.maketrans({"\r": "\\r", "\n": "\\n", "\x85": "\\x85", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class RedactingFormatter(logging.Formatter):
    """Formats as usual, the message on one line (its line breaks written `\\n`, ...), then redacts
    the whole line (message, arguments and traceback)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_LINE_BREAKS)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_handler: logging.Handler | None = None


def configure(verbose: int) -> logging.Handler:
    """stderr logging at WARNING (`-v` INFO, `-vv` DEBUG, client libraries included); idempotent."""
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(RedactingFormatter(FORMAT))
        root.addHandler(_handler)
    root.setLevel(logging.WARNING - 10 * min(verbose, 2))
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    return _handler
