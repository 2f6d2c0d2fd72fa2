"""The retrieval operations behind both the HTTP routes and the MCP tools.

Plain synchronous functions over one shared, already-open `Index`: callers on an event loop run
them in a worker thread (embedding a query and scoring are CPU-bound). The ACL is applied inside
the index queries (`SearchRequest.user`, `Index.document(principals)`), never after the fact.
Every title, passage, author and text field of a result or a document comes `readable`
(`index.clean`), its link `readable_url`, from the index itself (`index.search.answer`,
`Index.document`): the API, MCP, the local channel, the command line and the demo hand out the same.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from inlet.connectors.model import principals_for
from inlet.errors import EmbeddingMismatchError, IndexUnavailable, UnknownFilterError
from inlet.index.search import Answer, Configured, SearchRequest, answer, checked
from inlet.index.store import Index

from .auth import Caller
from .context import Packed, pack
from .errors import ApiError

log = logging.getLogger(__name__)
READY_CHECK_EVERY = 1.0  # seconds a readiness check of the index's servers is reused (probes need no key)
READY_WAIT = 2.0  # seconds of a check in flight after which other callers are told the server is not answering


class Retrieval:
    """Search, context packing and document lookup for a caller."""

    def __init__(self, index: Index | None = None, configured: Configured | None = None) -> None:
        self.index = index
        self.configured = configured or Configured()  # the deployment's source names and types, valid in filters
        self.ready = threading.Event()
        self.error: str | None = None
        self._check = threading.Lock()
        self._checked_at = -READY_CHECK_EVERY
        self._checking: float | None = None  # time.monotonic() of the check in flight
        self._unreachable: str | None = None

    def warm(self) -> None:
        """Load the model (one encode) so the first query does not pay for it; then ready."""
        assert self.index is not None
        self.index.embedder.encode(["warm up"])
        self.index.embedder.encode_query("warm up")  # queries have a session of their own
        self.ready.set()

    def unreachable(self) -> str | None:
        """Why the loaded index cannot serve now (its database or its Chroma server does not
        answer, that server lost its vectors, or they are of another model), else None:
        checked at most once every `READY_CHECK_EVERY` by one caller at a time, logged when it
        changes. Others do not wait for a check in flight: they get the last answer, or, once the
        check has waited `READY_WAIT`, that the server is not answering."""
        index = self._index()
        now = time.monotonic()
        with self._check:
            if self._checking is not None:
                if now - self._checking > READY_WAIT:
                    waited = now - self._checking
                    return f"the index (database, Chroma server) has not answered its heartbeat for {waited:.0f}s"
                return self._unreachable
            if now - self._checked_at < READY_CHECK_EVERY:
                return self._unreachable
            self._checking = now
        try:
            index.check_reachable()
            reason = None
        except (IndexUnavailable, EmbeddingMismatchError) as exc:  # a reindex elsewhere switched to another model
            reason = str(exc)
        with self._check:
            if reason != self._unreachable:
                log.log(logging.ERROR if reason else logging.INFO, "%s", reason or "the index is reachable again")
            self._unreachable, self._checked_at, self._checking = reason, time.monotonic(), None
        return reason

    def _index(self) -> Index:
        if self.index is None or not self.ready.is_set():
            raise ApiError(503, "not_ready", self.error or "the index and model are still loading")
        return self.index

    def answer(self, request: SearchRequest) -> Answer:
        """The results with their relevance, the match and what the query was understood to ask."""
        index = self._index()
        request = self._checked(index, request)
        with index.embedder.budget.admit():  # a backfill in this process keeps its share of the cores
            return answer(index, request)

    def _checked(self, index: Index, request: SearchRequest) -> SearchRequest:
        """`request` with its filters checked (`checked`); a 422 `invalid_request` naming an unknown
        source or source type and the valid ones."""
        try:
            return checked(index, request, self.configured)
        except UnknownFilterError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None

    def context(self, request: SearchRequest, budget: int, min_relevance: float = 0.0) -> tuple[Packed, Answer]:
        """The results at or above `min_relevance` packed under `budget`, and the search's answer
        (its match is "none" when no result qualified, whether or not the budget held any). An
        answer judged "none" as a whole (the question names what the index lacks) packs nothing
        unless the caller lowered the floor."""
        started = time.perf_counter()
        index = self._index()
        request = self._checked(index, request)
        with index.embedder.budget.admit():
            got = answer(index, request)
        qualifying = got.qualifying(min_relevance)
        packed = pack(qualifying, budget, index.embedder.count_tokens)
        match = got.match if qualifying else "none"
        return packed, Answer(got.hits, match, got.interpreted, (time.perf_counter() - started) * 1000)

    def document(self, doc_id: str, caller: Caller) -> Any:
        """The document, or None when absent or not visible to the caller (indistinguishable)."""
        principals = principals_for(caller.user)
        return self._index().document(doc_id, tuple(principals) if principals is not None else None)

    def counts(self) -> dict[str, tuple[int, int]]:
        return self.index.catalog.counts() if self.index is not None else {}
