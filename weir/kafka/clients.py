"""confluent-kafka clients with the defaults that keep data, and delivery accounting.

librdkafka's defaults lose records unless set: producers here are idempotent
with ``acks=all``; consumers start from the earliest offset, store an offset
only after its effect, never on poll, and read committed records only, so no
reader ever sees the outputs of a transaction a crashed stage left open.
librdkafka's own log goes to the ``weir.librdkafka`` logger, summarised
(``weir.kafka.logs``), whenever a client is served (``poll``, ``flush``,
``consume``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from weir.contract.topics import largest_record_bytes
from weir.errors import WeirError
from weir.kafka.logs import with_log
from weir.settings import Settings


def make_producer(settings: Settings, **extra: Any) -> Producer:
    return Producer(
        with_log(settings.librdkafka(
            **{
                "enable.idempotence": True,
                # Java's and aiokafka's partitioner: a key lands on the same partition whichever client
                # wrote it, which the label join's co-partitioning depends on.
                "partitioner": "murmur2_random",
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.max.bytes": largest_record_bytes(settings),  # a model copy is one record
                # How long a record is retried before its delivery fails (a transactional producer: the
                # transaction timeout, which librdkafka puts here itself unless this is given).
                **({} if "transactional.id" in extra else {"message.timeout.ms": settings.delivery_timeout_ms}),
                **extra,
            }
        ))
    )


def make_transactional_producer(settings: Settings, transactional_id: str, **extra: Any) -> Producer:
    """A producer whose writes commit or abort with the input offsets they came from (``init_transactions`` first).

    The transactional id is stable across restarts of the same worker, so the
    restarted one fences its crashed predecessor and aborts what it left open.
    """
    return make_producer(settings, **{"transactional.id": transactional_id,
                                      "transaction.timeout.ms": settings.transaction_timeout_ms, **extra})


def make_consumer(settings: Settings, group_id: str, **extra: Any) -> Consumer:
    return Consumer(
        with_log(settings.librdkafka(
            **{
                "group.id": group_id,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                # librdkafka prefetches up to 64 MB per consumer by default; a few batches ahead is enough.
                "queued.max.messages.kbytes": 8192,
                **extra,
            }
        ))
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


DELIVERY_MARGIN_S = 5.0  # waited beyond a producer's delivery timeout, so librdkafka's own verdict comes first


def delivery_wait_s(settings: Settings, *, transactional: bool) -> float:
    """How long to wait for a producer's records: its delivery timeout (a transactional one's is the transaction
    timeout), by which each has succeeded or failed."""
    timeout_ms = settings.transaction_timeout_ms if transactional else settings.delivery_timeout_ms
    return timeout_ms / 1000 + DELIVERY_MARGIN_S


def flush_or_raise(producer: Producer, settings: Settings) -> None:
    """Flush (riding out an outage as long as the producer retries) and fail loudly if records are still queued:
    they would be lost silently."""
    timeout_s = delivery_wait_s(settings, transactional=False)
    remaining = producer.flush(timeout_s)
    if remaining:
        raise WeirError(f"{remaining} records still undelivered after {timeout_s:.0f} s")
