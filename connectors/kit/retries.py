"""Items whose read failed, remembered in a checkpoint and read again by every later run.

Invariants:
- A failed read (a failed `Skipped`) keeps the version indexed before; a change feed that moves
  past the item would never report it again. So a connector notes each item's outcome
  (`Retries.note`) in the same checkpoint as the feed's position: an item whose read failed is
  remembered by its native id, with the reason, its title and how many reads failed in a row.
- Each later whole run (`load`; an event's scoped run, `load_scope`, leaves them to it, so the
  change it announces is not held up by their retries) reads every remembered item again first
  (`Retries.replay`, through the connector's own read of one item by id) and notes what it gave:
  a `Document` or a skip by policy forgets it (yielded as usual), a `Deletion` (gone: 404) forgets
  it, another failed `Skipped` counts one attempt more. A read that yields nothing of the item
  (out of scope now) forgets it.
- After `GIVE_UP_AFTER` failed reads in a row the item is no longer read by a replay, but never
  silently dropped: every run yields its failed `Skipped` again (the run stays `partial`, the
  operator sees it in `inlet status`, the indexed version is kept), at its replay or, for a
  connector that learns of deletions during the run, at the run's end (`given_up`), so the run
  that deletes the item no longer reports it. It is read again, and forgotten
  once readable, when the change feed reports it (the engine then drops the run's stale failed
  skip: the run that reads it is not `partial` for it), or by a new backfill
  (`inlet backfill SOURCE`), which starts from an empty checkpoint.
- A read of one item (a file's download, a message's attachments, a thread's replies, a channel's
  members) that still answers a server error (a 5xx, a 429, a broken connection) once the
  transport's retries are spent is that item's failure, not the service's: the run's `Outage` turns
  it into the reason of the item's failed skip ("NAME: the call and the answer"), which the
  connector notes here as any failed read. Only when `OUTAGE_AFTER` reads in a row fail so, with
  no read between them that succeeds, is the service taken for down (a replay's read of an item
  that failed in an earlier run is not counted: such items are read back to back, and their
  failing again says nothing new of the service): the run fails with a
  `RetriableError` naming the source, the count and the last item and call, and the next run
  resumes from its checkpoint. A read that fails while the run is stopping ends the run too (its
  retries were cut short: no verdict on the item).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from pydantic import BaseModel, Field, PrivateAttr

from inlet.errors import RetriableError

from ..model import Item, Skipped
from .retry import stopping

GIVE_UP_AFTER = 5  # failed reads in a row before replays stop reading an item
OUTAGE_AFTER = 3  # items in a row whose reads keep answering server errors: the service is down, not the items

T = TypeVar("T", bound=Item)


class Failure(BaseModel):
    """The last failed read of one item."""

    id: str  # the document id its `Skipped` carried
    reason: str
    title: str | None = None
    attempts: int = 1  # failed reads in a row

    def skipped(self) -> Skipped:
        """The failed skip a run yields for an item given up on."""
        return Skipped(
            id=self.id,
            title=self.title,
            reason=f"{self.reason} (not read again after {self.attempts} failed reads: it is read when "
            "the source reports a change to it, or by `inlet backfill`)",
        )


class Retries(BaseModel):
    """A checkpoint field: native id -> the last failed read of that item."""

    failed: dict[str, Failure] = Field(default_factory=dict)
    _deferred: list[str] = PrivateAttr(default_factory=list)  # given up on, left by `replay` to `given_up`

    def note(self, native_id: str, item: T) -> T:
        """What one read of `native_id` gave, returned as is: a failed `Skipped` is remembered (one
        attempt more), anything else (a document, a deletion, a skip by policy) forgets the item."""
        if isinstance(item, Skipped) and item.failed:
            before = self.failed.get(native_id)
            attempts = before.attempts + 1 if before is not None else 1
            self.failed[native_id] = Failure(id=item.id, reason=item.reason, title=item.title, attempts=attempts)
        else:
            self.forget(native_id)
        return item

    def forget(self, native_id: str) -> None:
        """The item was read, or is gone: no read again."""
        self.failed.pop(native_id, None)

    def replay(self, read: Callable[[str], Iterable[Item]], *, given_up_now: bool = True) -> Iterator[Item]:
        """Read every remembered item again with `read` (what one read of that native id yields,
        noted by the connector's usual path); an item given up on yields its failed skip unread,
        here or (`given_up_now=False`) when the connector asks for `given_up` at the run's end."""
        for native_id, before in sorted(self.failed.items()):
            if before.attempts >= GIVE_UP_AFTER:
                if given_up_now:
                    yield before.skipped()
                else:
                    self._deferred.append(native_id)
                continue
            yield from _replaying(read, native_id)
            if self.failed.get(native_id) is before:  # the read said nothing of it: out of scope now
                self.forget(native_id)

    def given_up(self) -> Iterator[Skipped]:
        """The failed skips `replay(given_up_now=False)` left out, of the items still remembered."""
        deferred, self._deferred = self._deferred, []
        for native_id in deferred:
            if native_id in self.failed:
                yield self.failed[native_id].skipped()


# True while an item that failed before is read again: a context variable, so that the reads a
# connector hands to a pool of threads in a copy of its context (Google Drive's) are marked too
_REPLAYING: ContextVar[bool] = ContextVar("inlet_replaying", default=False)


def _replaying(read: Callable[[str], Iterable[Item]], native_id: str) -> Iterator[Item]:
    """What `read(native_id)` yields, marked as a replay while the read runs (not while the
    consumer holds an item: it may read other items meanwhile)."""
    token = _REPLAYING.set(True)
    try:
        items = iter(read(native_id))
    finally:
        _REPLAYING.reset(token)
    while True:
        token = _REPLAYING.set(True)
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            _REPLAYING.reset(token)
        yield item


class Outage:
    """Whether a read that still answers a server error after its retries is its item's failure
    (a failed skip) or the service's (the run fails): `OUTAGE_AFTER` such reads in a row, with no
    successful read between them, are the service's; an item read again in the same run counts
    once, and a replay's read (`Retries.replay`: an item that failed in an earlier run) not at all
    (its failing again says nothing new of the service). One per run; safe across its threads."""

    def __init__(self, source: str, after: int = OUTAGE_AFTER) -> None:
        self.source, self.after = source, after
        self.failing = 0  # reads in a row that failed with a server error
        self._counted: set[str] = set()  # the items whose failure this run counted
        self._lock = threading.Lock()

    def read(self) -> None:
        """An item was read: the service answers."""
        with self._lock:
            self.failing = 0

    def failed(self, item: str, error: Exception) -> str:
        """One read of `item` (its name as a skip shows it: a path, a subject, a title) ended in
        `error`, a server error the retries did not clear (a `RetriableError`, or a `$batch` answer
        still failing); returns its failed skip's reason, "ITEM: WHY". Raises a `RetriableError`
        instead when the run is stopping or this is the `after`-th such read in a row."""
        why = self.detail(error)
        retry_after = getattr(error, "retry_after", None)
        replayed = _REPLAYING.get()
        with self._lock:
            if item not in self._counted and not replayed:
                self._counted.add(item)
                self.failing += 1
            failing = self.failing
        if stopping():
            raise RetriableError(f"source {self.source!r}: {item}: {why}", retry_after) from error
        if failing >= self.after and not replayed:
            raise RetriableError(
                f"source {self.source!r}: {failing} reads in a row kept answering server errors after their "
                f"retries, the last of {item}: {why}; the service looks down, so the run stops here and the "
                "next one resumes from its checkpoint",
                retry_after,
            ) from error
        return f"{item}: {why}"

    def detail(self, error: Exception) -> str:
        """The error's text without the "source 'NAME': " it may start with (a skip names its source)."""
        return str(error).removeprefix(f"source {self.source!r}: ")
