"""Sandbox workspaces for tests, seeded once per session and deep-copied for each sandbox.

Seeding composes and parses mail by the thousand: most of a second for the sample workspace, for
each of the some 250 sandboxes a session starts. `fresh(build)` calls `build` once per session and
hands each caller a deep copy (about 0.1 s), which holds the same data, ids and random state as a
newly seeded workspace; only the few instants a seed stamps with the clock are from the first call,
as if that sandbox had been started then. Each copy has its own lock. A template is never served.

Workspaces made here allow ten times Gmail's per-user quota (`FAST_GMAIL_QUOTA`; the configs a
sandbox writes pace the connector at its quota): at Gmail's own, pacing alone made a backfill of
the sample's mailboxes last 8 s. Pacing and 429s at a tight quota are tested in
tests/connectors/test_gmail.py and tests/sandbox/test_gmail_api.py, with quotas they set.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable

from inlet.sandbox import gmail_state
from inlet.sandbox.sample import sample_workspace
from inlet.sandbox.workspace import Workspace

FAST_GMAIL_QUOTA = 2500.0  # units a second per mailbox: Gmail allows 250


@functools.cache
def _template(build: Callable[[], Workspace]) -> Workspace:
    ws = build()
    gmail_state.state(ws).units_per_second = FAST_GMAIL_QUOTA
    return ws


def fresh(build: Callable[[], Workspace]) -> Workspace:
    """A deep copy of the workspace `build` makes; `build` runs once per session (a module-level
    function, so that its identity is the cache key)."""
    template = _template(build)
    with template.lock:
        return copy.deepcopy(template, {id(template.lock): threading.RLock()})


def sample() -> Workspace:
    """A fresh copy of the sample workspace: what `Sandbox()` serves in tests (see conftest.py)."""
    return fresh(sample_workspace)
