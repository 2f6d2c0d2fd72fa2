"""Placeholder: the emulated graph service (being written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def seed_sample(ws: Any, path: Path | None = None) -> None:
    return None


def seed_generated(ws: Any, **sizes: int) -> None:
    return None


def routes(ctx: Any) -> list[Any]:
    return []


def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    return "", {}
