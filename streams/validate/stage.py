"""Validate stage: events.raw -> events.valid, or events.dlq with the reason.

A record that fails goes to the dead-letter topic with its bytes untouched and
the reason, rule and dimension in its headers (``weir.contract.deadletter``).
A record the HTTP service already served, signed under the deployment's key
(``weir.contract.served``), is passed by: it has its features and predictions.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.runtime.stage import dead_letter
from streams.validate import quality
from streams.validate.encoding import ValidEncoder
from streams.validate.rules import RuleSet
from streams.validate.validator import STAGE, EventValidator
from weir.contract.deadletter import Rejection, is_signed_resend
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import ValidEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.served import served_claim
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, EVENTS_VALID
from weir.registry.signing import model_signer
from weir.settings import Settings, revealed


class ValidateStage:
    """events.raw -> events.valid, or events.dlq with the reason."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog, metrics: CollectorRegistry | None = None) -> None:
        raw = topic_serde(catalog, settings, EVENTS_RAW)
        self.valid = topic_serde(catalog, settings, EVENTS_VALID)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (raw.topic,)
        self.outputs = (self.valid.topic, self.dlq_topic)
        self.validator = EventValidator(raw, RuleSet.load(settings.rules_path))
        self.encoder = ValidEncoder(raw, self.valid)
        self.resend_key = revealed(settings.resend_key)
        self.signer = model_signer(settings)
        if metrics is not None:
            quality.register(self.validator.counters, metrics)

    def check(self, record: InRecord) -> tuple[ValidEvent | None, OutRecord | None]:
        """The valid event and its ``events.valid`` record, or None and the dead letter saying why; nothing for
        an event another Weir process served."""
        claim = served_claim(record.headers)
        if claim is not None and self.signer.is_served(record.value, claim[1]):
            self.validator.counters.served_elsewhere[claim[0]] += 1
            return None, None
        resent = is_signed_resend(record.headers, record.value, self.resend_key)
        result = self.validator.validate(record.value, resent=resent)
        if isinstance(result, Rejection):
            return None, dead_letter(self.dlq_topic, record, result)
        return result, OutRecord(self.valid.topic, result["entity_id"].encode(),
                                 self.encoder.encode(result, record.value))

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return [out for out in (self.check(record)[1] for record in batch) if out is not None]

    def tick(self) -> list[OutRecord]:
        return []
