"""Connector types come from the `inlet.connectors` entry-point group: built-ins and plug-ins alike."""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from inlet.errors import ConfigError

from .base import Connector

GROUP = "inlet.connectors"


@cache
def available() -> dict[str, EntryPoint]:
    """Installed connector types by name, loaded lazily (importing an SDK costs start-up time)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def connector_class(type_name: str) -> type[Connector]:
    eps = available()
    if type_name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown connector type {type_name!r} (installed: {known})")
    cls = eps[type_name].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"entry point {type_name!r} in {GROUP} is not an inlet Connector class")
    return cls
