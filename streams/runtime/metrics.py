"""Prometheus metrics every stage has: records in and out, dead letters by reason, batch time, lag."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:

    from weir.contract.messages import InRecord, OutRecord


REASON_HEADER = "weir.reason"


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
        self.restarts = Counter("weir_stage_restarts", "Sessions a stage started again, by cause: kafka (a Kafka "
                                "failure) or stage (the stage raised)", ["stage", "cause"], registry=registry)
        self.up = Gauge("weir_stage_up", "1 while a stage's session runs, 0 while it starts or backs off after a "
                        "failure", ["stage"], registry=registry)
        self.batch_seconds = Histogram("weir_stage_batch_seconds",
                                       "Time to process one batch and hand its outputs to the producer (its commit "
                                       "runs after)", ["stage"], registry=registry,
                                       buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def observe_batch(self, stage: str, batch: list[InRecord], out: list[OutRecord], seconds: float) -> None:
        for topic, n in Tally(r.topic for r in batch).items():
            self.records_in.labels(stage, topic).inc(n)
        self.observe_output(stage, out)
        self.batch_seconds.labels(stage).observe(seconds)

    def observe_output(self, stage: str, out: list[OutRecord]) -> None:
        for topic, n in Tally(r.topic for r in out).items():
            self.records_out.labels(stage, topic).inc(n)
        reasons = Tally((value or b"?").decode() for o in out for key, value in o.headers or [] if key == REASON_HEADER)
        for reason, n in reasons.items():
            self.dead_letters.labels(stage, reason).inc(n)

    def observe_lag(self, stage: str, lags: dict[tuple[str, int], int]) -> None:
        for (topic, partition), lag in lags.items():
            self.lag.labels(stage, topic, str(partition)).set(lag)
