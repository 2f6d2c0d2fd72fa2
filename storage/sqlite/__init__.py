"""The folder backend: SQLite files (`catalog.db`, `state.db`), `flock` leases, `embedding.json`."""
