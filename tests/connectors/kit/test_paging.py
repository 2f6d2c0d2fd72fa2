"""The kit's pager: every page once, in order; a repeated token is refused rather than looped on."""

from __future__ import annotations

from typing import Any

import pytest

from inlet.connectors.kit import Pager, StuckTokenError, cursor, next_link, page_token, pages
from inlet.errors import RetriableError


def test_pages_follow_the_tokens_until_the_last_page() -> None:
    book = {None: {"items": [1], "nextPageToken": "b"}, "b": {"items": [2], "nextPageToken": "c"}, "c": {"items": [3]}}
    asked: list[str | None] = []

    def fetch(token: str | None) -> dict[str, Any]:
        asked.append(token)
        return book[token]

    assert [p["items"] for p in pages(fetch, page_token, source="d", what="files.list")] == [[1], [2], [3]]
    assert asked == [None, "b", "c"]


def test_a_repeated_token_is_refused_naming_source_and_call() -> None:
    book = {None: {"nextPageToken": "b"}, "b": {"nextPageToken": "c"}, "c": {"nextPageToken": "b"}}
    listing = pages(book.__getitem__, page_token, source="drive", what="files.list")
    with pytest.raises(StuckTokenError, match="source 'drive': files.list answered the same page token twice"):
        list(listing)
    assert issubclass(StuckTokenError, RetriableError)


def test_a_page_naming_itself_is_refused_even_when_resumed() -> None:
    pager = Pager(source="s", what="delta", token="t1")  # resumed from a checkpoint's token
    with pytest.raises(StuckTokenError):
        pager.advance("t1")
    pager = Pager(source="s", what="delta")
    assert pager.advance("t2") and pager.token == "t2" and not pager.done
    assert not pager.advance(None) and pager.done and pager.pages == 2


def test_token_readers_of_each_service() -> None:
    assert cursor({"response_metadata": {"next_cursor": "dXNlcjpV"}}) == "dXNlcjpV"
    assert cursor({"response_metadata": {"next_cursor": ""}}) is None and cursor({}) is None
    assert page_token({"nextPageToken": "p"}) == "p" and page_token({}) is None
    assert next_link({"@odata.nextLink": "https://g/x?$skiptoken=1"}) == "https://g/x?$skiptoken=1"
    assert next_link({"@odata.deltaLink": "https://g/d"}) is None


def test_a_repeated_next_link_is_shown_without_its_query_values() -> None:
    """A next link may carry an access token in its query (Facebook's `paging.next`): the error,
    logged and shown by `inlet status`, names the link's parameters, not their values, and the
    pages that gave it."""
    pager = Pager(source="feed", what="GET /v1/feed")
    link = "https://user:PassLeak42@a.io/v1/feed?access_token=EAABsecretTok&after=QVFIUk"
    assert pager.advance(link)
    assert pager.advance("https://a.io/v1/feed?access_token=EAABsecretTok&after=QVFIUl")
    with pytest.raises(StuckTokenError) as caught:
        pager.advance(link)
    message = str(caught.value)
    assert "https://a.io/v1/feed?access_token=…&after=…" in message and "page 3 gave" in message, message
    assert "as page 1 did" in message
    assert not any(secret in message for secret in ("EAAB", "QVFIUk", "PassLeak42")), message
    relative = Pager(source="kb", what="GET /api/changes", token="/api/changes?since=7&offset=2")
    with pytest.raises(StuckTokenError, match=r"/api/changes\?since=…&offset=…, as the page this listing resumed"):
        relative.advance("/api/changes?since=7&offset=2")
