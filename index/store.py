"""The index: Chroma vectors + the catalog (documents, BM25, ACL; `inlet.storage`), kept in step.

`apply()` is the only write path. Per document it decides the cheapest correct action: a new or
changed text is chunked and embedded; a change of ACL or metadata alone rewrites chunk metadata
with no embedding; an unchanged document is only marked as seen. (`forget` deletes a whole source
through it.)

An index opened with the configured source names (`configured`) never serves documents of other
sources (`unserved`: removed or renamed in the config, their content and ACLs frozen since): the
dense, BM25 and exact-match retrievals, the newest documents (`newest`), `document` (a fetch),
the sources a caller may name, the people a question may be about and the terms a caller may
learn are held leave them out, until `inlet forget` deletes them. (The query interpreter's
vocabulary of people and source types still counts them; a person is understood only when a
served document names them.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.errors import VectorsLost
from inlet.storage import CatalogStore, Commit, Fence, Filters, StoredDoc, chunk_id, open_backend
from inlet.storage.lock import FileLock, lock_index
from inlet.storage.private import private_files
from inlet.storage.records import Record
from inlet.storage.types import chunk_doc_id, doc_ts

from . import dedup, vectors
from .chunking import TokenCounter, chunk_text
from .clean import plain, readable, readable_url, readable_values
from .embedding import Embedder
from .record import RecordKeeper
from .vectors import chunk_rows

log = logging.getLogger(__name__)
CHROMA_SLICE = 4096  # ids per Chroma call (its batches are bounded)
DENSE_OVERFETCH = 4  # unfiltered neighbours fetched per wanted result before falling back to a filtered query
SOURCES_TTL = 60.0  # seconds a search trusts its list of the catalog's sources (another host may add one)
FORGET_BATCH = 500  # documents deleted per write when a source is forgotten (an interruption keeps the rest)


@dataclass
class ApplyStats:
    upserted: int = 0  # documents written (new, changed text, or changed metadata/ACL)
    deleted: int = 0
    unchanged: int = 0
    embedded_chunks: int = 0  # chunks run through the model
    reused_chunks: int = 0  # chunks whose text had a stored vector (see `dedup`)

    def add(self, other: "ApplyStats") -> None:
        self.upserted += other.upserted
        self.deleted += other.deleted
        self.unchanged += other.unchanged
        self.embedded_chunks += other.embedded_chunks
        self.reused_chunks += other.reused_chunks


@dataclass
class Prepared:
    """One batch between `Index.prepare` and `Index.write`: what to do per document, the chunks
    to embed and, once `Index.embed` ran, their vectors."""

    generation: int
    fence: Fence | None
    stored: dict[str, StoredDoc]
    latest: dict[str, Document]
    deleted: list[str]
    held: list[str] = field(default_factory=list)  # kept as they are (failed skips): in flight too
    embed: list[Document] = field(default_factory=list)
    meta: list[Document] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    texts: dict[str, list[str]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    metas: list[dict] = field(default_factory=list)
    embeddings: Any = None
    keys: list[str] = field(default_factory=list)
    embedded: int = 0  # chunks run through the model (the rest reused a stored vector)
    unprepared: list["Unprepared"] = field(default_factory=list)  # in `held` too: kept as they are

    @property
    def doc_ids(self) -> set[str]:
        return set(self.latest) | set(self.deleted) | set(self.held)


@dataclass(frozen=True)
class Unprepared:
    """A document of a batch that could not be prepared (`Index.prepare`), and why: the caller
    counts it as the item's failed skip."""

    doc_id: str
    title: str
    error: Exception

    @property
    def reason(self) -> str:
        return f"could not be indexed: {type(self.error).__name__}: {self.error}"


def _marks(batch: Prepared, gone: list[str]) -> list[tuple[str, str, int]]:
    """(doc id, source, chunk ids that may be in Chroma) of each document whose vectors the write
    touches: new texts (as many chunks as the longer of old and new), new metadata, deletions."""
    stored = batch.stored
    old = {d: s.chunks for d, s in stored.items()}
    rows = [(d.id, d.source, max(len(batch.texts[d.id]), old.get(d.id, 0))) for d in batch.embed]
    rows += [(d.id, d.source, old[d.id]) for d in batch.meta]
    rows += [(d, stored[d].source, old[d]) for d in gone]
    return rows


@dataclass
class Repaired:
    """What `Index.repair` did."""

    documents: int = 0  # documents whose half-written vectors it settled
    embedded_chunks: int = 0  # chunks it ran through the model (the others kept or reused a vector)


def _picked(positions: list[int], ids: list[str], metas: list[dict]) -> tuple[list[str], list[dict]]:
    """The ids and metadata at `positions`."""
    return [ids[n] for n in positions], [metas[n] for n in positions]


def _slices(total: int) -> list[slice]:
    """Consecutive slices of at most CHROMA_SLICE over `total` items."""
    return [slice(start, start + CHROMA_SLICE) for start in range(0, total, CHROMA_SLICE)]


def _checked(count: TokenCounter, check: Callable[[], None] | None) -> TokenCounter:
    """`count`, with `check()` (when given) first on every call."""
    if check is None:
        return count

    def counted(texts: Sequence[str]) -> list[int]:
        check()
        return count(texts)

    return counted


class _Check:
    """`check` (when given), remembering whether it raised: a stop ends a preparation, it never
    makes a document unprepared."""

    def __init__(self, check: Callable[[], None] | None) -> None:
        self.check = check
        self.raised = False

    def __call__(self) -> None:
        if self.check is None:
            return
        try:
            self.check()
        except BaseException:
            self.raised = True
            raise


class Index:
    """Open one per process (`Index.open`); thread-safe for concurrent searches and one writer.
    `wait_for_chroma` (a daemon, `inlet serve`): a Chroma server that cannot be reached at opening
    is ridden out as an outage (`RecordKeeper.open`), not refused."""

    def __init__(
        self,
        config: IndexConfig,
        embedder: Embedder | None = None,
        *,
        lock: bool = True,
        reindexing: bool = False,
        configured: Collection[str] | None = None,
        wait_for_chroma: bool = False,
        **lock_info: object,
    ) -> None:
        self.config = config
        self.path = Path(config.path)
        # the sources the configuration names (None: serve every source, as the tools copying an index do)
        self.configured = frozenset(configured) if configured is not None else None
        self._unserved: tuple[tuple[str, ...], float] = ((), -SOURCES_TTL)
        backend = open_backend(config)
        backend.open_folder()
        with private_files():
            self._lock: FileLock | None = lock_index(self.path, **lock_info) if lock and not config.chroma_url else None
        self._writing = threading.RLock()  # a write, and the reads that must not see half of one
        try:  # a refused catalog (a newer schema) lets go of the folder: the process may open it again
            self.embedder = embedder or Embedder(config.model, config.batch_size, config.backend, config.device)
            with private_files():
                self.catalog: CatalogStore = backend.catalog()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        try:  # the vectors must come from the configured model and backend (`reindexing` re-makes them)
            with private_files():
                counts = self.catalog.counts()
                self.keeper = RecordKeeper(
                    self.catalog.records(),
                    self.path,
                    config.chroma_url,
                    self.embedder.fingerprint,
                    bool(counts),
                    reindexing,
                    ef_search=config.ef_search,
                    chunks=self._settled_chunks(counts),
                )
                self.keeper.open(wait=wait_for_chroma)
        except BaseException:
            self.close()
            raise

    def _settled_chunks(self, counts: Mapping[str, tuple[int, int]]) -> int:
        """The catalog's chunks but those of documents a write marked and has not settled (killed
        between Chroma and the catalog, or under way elsewhere): Chroma must hold a vector for each."""
        marked = sum(chunks for source in counts for _, chunks in self.catalog.unsettled(source))
        return max(0, sum(chunks for _, chunks in counts.values()) - marked)

    @property
    def record(self) -> Record:
        """The embedding record this index follows (owned by `keeper`)."""
        return self.keeper.record

    @property
    def collection(self) -> Any:
        """The Chroma collection of the live vectors (owned by `keeper`)."""
        return self.keeper.collection

    def check_reachable(self) -> None:
        """Raise `IndexUnavailable` when the database of the catalog (with `database_url`) or the
        Chroma server holding the vectors does not answer, `VectorsLost` when that server lost the
        collection a search would use (a reindex elsewhere that switched it is followed first, as
        a search does)."""
        self.catalog.check_reachable()
        try:
            vectors.check_reachable(self.collection)
        except VectorsLost:
            self.keeper.follow()
            vectors.check_reachable(self.collection)

    def close(self) -> None:
        if hasattr(self, "keeper"):  # absent when the record refused the configured model
            self.keeper.close()
        self.catalog.close()
        if self._lock:
            self._lock.release()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------------
    def chunk(self, doc: Document) -> list[str]:
        return self._chunks(plain(doc))

    def _chunks(self, doc: Document, check: Callable[[], None] | None = None) -> list[str]:
        """The chunks of a plain-text `doc`; `check` is called before each slice of token counting."""
        count = _checked(self.embedder.count_tokens, check)
        chunks = chunk_text(doc.text, count, self.config.chunk_tokens, self.config.chunk_overlap)
        return [c.text for c in chunks] or ([doc.title] if doc.title else [])

    def apply(
        self,
        docs: Sequence[Document],
        deletions: Sequence[str] = (),
        generation: int = 0,
        fence: Fence | None = None,
        on_embedded: Callable[[int], None] | None = None,
    ) -> ApplyStats:
        """Write a batch; `on_embedded(n)` is told of chunks as they are embedded (progress).

        The three stages (`prepare`, `embed`, `write`) may also run in different threads, one batch
        in each (`inlet.sync.pipeline`), as long as a batch is prepared only after every earlier
        batch touching the same documents is written."""
        batch = self.prepare(docs, deletions, generation, fence)
        if batch.unprepared:  # no caller here to list it as a skip
            raise batch.unprepared[0].error
        self.embed(batch, on_embedded)
        return self.write(batch)

    def prepare(
        self,
        docs: Sequence[Document],
        deletions: Sequence[str] = (),
        generation: int = 0,
        fence: Fence | None = None,
        kept: Mapping[str, ACL | None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> "Prepared":
        """Decide per document what the batch needs (embed, rewrite metadata, mark seen, delete)
        and chunk the texts to embed. `kept`: documents the source still has but could not read
        this time (a failed skip), marked seen as they are, so a full pass does not prune them;
        one given an ACL (its permissions were read) takes it, its text and vectors kept. `check`
        is called between units of chunking: what it raises (a stop) ends the preparation. A
        document that cannot be prepared (any other exception while it is cleaned, hashed or
        chunked) is kept as a failed skip is, and listed in `Prepared.unprepared`: the rest of the
        batch goes on."""
        latest = {d.id: d for d in docs}  # last version wins within a batch
        deleted = [d for d in dict.fromkeys(deletions) if d not in latest]
        kept = kept or {}
        held = [d for d in kept if d not in latest and d not in deleted]
        stored = self.catalog.stored(list(latest) + deleted + held)
        batch = Prepared(generation, fence, stored, {}, deleted, held)
        acls = {d: acl for d in held if d in stored and (acl := kept[d]) is not None}
        batch.meta += [doc for doc in self._relabelled(acls) if doc.meta_hash() != stored[doc.id].meta_hash]
        relabelled = {doc.id for doc in batch.meta}
        batch.same += [d for d in held if d in stored and d not in relabelled]
        checking = _Check(check)
        for doc in latest.values():
            try:
                self._add(batch, plain(doc), checking)
            except Exception as exc:
                if checking.raised:  # a stop, not this document
                    raise
                log.debug("document %s could not be prepared", doc.id, exc_info=True)
                batch.unprepared.append(Unprepared(doc.id, doc.title, exc))
                batch.held.append(doc.id)
                if doc.id in stored:
                    batch.same.append(doc.id)  # kept as indexed before, and seen
        batch.keys = [meta[vectors.KEY] for meta in batch.metas]
        return batch

    def _add(self, batch: "Prepared", doc: Document, check: Callable[[], None]) -> None:
        """Add plain-text `doc` to `batch` as what it needs (embed, rewrite metadata, mark seen),
        its chunks and their rows; nothing of it when this raises."""
        old = batch.stored.get(doc.id)
        if old is not None and old.content_hash == doc.content_hash():
            if old.meta_hash != doc.meta_hash():
                batch.meta.append(doc)
            else:
                batch.same.append(doc.id)
            batch.latest[doc.id] = doc
            return
        texts = self._chunks(doc, check)
        ids, inputs, metas = chunk_rows([doc], {doc.id: texts}, self.embedder.fingerprint)
        batch.latest[doc.id] = doc
        batch.embed.append(doc)
        batch.texts[doc.id] = texts
        batch.ids += ids
        batch.inputs += inputs
        batch.metas += metas

    def _relabelled(self, acls: Mapping[str, ACL]) -> list[Document]:
        """The stored documents `acls` names, each with its new ACL."""
        if not acls:
            return []
        return [doc.model_copy(update={"acl": acls[d]}) for d, doc in self.catalog.documents(acls).items()]

    def embed(self, batch: "Prepared", on_embedded: Callable[[int], None] | None = None) -> None:
        """The vectors of the batch's chunks (reused where the same text was embedded before)."""
        if not batch.ids:
            return
        batch.embeddings, batch.embedded = dedup.embed_distinct(
            batch.inputs,
            batch.keys,
            self.catalog.keyed_chunks,
            lambda ids: self.collection.get(ids=ids, include=["embeddings"]),
            lambda t: self._encode(t, on_embedded),
            guard=self._writing,
        )
        if on_embedded and len(batch.inputs) > batch.embedded:
            on_embedded(len(batch.inputs) - batch.embedded)  # reused vectors move the progress too

    def write(self, batch: "Prepared") -> ApplyStats:
        """Chroma first, then the catalog (a crash between the two re-embeds on resume)."""
        with self._writing:
            return self._write(batch)

    def _write(self, batch: "Prepared") -> ApplyStats:
        stats = ApplyStats()
        embed, meta, stored = batch.embed, batch.meta, batch.stored
        self.keeper.follow()
        if self.record.pending:  # a reindex under way must redo what this batch changes
            self.keeper.invalidate({d.source for d in batch.latest.values()} if not batch.deleted else None)
        gone = [d for d in batch.deleted if d in stored]
        marked = _marks(batch, gone)
        if marked:  # before Chroma is touched; the commit checks the fence: a lost lease writes no vectors
            self.catalog.commit(Commit(fence=batch.fence, marked=marked))
        keys = self._write_vectors(batch)
        self._write_metadata(meta, stored)
        self._delete_vectors([stored[d] for d in gone])
        self.catalog.commit(
            Commit(
                batch.generation,
                [(d, batch.texts[d.id]) for d in embed],
                meta,
                batch.same,
                gone,
                batch.fence,
                keys,
                settled=[m[0] for m in marked],
            )
        )
        stats.upserted = len(embed) + len(meta)
        stats.unchanged = len(batch.same)
        stats.deleted = len(gone)
        stats.embedded_chunks = batch.embedded
        stats.reused_chunks = len(keys) - batch.embedded
        return stats

    def repair(self, source: str, fence: Fence | None = None) -> "Repaired":
        """Settle the writes of `source` that stopped between Chroma and the catalog (a killed
        process).

        Vectors go to Chroma before the catalog commits, so a crash in between leaves vectors the
        catalog does not name (the document's next version usually overwrites them, but not when it
        was deleted or changed back before the resume), vectors of a text the catalog does not hold,
        or metadata (an ACL) it does not hold. Each write marks its documents first (`vector_writes`).
        Here a chunk whose vector's key (`vectors.KEY`) is the key of the catalog's text keeps its
        vector (its metadata rewritten if it differs); the others get one by `dedup` (never from a
        marked document) or the model; chunks the catalog does not have are deleted. Run by the
        source's lease holder before it writes: no other write of the source is under way."""
        unsettled = self.catalog.unsettled(source)
        if not unsettled:
            return Repaired()
        with self._writing:
            self.keeper.follow()
            if self.record.pending:
                self.keeper.invalidate({source})
            ids, inputs, metas = self._catalog_rows([d for d, _ in unsettled])
            held = self._chroma_metadata([chunk_id(d, n) for d, chunks in unsettled for n in range(chunks)])
            wrong = [n for n, i in enumerate(ids) if held.get(i, {}).get(vectors.KEY) != metas[n][vectors.KEY]]
            relabel = sorted(set(range(len(ids))) - set(wrong))
            self._update_metadata(*_picked([n for n in relabel if held[ids[n]] != metas[n]], ids, metas))
            embedded = self._rewrite(*_picked(wrong, ids, metas), [inputs[n] for n in wrong])
            self._delete_ids(sorted(held.keys() - set(ids)))
            self.catalog.commit(Commit(fence=fence, settled=[d for d, _ in unsettled]))
        log.warning(
            "source %r: an interrupted run left the vectors of %d documents half-written; they were "
            "settled from the catalog (%d of their %d chunks embedded again, the rest kept)",
            source,
            len(unsettled),
            embedded,
            len(ids),
        )
        return Repaired(len(unsettled), embedded)

    def _catalog_rows(self, doc_ids: list[str]) -> tuple[list[str], list[str], list[dict]]:
        """`chunk_rows` of the documents the catalog holds among `doc_ids`, from its stored texts."""
        stored = self.catalog.stored(doc_ids)
        docs = list(self.catalog.documents(stored).values())
        texts = self.catalog.chunk_texts(chunk_id(d.id, n) for d in docs for n in range(stored[d.id].chunks))
        by_doc = {d.id: [texts[chunk_id(d.id, n)] for n in range(stored[d.id].chunks)] for d in docs}
        return chunk_rows(docs, by_doc, self.embedder.fingerprint)

    def _chroma_metadata(self, ids: list[str]) -> dict[str, dict]:
        """chunk id -> its metadata in Chroma, for the `ids` Chroma holds."""
        got = [self.collection.get(ids=ids[part], include=["metadatas"]) for part in _slices(len(ids))]
        return {i: dict(meta or {}) for answer in got for i, meta in zip(answer["ids"], answer["metadatas"])}

    def _rewrite(self, ids: list[str], metas: list[dict], inputs: list[str]) -> int:
        """Upsert the chunks' vectors (reused by `dedup` where it can); returns how many were embedded."""
        if not ids:
            return 0
        embeddings, embedded = dedup.embed_distinct(
            inputs,
            [meta[vectors.KEY] for meta in metas],
            self.catalog.keyed_chunks,
            lambda found: self.collection.get(ids=found, include=["embeddings"]),
            self.embedder.encode,
        )
        self._upsert(ids, embeddings, metas)
        return embedded

    def _upsert(self, ids: list[str], embeddings: Any, metas: list[dict]) -> None:
        with private_files():  # Chroma creates its segment files on the first write
            for part in _slices(len(ids)):
                self.collection.upsert(ids=ids[part], embeddings=embeddings[part], metadatas=metas[part])

    def _write_vectors(self, batch: "Prepared") -> list[tuple[str, str]]:
        """Writes the chunks' vectors; returns their (chunk id, vector key) rows. A chunk of a
        changed document that already holds the same vector (its text did not change: an edit near
        the end of a long file) only has its metadata rewritten: re-inserting a vector in the graph
        costs some thirty times more."""
        docs, texts, stored = batch.embed, batch.texts, batch.stored
        stale = [
            chunk_id(d.id, n) for d in docs if d.id in stored for n in range(len(texts[d.id]), stored[d.id].chunks)
        ]
        same = self._holding_already(batch)
        if same:
            self._update_metadata([batch.ids[n] for n in same], [batch.metas[n] for n in same])
        fresh = sorted(set(range(len(batch.ids))) - set(same))
        if fresh:
            pick = [batch.ids[n] for n in fresh], batch.embeddings[fresh], [batch.metas[n] for n in fresh]
            self._upsert(*pick)
        self._delete_ids(stale)
        return list(zip(batch.ids, batch.keys))

    def _holding_already(self, batch: "Prepared") -> list[int]:
        """Positions of the batch's chunks whose id holds the vector of the same text already:
        Chroma has the chunk and its `vectors.KEY` is the text's (or, for a chunk written with no
        key, the catalog's key is)."""
        ids = [i for i in batch.ids if chunk_doc_id(i) in batch.stored]
        metas = self._chroma_metadata(ids)
        held = self.catalog.chunk_keys(i for i in metas if vectors.KEY not in metas[i])
        return [
            n for n, i in enumerate(batch.ids) if i in metas and metas[i].get(vectors.KEY, held.get(i)) == batch.keys[n]
        ]

    def _update_metadata(self, ids: list[str], metas: list[dict]) -> None:
        for part in _slices(len(ids)):
            self.collection.update(ids=ids[part], metadatas=metas[part])

    def _encode(self, inputs: list[str], on_embedded: Callable[[int], None] | None) -> Any:
        """The vectors of `inputs`; `on_embedded(n)` after each turn of the model (a few dozen
        chunks: one big file moves the progress, and a stop can cut it there)."""
        if on_embedded is None:
            return self.embedder.encode(inputs)
        return self.embedder.encode(inputs, on_turn=on_embedded)

    def _write_metadata(self, docs: list[Document], stored: dict[str, StoredDoc]) -> None:
        ids, metas = [], []
        for doc in docs:
            for n in range(stored[doc.id].chunks):
                ids.append(chunk_id(doc.id, n))
                metas.append(
                    vectors.chunk_metadata(doc.id, doc.source, doc.source_type, doc_ts(doc), doc.acl.principals(), n)
                )
        self._update_metadata(ids, metas)

    def _delete_vectors(self, docs: list[StoredDoc]) -> None:
        self._delete_ids([chunk_id(d.doc_id, n) for d in docs for n in range(d.chunks)])

    def _delete_ids(self, ids: list[str]) -> None:
        for part in _slices(len(ids)):
            self.collection.delete(ids=ids[part])

    def prune(
        self, source: str, keep_generation: int, fence: Fence | None = None, unlisted: tuple[str, ...] = ()
    ) -> int:
        """Delete the `unseen` documents of `source` (a full pass's end)."""
        unseen = self.unseen(source, keep_generation, unlisted)
        return self.apply([], unseen, fence=fence).deleted if unseen else 0

    def unseen(self, source: str, keep_generation: int, unlisted: tuple[str, ...] = ()) -> list[str]:
        """Documents of `source` not seen since `keep_generation` began (a full pass), but none
        whose id starts with one of `unlisted` (folders the pass could not list)."""
        return [d for d in self.catalog.unseen(source, keep_generation) if not d.startswith(unlisted)]

    def forget(self, source: str, fence: Fence | None = None) -> int:
        """Delete every document of `source` with its chunks, vectors, ACL and lexical rows (through
        `apply`, FORGET_BATCH at a time: an interrupted call leaves the rest for the next), then
        any vector of the source the catalog does not name (a write a crash cut short); returns the
        documents deleted. The caller holds the source's lease and has checked that no
        configuration it serves names it."""
        deleted = 0
        with self._writing:
            ids = self.catalog.source_doc_ids(source)
            for start in range(0, len(ids), FORGET_BATCH):
                deleted += self.apply([], ids[start : start + FORGET_BATCH], fence=fence).deleted
            unsettled = [d for d, _ in self.catalog.unsettled(source)]
            self.keeper.follow()
            self.collection.delete(where={"source": source})
            if unsettled:
                self.catalog.commit(Commit(fence=fence, settled=unsettled))
            self._unserved = ((), -SOURCES_TTL)
        return deleted

    # --- reading ------------------------------------------------------------------------------
    def unserved(self) -> tuple[str, ...]:
        """The sources with documents here that the configuration does not name (none when the
        index was opened without `configured`); the list is read again after SOURCES_TTL."""
        if self.configured is None:
            return ()
        names, at = self._unserved
        now = time.monotonic()
        if now - at >= SOURCES_TTL:
            names = tuple(s for s in self.catalog.sources() if s not in self.configured)
            self._unserved = (names, now)
        return names

    def served(self, filters: Filters) -> Filters:
        """`filters` that also exclude the `unserved` sources (unchanged when there are none: the
        common case keeps its fast paths)."""
        hidden = self.unserved()
        return replace(filters, unserved=hidden) if hidden else filters

    def visible_sources(self, principals: tuple[str, ...] | None) -> set[str]:
        """The served sources holding a document the principals may see (None: operator), with the
        same work whichever source a caller asks about (`CatalogStore.visible_sources`)."""
        return self.catalog.visible_sources(principals, self.unserved())

    def people(self, persons: Sequence[str] | None = None, principals: tuple[str, ...] | None = None) -> dict[str, int]:
        """Who (among `persons`, when given) a served document the principals may see (None: any)
        names, with how many such documents name them."""
        return self.catalog.people(persons, principals, self.unserved())

    def identities(self) -> dict[str, set[str]]:
        """The names served documents say are one person's -> the identifiers they stand for."""
        return self.catalog.identities(self.unserved())

    def visible_documents(self, principals: tuple[str, ...] | None) -> int:
        """How many served documents the principals may see (None: the operator, every one)."""
        if principals is None:
            hidden = set(self.unserved())
            return sum(n for source, (n, _) in self.catalog.counts().items() if source not in hidden)
        return self.catalog.visible_documents(principals, self.unserved())

    def frequency(self, term: str, principals: tuple[str, ...] | None = None) -> int:
        """Chunks holding `term` ("": all), as the keyword search counts them for the principals
        (None: operator): a term no served chunk they may see holds counts 0 (`CatalogStore.frequency`)."""
        return self.catalog.frequency(term, principals, self.unserved() if principals is not None else ())

    def document(self, doc_id: str, principals: tuple[str, ...] | None = None) -> Document | None:
        """The document if it exists, its source is served, and the principals may see it (None:
        operator), as it is handed out: its title, text, author and text metadata `readable`, its
        link `readable_url` (one indexed before `readable` was may still hold what no reader sees)."""
        if not self.catalog.visible(doc_id, principals):
            return None
        doc = self.catalog.document(doc_id)
        if doc is None or doc.source in self.unserved():
            return None
        fields: dict[str, Any] = {
            "title": readable(doc.title),
            "text": readable(doc.text),
            "author": readable(doc.author),
        }
        fields.update(url=readable_url(doc.url), metadata=readable_values(doc.metadata))
        return doc.model_copy(update=fields)

    def dense(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        """Nearest chunks passing `filters`. Chroma's metadata pre-filter (a `where`, the ACL
        especially) costs ~100x an unfiltered HNSW query at 100k chunks, so a filtered search first
        asks Chroma for DENSE_OVERFETCH x `limit` unfiltered neighbours and keeps those the catalog
        says pass; only when fewer than `limit` pass does it run the filtered Chroma query, so
        `limit` visible results still come back whenever they exist. The catalog decides either
        way: what the filtered query returns passes its check too (Chroma's copy of an ACL can be
        older than the catalog's: a Chroma folder restored from a copy taken after the dump)."""
        return self.dense_within(query, filters, limit, None)[0]

    def dense_within(
        self, query: str, filters: Filters, limit: int, wider: Filters | None
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """`dense(query, filters, limit)`, and, when it found fewer than `limit` and `wider` is
        given, those topped up with the nearest chunks passing `wider` (served sources only, as
        every read) up to `limit`: the passages `dense_gap` measures against (search.py). Both from
        one embedding of the query and, as far as it holds them, one unfiltered over-fetch."""
        from chromadb.errors import NotFoundError  # chromadb is loaded by now: the collection is open

        vector = self.embedder.encode_query(query)
        try:
            return self._dense_within(vector, filters, limit, wider)
        except (NotFoundError, VectorsLost):  # a reindex elsewhere switched the collection: follow, or refuse
            self.keeper.follow()
            return self._dense_within(vector, filters, limit, wider)

    def _dense_within(
        self, vector: Any, filters: Filters, limit: int, wider: Filters | None
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        near: list[tuple[str, float]] = []  # the unfiltered over-fetch, once made
        filters = self.served(filters)
        hits = self._dense(vector, filters, limit, near)
        wide = self.served(wider) if wider is not None else filters
        if not hits or len(hits) >= limit or wide == filters:
            return hits, hits
        held = {cid for cid, _ in hits}
        more = [hit for hit in self._dense(vector, wide, limit, near) if hit[0] not in held]
        return hits, hits + more[: limit - len(hits)]

    def _dense(
        self, vector: Any, filters: Filters, limit: int, near: list[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        """The nearest `limit` chunks passing `filters`; `near`: the unfiltered over-fetch of
        DENSE_OVERFETCH x `limit` neighbours, made here when empty and reused when not."""
        if filters == Filters():
            return near[:limit] if near else vectors.query(self.collection, vector, filters, limit)
        if not near:
            near.extend(vectors.query(self.collection, vector, Filters(), limit * DENSE_OVERFETCH))
        keep = self.catalog.passing([cid for cid, _ in near], filters)
        hits = [hit for hit in near if hit[0] in keep][:limit]
        if len(hits) == limit or len(near) < limit * DENSE_OVERFETCH:  # enough, or every chunk was seen
            return hits
        narrow = vectors.query(self.collection, vector, filters, limit)
        keep = self.catalog.passing([cid for cid, _ in narrow], filters)
        return [hit for hit in narrow if hit[0] in keep]

    def lexical(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        return self.catalog.lexical(query, self.served(filters), limit)

    def newest(self, filters: Filters, people: Sequence[str], limit: int) -> list[tuple[str, float]]:
        """The `limit` newest served documents passing `filters`, of one of `people` when any are
        given, as (doc_id, time) newest first (`CatalogStore.newest`)."""
        return self.catalog.newest(self.served(filters), people, limit)

    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]:
        return self.catalog.exact_matches(query, self.served(filters))
