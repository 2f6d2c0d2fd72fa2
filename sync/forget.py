"""`inlet forget SOURCE`: delete what the index keeps of a source that is no longer configured.

Invariant: nothing of a configured source is ever deleted here, and nothing is deleted unless an
operator named the source. A source commented out by mistake therefore keeps its documents and
vectors (they are not served meanwhile: `Index.unserved`), and a second configuration file naming
fewer sources of the same index deletes nothing by itself. Forgetting refuses a source that the
configuration names, one that a live daemon of the folder has on its schedule (a database keeps
the schedule of a killed daemon too, so there it is only warned about), one that the process
holding the index was started with when the command is forwarded to it (it must be restarted:
renamed in the file, the source is still its), and one a run holds (its
lease is taken for the whole deletion, and every write carries its fence).

The order makes an interrupted forget (killed, or its machine stopped) safe to leave: first the
source's checkpoint goes, so nothing claims its documents are indexed any more (configured again,
the source starts from a first backfill); then its documents, batch by batch; last its runs,
skips, pause and event rows. Until that last step the runs stay, so `inlet status` lists the
source as not configured (with documents, or with sync state alone) with the command that
finishes it: `inlet forget` run again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

from inlet.config import Settings
from inlet.errors import ConfigError, SourceBusyError
from inlet.index.store import Index
from inlet.storage import Leases, StateStore, open_backend

log = logging.getLogger(__name__)


@dataclass
class Forgotten:
    """What `forget_source` deleted: the source's documents and chunks (as counted before), and
    whether it had sync state (checkpoint, runs)."""

    source: str
    documents: int
    chunks: int
    state: bool

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def refuse_configured(settings: Settings, name: str) -> None:
    """`ConfigError` (exit 2) when `settings` configures source `name`."""
    if name in settings.source_names():
        raise ConfigError(
            f"source {name!r} is configured in {settings.file or 'the configuration'}: remove it from the "
            "config first (its documents stay searchable while it is configured)"
        )


def _held_configured(settings: Settings, name: str, scheduled: bool) -> SourceBusyError:
    """The refusal of a forwarded forget by the process holding the index (this one), whose own
    configuration, read when it started, names source `name`; the command's configuration does
    not (the command checked that before forwarding), so this process is what must be restarted."""
    who = "inlet daemon" if scheduled else "inlet process that holds the index"
    has = "on its schedule" if scheduled else "configured"
    return SourceBusyError(
        f"the running {who} (pid {os.getpid()}) still has source {name!r} {has}: it read "
        f"{settings.file or 'its configuration'} when it started, and that named the source. Restart it "
        f"(with a configuration that no longer names {name!r}), then run `inlet forget {name}` again "
        "(its documents stay searchable meanwhile)"
    )


def forget_source(
    settings: Settings, index: Index, state: StateStore, leases: Leases, name: str, *, held: bool = False
) -> Forgotten:
    """Delete every document, chunk, vector, lexical row, ACL and the sync state of source `name`,
    which `settings` must not configure (`ConfigError`, exit 2: the command names no such source,
    or it is configured) and no live daemon may schedule (`SourceBusyError`). `held`: this process
    holds the index and runs the command for another (`inlet forget` beside a daemon, whose
    configuration no longer names the source); `settings` are the ones it started with, so one
    naming the source is a refusal saying that this process must be restarted (`SourceBusyError`)."""
    where = settings.file or "the configuration"
    backend = open_backend(settings)
    planned = backend.overview(state).planned
    if held and name in settings.source_names():
        raise _held_configured(settings, name, name in planned)
    refuse_configured(settings, name)
    docs, chunks = index.catalog.counts().get(name, (0, 0))
    if name in planned:
        if not backend.shared:  # the folder's daemons: live processes only
            raise SourceBusyError(
                f"a running inlet daemon has source {name!r} on its schedule (its configuration still names "
                "it): remove it from that configuration and restart the daemon first"
            )
        log.warning(  # a database keeps the schedule of a daemon that was killed: no proof that one runs
            "a daemon sharing the database listed source %r on its schedule: if it still runs with a "
            "configuration naming it, its next sync indexes the source again",
            name,
        )
    has_state = state.source(name).phase != "new" or bool(state.recent_runs(name, 1))
    if not docs and not has_state:
        others = sorted(set(index.catalog.sources()) - {s.name for s in settings.sources})
        raise ConfigError(
            f"the index holds nothing of a source named {name!r}"
            + (f" (sources indexed but not configured: {', '.join(others)})" if others else "")
        )
    with leases.hold(name) as fence:
        had_checkpoint = state.drop_checkpoint(name)  # first: see the module's docstring
        deleted = index.forget(name, fence)
        had_state = state.forget(name) or had_checkpoint
    log.info(  # the command prints it too; a daemon or server answering it logs it at its level
        "forgot source %r (not in %s): %d documents and %d chunks deleted with their vectors%s",
        name,
        where,
        deleted,
        chunks,
        ", and its checkpoint and run history" if had_state else "",
    )
    return Forgotten(name, deleted, chunks, had_state)


__all__ = ["Forgotten", "forget_source", "refuse_configured"]
