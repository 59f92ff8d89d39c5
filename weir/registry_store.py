"""Reading and writing the registry on the ``models`` topic.

``RegistryFollower`` keeps one process's ``ModelRegistry`` in step with the
topic: a full read at start-up (the compacted topic is the whole registry),
then cheap non-blocking polls, so a routing change reaches a running worker
without a restart. It assigns partitions itself and joins no consumer group:
every process must see every registry record.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from weir.errors import WeirError
from weir.kafka import flush_or_raise, make_producer
from weir.registry import CHAMPION, ModelRegistry, record_key, routing_record, version_record
from weir.serde import Record, SchemaCatalog
from weir.settings import Settings
from weir.topics import MODELS, topic_serde


class RegistryFollower:
    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry) -> None:
        self.registry = registry
        self.serde = topic_serde(catalog, settings, MODELS)
        self.consumer = Consumer(settings.librdkafka(**{"group.id": f"{settings.app_id}-registry",
                                                        "enable.auto.commit": False}))
        self.applied = 0
        self.skipped = 0

    def load(self, timeout_s: float = 30.0) -> int:
        """Apply every record the topic holds now; returns how many."""
        topic = self.serde.topic
        metadata = self.consumer.list_topics(topic, timeout=15).topics[topic]
        if metadata.error is not None:
            raise WeirError(f"cannot read the registry topic {topic}: {metadata.error.str()}")
        partitions = sorted(metadata.partitions)
        ends = {}
        for p in partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            ends[p] = high
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while any(self.consumer.position([TopicPartition(topic, p)])[0].offset < end
                  for p, end in ends.items() if end > 0):
            if time.monotonic() > deadline:
                raise WeirError(f"reading the registry topic {topic} took longer than {timeout_s:.0f} s")
            self._apply_batch(self.consumer.consume(500, timeout=0.5))
        return self.applied

    def poll(self, timeout_s: float = 0.0) -> int:
        """Apply whatever arrived since the last call (by default without blocking); returns how many."""
        return self._apply_batch(self.consumer.consume(500, timeout=timeout_s))

    def _apply_batch(self, messages: list) -> int:
        applied = 0
        for msg in messages:
            if msg.error() is not None or msg.value() is None:  # tombstones delete nothing from a live view
                continue
            try:
                record = self.serde.decode(msg.value())
            except WeirError:
                self.skipped += 1  # counted and visible; one bad record must not blind the registry
                continue
            self.registry.apply(record)
            applied += 1
        self.applied += applied
        return applied

    def close(self) -> None:
        self.consumer.close()


def publish_records(settings: Settings, catalog: SchemaCatalog, records: list[Record]) -> None:
    """Write registry records, keyed for compaction, and wait until the broker has them."""
    serde = topic_serde(catalog, settings, MODELS)
    producer = make_producer(settings)
    for record in records:
        producer.produce(serde.topic, key=record_key(record).encode(), value=serde.encode(record))
    flush_or_raise(producer)


def register_default_model(settings: Settings, catalog: SchemaCatalog, follower: RegistryFollower,
                           *, timeout_s: float = 15.0) -> bool:
    """Give an empty registry a v1 champion of ``settings.default_factory``; True if it did.

    A worker on a fresh deployment then serves at once instead of dead-lettering
    every event for want of a model; set WEIR_DEFAULT_FACTORY='' to opt out.
    """
    registry = follower.registry
    if registry.routing is not None or not settings.default_factory:
        return False
    publish_records(settings, catalog, [
        version_record(registry.model_name, "v1", settings.default_factory, {}, status=CHAMPION),
        routing_record(registry.model_name, "basic", "v1"),
    ])
    deadline = time.monotonic() + timeout_s
    while registry.routing is None:
        if time.monotonic() > deadline:
            raise WeirError("registered a default model but never read it back from the models topic")
        follower.poll(timeout_s=0.2)
    return True
