"""The filtered dense search (index/store.py `Index.dense`): over-fetch unfiltered neighbours, keep
those the catalog passes, fall back to Chroma's filtered query when too few pass."""

from __future__ import annotations

from inlet.connectors.model import principals_for
from inlet.storage import Filters
from inlet.index.store import Index


def test_falls_back_when_the_wide_query_has_too_few_passing(index: Index) -> None:
    # 4 unfiltered neighbours of a Falcon query never include the espresso note: the fallback finds it.
    found = index.dense("Falcon launch date partner budget", Filters(sources=("files",)), 1)
    assert [cid for cid, _ in found] == ["files:notes/no-link.md#0"]


def test_acl_filter_matches_the_chroma_filter(index: Index) -> None:
    from inlet.index import vectors

    principals = tuple(principals_for("bob@other.org") or ())
    vector = index.embedder.encode(["Falcon launch salary budget"])[0]
    for limit in (1, 2, 3, 5):
        fast = [cid for cid, _ in index.dense("Falcon launch salary budget", Filters(principals=principals), limit)]
        exact = [cid for cid, _ in vectors.query(index.collection, vector, Filters(principals=principals), limit)]
        assert fast == exact
        assert not {"eng:C2/200#0", "drive:f1#0", "mail:hr-1#0"} & set(fast)
