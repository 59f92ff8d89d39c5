"""Validate stage: decode a raw event with its writer's schema and check it, or say why not.

A record that fails goes to the dead-letter topic with its bytes untouched
(see ``weir.dlq``); a record that passes goes on to ``events.valid``. Nothing
raised here can stop the stage: every failure becomes a ``Rejection``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from streams.stage import InRecord, OutRecord, dead_letter
from weir.clock import now_ms
from weir.dlq import Rejection
from weir.errors import SerdeError
from weir.serde import AvroSerde, Record, SchemaCatalog
from weir.settings import Settings
from weir.topics import EVENTS_DLQ, EVENTS_RAW, EVENTS_VALID, topic_serde

STAGE = "validate"


class EventValidator:
    """Turns raw event bytes into a valid event record or a ``Rejection``."""

    def __init__(
        self,
        raw: AvroSerde,
        *,
        max_future_skew_ms: int = 5 * 60 * 1000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.raw = raw
        self.max_future_skew_ms = max_future_skew_ms
        self.clock = clock

    def validate(self, value: bytes | None) -> Record | Rejection:
        try:
            event = self.raw.decode(value)
        except SerdeError as exc:
            return Rejection(exc.reason, STAGE, str(exc), exception=exc, dimension="accuracy")
        problem = self._check(event)
        if problem is not None:
            return problem
        return {**event, "validated_at": self.clock()}

    def _check(self, event: Record) -> Rejection | None:
        for key in ("event_id", "entity_id"):
            if not event[key]:
                return Rejection("missing-field", STAGE, f"{key} is empty", rule=f"required:{key}",
                                 dimension="completeness")
        for name, value in event["attributes"].items():
            if isinstance(value, float) and not math.isfinite(value):
                return Rejection("non-finite-value", STAGE, f"attribute {name} is {value}",
                                 rule=f"finite:{name}", dimension="accuracy")
        skew = event["event_time"] - self.clock()
        if skew > self.max_future_skew_ms:
            return Rejection("future-event-time", STAGE, f"event_time is {skew / 1000:.0f} s in the future",
                             rule="max-future-skew", dimension="timeliness")
        return None


class ValidateStage:
    """events.raw -> events.valid, or events.dlq with the reason."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        raw_topic = settings.topic(EVENTS_RAW.name)
        self.valid_topic = settings.topic(EVENTS_VALID.name)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (raw_topic,)
        self.outputs = (self.valid_topic, self.dlq_topic)
        self.validator = EventValidator(topic_serde(catalog, settings, EVENTS_RAW))
        self.valid = topic_serde(catalog, settings, EVENTS_VALID)

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        out = []
        for record in batch:
            result = self.validator.validate(record.value)
            if isinstance(result, Rejection):
                out.append(dead_letter(self.dlq_topic, record, result))
            else:
                out.append(OutRecord(self.valid_topic, result["entity_id"].encode(), self.valid.encode(result)))
        return out

    def tick(self) -> list[OutRecord]:
        return []
