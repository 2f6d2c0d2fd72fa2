"""Which model and backend the index's vectors came from, and a reindex in progress.

Vectors of different models (or of one model through backends that round differently) do not
mix: a query embedded one way finds the wrong neighbours among vectors made another way. So the
index folder records, in `embedding.json`, the fingerprint of its vectors and the Chroma collection
that holds them; opening it with another model or backend is refused (exit 2) until
`inlet reindex` has re-embedded the stored chunk texts into a new collection.

A reindex writes the new collection beside the live one, source by source, saving a cursor
after every batch (the record is replaced by rename, so a crash leaves the old or the new record,
never half of one). The live record, and so every search, keeps the old collection until every
source is complete; then one rename switches the index over and the old collection is dropped
(in a folder, with its files: `vectors.remove_unused_segments`).

The record leaves out the ONNX export's version (`backends.EXPORT_VERSION`), on purpose. Every
export of a backend is held by tests/index/test_backends.py to the backend's documented cosine
distance from torch (`MAX_COSINE_DISTANCE`), and int8 vectors already move within that distance
with their batch-mates; an export change is made for speed, and one that moved vectors further
fails that test instead of shipping. Refusing the index would force `inlet reindex` (hours for a
million chunks) for vectors that are interchangeable within the tolerance searches already live
with. A change of model or backend is refused, as above.

With `[index].database_url` the same record is one row of the index database
(`inlet.storage.postgres.records`), so every daemon and replica on any host is held to it. There
several processes may write it (a reindex, and daemons whose syncs send sources back to its
queue), so each write names the version it read and is refused (`RecordChanged`) if another
landed first: the writer reads again and redoes. `index/record.py` owns the record of an open index.
"""

from __future__ import annotations

import hashlib

from inlet.errors import EmbeddingMismatchError
from inlet.storage.records import COLLECTION, Record, RecordChanged, Records

__all__ = ["check", "collection_for", "establish"]
LEGACY_BACKEND = "torch"  # indexes made before the record existed were all embedded by torch


def collection_for(fingerprint: dict[str, str]) -> str:
    """The collection a reindex to `fingerprint` writes (distinct per fingerprint)."""
    digest = hashlib.sha256(f"{fingerprint['model']}|{fingerprint['backend']}".encode()).hexdigest()[:12]
    return f"{COLLECTION}_{digest}"


def establish(records: Records, fingerprint: dict[str, str], has_documents: bool) -> Record:
    """The index's record, written now if it has none: an empty index takes `fingerprint`; one
    made before records existed holds torch vectors of the configured model."""
    record = records.read()
    if record is None:
        backend = LEGACY_BACKEND if has_documents else fingerprint["backend"]
        record = Record(model=fingerprint["model"], backend=backend)
        try:
            records.write(record)
        except RecordChanged:  # another process established it first: theirs holds
            return establish(records, fingerprint, has_documents)
    return record


def check(where: str, record: Record, fingerprint: dict[str, str]) -> None:
    """Refuse vectors made another way, naming both and the command that fixes it."""
    if record.fingerprint == fingerprint:
        return
    raise EmbeddingMismatchError(
        f"{where} holds vectors of model {record.model!r} with backend {record.backend!r}, "
        f"but [index] asks for model {fingerprint['model']!r} with backend {fingerprint['backend']!r}: run "
        f"`inlet reindex [SOURCE ...]` to re-embed the stored texts with the new setting (no source is read "
        f"again), or set [index] model/backend back to {record.model!r}/{record.backend!r}"
    )
