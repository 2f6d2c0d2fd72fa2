"""What `inlet status` and `GET /v1/sources` report, read from the SQLite files only.

No Chroma, no lock: status works while a sync or the daemon holds the index.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inlet.config import Settings
from inlet.sync.schedule import next_run
from inlet.sync.state import StateDB


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _counts(path: Path) -> dict[str, tuple[int, int]]:
    catalog = path / "catalog.db"
    if not catalog.exists():
        return {}
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT source, COUNT(*), COALESCE(SUM(chunks), 0) FROM documents GROUP BY source")
        return {r[0]: (r[1], r[2]) for r in rows}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def sources_status(settings: Settings, state: StateDB | None = None) -> dict[str, Any]:
    path = Path(settings.index.path)
    own = state is None
    state = state or StateDB(path / "state.db")
    try:
        counts = _counts(path)
        out = []
        for source in settings.sources:
            last = state.last_run(source.name)
            ok = state.last_run(source.name, successful=True)
            due = next_run(source, last.finished_at if last else None)
            docs, chunks = counts.get(source.name, (0, 0))
            out.append({
                "name": source.name, "type": source.type, "documents": docs, "chunks": chunks,
                "last_run": None if last is None else {
                    "started_at": iso(last.started_at), "finished_at": iso(last.finished_at),
                    "outcome": last.outcome, "upserted": last.upserted, "deleted": last.deleted,
                    "skipped": last.skipped, "errors": last.errors, "error": last.error, "kind": last.kind,
                },
                "next_run": due.isoformat().replace("+00:00", "Z") if due else None,
                "last_success": iso(ok.finished_at) if ok else None,
                "lag_seconds": round(datetime.now(timezone.utc).timestamp() - ok.finished_at, 1)
                if ok and ok.finished_at else None,
            })
        return {"sources": out}
    finally:
        if own:
            state.close()
