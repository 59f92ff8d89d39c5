"""Reading and writing the registry on the ``models`` topic.

The compacted ``models`` topic is the whole registry, so a process builds its
``ModelRegistry`` by reading the topic from the start (``load_registry``) and
then follows new records (the worker's registry agent). Loading returns where
it stopped in each partition so the follower applies each record once, in
order, and never rolls the view back to an older record it re-reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from weir.contract.records import ModelRecord
from weir.contract.serde import AvroSerde, SchemaCatalog, topic_serde
from weir.contract.topics import MODELS
from weir.errors import WeirError
from weir.kafka.clients import flush_or_raise, make_producer
from weir.kafka.reading import read_topic
from weir.registry.records import record_key, routing_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings

log = logging.getLogger("weir.registry")


def registry_records(settings: Settings, catalog: SchemaCatalog) -> Iterator[tuple[int, int, ModelRecord]]:
    """(partition, offset, record) of every readable ``models`` record, in order; unreadable ones are logged."""
    serde = topic_serde(catalog, settings, MODELS)
    for msg in read_topic(settings, serde.topic):
        if msg.value is None:
            continue  # a tombstone deletes nothing from a live view
        try:
            yield msg.partition, msg.offset, serde.decode(msg.value)
        except WeirError as exc:
            log.error("registry record %s/%d/%d skipped: %s", serde.topic, msg.partition, msg.offset, exc)


def load_registry(settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry) -> dict[int, int]:
    """Apply every record the topic holds now; returns, per partition, the offset to follow from."""
    follow_from: dict[int, int] = {}
    for partition, offset, record in registry_records(settings, catalog):
        follow_from[partition] = offset + 1
        try:
            registry.apply(record)
        except WeirError as exc:  # one bad record (a refused pickle, say) must not keep every worker from starting
            log.error("registry record %s/%d/%d skipped: %s", settings.topic(MODELS.name), partition, offset, exc)
    return follow_from


def apply_bytes(registry: ModelRegistry, serde: AvroSerde[ModelRecord], partition: int, offset: int,
                value: bytes) -> bool:
    """Apply one registry record; an unreadable one is logged and skipped, never fatal to serving."""
    try:
        registry.apply(serde.decode(value))
    except WeirError as exc:
        log.error("registry record %s/%d/%d skipped: %s", serde.topic, partition, offset, exc)
        return False
    return True


def publish_records(settings: Settings, catalog: SchemaCatalog, records: list[ModelRecord]) -> None:
    """Write registry records, keyed for compaction, and wait until the broker has them."""
    serde = topic_serde(catalog, settings, MODELS)
    producer = make_producer(settings)
    for record in records:
        producer.produce(serde.topic, key=record_key(record).encode(), value=serde.encode(record))
    flush_or_raise(producer)


def register_default_model(settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry) -> bool:
    """Give an empty registry a v1 champion of ``settings.default_factory``; True if it did.

    A worker on a fresh deployment then serves at once instead of dead-lettering
    every event for want of a model; set WEIR_DEFAULT_FACTORY='' to opt out.
    """
    if registry.routing is not None or not settings.default_factory:
        return False
    records = [
        version_record(registry.model_name, "v1", settings.default_factory, {}, note="default model of a new registry"),
        routing_record(registry.model_name, "basic", "v1", note="default model of a new registry"),
    ]
    publish_records(settings, catalog, records)
    for record in records:
        registry.apply(record)
    return True
