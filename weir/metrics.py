"""Prometheus metrics of the stream stages, on a registry passed in (never the global one).

Building metrics on a registry the caller owns keeps tests independent and lets
several workers live in one process (DESIGN §4).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

REASON_HEADER = "weir.reason"

if TYPE_CHECKING:
    from collections.abc import Iterable

    from streams.stage import InRecord, OutRecord


class StageMetrics:
    """Records in and out per stage and topic, dead letters by reason, batch time, and consumer lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letters = Counter("weir_dead_letters", "Records a stage sent to the dead-letter topic",
                                    ["stage", "reason"], registry=registry)
        self.lag = Gauge("weir_consumer_lag", "Records between a stage's position and the partition's end",
                         ["stage", "topic", "partition"], registry=registry)
        self.records_in = Counter("weir_stage_records_in", "Records a stage read", ["stage", "topic"],
                                  registry=registry)
        self.records_out = Counter("weir_stage_records_out", "Records a stage wrote (acknowledged)",
                                   ["stage", "topic"], registry=registry)
        self.batch_seconds = Histogram("weir_stage_batch_seconds", "Time to process and deliver one batch",
                                       ["stage"], registry=registry,
                                       buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def observe_batch(self, stage: str, batch: list[InRecord], out: list[OutRecord], seconds: float) -> None:
        for topic, n in Tally(r.topic for r in batch).items():
            self.records_in.labels(stage, topic).inc(n)
        self.observe_output(stage, out)
        self.batch_seconds.labels(stage).observe(seconds)

    def observe_output(self, stage: str, out: list[OutRecord]) -> None:
        for topic, n in Tally(r.topic for r in out).items():
            self.records_out.labels(stage, topic).inc(n)
        reasons = Tally(dict(o.headers or []).get(REASON_HEADER, b"?").decode() for o in out
                        if o.headers and any(k == REASON_HEADER for k, _ in o.headers))
        for reason, n in reasons.items():
            self.dead_letters.labels(stage, reason).inc(n)

    def observe_lag(self, stage: str, lags: dict[tuple[str, int], int]) -> None:
        for (topic, partition), lag in lags.items():
            self.lag.labels(stage, topic, str(partition)).set(lag)


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
                             registry=registry, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
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

    def observe_event(self, model: str, records: Iterable[dict], served: str | None) -> None:
        pending = self._pending
        for r in records:
            version = r["model_version"]
            self._child(self.latency, model, version).observe(r["latency_ms"] / 1000.0)
            if r["error"] is None:
                pending[(self.predictions, model, version, r["role"])] += 1
            else:
                kind = "timeout" if r["error"].startswith("timeout") else "exception"
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


def serve_metrics(port: int | None, collector: Collector) -> None:
    """Expose one collector on its own /metrics (for processes that are not faust workers); no port, no server."""
    if not port:
        return
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    start_http_server(port, registry=registry)


class CountersCollector(Collector):
    """Counters read from a live object at scrape time: ``read`` returns {(name, labels): value}."""

    def __init__(self, help_text: str, read: Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]]
                 ) -> None:
        self.help_text = help_text
        self.read = read

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for (name, labels), value in sorted(self.read().items()):
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(name, self.help_text, labels=[k for k, _ in labels])
            family.add_metric([v for _, v in labels], value)
        yield from families.values()
