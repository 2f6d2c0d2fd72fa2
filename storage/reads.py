"""The catalog reads both backends share, written once over a `Dialect`.

A subclass gives `_query` (rows of one statement); the lexical search, the exact-match check and
every write stay in the backend's own module, where the two really differ (FTS5 against the
postings BM25, `COPY`/`unnest`, fencing). `COUNTS` is the one statement counting documents and
chunks per source, also what `inlet status` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from inlet.connectors.model import Document

from .dialect import Dialect
from .types import Filters, StoredDoc, chunk_doc_id

COUNTS = "SELECT source, COUNT(*), COALESCE(SUM(chunks), 0) FROM documents GROUP BY source"
SOURCE_TYPES = (
    "SELECT (SELECT d.source_type FROM documents d WHERE d.source = s.source LIMIT 1) "
    "FROM (SELECT DISTINCT source FROM documents) s"
)
# The distinct sources, one index probe per source (a loose index scan over `documents_source`),
# however many documents each holds: cheap enough to ask on a search path now and then.
SOURCES = (
    "WITH RECURSIVE s(source) AS (SELECT MIN(source) FROM documents UNION ALL "
    "SELECT (SELECT MIN(d.source) FROM documents d WHERE d.source > s.source) FROM s WHERE s.source IS NOT NULL) "
    "SELECT s.source FROM s WHERE s.source IS NOT NULL"
)
PART = 500  # values per `IN` list where the driver has no arrays (SQLite's parameter limit)


def seen_by(dialect: Dialect, doc_column: str, principals: Sequence[str]) -> tuple[str, list[Any]]:
    """The condition that the document `doc_column` names may be seen by one of `principals` (`?`
    placeholders), with its parameters: the one ACL check every filtered read makes."""
    cond, params = dialect.in_list("a.principal", principals)
    return f"EXISTS (SELECT 1 FROM acl a WHERE a.doc_id = {doc_column} AND {cond})", params


def served(dialect: Dialect, doc_column: str, unserved: Sequence[str]) -> tuple[str, list[Any]]:
    """The condition that the document `doc_column` names is of none of the `unserved` sources
    (sources the index holds but no longer serves: the caller's configuration decides), with its
    parameters; `1 = 1` when there are none."""
    if not unserved:
        return "1 = 1", []
    cond, params = dialect.in_list("u.source", unserved)
    return f"NOT EXISTS (SELECT 1 FROM documents u WHERE u.doc_id = {doc_column} AND {cond})", params


def filter_sql(dialect: Dialect, filters: Filters) -> tuple[list[str], list[Any]]:
    """SQL conditions on `d` (documents) for the filters, with their parameters (`?` placeholders)."""
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("d.source", filters.sources), ("d.source_type", filters.source_types)):
        if values:
            cond, more = dialect.in_list(column, values)
            where.append(cond)
            params += more
    if filters.unserved:
        cond, more = dialect.in_list("d.source", filters.unserved)
        where.append(f"NOT ({cond})")
        params += more
    if filters.after is not None:
        where.append("d.ts >= ?")
        params.append(filters.after)
    if filters.before is not None:
        where.append("d.ts < ?")
        params.append(filters.before)
    if filters.principals is not None:
        cond, more = seen_by(dialect, "d.doc_id", filters.principals)
        where.append(cond)
        params += more
    return where, params


def newest_sql(dialect: Dialect, filters: Filters, people: Sequence[str]) -> tuple[str, list[Any]]:
    """The statement reading the newest documents (`?` placeholders, the last one the limit) and its
    other parameters: documents passing `filters` (ACL, sources, source types, time window, unserved
    sources: `filter_sql`, inside the query like every filtered read) and, when `people` are given,
    naming one of them (the people table: they wrote it or took part), newest first, ties by id
    (descending). A document without a time (0) or without chunks (nothing a result could show) is
    none of them. It walks the `documents_newest` index from its end, which holds every column the
    filters other than the ACL and people read, and stops once `limit` documents pass: "the latest
    Teams message" reads no document's row (a caller who may see few of the newest documents walks
    further, probing the ACL's key for each). The sources are compared as `d.source || ''`, which no
    index on `source` serves: otherwise SQLite reads a source's documents through
    `documents_source_chunks` and sorts them all, whatever the limit."""
    where, params = filter_sql(dialect, replace(filters, sources=()))
    if filters.sources:
        cond, more = dialect.in_list("(d.source || '')", filters.sources)
        where.append(cond)
        params += more
    where += ["d.ts > 0", "d.chunks > 0"]
    if people:
        cond, more = dialect.in_list("p.person", list(dict.fromkeys(people)))
        where.append(f"EXISTS (SELECT 1 FROM people p WHERE p.doc_id = d.doc_id AND {cond})")
        params += more
    where_sql = " AND ".join(where)
    return f"SELECT d.doc_id, d.ts FROM documents d WHERE {where_sql} ORDER BY d.ts DESC, d.doc_id DESC LIMIT ?", params


class CatalogReads:
    dialect: Dialect

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _frequency(self, term: str) -> int:
        """Chunks of the whole index holding `term` ("": all chunks), cached (each backend counts its own)."""
        raise NotImplementedError

    def held_visibly(self, term: str, principals: tuple[str, ...], unserved: Sequence[str] = ()) -> bool:
        """Whether a chunk `principals` may see, of a source not `unserved`, holds `term` (each backend)."""
        raise NotImplementedError

    def frequency(self, term: str, principals: tuple[str, ...] | None = None, unserved: Sequence[str] = ()) -> int:
        """Chunks holding `term` ("": all chunks): what the keyword search ranks on (the common
        words it drops) and the relevance features weigh words by. For a caller limited to
        `principals`, a term no chunk they may see (of a source not `unserved`) holds counts as held
        by none: such a term must behave exactly as a word no chunk holds, whatever hidden
        documents contain. A term they may see is counted over the whole index (the same
        statistics BM25 weighs it by)."""
        held = self._frequency(term)
        if principals is None or not term or not held:
            return held
        return held if self.held_visibly(term, principals, unserved) else 0

    def check_reachable(self) -> None:
        """Raise `IndexUnavailable` when the catalog's database does not answer (one trivial query)."""
        self._query("SELECT 1")

    def _select(
        self, sql: str, column: str, values: list[Any], params: Iterable[Any] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql` whose `{IN}` is `column` among `values` (in parts where the driver needs it)."""
        step = (len(values) or 1) if self.dialect.any_array else PART
        for start in range(0, len(values), step):
            cond, more = self.dialect.in_list(column, values[start : start + step])
            yield from self._query(self.dialect.sql(sql.replace("{IN}", cond)), [*more, *params])

    def stored(self, doc_ids: list[str]) -> dict[str, StoredDoc]:
        return {
            r[0]: StoredDoc(*r)
            for r in self._select(
                "SELECT doc_id, content_hash, meta_hash, chunks, source FROM documents WHERE {IN}", "doc_id", doc_ids
            )
        }

    def document(self, doc_id: str) -> Document | None:
        rows = self._query(self.dialect.sql("SELECT body FROM documents WHERE doc_id = ?"), [doc_id])
        return Document.model_validate_json(rows[0][0]) if rows else None

    def documents(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        return {
            r[0]: Document.model_validate_json(r[1])
            for r in self._select(
                "SELECT doc_id, body FROM documents WHERE {IN}", "doc_id", list(dict.fromkeys(doc_ids))
            )
        }

    def doc_times(self, doc_ids: Iterable[str]) -> dict[str, float]:
        """doc_id -> its updated (else created) time as epoch seconds, 0 when unknown; absent
        documents (deleted) are missing."""
        return {
            r[0]: r[1]
            for r in self._select("SELECT doc_id, ts FROM documents WHERE {IN}", "doc_id", list(dict.fromkeys(doc_ids)))
        }

    def newest(self, filters: Filters, people: Sequence[str], limit: int) -> list[tuple[str, float]]:
        """The `limit` newest documents passing `filters` and naming one of `people` when any are
        given, as (doc_id, time) newest first (`newest_sql`). Storage only orders by time: what
        counts as an answer is the search's to say."""
        sql, params = newest_sql(self.dialect, filters, people)
        return [(r[0], float(r[1])) for r in self._query(self.dialect.sql(sql), [*params, limit])]

    def chunk_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        return {
            r[0]: r[1]
            for r in self._select(
                "SELECT chunk_id, text FROM chunks WHERE {IN}", "chunk_id", list(dict.fromkeys(chunk_ids))
            )
        }

    def chunk_keys(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """chunk id -> the key of the vector Chroma holds for it (see index/dedup.py)."""
        return {
            r[0]: r[1]
            for r in self._select(
                "SELECT chunk_id, key FROM chunks WHERE {IN}", "chunk_id", list(dict.fromkeys(chunk_ids))
            )
        }

    def keyed_chunks(self, keys: list[str]) -> dict[str, str]:
        """key -> one chunk id whose vector has that key (see index/dedup.py), for the keys that have
        one; chunks of documents whose vectors a write may have left half-done are never named."""
        return {
            r[0]: r[1]
            for r in self._select(
                "SELECT key, MIN(chunk_id) FROM chunks WHERE {IN} AND doc_id NOT IN (SELECT doc_id FROM vector_writes) "
                "GROUP BY key",
                "key",
                keys,
            )
        }

    def unsettled(self, source: str) -> list[tuple[str, int]]:
        return [
            (r[0], r[1])
            for r in self._query(
                self.dialect.sql("SELECT doc_id, chunks FROM vector_writes WHERE source = ?"), [source]
            )
        ]

    def visible(self, doc_id: str, principals: tuple[str, ...] | None) -> bool:
        if principals is None:
            return bool(self._query(self.dialect.sql("SELECT 1 FROM documents WHERE doc_id = ?"), [doc_id]))
        cond, params = self.dialect.in_list("principal", principals)
        return bool(
            self._query(self.dialect.sql(f"SELECT 1 FROM acl WHERE doc_id = ? AND {cond} LIMIT 1"), [doc_id, *params])
        )

    def source_doc_ids(self, source: str) -> list[str]:
        return [
            r[0]
            for r in self._query(
                self.dialect.sql("SELECT doc_id FROM documents WHERE source = ? ORDER BY doc_id"), [source]
            )
        ]

    def unseen(self, source: str, generation: int) -> list[str]:
        return [
            r[0]
            for r in self._query(
                self.dialect.sql("SELECT doc_id FROM documents WHERE source = ? AND seen_gen < ?"), [source, generation]
            )
        ]

    def counts(self) -> dict[str, tuple[int, int]]:
        """source -> (documents, chunks)."""
        return {r[0]: (int(r[1]), int(r[2])) for r in self._query(COUNTS)}

    def sources(self) -> list[str]:
        """The sources with documents in the catalog, sorted (`SOURCES`: cheap, unlike `counts`)."""
        return [r[0] for r in self._query(SOURCES)]

    def people(
        self,
        persons: Sequence[str] | None = None,
        principals: tuple[str, ...] | None = None,
        unserved: Sequence[str] = (),
    ) -> dict[str, int]:
        """Everyone who wrote or took part in a document (`Document.people`) that `principals` may
        see (None: any document) of a source not `unserved`, sorted, with the number of those
        documents; only those of `persons` when given (in parts where the driver needs it)."""
        if persons is not None and not persons:
            return {}
        if persons is None and principals is None and not unserved:  # the whole table: its key alone
            sql, params = "SELECT person, COUNT(*) FROM people GROUP BY person ORDER BY person", list[Any]()
            return {r[0]: int(r[1]) for r in self._query(sql, params)}
        kept, params = served(self.dialect, "p.doc_id", unserved)
        where = [kept]
        if principals is not None:
            seen, more = seen_by(self.dialect, "p.doc_id", principals)
            where.append(seen)
            params += more
        if persons is not None:
            where.insert(0, "{IN}")
        sql = f"SELECT p.person, COUNT(*) FROM people p WHERE {' AND '.join(where)} GROUP BY p.person"
        if persons is None:
            rows: Iterable[tuple[Any, ...]] = self._query(self.dialect.sql(sql), params)
        else:
            rows = self._select(sql, "p.person", list(dict.fromkeys(persons)), params)
        return {r[0]: int(r[1]) for r in sorted(rows)}

    def identities(self, unserved: Sequence[str] = ()) -> dict[str, set[str]]:
        """Each name of the people table that a document of a source not `unserved` says is one of
        a person's names (`Document.identities`) -> the identifiers it stands for there (one,
        unless two people share it)."""
        kept, params = served(self.dialect, "p.doc_id", unserved)
        sql = f"SELECT DISTINCT p.person, p.identity FROM people p WHERE p.identity IS NOT NULL AND {kept}"
        found: dict[str, set[str]] = {}
        for person, identity in self._query(self.dialect.sql(sql), params):
            found.setdefault(person, set()).add(identity)
        return found

    def visible_documents(self, principals: tuple[str, ...], unserved: Sequence[str] = ()) -> int:
        """How many documents of sources not `unserved` `principals` may see (the ACL's key)."""
        cond, params = self.dialect.in_list("a.principal", principals)
        kept, more = served(self.dialect, "a.doc_id", unserved)
        sql = f"SELECT COUNT(DISTINCT a.doc_id) FROM acl a WHERE {cond} AND {kept}"
        return int(self._query(self.dialect.sql(sql), [*params, *more])[0][0])

    def visible_sources(self, principals: tuple[str, ...] | None, unserved: Sequence[str] = ()) -> set[str]:
        """Every source holding a document `principals` may see (None: any document), but the
        `unserved` ones. The work is the same whichever source a caller then names, and does not
        grow with a source's documents: a document id starts with its source's name and a colon
        (`Connector.doc_id`; the sync engine applies no other, and a name holds no colon), so
        whether a principal sees a document of a source is one probe of the ACL's key (principal,
        id) for that range, per source and principal (the key compares ids byte-wise on PostgreSQL
        too: `Dialect.bytewise`). (A look at a named source's documents until one was visible took
        longer the more documents it held that the caller may not see: the time told which sources
        exist.)"""
        sql, params = SOURCES, list[Any]()
        if unserved:
            cond, params = self.dialect.in_list("s.source", unserved)
            sql += f" AND NOT ({cond})"
        if principals is not None:
            cond, more = self.dialect.in_list("a.principal", principals)
            doc_id = self.dialect.bytewise("a.doc_id")
            sql += (
                f" AND EXISTS (SELECT 1 FROM acl a WHERE {cond} "
                f"AND {doc_id} >= s.source || ':' AND {doc_id} < s.source || ';')"
            )
            params += more
        return {r[0] for r in self._query(self.dialect.sql(sql), params)}

    def source_types(self) -> list[str]:
        """The kinds of source indexed (a source has one: its first document's, found through the
        source index rather than a scan of every document)."""
        return sorted({r[0] for r in self._query(SOURCE_TYPES)})

    def passing(self, chunk_ids: list[str], filters: Filters) -> set[str]:
        """The chunk ids among `chunk_ids` whose documents pass `filters` (ACL included).

        Works on the document ids inside chunk ids; an ACL-only filter (every user search) is
        answered from the ACL table's key alone."""
        docs = list({chunk_doc_id(c) for c in chunk_ids})
        if not docs:
            return set()
        in_docs, params = self.dialect.in_list("doc_id", docs)
        if filters == Filters(principals=filters.principals) and filters.principals is not None:
            cond, more = self.dialect.in_list("principal", filters.principals)
            sql = f"SELECT DISTINCT doc_id FROM acl WHERE {in_docs} AND {cond}"
        else:
            where, more = filter_sql(self.dialect, filters)
            sql = f"SELECT d.doc_id FROM documents d WHERE d.{in_docs} AND {' AND '.join(where or ['1 = 1'])}"
        keep = {r[0] for r in self._query(self.dialect.sql(sql), [*params, *more])}
        return {c for c in chunk_ids if chunk_doc_id(c) in keep}
