"""BM25 on PostgreSQL as FTS5 computes it, phrases included: the postings and the one ranking statement.

PostgreSQL has no BM25 (`ts_rank` ignores corpus-wide rarity and length), so the catalog keeps a
`postings` row per (term, chunk): the term's frequency in the chunk (a title occurrence counting
TITLE_WEIGHT times, as `bm25(chunks_fts, 2.0, 1.0)` weighs the SQLite index's title column), the
chunk's length in tokens, and the term's positions (title positions from TITLE_BASE up, so a phrase
never runs from the text into the title, as FTS5's columns keep them apart). Every token is a term,
stopwords too, as FTS5 indexes them: a quoted phrase or identifier may hold one.

A query is `parse_query`'s terms (the SQLite index ranks the same ones): a word is one term's
postings, an identifier or quoted phrase is the chunks where its parts' stems stand at consecutive
positions. Each is scored

    idf * f * (k1 + 1) / (f + k1 * (1 - b + b * length / avg_length))

with FTS5's k1, b and IDF (log((N - n + 0.5) / (n + 0.5)), floored at 1e-6), n the chunks holding
the term or phrase, N and avg_length from the maintained `corpus` row: all inside one statement,
which also ranks, cuts to the limit and checks the filters (ACL) of the few it returns. A word's
n is kept in `terms` by every commit (counting its postings at query time read them all twice);
a phrase's is counted from its hits. The only other read is which words are too common to rank
on (`Frequencies`, cached as the SQLite index caches them).

The covering primary key (term, chunk) INCLUDE (tf, length) lets that statement read a term's
postings from consecutive index pages alone (an index-only scan); read from the table they were
scattered over as many pages as postings: 44 ms against 18 ms for a three-word query at 100k chunks.
Measured at 100k chunks as a user (benchmarks/bench_pg.py, load ~7 on 2 cores): 4.0x SQLite's p50
before; 2.0x with the covering key, positions and one statement; 1.4x with `terms` and an ACL
index the check reads alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..lexical import COMMON_TERM, DF_TTL, Term, stem, words
from ..types import Filters

K1 = 1.2
B = 0.75
TITLE_WEIGHT = 2
TITLE_BASE = 1 << 30  # title token i is at position TITLE_BASE + i; text tokens count from 0
MAX_PHRASE_PARTS = 32  # a longer quoted phrase is matched on its first parts (one join per part)


def lexical_terms(text: str) -> list[str]:
    """The index terms of `text`, in order: `lexical.words` (what the SQLite index's FTS table holds),
    Porter-stemmed, as its `porter unicode61` tokenizer stems them."""
    return [stem(w) for w in words(text)]


@dataclass
class Posting:
    tf: float = 0.0
    positions: list[int] = field(default_factory=list)


def postings(title: str, text: str) -> tuple[dict[str, Posting], int]:
    """term -> its weighted frequency and positions in a chunk, and the chunk's length (every token
    of title and text, as FTS5 counts a row's length)."""
    body, heading = lexical_terms(text), lexical_terms(title)
    out: dict[str, Posting] = {}
    for weight, base, terms in ((1, 0, body), (TITLE_WEIGHT, TITLE_BASE, heading)):
        for n, term in enumerate(terms):
            posting = out.setdefault(term, Posting())
            posting.tf += weight
            posting.positions.append(base + n)
    return out, len(body) + len(heading)


class Frequencies:
    """term -> chunks holding it, and the chunk count, cached for DF_TTL: only to choose which
    words to rank on (as `Catalog.selective_terms`); the scores use exact counts."""

    def __init__(self) -> None:
        self._df: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, db: Any, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        now = time.monotonic()
        wanted = set(terms) | {""}
        with self._lock:
            known = {t: self._df[t][1] for t in wanted if t in self._df and now - self._df[t][0] < DF_TTL}
        missing = sorted(wanted - known.keys() - {""})
        if missing or "" not in known:
            rows = db.execute(
                "SELECT '', chunks FROM corpus UNION ALL SELECT term, df FROM terms WHERE term = ANY(%s)", (missing,)
            ).fetchall()
            fetched = {t: 0 for t in missing} | {r[0]: int(r[1]) for r in rows}
            with self._lock:
                if len(self._df) > 50_000:
                    self._df.clear()
                self._df.update({t: (now, n) for t, n in fetched.items()})
            known |= fetched
        return known.pop(""), known

    def cached(self, term: str) -> int | None:
        """The count of `term` ("": all chunks) when the cache holds a fresh one, else None."""
        with self._lock:
            entry = self._df.get(term)
        return entry[1] if entry and time.monotonic() - entry[0] < DF_TTL else None

    def clear(self) -> None:
        with self._lock:
            self._df.clear()


def selective(terms: list[Term], df: dict[str, int], total: int) -> list[Term]:
    """As `Catalog.lexical`: identifiers and phrases always; words minus those in over COMMON_TERM
    of all chunks while rarer ones remain (else the two rarest)."""
    plain = [t for t in terms if not t.exact]
    if len(plain) >= 2:
        count = {t: df.get(stem(t.parts[0]), 0) for t in plain}
        kept = [t for t in plain if count[t] <= COMMON_TERM * total] or sorted(plain, key=count.__getitem__)[:2]
        plain = [t for t in plain if t in kept]
    return [t for t in terms if t.exact or t in plain]


def stems_of(term: Term) -> list[str]:
    return [stem(p) for p in term.parts[:MAX_PHRASE_PARTS]]


def _phrase_hits(k: int, stems: list[str], df: dict[str, int]) -> tuple[str, list[Any]]:
    """SQL rows (k, chunk, tf, length) of the chunks where `stems` stand at consecutive positions,
    read from the rarest part's postings (each other part looked up by (term, chunk))."""
    anchor = min(range(len(stems)), key=lambda j: df.get(stems[j], 0))
    joins, conditions, params = [], [], []
    for j, part in enumerate(stems):
        if j == anchor:
            continue
        joins.append(f"JOIN postings p{j} ON p{j}.term = %s AND p{j}.chunk = pa.chunk")
        conditions.append(f"x.pos + {j - anchor} = ANY(p{j}.pos)")
        params.append(part)
    sql = (
        f"SELECT {k} AS k, pa.chunk, sum(CASE WHEN x.pos >= {TITLE_BASE} THEN {TITLE_WEIGHT} ELSE 1 END)::real "
        f"AS tf, min(pa.length) AS length FROM postings pa CROSS JOIN LATERAL unnest(pa.pos) AS x(pos) "
        f"{' '.join(joins)} WHERE pa.term = %s AND {' AND '.join(conditions) or 'TRUE'} GROUP BY pa.chunk"
    )
    return sql, [*params, stems[anchor]]


# The words worth ranking on, chosen in the statement as `selective` chooses them (its rows are
# each query word with whether it is exact, its chunk count n and the corpus's): no round trip first.
_SELECTIVE_WORDS = f"""SELECT term, idf, average FROM (
    SELECT u.term, u.exact, f.n, c.chunks, {{idf}} AS idf, {{average}} AS average,
           count(*) FILTER (WHERE NOT u.exact) OVER () AS plain,
           count(*) FILTER (WHERE NOT u.exact AND f.n <= {COMMON_TERM} * c.chunks) OVER () AS rare,
           row_number() OVER (PARTITION BY u.exact ORDER BY f.n, u.k) AS rank
    FROM unnest(%s::text[], %s::bool[]) WITH ORDINALITY AS u(term, exact, k) CROSS JOIN corpus c
    CROSS JOIN LATERAL (SELECT COALESCE(max(df), 0) AS n FROM terms t WHERE t.term = u.term) AS f) AS s
  WHERE exact OR plain < 2 OR CASE WHEN rare > 0 THEN n <= {COMMON_TERM} * chunks ELSE rank <= 2 END"""


def _scored_sql(terms: list[Term], df: dict[str, int], choose: bool = False) -> tuple[str, list[Any]]:
    """SQL rows (chunk, BM25 part): each term's contribution to each chunk holding it. A word's
    IDF comes from its maintained chunk count (`terms`); a phrase's counts its hits. `choose`:
    the one-part terms are all of them, and the statement drops the common words itself."""
    singles = [(k, stems_of(t)[0]) for k, t in enumerate(terms) if len(t.parts) == 1]
    phrases = [(k, stems_of(t)) for k, t in enumerate(terms) if len(t.parts) > 1]
    idf = "greatest(ln((c.chunks - n + 0.5)::float8 / (n + 0.5)), 1e-6)"
    average = "c.length::float8 / greatest(c.chunks, 1)"
    bm25 = f"{{idf}} * {{tf}} * {K1 + 1} / ({{tf}} + {K1} * (1 - {B} + {B} * {{length}} / {{average}}))"
    ctes, parts, params = [], [], []
    if singles:
        if choose:
            ctes.append(f"w AS MATERIALIZED ({_SELECTIVE_WORDS.format(idf=idf, average=average)})")
            params += [[s for _, s in singles], [terms[k].exact for k, _ in singles]]
        else:
            ctes.append(
                f"w AS MATERIALIZED (SELECT u.term, {idf} AS idf, {average} AS average "
                "FROM unnest(%s::text[]) AS u(term) CROSS JOIN corpus c CROSS JOIN LATERAL "
                "(SELECT COALESCE(max(df), 0) AS n FROM terms t WHERE t.term = u.term) AS f)"
            )
            params.append([s for _, s in singles])
        parts.append(
            f"SELECT p.chunk, {bm25.format(idf='w.idf', tf='p.tf', length='p.length', average='w.average')} "
            "AS part FROM postings p JOIN w ON w.term = p.term WHERE p.term = ANY(%s)"
        )
        params.append([s for _, s in singles])
    if phrases:
        hits = []
        for k, stems in phrases:
            sql, more = _phrase_hits(k, stems, df)
            hits.append(sql)
            params += more
        ctes.append(
            f"ph AS MATERIALIZED ({' UNION ALL '.join(hits)}), "
            f"pw AS (SELECT s.k, {idf} AS idf, {average} AS average FROM (SELECT k, count(*) AS n FROM ph "
            "GROUP BY k) AS s CROSS JOIN corpus c)"
        )
        score = bm25.format(idf="pw.idf", tf="ph.tf", length="ph.length", average="pw.average")
        parts.append(f"SELECT ph.chunk, {score} AS part FROM ph JOIN pw ON pw.k = ph.k")
    # the CTEs' parameters come first in the statement: reorder (words' CTE, phrases' CTE, words' scan)
    if singles and phrases:
        cte = 2 if choose else 1
        params = [*params[:cte], *params[cte + 1 :], params[cte]]
    return f"WITH {', '.join(ctes)}, scored AS ({' UNION ALL '.join(parts)})", params


def ranking_sql(
    terms: list[Term],
    df: dict[str, int],
    limit: int,
    filters: Filters,
    filter_first: bool,
    filter_sql: Callable[[Filters], tuple[list[str], list[Any]]],
    choose: bool = False,
    keep: int | None = None,
) -> tuple[str, list[Any]]:
    """One statement: (chunk id, BM25 score, chunks matched), best first.

    `filter_first` False ranks every matching chunk, takes the `limit` best, and returns the first
    `keep` of those that pass the filters: the filters are checked best first and only until
    `keep` passed (a third of the 160 checks a user's search made when all were checked: 5.7 ms
    against 13.9 at p50, 100k chunks). The third column counts every chunk that matched, so the
    caller knows whether fewer than `keep` means that few exist. True ranks only the chunks that
    pass, `limit` rows. `choose`: `terms` are not yet `selective`'s; the statement chooses (one-part
    terms only)."""
    sql, params = _scored_sql(terms, df, choose)
    filter_params: list[Any]
    if filters == Filters(principals=filters.principals) and filters.principals is not None:
        condition, filter_params = (
            "EXISTS (SELECT 1 FROM acl a WHERE a.doc_id = c.doc_id AND a.principal = ANY(%s))",
            [list(filters.principals)],
        )  # an ACL alone (every user's search): no need for the document row
        documents = ""
    else:
        where, filter_params = filter_sql(filters)
        condition, documents = " AND ".join(where) or "TRUE", "JOIN documents d ON d.doc_id = c.doc_id" if where else ""
    if filter_first and filter_params:
        sql += (
            f", top AS (SELECT s.chunk, sum(s.part) AS score, 0 AS matched FROM scored s JOIN chunks c "
            f"ON c.id = s.chunk {documents} WHERE {condition} GROUP BY s.chunk ORDER BY score DESC, s.chunk "
            "LIMIT %s) "
        )
        params += [*filter_params, limit]
        condition, documents, cut, filter_params = "TRUE", "", "", []
    else:
        # `top` keeps its order into the join, so the server stops checking once `keep` passed
        sql += (
            ", top AS (SELECT chunk, sum(part) AS score, count(*) OVER () AS matched FROM scored GROUP BY chunk "
            "ORDER BY score DESC, chunk LIMIT %s) "
        )
        params.append(limit)
        cut = "LIMIT %s"
        filter_params = [*filter_params, keep if keep is not None else limit]
    sql += (
        f"SELECT c.chunk_id, t.score, t.matched FROM top t JOIN chunks c ON c.id = t.chunk {documents} "
        f"WHERE {condition} ORDER BY t.score DESC, t.chunk {cut}"
    )
    return sql, [*params, *filter_params]


def exact_sql(
    terms: list[Term], df: dict[str, int], rare: int, principals: tuple[str, ...] | None = None
) -> tuple[str, list[Any]]:
    """(k, chunk id) of at most `rare` + 1 chunks holding each exact term k (identifier or phrase),
    among those `principals` may see when given."""
    parts, params = [], []
    visible = " WHERE EXISTS (SELECT 1 FROM acl a WHERE a.doc_id = c.doc_id AND a.principal = ANY(%s))"
    for k, term in enumerate(terms):
        stems = stems_of(term)
        if len(stems) == 1:
            sql, more = f"SELECT {k} AS k, chunk FROM postings WHERE term = %s", [stems[0]]
        else:
            sql, more = _phrase_hits(k, stems, df)
        where = visible if principals is not None else ""
        parts.append(f"(SELECT h.k, c.chunk_id FROM ({sql}) h JOIN chunks c ON c.id = h.chunk{where} LIMIT %s)")
        params += [*more, *([list(principals)] if principals is not None else []), rare + 1]
    return " UNION ALL ".join(parts), params
