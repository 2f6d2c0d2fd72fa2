"""Typed, versioned checkpoints: a connector's state as a pydantic model, stored as a plain dict.

Invariants:
- What the engine stores is unchanged: `Checkpoint(state=model.dump())`, a JSON-able dict carrying
  the model's fields and a `version` key. A stored dict without `version` is version 1 (the shape
  every connector saved before checkpoints were typed), so existing checkpoints keep loading.
- The model shares nothing with the dict it was loaded from, nor `dump()` with the model: a
  connector mutates its state freely.
- `load()` never returns a checkpoint it cannot vouch for: an older version is migrated step by
  step (`MIGRATIONS[n]` turns version n into n+1); a missing step, a step that returns None, a
  version newer than the code or a dict that does not validate means "start from scratch" (None),
  logged once naming the source. Starting over re-reads the source; it loses nothing.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from ..model import Checkpoint

log = logging.getLogger(__name__)

Migration = Callable[[dict[str, Any]], dict[str, Any] | None]


class CheckpointModel(BaseModel):
    """Base of a connector's checkpoint: subclass it, declare fields, bump `VERSION` on a change of
    shape and add the step from the old version to `MIGRATIONS`."""

    model_config = ConfigDict(extra="ignore")

    VERSION: ClassVar[int] = 1
    MIGRATIONS: ClassVar[Mapping[int, Migration]] = {}

    @classmethod
    def load(cls, state: Mapping[str, Any] | None, *, source: str) -> Self | None:
        """The typed checkpoint of a stored dict, migrated to `VERSION`; None: start from scratch."""
        if state is None:
            return None
        data: dict[str, Any] | None = copy.deepcopy(dict(state))  # shares nothing with the caller's dict
        version = data.pop("version", 1) if data is not None else 1
        if not isinstance(version, int) or version > cls.VERSION:
            log.warning(
                "source %r: checkpoint version %r is newer than this inlet knows (%d); starting over",
                source,
                version,
                cls.VERSION,
            )
            return None
        while data is not None and version < cls.VERSION:
            step = cls.MIGRATIONS.get(version)
            data = step(data) if step is not None else None
            version += 1
        if data is None:
            log.warning("source %r: checkpoint from an older inlet cannot be carried over; starting over", source)
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            log.warning("source %r: unreadable checkpoint (%s); starting over", source, exc.errors()[0].get("msg", exc))
            return None

    def dump(self) -> dict[str, Any]:
        """The dict the engine stores: the fields, JSON-ready, and the version."""
        return {**self.model_dump(mode="json"), "version": self.VERSION}

    def checkpoint(self) -> Checkpoint:
        """This state as the item a connector yields."""
        return Checkpoint(state=self.dump())
