"""Prometheus view of the learner: label accounting and per-version metric values."""

from __future__ import annotations

import time
from collections import Counter

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from streams.learn.learner import Learner


class LearnMetrics:
    """Prometheus view of the learner: label accounting and per-version metric values."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.labels = PromCounter("weir_learn_labels", "Labels by outcome", ["outcome"], registry=registry)
        self.metric = Gauge("weir_learn_metric", "Per-version metric of learned labels",
                            ["model", "version", "metric"], registry=registry)
        self.snapshot_age = Gauge("weir_learn_snapshot_age_seconds", "Time since the last snapshot",
                                  registry=registry)
        self._seen: Counter[str] = Counter()

    def publish(self, learner: Learner, snapshot_at: float) -> None:
        c = learner.join.counters
        for outcome, value in (("received", c.received), ("joined", c.joined), ("duplicate", c.duplicate),
                               ("late", c.late), ("unmatched", c.unmatched), ("learned", learner.labels_learned)):
            # After a restart from a snapshot the learner counts again what it learned since: count only past the
            # highest value seen, so the counter neither goes back nor counts a label twice.
            if value > self._seen[outcome]:
                self.labels.labels(outcome).inc(value - self._seen[outcome])
                self._seen[outcome] = value
        for version, vm in learner.metrics.items():
            for name, metric in vm.values().items():
                self.metric.labels(learner.registry.model_name, version, name).set(metric)
        self.snapshot_age.set(time.monotonic() - snapshot_at)
