"""The command's log: client libraries quiet by default, no tokens or cursors, `-v` for more."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from inlet import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    levels = {name: logging.getLogger(name).level for name in logs.QUIET}
    yield
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def test_client_libraries_are_quiet_unless_vv(restore_logging: None) -> None:
    logs.configure(0)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("googleapiclient.discovery").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("chromadb.telemetry").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger().level == logging.WARNING
    logs.configure(1)
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("msal").getEffectiveLevel() == logging.WARNING
    logs.configure(2)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG


def test_tokens_and_cursors_never_reach_the_log(restore_logging: None) -> None:
    handler = logs.configure(2)
    url = (
        "https://graph.microsoft.com/v1.0/users/a/mailFolders/inbox/messages/delta"
        "?$deltatoken=SECRETDELTA&$select=subject"
    )
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: GET %s "HTTP/1.1 200 OK"', (url,), None
    )
    line = handler.format(record)
    assert "SECRETDELTA" not in line and "/messages/delta?[redacted]" in line
    try:
        raise RuntimeError(
            "failed at http://127.0.0.1:9/api/conversations.history?cursor=SECRETCURSOR with xoxb-1234-5678-abcdef"
        )
    except RuntimeError:
        import sys

        failed = logging.LogRecord("inlet", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    text = handler.format(failed)
    assert "SECRETCURSOR" not in text and "abcdef" not in text and "conversations.history?[redacted]" in text


def test_a_line_break_in_what_a_record_quotes_forges_no_log_line(restore_logging: None) -> None:
    """probe34h F9: a file named `report<newline>2026-... ERROR inlet.sync.engine: sync of 'x' failed`
    wrote that line into the log as inlet's own; a traceback keeps its lines."""
    handler = logs.configure(0)
    forged = "report\n2026-12-08 01:00:00,000 ERROR inlet.sync.engine: sync of 'slack' failed\r\u2028.svg"
    record = logging.LogRecord(
        "inlet.sync.engine", logging.WARNING, __file__, 1, "skipped %s: %s", (forged, "type"), None
    )
    line = handler.format(record)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line, line
    assert "report\\n2026-12-08" in line and "failed\\r\\u2028.svg: type" in line
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        failed = logging.LogRecord("inlet", logging.ERROR, __file__, 1, "a\nb", None, sys.exc_info())
    text = handler.format(failed)
    assert "a\\nb" in text.split("\n")[0] and "Traceback" in text


def test_a_secret_read_from_the_environment_is_redacted_wherever_a_line_holds_it(restore_logging: None) -> None:
    from inlet.config import parse_config
    from inlet.connectors.registry import connector_class

    handler = logs.configure(1)
    value = 'Q8q~graph"client\\secret-for-the-log'
    source = {
        "name": "mail",
        "type": "outlook",
        "tenant_id": "t",
        "client_id": "c",
        "client_secret_env": "LOG_TEST_SECRET",
        "mailboxes": ["a@example.com"],
    }
    settings = parse_config({"sources": [source]})
    connector = connector_class("outlook")(settings.source("mail"), {"LOG_TEST_SECRET": value})
    assert connector.secret("client_secret_env") == value
    import json

    request = json.dumps({"env": {"LOG_TEST_SECRET": value}})
    record = logging.LogRecord("inlet", logging.ERROR, __file__, 1, "failed: %s / %s", (value, request), None)
    line = handler.format(record)
    assert value not in line and json.dumps(value)[1:-1] not in line and line.count("[redacted]") == 2
    short = logging.LogRecord("inlet", logging.INFO, __file__, 1, "the word graph stays", None, None)
    assert handler.format(short).endswith("the word graph stays")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:PassLeak42@127.0.0.1:29871/?token=TokLeak7", "http://127.0.0.1:29871/"),
        ("https://h.example.com:8000/api/v1#TokLeak7", "https://h.example.com:8000/api/v1"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("user:PassLeak42@host/x", "user:host/x"),
        ("http://[PassLeak42", "(a value that does not parse as a URL: not shown)"),
    ],
)
def test_a_url_named_in_an_error_shows_no_user_info_query_or_fragment(url: str, shown: str) -> None:
    assert logs.shown_url(url) == shown


def test_a_url_may_be_shown_with_its_query_names_never_its_values() -> None:
    url = "https://u:PassLeak42@h.test/p?access_token=TokLeak7&page=2&flag#frag"
    assert logs.shown_url(url, query_names=True) == "https://h.test/p?access_token=…&page=…&flag=…"
    assert logs.shown_url("https://h.test/p", query_names=True) == "https://h.test/p"


def test_an_unreachable_chroma_server_is_named_without_the_password_or_token_in_its_url(tmp_path) -> None:
    """`[index] chroma_url` is shown as `database_url` is: a credential written into it never is."""
    from inlet.config import IndexConfig
    from inlet.errors import IndexUnavailable
    from inlet.index.store import Index
    from inlet.index.vectors import lost_words

    url = "http://admin:PassLeak42@127.0.0.1:1/?token=TokLeak7"
    with pytest.raises(
        IndexUnavailable, match=r"Chroma server at http://127\.0\.0\.1:1/ \(\[index\] chroma_url\)"
    ) as info:
        Index(IndexConfig(path=tmp_path / "ix", chroma_url=url))  # the model is loaded only to embed: not here
    assert "PassLeak42" not in str(info.value) and "TokLeak7" not in str(info.value)
    lost = lost_words(url, "chunks", 10, None)
    assert "http://127.0.0.1:1/ ([index] chroma_url)" in lost and "PassLeak42" not in lost and "TokLeak7" not in lost
