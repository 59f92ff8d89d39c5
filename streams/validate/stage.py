"""Validate stage: events.raw -> events.valid, or events.dlq with the reason.

A record that fails goes to the dead-letter topic with its bytes untouched and
the reason, rule and dimension in its headers (``weir.contract.deadletter``).
A record the HTTP service already served, signed under the deployment's key
(``weir.contract.served``), is passed by: it has its features and predictions.

An event id served before, within ``WEIR_DEDUPE_HORIZON_MS`` of event time
on the same ``events.raw`` partition (the same entity key), is a duplicate:
it goes to the dead-letter topic as ``duplicate-event`` instead of being
served again. The ids served live in ``weir.state.served``, whose changelog
``events.served`` commits in the stage's own transactions.
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
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, EVENTS_SERVED, EVENTS_VALID
from weir.errors import SerdeError
from weir.registry.signing import model_signer
from weir.settings import Settings, revealed
from weir.state.served import ServedIds


class ValidateStage:
    """events.raw -> events.valid, or events.dlq with the reason."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog, metrics: CollectorRegistry | None = None, *,
                 state_name: str = STAGE) -> None:
        """``state_name``: the name of the loop that runs it (its file of served ids is ``<state_name>-<n>.db``)."""
        self.raw = raw = topic_serde(catalog, settings, EVENTS_RAW)
        self.valid = topic_serde(catalog, settings, EVENTS_VALID)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.served = ServedIds(settings.state_dir / settings.app_id, state_name,
                                topic_serde(catalog, settings, EVENTS_SERVED), horizon_ms=settings.dedupe_horizon_ms,
                                cache_mb=settings.dedupe_cache_mb)
        self.inputs = (raw.topic,)
        self.outputs = (self.valid.topic, self.dlq_topic, self.served.changelog)
        self.validator = EventValidator(raw, RuleSet.load(settings.rules_path))
        self.encoder = ValidEncoder(raw, self.valid)
        self.resend_key = revealed(settings.resend_key)
        self.signer = model_signer(settings)
        if metrics is not None:
            quality.register(self.validator.counters, metrics)

    @property
    def partitioned_state(self) -> ServedIds:
        return self.served

    def check(self, record: InRecord) -> tuple[ValidEvent | None, list[OutRecord]]:
        """The valid event to serve and its records (``events.valid``, and its id for the memory of served ids),
        or None and the dead letter saying why; for an event another Weir process served, None and its id."""
        claim = served_claim(record.headers)
        if claim is not None and self.signer.is_served(record.value, claim[1]):
            self.validator.counters.served_elsewhere[claim[0]] += 1
            return None, self._served_elsewhere(record)
        resent = is_signed_resend(record.headers, record.value, self.resend_key)
        result = self.validator.validate(record.value, resent=resent)
        if isinstance(result, Rejection):
            return None, [dead_letter(self.dlq_topic, record, result)]
        if self.served.seen(record.partition, result["event_id"]):
            return None, [dead_letter(self.dlq_topic, record, self.validator.duplicate(result))]
        return result, [OutRecord(self.valid.topic, result["entity_id"].encode(),
                                  self.encoder.encode(result, record.value)),
                        self.served.add(record.partition, result["event_id"], result["event_time"])]

    def _served_elsewhere(self, record: InRecord) -> list[OutRecord]:
        """The HTTP service served it: its id is remembered as served here too, so the stream never serves it."""
        try:
            event = self.raw.decode(record.value)
        except SerdeError:
            return []  # signed by the deployment's key, so written by Weir itself: it always decodes
        return [self.served.add(record.partition, event["event_id"], event["event_time"])]

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return [out for record in batch for out in self.check(record)[1]]

    def tick(self) -> list[OutRecord]:
        return []
