"""Configured scope entries that match nothing at the service: a misspelt channel, folder, team,
label or path glob.

Invariant: an entry of a key that chooses what a source reads (`channels`, `folders`, `teams`,
`labels`, `include`) that matches nothing the service shows is never silent. Each such entry is a
skip by policy of every run (`unmatched`: the run stays ok, `inlet status` lists it, the connector
logs a warning), whose reason names the key, the entry and the closest names the service has.
When every entry of the key matches nothing (`check_scope`), the source would read nothing, and a
full pass would then delete every document it holds: the run fails with `NothingInScopeError`
instead, having read and deleted nothing, and so does a listing for the prune (`live_ids`).
"""

from __future__ import annotations

import difflib
import logging
import threading
import weakref
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from inlet.errors import NothingInScopeError

from ..model import Skipped

if TYPE_CHECKING:
    from ..base import Connector

log = logging.getLogger(__name__)

CLOSEST = 3  # names suggested for an entry that matched nothing
READ_NOTHING = "; nothing is read for it"  # how each skip's reason ends


def closest(entry: str, names: Iterable[str]) -> list[str]:
    """The existing `names` most like `entry` (case aside), best first: a typo's likely meaning."""
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(name.lower(), name)
    found = difflib.get_close_matches(entry.lower(), list(by_lower), n=CLOSEST, cutoff=0.6)
    return [by_lower[f] for f in found]


def unmatched(
    connector: Connector,
    key: str,
    entries: Iterable[str],
    matched: Collection[str],
    names: Iterable[str],
    what: str,
    within: str | None = None,
) -> list[Skipped]:
    """A skip by policy for each of `entries` (the values of config key `key`) not in `matched`:
    its reason names the key, the entry, `what` it was to match ('channel the bot is a member of',
    'folder of mailbox a@b.com') and the closest of `names`. `within` ('mailbox:a@b.com') keeps
    apart the skips of the same entry in several containers (their ids and titles name it)."""
    pool = sorted(set(names))
    out = []
    for entry in dict.fromkeys(entries):
        if entry in matched:
            continue
        near = closest(entry, pool)
        hint = f" (closest: {', '.join(repr(n) for n in near)})" if near else ""
        out.append(
            Skipped(
                id=connector.doc_id(f"{within}#{key}={entry}" if within else f"{key}={entry}"),
                title=f"{key} = {entry!r}" + (f" of {within.replace(':', ' ', 1)}" if within else ""),
                reason=f"key {key!r}: no {what} matches {entry!r}{hint}{READ_NOTHING}",
                failed=False,
            )
        )
    return out


def check_scope(
    connector: Connector,
    key: str,
    entries: Sequence[str],
    matched: Collection[str],
    names: Iterable[str],
    what: str,
) -> list[Skipped]:
    """`unmatched`, or `NothingInScopeError` when `entries` is not empty and none of them matched."""
    skips = unmatched(connector, key, entries, matched, names, what)
    if entries and len(skips) == len(set(entries)):
        raise nothing_in_scope(connector.name, skips)
    return skips


def nothing_in_scope(source: str, skips: Sequence[Skipped]) -> NothingInScopeError:
    """The error of a source none of whose entries matched: each skip's reason, in one message."""
    reasons = "; ".join(s.reason.removesuffix(READ_NOTHING) for s in skips)
    return NothingInScopeError(
        f"source {source!r}: its configuration selects nothing to read ({reasons}); nothing was read or "
        "deleted: correct the key (what was indexed before is kept until then)"
    )


def warn(connector: Connector, skips: Iterable[Skipped]) -> list[Skipped]:
    """Log each unmatched entry as a warning, once per connector (a run makes one: its recent pass
    and its full pass meet the same entries); returns them all, to yield."""
    skips = list(skips)
    with _lock:  # mailboxes are read in worker threads
        told = _warned.setdefault(connector, set())
        new = [skip for skip in skips if skip.id not in told]
        told.update(skip.id for skip in new)
    for skip in new:
        log.warning("source %r: %s", connector.name, skip.reason)
    return skips


_lock = threading.Lock()
_warned: weakref.WeakKeyDictionary[Connector, set[str]] = weakref.WeakKeyDictionary()  # ids logged, per connector
