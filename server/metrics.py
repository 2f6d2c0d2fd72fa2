"""Prometheus metrics: requests and latency by route, index size by source, last successful sync,
audit lines lost.

Each app has its own registry (several apps in one process, as in tests, do not collide). Index
size and sync times are read at scrape time from the catalog and the state database, so they are
right even when another process (the daemon's engine) writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inlet.storage import SYNC_KINDS, Backend

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AuditCollector(Collector):
    """The audit lines lost since start (a file that could not be written: `AuditLog.lost`)."""

    def __init__(self, lost: Callable[[], int]) -> None:
        self._lost = lost

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "inlet_audit_lines_lost", "Audit lines that could not be written (a full disk, ...)", value=self._lost()
        )


class IndexCollector(Collector):
    """Documents and chunks by source, and each source's last successful sync (unix seconds)."""

    def __init__(
        self, counts: Callable[[], dict[str, tuple[int, int]]], last_success: Callable[[], dict[str, float]]
    ) -> None:
        self._counts = counts
        self._last_success = last_success

    def collect(self) -> Iterator[GaugeMetricFamily]:
        docs = GaugeMetricFamily("inlet_index_documents", "Documents in the index", labels=["source"])
        chunks = GaugeMetricFamily("inlet_index_chunks", "Chunks (passages) in the index", labels=["source"])
        try:
            for source, (n_docs, n_chunks) in sorted(self._counts().items()):
                docs.add_metric([source], n_docs)
                chunks.add_metric([source], n_chunks)
        except Exception:  # a scrape must not fail because the catalog is busy
            log.exception("could not read index counts for /metrics")
        yield docs
        yield chunks
        synced = GaugeMetricFamily(
            "inlet_source_last_success_timestamp_seconds",
            "End of the last successful (ok or partial) sync run",
            labels=["source"],
        )
        try:
            for source, when in sorted(self._last_success().items()):
                synced.add_metric([source], when)
        except Exception:
            log.exception("could not read sync state for /metrics")
        yield synced


class Metrics:
    def __init__(
        self, counts: Callable[[], dict[str, tuple[int, int]]], last_success: Callable[[], dict[str, float]]
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inlet_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inlet_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.webhook_refused = Counter(
            "inlet_webhook_refused",
            "Webhook requests (or notifications in them) refused for failing the source's secret, by source",
            ["source"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "inlet_rate_limited",
            "Requests and MCP tool calls refused for their rate limit, by key name (`oauth`: any access token)",
            ["key"],
            registry=self.registry,
        )
        self.registry.register(IndexCollector(counts, last_success))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def last_success_reader(
    state: Any, backend: Backend, index_path: Path, sources: list[str]
) -> Callable[[], dict[str, float]]:
    """Reads each source's last successful run from `state` (a StateStore), or from the backend's
    state beside the index, opened on demand (absent until the first sync)."""

    def read() -> dict[str, float]:
        db = state
        own = False
        if db is None:
            path = index_path / "state.db"
            if not path.exists():
                return {}
            db, own = backend.state(), True
        try:
            out = {}
            for name in sources:
                run = db.last_run(name, successful=True, kinds=SYNC_KINDS)  # a prune is no sync
                if run is not None and run.finished_at:
                    out[name] = float(run.finished_at)
            return out
        finally:
            if own:
                db.close()

    return read
