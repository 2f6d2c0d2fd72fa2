"""Embed each distinct text once: a chunk whose text was embedded before reuses that vector.

Quoted mail history, boilerplate footers and copies of one file repeat the same chunk texts
across documents and sources (four copies of a 2 MB licence file cost ~19k chunks in one trial).
Each chunk's key is a hash of the model fingerprint and the text the model sees; the catalog maps
chunk ids to keys (the `key` of each chunk row, written and dropped with the chunk itself), so a key's
reference count is simply its number of rows, and a delete can never strand another chunk: every
chunk keeps its own copy of the vector in Chroma, and a lookup only ever names a chunk that
exists (the catalog is written after Chroma, and a vector that cannot be read back is embedded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

Lookup = Callable[[list[str]], dict[str, str]]  # keys -> one chunk id holding each (the catalog's keyed_chunks)
Fetch = Callable[[list[str]], dict[str, Any]]  # chunk ids -> Chroma's `get` answer with their embeddings
Encode = Callable[[list[str]], Any]  # texts -> their vectors (the model)


def text_key(fingerprint: dict[str, str], text: str) -> str:
    return hashlib.sha256(f"{fingerprint['model']}\x00{fingerprint['backend']}\x00{text}".encode()).hexdigest()


def embed_distinct(
    inputs: Sequence[str],
    keys: Sequence[str],
    lookup: Lookup,
    fetch: Fetch,
    encode: Encode,
    guard: AbstractContextManager[Any] | None = None,
) -> tuple["np.ndarray", int]:
    """Vectors for `inputs` (whose `text_key`s are `keys`), and how many texts went through `encode`.

    `lookup` names a chunk already holding each known key, `fetch` reads those chunks' vectors.
    Both run inside `guard`, which a concurrent write holds (see `inlet.sync.pipeline`): a chunk's
    new vector is in Chroma a moment before the catalog names its new key, and a lookup in between
    would take that vector for the old text."""
    import numpy as np

    first = {key: pos for pos, key in reversed(list(enumerate(keys)))}  # each distinct text's first place
    found: dict[str, np.ndarray] = {}
    with guard or nullcontext():
        known = lookup(list(first))
        if known:
            got = fetch(list(known.values()))
            by_chunk = dict(zip(got["ids"], got["embeddings"]))
            found = {key: np.asarray(by_chunk[cid]) for key, cid in known.items() if cid in by_chunk}
    missing = [key for key in first if key not in found]
    if missing:
        fresh = encode([inputs[first[key]] for key in missing])
        found.update(zip(missing, fresh))
    return np.vstack([found[key] for key in keys]).astype(np.float32), len(missing)
