"""Prometheus metrics of the serve stage, per model version."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Collection
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from weir.contract.records import Prediction

# From an event's time to its served prediction: 1 ms to 10 s, about four buckets per decade, so a p99 of tens
# of milliseconds is resolved.
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
                   0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
ERROR_KINDS = (("timeout", "timeout"), ("no answer", "no-answer"))  # the error's first words -> its label


class ServeMetrics:
    """Per model version: predictions, served, errors, latency, and the share of recent traffic it served.

    Counts are gathered per batch and added once (``flush``), and label
    children are cached: prometheus-client takes a lock and a label lookup per
    update, which cost more than a linear model's prediction.
    """

    def __init__(self, registry: CollectorRegistry, window: int = 1000) -> None:
        labels = ["model", "version"]
        self.predictions = Counter("weir_serve_predictions", "Predictions made", [*labels, "role"], registry=registry)
        self.served = Counter("weir_serve_served", "Predictions served", labels, registry=registry)
        self.errors = Counter("weir_serve_errors", "Versions that failed on an event", [*labels, "kind"],
                              registry=registry)
        self.latency = Histogram("weir_serve_latency_seconds", "Time a version took to score one event", labels,
                                 registry=registry, buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1))
        self.share = Gauge("weir_serve_traffic_share", f"Share of the last {window} served events", labels,
                           registry=registry)
        self.e2e = Histogram("weir_e2e_latency_seconds", "From an event's time to its served prediction", ["model"],
                             registry=registry, buckets=LATENCY_BUCKETS)
        self.staleness = Gauge("weir_serve_snapshot_staleness_labels",
                               "Labels the learner learned that this worker's copy of the model does not reflect yet",
                               labels, registry=registry)
        self.window = window
        self._children: dict[tuple[Any, ...], Any] = {}
        self._pending: Tally[tuple[Any, ...]] = Tally()
        self._recent: Tally[tuple[str, str]] = Tally()

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_event(self, model: str, records: Collection[Prediction], served: str | None) -> None:
        pending = self._pending
        for r in records:
            version = r["model_version"]
            self._child(self.latency, model, version).observe(r["latency_ms"] / 1000.0)
            if r["error"] is None:
                pending[(self.predictions, model, version, r["role"])] += 1
            else:
                kind = next((k for prefix, k in ERROR_KINDS if r["error"].startswith(prefix)), "exception")
                pending[(self.errors, model, version, kind)] += 1
        if served is not None:
            pending[(self.served, model, served)] += 1
            self._recent[(model, served)] += 1
            record = next(r for r in records if r["model_version"] == served)
            self._child(self.e2e, model).observe(max(0.0, (record["predicted_at"] - record["event_time"]) / 1000))

    def flush(self) -> None:
        """Add the batch's counts; publish the traffic shares once a window of served events is full."""
        for (metric, *labels), n in self._pending.items():
            self._child(metric, *labels).inc(n)
        self._pending.clear()
        seen = sum(self._recent.values())
        if seen >= self.window:
            for key, n in self._recent.items():
                self._child(self.share, *key).set(n / seen)
            self._recent.clear()
