"""Where an index keeps its embedding record: which model and backend made its vectors, and the
reindex under way (the policy around it is `inlet.index.fingerprint`'s).

The folder keeps it in `embedding.json`, replaced by rename, so a crash leaves the old or the new
record, never half of one; one process owns a folder, so no write is ever refused. The database
keeps one versioned row (`postgres/records.py`): a write that names an older version than the
row's is refused with `RecordChanged`, and its writer reads again and redoes its step.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

RECORD = "embedding.json"
COLLECTION = "inlet_chunks"  # the Chroma collection of an index that was never reindexed


@dataclass
class Pending:
    """A reindex under way: its target fingerprint and collection, the sources finished, and
    how far into the current source it got (documents are taken in doc_id order)."""

    model: str
    backend: str
    collection: str
    done: list[str] = field(default_factory=list)
    source: str | None = None
    cursor: str | None = None


@dataclass
class Record:
    model: str
    backend: str
    collection: str = COLLECTION
    pending: Pending | None = None

    @property
    def fingerprint(self) -> dict[str, str]:
        return {"model": self.model, "backend": self.backend}


def parse(text: str) -> Record:
    raw: dict[str, Any] = json.loads(text)
    pending = raw.pop("pending", None)
    return Record(**raw, pending=Pending(**pending) if pending else None)


def read(index_path: Path) -> Record | None:
    path = index_path / RECORD
    if not path.exists():
        return None
    return parse(path.read_text(encoding="utf-8"))


def write(index_path: Path, record: Record) -> None:
    """Replace the record atomically (write a temporary file, fsync, rename)."""
    path = index_path / RECORD
    tmp = path.with_name(f".{RECORD}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(asdict(record), out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class RecordChanged(Exception):
    """Another process wrote the record since this one read it (database indexes only): read it again."""


class Records(Protocol):
    """Where an index keeps its record: `where` names it in messages."""

    where: str

    def read(self) -> Record | None: ...
    def write(self, record: Record) -> None: ...
    def changed(self) -> Record | None: ...


class FolderRecords:
    """`embedding.json` in the index folder: one process per folder, so no write is ever refused
    and nothing changes the record behind this process's back."""

    def __init__(self, index_path: Path) -> None:
        self.path = index_path
        self.where = f"the index at {index_path}"

    def read(self) -> Record | None:
        return read(self.path)

    def write(self, record: Record) -> None:
        write(self.path, record)

    def changed(self) -> Record | None:
        return None
