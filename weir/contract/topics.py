"""The topic contract: every topic Weir reads or writes, the schema of its values, and its cleanup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from weir.contract.records import (
    Alert,
    FeatureVector,
    Feedback,
    ModelRecord,
    Prediction,
    RawEvent,
    ServedEvent,
    ValidEvent,
)
from weir.settings import Settings

DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000

R = TypeVar("R")


@dataclass(frozen=True)
class ContractTopic(Generic[R]):
    """One topic of the contract: its logical name, the schema of its values (typed ``R``), its cleanup."""

    name: str
    schema: str | None  # None: values are someone else's bytes (the DLQ keeps them untouched)
    doc: str
    compacted: bool = False
    partitions: int | None = None  # None: the deployment's setting

    def partition_count(self, settings: Settings) -> int:
        return self.partitions or settings.partitions


EVENTS_RAW: ContractTopic[RawEvent] = ContractTopic(
    "events.raw", "raw_event", "raw events from producers, nothing validated"
)
EVENTS_DLQ: ContractTopic[bytes] = ContractTopic(
    "events.dlq", None, "bad input, original bytes untouched, reason in headers"
)
EVENTS_VALID: ContractTopic[ValidEvent] = ContractTopic("events.valid", "valid_event", "events that passed validation")
FEATURES: ContractTopic[FeatureVector] = ContractTopic(
    "features", "feature_vector", "point-in-time features the models scored"
)
PREDICTIONS: ContractTopic[Prediction] = ContractTopic(
    "predictions", "prediction", "one record per (event, scored version); one served"
)
# Written by the front to the partition number of the events.raw partition the event came on: its memory of served ids
# for that partition, rebuilt from here after a crash or when the partition moves to another front.
EVENTS_SERVED: ContractTopic[ServedEvent] = ContractTopic(
    "events.served", "served_event", "event ids the front served, per events.raw partition: its dedupe memory"
)
FEEDBACK: ContractTopic[Feedback] = ContractTopic("feedback", "feedback", "true labels, late, duplicated or missing")
FEEDBACK_LATE: ContractTopic[bytes] = ContractTopic(
    "feedback.late", None, "labels that came after their join window, bytes untouched"
)
# One partition: registry decisions must be applied in one total order by every process.
MODELS: ContractTopic[ModelRecord] = ContractTopic(
    "models", "model_record", "registry: versions, routing, metrics", compacted=True, partitions=1
)
ALERTS: ContractTopic[Alert] = ContractTopic("alerts", "alert", "drift and quality alerts, firing and resolved")

CONTRACT: tuple[ContractTopic[Any], ...] = (
    EVENTS_RAW,
    EVENTS_DLQ,
    EVENTS_VALID,
    EVENTS_SERVED,
    FEATURES,
    PREDICTIONS,
    FEEDBACK,
    FEEDBACK_LATE,
    MODELS,
    ALERTS,
)


def topic_config(topic: ContractTopic[Any], settings: Settings) -> dict[str, str]:
    if topic is MODELS:  # model copies grow with what they learn (a Hoeffding tree passes 1 MB, Kafka's default)
        return {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000",
                "max.message.bytes": str(largest_record_bytes(settings))}
    if topic is EVENTS_SERVED:  # an id is remembered for the horizon; a day more lets a recovery start before it
        retention = settings.dedupe_horizon_ms + 24 * 3600 * 1000
        return {"cleanup.policy": "delete", "retention.ms": str(retention)}
    if topic.compacted:
        return {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"}
    retention = settings.retention_ms
    if topic in (EVENTS_DLQ, FEEDBACK_LATE):
        retention = max(retention, DEAD_LETTER_RETENTION_MS)
    return {"cleanup.policy": "delete", "retention.ms": str(retention)}


RECORD_ENVELOPE_BYTES = 65_536  # a model record's fields, signature and batch header beside the model's bytes


def largest_record_bytes(settings: Settings) -> int:
    """The largest record Weir writes: a model copy of ``WEIR_MAX_SNAPSHOT_BYTES`` in its record. Producers and
    the ``models`` topic accept it."""
    return settings.max_snapshot_bytes + RECORD_ENVELOPE_BYTES
