"""Reading and writing the registry on the ``models`` topic.

The compacted ``models`` topic is the whole registry, so a process builds its
``ModelRegistry`` by reading the topic from the start (``load_registry``) and
then follows new records (the worker's registry agent). Loading returns where
it stopped in each partition so the follower applies each record once, in
order, and never rolls the view back to an older record it re-reads.
"""

from __future__ import annotations

import logging
from collections import Counter

from weir.contract.records import ModelRecord
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import MODELS
from weir.errors import WeirError
from weir.kafka.clients import flush_or_raise, make_producer
from weir.kafka.reading import read_topic
from weir.registry.factories import refuse_unlearnable
from weir.registry.records import record_key, routing_record, version_record
from weir.registry.signing import UNSIGNED, model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings

log = logging.getLogger("weir.registry")

UNDECODABLE, UNLOADABLE = "undecodable", "unloadable"


class RegistryIntake:
    """Admits ``models`` records into a live view: decoded, model bytes signed, models loadable.

    A record that fails is logged and counted by reason (``refused``, exported
    as ``weir_registry_refused_total``), never fatal: one forged or broken
    record must not keep a worker from starting or stop it serving.
    """

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        self.settings = settings
        self.serde = topic_serde(catalog, settings, MODELS)
        self.signer = model_signer(settings)
        self.refused: Counter[str] = Counter()

    def decode(self, partition: int, offset: int, value: bytes) -> ModelRecord | None:
        """The record, if it decodes and any model bytes it carries are signed with the deployment's key."""
        try:
            record = self.serde.decode(value)
        except WeirError as exc:
            self._refuse(partition, offset, UNDECODABLE, str(exc))
            return None
        refusal = self.signer.refusal(record)
        if refusal is not None:
            what = "without a signature" if refusal == UNSIGNED else "whose signature does not match"
            self._refuse(partition, offset, refusal, f"{record['kind']} of {record['model_name']} {record['version']}: "
                         f"model bytes {what} (not written with this deployment's model key)")
            return None
        return record

    def apply(self, registry: ModelRegistry, partition: int, offset: int, value: bytes) -> bool:
        """Fold one record into ``registry``; False (logged, counted) if it was refused."""
        record = self.decode(partition, offset, value)
        if record is None:
            return False
        try:
            registry.apply(record)
        except WeirError as exc:  # signed, yet not loadable here (a river class this version lacks, say)
            self._refuse(partition, offset, UNLOADABLE, str(exc))
            return False
        return True

    def _refuse(self, partition: int, offset: int, reason: str, detail: str) -> None:
        self.refused[reason] += 1
        log.error("registry record %s/%d/%d refused (%s): %s", self.serde.topic, partition, offset, reason, detail)


def load_registry(settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                  intake: RegistryIntake | None = None) -> dict[int, int]:
    """Apply every record the topic holds now; returns, per partition, the offset to follow from."""
    intake = intake or RegistryIntake(settings, catalog)
    follow_from: dict[int, int] = {}
    for msg in read_topic(settings, intake.serde.topic):
        follow_from[msg.partition] = msg.offset + 1
        if msg.value is not None:
            intake.apply(registry, msg.partition, msg.offset, msg.value)
    return follow_from


def publish_records(settings: Settings, catalog: SchemaCatalog, records: list[ModelRecord]) -> None:
    """Write registry records, keyed for compaction and model bytes signed, and wait until the broker has them."""
    serde = topic_serde(catalog, settings, MODELS)
    signer = model_signer(settings)
    producer = make_producer(settings)
    for record in records:
        producer.produce(serde.topic, key=record_key(record).encode(), value=serde.encode(signer.sign(record)))
    flush_or_raise(producer, settings)


def register_default_model(settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry) -> bool:
    """Give an empty registry a v1 champion of ``settings.default_factory``; True if it did.

    A worker on a fresh deployment then serves at once instead of dead-lettering
    every event for want of a model; set WEIR_DEFAULT_FACTORY='' to opt out.
    """
    if registry.routing is not None or not settings.default_factory:
        return False
    refuse_unlearnable(settings.default_factory, kind=settings.label_kind, where="WEIR_LABEL_KIND")
    records = [
        version_record(registry.model_name, "v1", settings.default_factory, {}, note="default model of a new registry"),
        routing_record(registry.model_name, "basic", "v1", note="default model of a new registry"),
    ]
    publish_records(settings, catalog, records)
    for record in records:
        registry.apply(record)
    return True
