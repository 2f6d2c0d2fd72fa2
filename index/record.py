"""The owner of an open index's embedding record and of the Chroma collection it names.

Only this object changes either: a write follows a record another process changed (`follow`), a
write during a reindex sends the sources it touches back to the reindex's queue (`invalidate`), and
`inlet reindex` saves its progress and switches collections through `save` and `use`. Every change
of the record is written before it is believed: a write refused because another process wrote
first (`RecordChanged`) leaves this object holding the record as it now stands. Every collection
comes from its one Chroma client, opened by `open` and released by `close` (the index's).

A process that serves (`inlet daemon`, `inlet serve`) opens with `wait`: a Chroma server that
cannot be reached then is an outage it rides out, as one that stops later: the index opens without
its vectors (`waiting` says why), every use of them tries the server again (`collection`), failing
with `IndexUnavailable` as during an outage, and the first that reaches it opens the collection the
record names by then (an `inlet reindex` elsewhere may have switched it meanwhile) with the checks
an opening makes (`vectors.check_held`). A use never waits on another thread's attempt.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from inlet.errors import IndexUnavailable, VectorsLost
from inlet.logs import shown_url
from inlet.storage.records import Record, RecordChanged, Records

from . import fingerprint, vectors

log = logging.getLogger(__name__)


class RecordKeeper:
    """`record` and `collection` of one open index; `reindexing` allows a record of another model."""

    def __init__(
        self,
        records: Records,
        path: Path,
        chroma_url: str | None,
        model: dict[str, str],
        has_documents: bool,
        reindexing: bool = False,
        ef_search: int = vectors.DEFAULT_EF_SEARCH,
        chunks: int = 0,
    ) -> None:
        self.records = records
        self.path = path
        self.chroma_url = chroma_url
        self.ef_search = ef_search
        self.model = model
        self.reindexing = reindexing
        self.chunks = chunks  # the catalog's settled chunks at opening: the vectors its collection must hold
        self.lost = False  # the live collection was found lost (`open`); only a reindex opens it so
        self.record = fingerprint.establish(records, model, has_documents)
        if not reindexing:
            fingerprint.check(records.where, self.record, model)
        self._collection: Any = None
        self.client: Any = None  # the Chroma client, from `open` to `close`
        self.waiting: str | None = None  # why the Chroma server was not reached yet (`open(wait=True)`)
        self._reaching = threading.Lock()  # one attempt at a time to reach it (`_reach`)

    @property
    def where(self) -> str:
        return self.records.where

    @property
    def collection(self) -> Any:
        """The live collection. While the Chroma server has not been reached since the index opened
        (`waiting`), each use tries it again (`_reach`): `IndexUnavailable` until it answers."""
        if self.waiting is not None:
            self._reach()
        return self._collection

    @collection.setter
    def collection(self, collection: Any) -> None:
        self._collection = collection

    def open(self, wait: bool = False) -> None:
        """Connect to Chroma and open the collection the record names (Chroma is imported here,
        not at construction). A Chroma server or folder that lost it (`vectors.check_held`) is refused, unless
        this is `inlet reindex` (noted in `lost`: it embeds the chunks again) or a restore is under
        way (a reindex to the record's own model: the collection fills as it goes). A folder's
        Chroma, which its index lock gives to this process alone, first loses the folders of
        collections deleted before (`vectors.remove_unused_segments`: an earlier release's reindex
        left them, and every backup copied them). With `wait`, a Chroma server that cannot be
        reached is tried again by each use of the vectors (`waiting`, logged once here)."""
        try:
            self._connect()
        except VectorsLost:
            raise
        except IndexUnavailable as exc:
            if not wait:
                raise
            self.waiting = str(exc)
            log.warning(
                "%s; starting without it: runs fail and searches answer 503 until it answers (tried again on each use)",
                exc,
            )

    def _connect(self) -> None:
        """Connect, check and open the collection (`open`); a failure keeps no client."""
        client = vectors.connect(self.path, self.chroma_url)
        try:
            if self.chroma_url is None:
                vectors.remove_unused_segments(client)
            pending = self.record.pending
            restoring = (
                pending is not None and pending.model == self.record.model and pending.backend == self.record.backend
            )
            try:
                vectors.check_held(client, self.chroma_url, self.record.collection, self.chunks)
            except VectorsLost:
                if not (self.reindexing or restoring):
                    raise
                self.lost = True
            collection = vectors.open_collection(
                client, self.chroma_url, self.record.collection, ef_search=self.ef_search
            )
        except BaseException:
            vectors.disconnect(client)
            raise
        self.client, self._collection = client, collection

    def _reach(self) -> None:
        """Try the Chroma server not reached yet once more, for the collection of the record as it
        stands now (`IndexUnavailable` until it answers; `VectorsLost` if it answers without the
        index's vectors). While another thread tries,
        fail at once with the last reason, rather than wait on its attempt."""
        if not self._reaching.acquire(blocking=False):
            raise IndexUnavailable(self.waiting or "the Chroma server ([index] chroma_url) is being reached")
        try:
            if self.waiting is None:  # reached by another thread meanwhile
                return
            try:
                self._take_up()
                self._connect()
            except VectorsLost:
                raise
            except IndexUnavailable as exc:
                self.waiting = str(exc)
                raise
            self.waiting = None
            log.info(
                "the Chroma server at %s ([index] chroma_url) answers: the vectors are open",
                shown_url(self.chroma_url or ""),
            )
        finally:
            self._reaching.release()

    def _take_up(self) -> None:
        """Hold the record as it stands now (`Records.changed`), before the collection it names is
        opened: a reindex elsewhere may have switched it while the Chroma server was not reached."""
        record = self.records.changed()
        if record is not None:
            self.record = record
        if not self.reindexing:
            fingerprint.check(self.records.where, self.record, self.model)

    def close(self) -> None:
        """Release the Chroma client (its files or connections); only the first call does anything."""
        client, self.client = self.client, None
        if client is not None:
            vectors.disconnect(client)

    def open_collection(self, name: str) -> Any:
        return vectors.open_collection(self.client, self.chroma_url, name, ef_search=self.ef_search)

    def drop_collection(self, name: str) -> None:
        vectors.drop_collection(self.client, self.chroma_url, name)

    def follow(self) -> None:
        """Before a write to a shared database: take up a record another process changed (a
        reindex started, advanced or switched), and refuse to write vectors of another model.
        A Chroma server not reached yet is tried first, for the record as it stands (`_reach`):
        while it cannot be reached, nothing is written."""
        if self.waiting is not None:
            self._reach()
        record = self.records.changed()
        if record is not None:
            if record.collection != self.record.collection:
                self.collection = self.open_collection(record.collection)
            self.record = record
        if not self.reindexing:
            fingerprint.check(self.records.where, self.record, self.model)

    def save(self, record: Record) -> bool:
        """Write `record` and hold it; False if another process wrote first (the record is then re-read)."""
        try:
            self.records.write(record)
            self.record = record
            return True
        except RecordChanged:
            current = self.records.read()
            assert current is not None  # established when the index opened; never deleted
            self.record = current
            return False

    def use(self, collection: Any) -> None:
        """Serve from `collection` (the one a completed reindex switched the record to)."""
        self.collection = collection

    def invalidate(self, sources: set[str] | None) -> None:
        """A write with the old setting during a reindex: the touched sources (None: all) are redone."""
        while True:
            pending = self.record.pending
            if pending is None:
                return
            hit = [s for s in [*pending.done, pending.source] if s and (sources is None or s in sources)]
            if not hit:
                return
            collection = self.open_collection(pending.collection)
            for source in hit:
                collection.delete(where={"source": source})
            pending.done = [s for s in pending.done if s not in hit]
            if pending.source in hit:
                pending.source = pending.cursor = None
            if self.save(self.record):
                return
