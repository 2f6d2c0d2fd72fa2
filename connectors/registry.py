"""Connector types come from the `inlet.connectors` entry-point group: built-ins and plug-ins alike.

A type name means one connector or none: a built-in keeps its name (a plug-in claiming it is
refused), and a name two plug-ins claim is refused for both (a source of that type is a config
error naming them). Refused entries are listed by `inlet connectors`, with why. A plug-in that
fails to import, whose class's `type` is not its entry point's name (the type a config, `inlet
status` and a hook's URL say must be the one its documents' `source_type` says), or whose `Config`
cannot read a source's table as inlet reads every table (`base.config_problem`: not a
`SourceConfig`, or a sub-table that is a plain pydantic `BaseModel`) is a `ConfigError` naming the
entry point and why.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from inlet.errors import ConfigError

from .base import Connector, config_problem

GROUP = "inlet.connectors"
BUILTIN = "inlet"  # the distribution whose connectors keep their type names

log = logging.getLogger(__name__)


def _dist(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "an unknown distribution"


def _builtin(ep: EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name.lower() == BUILTIN


def _claims() -> dict[str, list[EntryPoint]]:
    """Every entry point of the group, by the type name it claims (built-ins first)."""
    out: dict[str, list[EntryPoint]] = defaultdict(list)
    for ep in sorted(entry_points(group=GROUP), key=lambda e: not _builtin(e)):
        out[ep.name].append(ep)
    return dict(out)


@cache
def available() -> dict[str, EntryPoint]:
    """Installed connector types by name, loaded lazily (importing an SDK costs start-up time):
    each name's built-in, or its only plug-in."""
    return {name: eps[0] for name, eps in _claims().items() if _builtin(eps[0]) or len(eps) == 1}


@cache
def refused() -> dict[str, list[tuple[EntryPoint, str]]]:
    """The entry points not used, by the type name they claim, each with why (logged once)."""
    out: dict[str, list[tuple[EntryPoint, str]]] = {}
    for name, eps in _claims().items():
        if _builtin(eps[0]):
            why = f"the type name {name!r} is inlet's built-in connector; rename the entry point in {{}}"
            out[name] = [(ep, why.format(_dist(ep))) for ep in eps[1:]]
        elif len(eps) > 1:
            dists = " and ".join(f"{_dist(ep)} ({ep.value})" for ep in eps)
            why = f"type name {name!r} is claimed by {dists}; uninstall one or rename its entry point"
            out[name] = [(ep, why) for ep in eps]
    for ep, why in (pair for pairs in out.values() for pair in pairs):
        log.warning("connector plug-in %s refused: %s", ep.value, why)
    return {name: pairs for name, pairs in out.items() if pairs}


def origin(type_name: str) -> str:
    """Where an installed type's class comes from, for a message blaming it: "plug-in
    module:Class (distribution)", or "built-in"."""
    ep = available().get(type_name)
    if ep is None:
        return "no installed entry point"
    if _builtin(ep):
        return "built-in"
    return f"plug-in {ep.value} ({_dist(ep)})"


def connector_class(type_name: str) -> type[Connector]:
    eps = available()
    clash = refused().get(type_name)  # logs what is refused, once
    if type_name not in eps:
        if clash:
            raise ConfigError(f"connector type {type_name!r} is ambiguous: {clash[0][1]}")
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown connector type {type_name!r} (installed: {known})")
    ep = eps[type_name]
    try:
        cls = ep.load()
    except Exception as exc:  # a plug-in's own bug, or a dependency it lacks
        raise ConfigError(
            f"connector type {type_name!r}: plug-in {ep.value} ({_dist(ep)}) cannot be imported: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"entry point {type_name!r} in {GROUP} is not an inlet Connector class")
    if cls.type != type_name:
        raise ConfigError(
            f"connector type {type_name!r}: plug-in {ep.value} ({_dist(ep)}) is a connector of type "
            f"{cls.type!r}: an entry point's name must be its class's `type` (the documents' source_type); "
            "rename one of them"
        )
    if problem := config_problem(getattr(cls, "Config", None)):
        raise ConfigError(f"connector type {type_name!r}: plug-in {ep.value} ({_dist(ep)}): {problem}")
    return cls
