"""Overlapped indexing: one batch is chunked, the one before it embedded and the one before that written, at once.

Run one after another, the stages of a backfill leave the model idle while the connector fetches
and parses, while texts are chunked and while Chroma and the catalog are written. `Pipeline` runs
them side by side: the caller's thread runs the connector and `Index.prepare` (which chunks), one
thread embeds (`Index.embed`), one thread writes (`Index.write`). At most `DEPTH` batches wait
between two stages, so a fast connector cannot run ahead of the model and hold a source in memory.

Order and crash safety are those of a serial run: batches are written in the order they were
submitted, and an action queued with `after` (a checkpoint) runs in the writing thread behind every
batch submitted before it, so a checkpoint is saved only once everything yielded before it is
written. A batch is prepared (its stored state read) only after every earlier batch naming one of
its documents is written, so two versions of a document in one run are applied as they would be
serially. A failure in any stage stops the pipeline; the caller's next `submit`, `after` or `drain`
raises it. A stopping run (`abandon`, or `stopping` turning True) also cuts the batch being chunked
or embedded short, between two slices of its token counts or of its chunks (`Index.prepare`
checks, `Index.embed` reports each): one huge file does not hold a stop for minutes. Only a write
under way still ends.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inlet.connectors.model import ACL, Document
from inlet.storage import Fence
from inlet.index.store import ApplyStats, Index, Prepared

log = logging.getLogger(__name__)

DEPTH = 2  # batches waiting between two stages (memory bound; two keep the model busy)
POLL = 0.2  # seconds between two looks at `stopping` while `drain` waits
_STOP = object()  # tells a stage thread to end


class _Abandoned(Exception):
    """Raised from the progress callback to end an embedding the pipeline no longer wants."""


class Pipeline:
    """Three stages over bounded queues; use as a context manager so its threads always end."""

    def __init__(
        self,
        index: Index,
        write_lock: threading.Lock,
        *,
        on_embedded: Callable[[int], None] | None = None,
        on_written: Callable[[Prepared, ApplyStats], None] | None = None,
        depth: int = DEPTH,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        """`stopping`: True once a stop wants what is under way cut short (asked between units of
        work, from every stage)."""
        self.index = index
        self.stopping = stopping
        self.write_lock = write_lock  # the engine's: one batch at a time into the index, across runs
        self.on_embedded = on_embedded
        self.on_written = on_written
        self._to_embed: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._to_write: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._cond = threading.Condition()
        self._in_flight: Counter[str] = Counter()  # document ids of batches submitted, not yet written
        self._submitted = 0
        self._finished = 0
        self._error: BaseException | None = None
        self._abandoned = False
        self._threads = [
            threading.Thread(target=self._embed_stage, name="inlet-embed", daemon=True),
            threading.Thread(target=self._write_stage, name="inlet-write", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None and not issubclass(kind, Exception):  # Ctrl-C, exit: no more embedding
            self.abandon()
        self.close()

    def submit(
        self,
        docs: Sequence[Document],
        deletions: Sequence[str],
        generation: int,
        fence: Fence | None,
        kept: Mapping[str, ACL | None] | None = None,
    ) -> Prepared | None:
        """Prepare a batch here (chunking it) and hand it on to be embedded and written; `kept`
        as `Index.prepare` takes it. Returns the batch (its `unprepared` documents are the caller's
        to report), or None when a stop dropped it."""
        kept = kept or {}
        ids = {d.id for d in docs} | set(deletions) | set(kept)
        with self._cond:  # an earlier version of one of these documents must be written first
            self._cond.wait_for(lambda: self._error is not None or not any(self._in_flight[i] for i in ids))
            self._raise()
            self._in_flight.update(ids)
        try:
            batch = self.index.prepare(docs, deletions, generation, fence, kept, check=self._check)
        except BaseException as exc:
            with self._cond:
                self._in_flight.subtract(ids)
                self._cond.notify_all()
            if isinstance(exc, _Abandoned):  # dropped with whatever follows: the run resumes before it
                return None
            raise
        self._put(batch)
        return batch

    def after(self, action: Callable[[], None]) -> None:
        """Run `action` in the writing thread once every batch submitted so far is written."""
        self._put(action)

    def drain(self) -> None:
        """Wait until everything submitted is written; raise a stage's failure. Once `stopping`,
        batches not yet embedded are dropped with every checkpoint behind them and the embedding
        under way is cut short (`abandon`); those already embedded are written. A stopping run
        resumes from its last saved checkpoint."""
        with self._cond:
            while not self._cond.wait_for(lambda: self._finished == self._submitted, timeout=POLL):
                self._abandoned = self._abandoned or self._stopping()
            self._raise()

    def abandon(self) -> None:
        """Drop what is not yet embedded, cutting the chunking or embedding under way short."""
        with self._cond:
            self._abandoned = True

    @property
    def abandoned(self) -> bool:
        """Whether batches may have been dropped: the run did not get to its end."""
        return self._abandoned

    def close(self) -> None:
        """End the stage threads once what was submitted is done (or dropped after a failure)."""
        self._to_embed.put(_STOP)
        for thread in self._threads:
            thread.join()

    @property
    def failure(self) -> BaseException | None:
        """A stage's failure, once one failed."""
        return self._error

    def _stopping(self) -> bool:
        return self.stopping is not None and self.stopping()

    def _check(self) -> None:
        """Between two units of work on a batch: `_Abandoned` when a stop wants it dropped."""
        if self._abandoned or self._stopping():
            self._abandoned = True
            raise _Abandoned

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _put(self, item: Any) -> None:
        with self._cond:
            self._raise()
            self._submitted += 1
        self._to_embed.put(item)  # blocks while DEPTH items wait: back-pressure on the connector

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
            self._cond.notify_all()

    def _embed_stage(self) -> None:
        while (item := self._to_embed.get()) is not _STOP:
            if self._abandoned:  # dropped in order: whatever follows a dropped batch is dropped too
                self._done(item)
                continue
            if isinstance(item, Prepared) and self._error is None:
                try:
                    self.index.embed(item, self._embedded)
                except _Abandoned:  # dropped like the batches after it: the run resumes before it
                    self._done(item)
                    continue
                except BaseException as exc:  # handed to the caller, who raises it
                    self._fail(exc)
            self._to_write.put(item)
        self._to_write.put(_STOP)

    def _embedded(self, count: int) -> None:
        """Progress of the batch being embedded; where a stop cuts it short."""
        self._check()
        if self.on_embedded is not None:
            self.on_embedded(count)

    def _write_stage(self) -> None:
        while (item := self._to_write.get()) is not _STOP:
            try:
                if self._error is None:  # after a failure, later batches and checkpoints are dropped
                    self._write(item)
            except BaseException as exc:
                self._fail(exc)
            finally:
                self._done(item)

    def _done(self, item: Any) -> None:
        with self._cond:
            if isinstance(item, Prepared):
                self._in_flight.subtract(item.doc_ids)
            self._finished += 1
            self._cond.notify_all()

    def _write(self, item: Any) -> None:
        if not isinstance(item, Prepared):
            item()
            return
        with self.write_lock:
            stats = self.index.write(item)
        if self.on_written is not None:
            self.on_written(item, stats)
