"""Thin wrappers over confluent-kafka with the defaults that keep data.

librdkafka's defaults lose records unless set (DESIGN §4): producers here are
idempotent with ``acks=all``; consumers start from the earliest offset and
store an offset only after its effect, never on poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from weir.errors import WeirError
from weir.settings import Settings


def make_producer(settings: Settings, **extra: Any) -> Producer:
    return Producer(
        settings.librdkafka(
            **{
                "enable.idempotence": True,
                # Java's and aiokafka's partitioner: a key lands on the same partition whichever client
                # wrote it, which the label join's co-partitioning depends on.
                "partitioner": "murmur2_random",
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                **extra,
            }
        )
    )


def make_consumer(settings: Settings, group_id: str, **extra: Any) -> Consumer:
    return Consumer(
        settings.librdkafka(
            **{
                "group.id": group_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                **extra,
            }
        )
    )


@dataclass
class DeliveryReport:
    """Counts what the broker acknowledged and what it refused; refusals keep their reasons."""

    delivered: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def callback(self, err: KafkaError | None, _msg: Message) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
            else:
                self.failed += 1
                self.errors[err.str()] = self.errors.get(err.str(), 0) + 1


def produce(producer: Producer, topic: str, value: bytes | None, key: bytes | None = None, **kwargs: Any) -> None:
    """Produce, waiting for room when librdkafka's queue is full instead of failing the record."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


def flush_or_raise(producer: Producer, timeout_s: float = 60.0) -> None:
    """Flush and fail loudly if records are still queued: they would be lost silently."""
    remaining = producer.flush(timeout_s)
    if remaining:
        raise WeirError(f"{remaining} records still undelivered after {timeout_s:.0f} s")


def read_topic(
    settings: Settings,
    topic: str,
    *,
    timeout_s: float = 30.0,
    batch: int = 1000,
) -> Iterator[Message]:
    """Every record of ``topic`` from the beginning to the end it had when called.

    Uses manual assignment, so it joins no group and commits nothing: reading
    a topic to count or inspect it never moves anybody's offsets.
    """
    consumer = Consumer(settings.librdkafka(**{"group.id": "weir-reader", "enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics[topic]
        if metadata.error is not None:
            raise WeirError(f"cannot read {topic}: {metadata.error.str()}")
        ends: dict[int, int] = {}
        for p in metadata.partitions:
            low, high = watermarks(consumer, TopicPartition(topic, p))
            if high > low:
                ends[p] = high
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise WeirError(f"reading {topic} did not reach its end within {timeout_s:.0f} s")
            for msg in consumer.consume(batch, timeout=0.5):
                if msg.error() is not None:
                    raise WeirError(f"reading {topic}: {msg.error().str()}")
                p = msg.partition()
                if p not in ends:
                    continue
                yield msg
                if msg.offset() + 1 >= ends[p]:
                    del ends[p]
    finally:
        consumer.close()


# A topic created a moment ago answers these until its partition leaders are elected.
_NOT_READY_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART}


def watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float = 30.0) -> tuple[int, int]:
    """(low, high) offsets of a partition, waiting out a leader election on a topic just created."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return low, high
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_READY_YET or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def end_offsets(settings: Settings, topic: str) -> int:
    """The sum of a topic's high watermarks: how many records were ever written to it (no compaction)."""
    consumer = Consumer(settings.librdkafka(**{"group.id": "weir-watermarks"}))
    try:
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        return sum(watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions)
    finally:
        consumer.close()


def poll_until(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2,
               what: str = "condition") -> None:
    """Wait for ``predicate`` with a deadline instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s")
        time.sleep(interval_s)


def assigned_members(settings: Settings, group: str) -> int:
    """How many members of consumer group ``group`` hold partitions now."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.librdkafka())  # keep a reference: a collected client abandons its futures
    description = admin.describe_consumer_groups([group])[group].result(timeout=15)
    return sum(1 for m in description.members if m.assignment.topic_partitions)
