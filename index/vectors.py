"""The Chroma side of the index: one collection of chunk vectors with filterable metadata.

Embeddings are always computed by inlet and passed in; the collection is created with no
embedding function, because Chroma's default one downloads a model.

The HNSW search breadth (`[index] ef_search`) is written into the collection's configuration each
time it is opened, new or existing, before this process queries it: Chroma reads it when it loads
the collection's HNSW index, so a process (or Chroma server) that has already queried the
collection keeps the breadth it loaded until it restarts.

A Chroma server that comes back without the index's vectors (its data folder lost or replaced, a
new server at the same address) is never taken as an empty index: opening refuses a collection
that is missing, or holds under half as many vectors as the catalog has settled chunks (those of
no document a write marked: `Index.repair`) (`check_held`); a call of a running process whose
collection is gone raises `VectorsLost` naming `chroma_url` and `inlet reindex`, which opens the
index regardless (re-creating the collection) and embeds the catalog's chunks again. A collection
re-created by name is taken up by the running processes' next call. An index folder's `chroma/`
is held to the same, read from its `chroma.sqlite3` before Chroma loads the collection
(`missing_vectors`), and also refused when a vector segment whose HNSW files Chroma recorded
writing has no folder (a `chroma/` or segment folder left out of a copy): Chroma would rebuild
it from the last writes its log keeps and search that part of the vectors without a word.

In an index folder, `chroma/` holds no vector segment folder of a deleted collection: Chroma leaves
them on disk, so dropping a collection (a reindex's old vectors) removes them, and so does opening
the index, for those an earlier release left (`remove_unused_segments`).
"""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inlet.errors import IndexUnavailable, VectorsLost
from inlet.logs import shown_url
from inlet.storage.records import COLLECTION
from inlet.connectors.model import Document
from inlet.storage.types import Filters, chunk_id, doc_ts

from .dedup import text_key

log = logging.getLogger(__name__)
NOBODY = "-"  # Chroma refuses empty lists: the ACL token of a document only admins may see
# chunk metadata: the key (`dedup.text_key`) of the text whose vector the chunk holds. Written with
# every vector (an upsert keeps the metadata it does not name), and a metadata update leaves it as
# it is, so it always describes the vector beside it; chunks written by older versions have none.
KEY = "key"


# seconds a Chroma server's answer (a 4,096-vector upsert into a million-chunk collection takes a few
# on a busy server; a query, milliseconds) and a connection to it may take (`_limit_waits`)
SERVER_TIMEOUT, SERVER_CONNECT_TIMEOUT = 120.0, 10.0
HELD_SHARE = 0.5  # a server collection with fewer vectors than this share of the catalog's chunks was lost
SEGMENT_FOLDER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # chroma/<segment id>
DEFAULT_EF_SEARCH = 200  # Chroma's own is 100: recall@10 0.92 at 1M chunks, 0.97 at 200 (bench_million.py)


def connect(path: Path, url: str | None = None) -> Any:
    """A Chroma client of the index folder `path`, or of the server at `url`. Its owner
    `disconnect`s it: until then Chroma keeps the folder's files (its SQLite database, every
    collection's HNSW files) or a connection pool to the server open."""
    with _reaching(url):
        return _client(path, url)


def disconnect(client: Any) -> None:
    """Release what `connect` opened (a folder's files close with the last client of that folder)."""
    # Chroma stops a server's client without closing its HTTP sessions: its own and its admin client's
    admin = getattr(client, "_admin_client", None)
    sessions = [getattr(getattr(c, "_server", None), "_session", None) for c in (client, admin)]
    client.close()
    for session in sessions:
        if session is not None:
            session.close()


def open_collection(
    client: Any, url: str | None = None, name: str = COLLECTION, ef_search: int = DEFAULT_EF_SEARCH
) -> Any:
    """The collection `name` (made if new) of `client`'s index; on a Chroma server (`url`), one
    whose calls that cannot reach the server raise `IndexUnavailable` naming it."""
    with _reaching(url):
        collection = client.get_or_create_collection(name, embedding_function=None, metadata={"hnsw:space": "cosine"})
        set_ef_search(collection, ef_search)
    return collection if url is None else _ServerCollection(collection, url, client)


def check_held(client: Any, url: str | None, name: str, chunks: int) -> None:
    """Raise `VectorsLost` when the Chroma server at `url` (or the folder of `client`) lacks the
    collection `name`, or holds under `HELD_SHARE` of the catalog's settled `chunks` in it; in a
    folder, also when a vector segment's files are missing (`missing_vectors`). Writes under way
    elsewhere keep the two a little apart, never by half."""
    if not chunks:
        return
    if url is None:
        folder = Path(client.get_settings().persist_directory)
        missing = missing_vectors(folder, name, chunks)
        if missing is not None:
            raise VectorsLost(folder_lost_words(folder, missing, chunks))
        return
    from chromadb.errors import NotFoundError

    with _reaching(url):
        try:
            held: int | None = client.get_collection(name, embedding_function=None).count()
        except NotFoundError:
            held = None
    if held is None or held < chunks * HELD_SHARE:
        raise VectorsLost(lost_words(url, name, chunks, held))


def lost_words(url: str, name: str, chunks: int | None, held: int | None) -> str:
    """What `VectorsLost` says: the server, what it lacks, and what to do."""
    has = "has no collection" if held is None else f"holds only {held} vectors in the collection"
    of = f"although the catalog holds {chunks} chunks" if chunks is not None else "which the index was using"
    return (
        f"the Chroma server at {shown_url(url)} ([index] chroma_url) {has} {name} {of}: its data was lost or "
        "it is another server. Restore its data folder, or run `inlet reindex` to embed the "
        "catalog's chunks again (no source is read; searches find by keywords alone while it runs)"
    )


def missing_vectors(folder: Path, name: str, chunks: int, copy: bool = False) -> str | None:
    """What the index folder's Chroma `folder` (`chroma/`) lacks of the vectors of the catalog's
    settled `chunks` in the collection `name`, in words, or None when it holds them: no database, no
    such collection, under `HELD_SHARE` of the vectors (`chroma.sqlite3` counts them), or a vector
    segment whose HNSW files Chroma recorded writing (`max_seq_id`) without its folder. Read only,
    before Chroma loads the collection; a database laid out otherwise than Chroma's is not judged. A
    `copy` (a backup's), which nobody writes, is read leaving no SQLite side file beside it."""
    if not chunks:
        return None
    database = folder / "chroma.sqlite3"
    if not database.is_file():
        return f"no {database.name} (no vectors at all)"
    try:
        db = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro{'&immutable=1' if copy else ''}", uri=True)
        try:
            segments = db.execute(
                "SELECT s.id, s.scope FROM segments s JOIN collections c ON s.collection = c.id WHERE c.name = ?",
                (name,),
            ).fetchall()
            held = sum(
                db.execute("SELECT COUNT(*) FROM embeddings WHERE segment_id = ?", (segment,)).fetchone()[0]
                for segment, scope in segments
                if scope == "METADATA"
            )
            written = {str(row[0]) for row in db.execute("SELECT segment_id FROM max_seq_id WHERE seq_id > 0")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.debug("cannot read the collections of %s (%s): its vectors are not checked", folder, exc)
        return None
    if not segments:
        return f"no collection {name}"
    if held < chunks * HELD_SHARE:
        return f"only {held} vectors in the collection {name}"
    for segment, scope in segments:
        here = folder / str(segment)
        if scope == "VECTOR" and str(segment) in written and not (here.is_dir() and any(here.iterdir())):
            return f"no folder {here.name} for the vectors of the collection {name} (its HNSW index)"
    return None


def folder_lost_words(folder: Path, missing: str, chunks: int | None = None) -> str:
    """What `VectorsLost` says of an index folder's Chroma `folder`: what it lacks and what to do."""
    of = f" although the catalog holds {chunks} chunks" if chunks is not None else ""
    return (
        f"the index's vectors in {folder} are missing: it holds {missing}{of}. The folder was lost, replaced "
        "or left out of a copy (a symbolic link an earlier inlet's backup did not follow). Put it back, or run "
        "`inlet reindex` to embed the catalog's chunks again (no source is read; searches find by keywords "
        "alone while it runs)"
    )


def check_reachable(collection: Any) -> None:
    """Raise `IndexUnavailable` when the Chroma server holding `collection` does not answer, and
    `VectorsLost` when it holds no collection of that name, as a search would find (one small
    request; a folder's collection is in this process: always reachable)."""
    if isinstance(collection, _ServerCollection):
        with _reaching(collection._url):
            collection._found_again()


class _ServerCollection:
    """A Chroma server's collection, as Chroma's own, whose calls say which server they could not reach."""

    def __init__(self, collection: Any, url: str, client: Any) -> None:
        self._collection, self._url, self._client = collection, url, client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            from chromadb.errors import NotFoundError

            with _reaching(self._url):
                try:
                    return attr(*args, **kwargs)
                except NotFoundError:
                    again = getattr(self._found_again(), name)
                try:
                    return again(*args, **kwargs)
                except NotFoundError:
                    raise VectorsLost(lost_words(self._url, self._collection.name, None, None)) from None

        return call

    def _found_again(self) -> Any:
        """The collection of this name as the server now holds it (re-created by `inlet reindex`),
        else `VectorsLost`: a call named the id of a collection the server no longer has."""
        from chromadb.errors import NotFoundError

        try:
            self._collection = self._client.get_collection(self._collection.name, embedding_function=None)
        except NotFoundError:
            raise VectorsLost(lost_words(self._url, self._collection.name, None, None)) from None
        return self._collection


@contextmanager
def _reaching(url: str | None) -> Iterator[None]:
    """Turn a Chroma server that cannot be reached into `IndexUnavailable` naming `[index] chroma_url`."""
    import httpx

    try:
        yield
    except (httpx.TransportError, ValueError) as exc:
        if url is None or (isinstance(exc, ValueError) and "Could not connect" not in str(exc)):
            raise
        raise IndexUnavailable(
            f"the Chroma server at {shown_url(url)} ([index] chroma_url) cannot be reached "
            f"({type(exc).__name__}: {exc}); "
            "nothing indexed is lost: start it (`chroma run`) and the next run resumes"
        ) from exc


def set_ef_search(collection: Any, ef_search: int, attempts: int = 4) -> None:
    """How many candidates an HNSW query keeps while it walks the graph (at least the results
    asked for): more finds more of the true nearest neighbours, and costs more per query.

    Chroma's SQLite may be busy for a moment (its own background writes, or another process
    writing): the change is tried again a few times, then left for the next open with a warning;
    searches keep working with the breadth stored before."""
    from chromadb.errors import ChromaError

    hnsw = (collection.configuration_json or {}).get("hnsw") or {}
    if hnsw.get("ef_search") == ef_search:
        return
    for attempt in range(attempts):
        try:
            collection.modify(configuration={"hnsw": {"ef_search": ef_search}})
            log.info("collection %s: HNSW ef_search %s -> %d", collection.name, hnsw.get("ef_search"), ef_search)
            return
        except ChromaError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                log.warning(
                    "[index] key 'ef_search': could not set %d on collection %s (%s); it keeps %s "
                    "until the index is opened again",
                    ef_search,
                    collection.name,
                    exc,
                    hnsw.get("ef_search"),
                )
                return
            time.sleep(0.1 * 2**attempt)  # backing off from a busy database, not waiting for an event


def drop_collection(client: Any, url: str | None, name: str) -> None:
    """Delete a collection (the vectors a reindex replaced); absent is fine. In a folder, its
    segment folders go with it (`remove_unused_segments`): Chroma leaves them on disk."""
    with _reaching(url):
        if name in [c if isinstance(c, str) else c.name for c in client.list_collections()]:
            client.delete_collection(name)
    if url is None:
        remove_unused_segments(client)


def remove_unused_segments(client: Any) -> int:
    """Remove the segment folders of the folder Chroma of `client` that no segment of
    `chroma.sqlite3` names any more; the bytes freed.

    Chroma (from 1.0.15; chroma-core/chroma#5259) deletes a collection from its database but leaves
    its vector segment folder (`chroma/<segment id>/`, the whole HNSW index) on disk for good, where
    every backup would copy it. A segment's row is written when its collection is made, before its
    folder exists, and the folders are listed before the rows are read: a folder of a live
    collection is never taken for unused. Only UUID-named folders are considered; when the database
    cannot be read, nothing is removed."""
    folder = Path(client.get_settings().persist_directory)
    candidates = (
        [p for p in folder.iterdir() if p.is_dir() and SEGMENT_FOLDER.fullmatch(p.name)] if folder.is_dir() else []
    )
    if not candidates:
        return 0
    try:
        db = sqlite3.connect(f"{(folder / 'chroma.sqlite3').resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            named = {str(row[0]) for row in db.execute("SELECT id FROM segments")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.warning("cannot read the segments of %s (%s): folders of deleted collections are kept", folder, exc)
        return 0
    freed = 0
    for path in candidates:
        if path.name not in named:
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path, ignore_errors=True)
            freed += size
            log.info("removed %s: the vectors of a deleted collection (%.1f MB)", path, size / 1e6)
    return freed


def _client(path: Path, url: str | None) -> Any:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if not url:
        return chromadb.PersistentClient(path=str(path / "chroma"), settings=settings)
    from urllib.parse import urlparse

    parsed = urlparse(url)
    client = chromadb.HttpClient(
        host=parsed.hostname or "localhost", port=parsed.port or 8000, ssl=parsed.scheme == "https", settings=settings
    )
    _limit_waits(client)
    return client


def _limit_waits(client: Any) -> None:
    """Give the client's HTTP session `SERVER_TIMEOUT`. Chroma's client makes it with none, so a
    frozen server, or a network dropping packets, held every search and write of this process
    forever (and filled the API's worker threads); a call that times out now fails as the server
    being unreachable (`_reaching`). Chroma offers no setting for it: its session is reached by
    name, and a client laid out otherwise keeps Chroma's behaviour (logged)."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(SERVER_TIMEOUT, connect=SERVER_CONNECT_TIMEOUT)
    else:
        log.warning("this chromadb client has no HTTP session inlet knows: its calls wait without a time limit")


def chunk_metadata(
    doc_id: str, source: str, source_type: str, ts: float, principals: list[str], n: int
) -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "source": source,
        "source_type": source_type,
        "ts": ts,
        "acl": principals or [NOBODY],
        "n": n,
    }


def where_clause(filters: Filters) -> dict[str, Any] | None:
    """The Chroma `where` for the filters; ACL as `$contains` on the chunk's principal list."""
    clauses: list[dict[str, Any]] = []
    if filters.sources:
        clauses.append({"source": {"$in": list(filters.sources)}})
    if filters.source_types:
        clauses.append({"source_type": {"$in": list(filters.source_types)}})
    if filters.unserved:
        clauses.append({"source": {"$nin": list(filters.unserved)}})
    if filters.after is not None:
        clauses.append({"ts": {"$gte": filters.after}})
    if filters.before is not None:
        clauses.append({"ts": {"$lt": filters.before}})
    if filters.principals is not None:
        acl = [{"acl": {"$contains": p}} for p in filters.principals]
        clauses.append(acl[0] if len(acl) == 1 else {"$or": acl})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


TIES = 8  # neighbours asked for beyond `limit`, so that equal similarities at the cut are decided by chunk id


def query(collection: Any, vector: Any, filters: Filters, limit: int) -> list[tuple[str, float]]:
    """(chunk id, cosine similarity), best first, equal similarities by chunk id. Copies of one text
    (a mail in Outlook and Gmail) have one vector: which of them Chroma returns at the cut differs
    from process to process, and so would the results of the same question."""
    result = collection.query(
        query_embeddings=[vector], n_results=limit + TIES, where=where_clause(filters), include=["distances"]
    )
    ids = result["ids"][0] if result["ids"] else []
    distances = result["distances"][0] if result.get("distances") else []
    return sorted(((i, 1.0 - float(d)) for i, d in zip(ids, distances)), key=lambda hit: (-hit[1], hit[0]))[:limit]


def chunk_rows(
    docs: Sequence[Document], texts: dict[str, list[str]], fingerprint: dict[str, str]
) -> tuple[list[str], list[str], list[dict]]:
    """Chunk ids, the texts the model embeds (title first) and the Chroma metadata of `docs`,
    with the `KEY` of each text as `fingerprint`'s model embeds it."""
    ids: list[str] = []
    inputs: list[str] = []
    metas: list[dict] = []
    for doc in docs:
        principals = doc.acl.principals()
        for n, text in enumerate(texts[doc.id]):
            ids.append(chunk_id(doc.id, n))
            inputs.append(f"{doc.title}\n{text}" if doc.title else text)
            meta = chunk_metadata(doc.id, doc.source, doc.source_type, doc_ts(doc), principals, n)
            metas.append(meta | {KEY: text_key(fingerprint, inputs[-1])})
    return ids, inputs, metas
