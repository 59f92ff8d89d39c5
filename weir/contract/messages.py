"""Records as Weir reads them from Kafka and writes them back: plain, typed, and free of client objects.

confluent-kafka's ``Message`` answers ``None`` for its topic, partition or
offset when it carries an error; an ``InRecord`` is made only from a message
without one, so every field is there. Stages, readers and tools all take
these, which is what lets a stage be tested without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

from weir.contract.deadletter import Origin

Headers = list[tuple[str, bytes | None]]  # a header's value may be null


@dataclass(frozen=True, slots=True)
class InRecord:
    """A record read from a partition, where it was read, and its bytes as they came."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def origin(self) -> Origin:
        return Origin(self.topic, self.partition, self.offset, self.timestamp_ms)

    @classmethod
    def of(cls, m: Message) -> InRecord:
        """The record of a message that carries no error."""
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        assert topic is not None and partition is not None and offset is not None, "a message with an error"
        headers = m.headers() or []
        assert isinstance(headers, list), "a consumed message's headers are a list"
        return cls(topic, partition, offset, m.timestamp()[1], m.key(), m.value(),
                   [(k, v if not isinstance(v, str) else v.encode()) for k, v in headers])


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to write: its topic, key, value and headers; ``partition`` None lets the producer's partitioner
    choose by key (every contract topic but a changelog, which follows its input partition)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None


def kafka_headers(headers: Headers | None) -> list[tuple[str, str | bytes | None]] | None:
    """Headers as confluent-kafka's producer takes them."""
    return list(headers) if headers else None
