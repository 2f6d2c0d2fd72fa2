"""Where an index is kept: the bottom layer, below the index, the engine and the server.

Layers inside, each looking only down:
- `types`, `records`, `protocols`, `dialect`, `lexical`, `migrations`: values, protocols and the
  pure helpers every backend shares (no I/O);
- `patience`: who waits for an unreachable database (a run) and who does not (a request);
- `reads`, `state`: the catalog reads and the state written once over a `Dialect`;
- `sqlite/` (the index folder) and `postgres/` (one database shared by every host): the two
  implementations, each with its named schema steps;
- `backend.open_backend`: the one place that chooses between them.

Storage knows no connector (only the document model), no sync and no server.
"""

from .backend import Backend, folder_schema, open_backend
from .patience import impatient
from .protocols import CatalogStore, EventStatusWriter, Leases, StateStore
from .records import Records
from .types import (
    ORPHANED,
    RUNS_KEPT,
    SKIPS_KEPT,
    SYNC_KINDS,
    Commit,
    Fence,
    Filters,
    RunRecord,
    SourceState,
    StoredDoc,
    chunk_doc_id,
    chunk_id,
    visible_only,
)

__all__ = [
    "ORPHANED",
    "RUNS_KEPT",
    "SKIPS_KEPT",
    "SYNC_KINDS",
    "Backend",
    "CatalogStore",
    "Commit",
    "EventStatusWriter",
    "Fence",
    "Filters",
    "Leases",
    "Records",
    "RunRecord",
    "SourceState",
    "StateStore",
    "StoredDoc",
    "chunk_doc_id",
    "chunk_id",
    "folder_schema",
    "impatient",
    "open_backend",
    "visible_only",
]
