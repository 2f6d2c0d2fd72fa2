"""One pager for every paginated API: cursors (Slack), page tokens (Google), next links (Graph).

Invariant: a pager never requests the same page twice in one listing. A service that answers with a
token it already gave (a stuck cursor) raises `StuckTokenError`, a `RetriableError`, instead of
looping for ever; the run fails, names the source, the call and the pages that gave the token (a
next link without its query's values, where a token may be), and the next run starts over.

`Pager` is the state (token, pages seen) for loops that must do something between pages (yield a
checkpoint holding the token); `pages()` is the loop itself for everything else. `cursor`,
`page_token` and `next_link` read the next token out of each service's page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from inlet.errors import RetriableError
from inlet.logs import shown_url

P = TypeVar("P")


class StuckTokenError(RetriableError):
    """A service answered a page with a token it had already given in this listing."""


class Pager:
    """The position in one listing: `token` is the page to request next (None: the first). Saved in
    a checkpoint, it must be a token the service keeps (a cursor, a next link), or a stable key (the
    last id read): a page number or offset resumed after items before it were deleted skips items
    for good (the conformance suite's `check_resuming_a_full_pass_after_a_deletion_loses_nothing`)."""

    def __init__(self, *, source: str, what: str, token: str | None = None) -> None:
        self.source, self.what = source, what
        self.token = token
        self.done = False
        self.pages = 0
        self._seen: dict[str, int] = {token: 0} if token else {}  # token -> the page that gave it (0: resumed)

    def advance(self, next_token: str | None) -> bool:
        """Move past a page whose next token is `next_token`; False when that was the last page."""
        self.pages += 1
        if not next_token:
            self.done = True
            return False
        if next_token in self._seen:
            first = self._seen[next_token]
            before = f"page {first}" if first else "the page this listing resumed from"
            raise StuckTokenError(
                f"source {self.source!r}: {self.what} answered the same page token twice "
                f"(page {self.pages} gave {_shown(next_token)}, as {before} did); the listing stopped "
                "so as not to loop for ever"
            )
        self._seen[next_token] = self.pages
        self.token = next_token
        return True


def _shown(token: str) -> str:
    """A page token as an error shows it: a next link without its query's values (a token may be
    written there: `shown_url`), a cursor by its first 40 characters."""
    if "://" in token or token.startswith("/") or "?" in token:
        return shown_url(token, query_names=True)
    return repr(token[:40])


def pages(
    fetch: Callable[[str | None], P],
    next_token: Callable[[P], str | None],
    *,
    source: str,
    what: str,
    token: str | None = None,
) -> Iterator[P]:
    """Every page of a listing: `fetch(token)` gets one page, `next_token(page)` reads the next token."""
    pager = Pager(source=source, what=what, token=token)
    while True:
        page = fetch(pager.token)
        yield page
        if not pager.advance(next_token(page)):
            return


def cursor(page: Mapping[str, Any]) -> str | None:
    """Slack: `response_metadata.next_cursor` ('' on the last page)."""
    return (page.get("response_metadata") or {}).get("next_cursor") or None


def page_token(page: Mapping[str, Any]) -> str | None:
    """Google: `nextPageToken` (absent on the last page)."""
    return page.get("nextPageToken") or None


def next_link(page: Mapping[str, Any]) -> str | None:
    """Microsoft Graph: `@odata.nextLink` (absent on the last page, which may carry a deltaLink)."""
    return page.get("@odata.nextLink") or None
