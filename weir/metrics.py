"""Prometheus metrics of the stream stages, on a registry passed in (never the global one).

Building metrics on a registry the caller owns keeps tests independent and lets
several workers live in one process (DESIGN §4).
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from streams.stage import InRecord, OutRecord


class StageMetrics:
    """Records in and out per stage and topic, and batch processing time."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
