"""Targets a source is configured to read that its service refuses: a drive, a site, a mailbox, a
team, a channel.

Invariants:
- A refused target (the app's consent or a permission withdrawn, a site no longer granted, an
  application access policy) is a failed skip of the run naming it; what was indexed from it is
  kept, and the other targets go on: the run ends `partial`.
- A run that could read none of its targets, and was refused one at least, read nothing at all:
  `Refusals.check` fails it with `AccessRefusedError`, naming the source, the targets it could not
  read and why (the first `NAMED`; the others counted: each is a skip `inlet status` lists), and
  what to grant, so `inlet status`, the failure streak and the lag say the source is failing, as
  they do for refused credentials. Nothing is deleted: the run ends before any prune, and the
  engine saves the checkpoint it had reached.
- A target not found (404) is unread but not refused: a run none of whose targets exist stays
  `partial`, each skip naming one.

The connector says what it could read (`read`) and what it could not (`unread`, with the skip's
reason), then calls `check()` once every target of a full run was tried (a scoped run, which reads
some targets only, never checks).
"""

from __future__ import annotations

from inlet.errors import AccessRefusedError

NAMED = 3  # targets the error names with their reasons; the others are counted (each is a listed skip)


class Refusals:
    """What one run of a source read of its `targets` ("drive", "mailbox", "channel") and what it
    could not; `advice` says what to grant (the permissions, their admin consent)."""

    def __init__(self, source: str, targets: str, advice: str) -> None:
        self.source, self.targets, self.advice = source, targets, advice
        self.read: set[str] = set()
        self.unread: dict[str, str] = {}  # target -> why it was not read (its skip's reason)
        self.refused = 0  # targets the service refused (401, 403), not merely missing

    def readable(self, target: str) -> None:
        """`target` was read (a page of it, at least)."""
        self.read.add(target)

    def skip(self, target: str, reason: str, *, refused: bool) -> None:
        """`target` could not be read; `refused`: the service said the app may not (401, 403)."""
        if target not in self.unread:
            self.unread[target] = reason
            self.refused += refused

    def check(self) -> None:
        """`AccessRefusedError` when no target was read and one at least was refused."""
        if self.read or not self.refused:
            return
        reasons = list(self.unread.values())
        more = len(reasons) - NAMED
        listed = "; ".join(reasons[:NAMED]) + (
            f"; and {more} more, each a skip `inlet status {self.source}` lists" if more > 0 else ""
        )
        raise AccessRefusedError(
            f"source {self.source!r}: no {self.targets} it is configured to read could be read "
            f"({listed}); nothing was read and what was indexed is kept: {self.advice}"
        )
