"""Reading topics without joining a group: to their end, their watermarks, a group's members."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from weir.contract.messages import InRecord
from weir.errors import KafkaUnreachable, WeirError
from weir.kafka.logs import with_log
from weir.settings import Settings

Positions = Mapping[int, tuple[int, int | None]]  # partition -> (first offset, last offset or None: to the end)


def read_topic(
    settings: Settings,
    topic: str,
    *,
    timeout_s: float = 30.0,
    batch: int = 1000,
    positions: Positions | None = None,
) -> Iterator[InRecord]:
    """Every committed record of ``topic`` from the beginning to the end it had when called; with ``positions``,
    of those offset ranges only (partition -> (first, last), both included).

    Uses manual assignment, so it joins no group and commits nothing: reading
    a topic to count or inspect it never moves anybody's offsets. It reads
    committed records only; a partition is done when the reader reaches the
    end it had at the call, or the end of what is committed (transaction
    markers take offsets no reader ever sees, so the last record's offset is
    not the end).
    """
    consumer = reader(settings, "reader")
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics[topic]
        if metadata.error is not None:
            raise WeirError(f"cannot read {topic}: {metadata.error.str()}")
        wanted: Positions = positions if positions is not None else {p: (0, None) for p in metadata.partitions}
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for p, (first, last) in wanted.items():
            low, high = watermarks(consumer, TopicPartition(topic, p))
            start, end = max(low, first), high if last is None else min(high, last + 1)
            if end > start:
                starts[p], ends[p] = start, end
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise KafkaUnreachable(f"reading {topic} did not reach its end within {timeout_s:.0f} s")
            for msg in consumer.consume(batch, timeout=0.5):
                error, partition = msg.error(), msg.partition()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(partition if partition is not None else -1, None)
                    continue
                if error is not None:
                    raise WeirError(f"reading {topic}: {error.str()}")
                record = InRecord.of(msg)
                if record.partition not in ends:
                    continue
                yield record
                if record.offset + 1 >= ends[record.partition]:
                    del ends[record.partition]
    finally:
        consumer.close()


def reader(settings: Settings, purpose: str) -> Consumer:
    """A consumer for assigned partitions that commits nothing, reads committed records only and reports the end
    of each partition it reaches."""
    return Consumer(with_log(reader_config(settings, purpose)))


def reader_config(settings: Settings, purpose: str) -> dict[str, Any]:
    """The reader's librdkafka settings. It joins no group, but a consumer needs a group id, and clusters with
    ACLs grant them by prefix: so it is the app id's, like every group the deployment uses."""
    return settings.librdkafka(**{
        "group.id": f"{settings.app_id}-{purpose}", "enable.auto.commit": False, "isolation.level": "read_committed",
        "enable.partition.eof": True, "auto.offset.reset": "earliest"})


# A topic created a moment ago answers these until its partition leaders are elected; a broker just back from an
# outage, until the client has its metadata again (the local _UNKNOWN_PARTITION).
_NOT_READY_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION}


def watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float = 30.0) -> tuple[int, int]:
    """(low, high) offsets of a partition, waiting out a leader election on a topic just created, or a broker's
    return."""
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
    """The sum of a topic's high watermarks: how many offsets were ever used in it. For a topic written without
    transactions and never compacted, that is its record count; transaction markers take offsets too, so for a
    stage's output it is an upper bound (see ``holds_at_least``)."""
    consumer = reader(settings, "watermarks")
    try:
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        return sum(watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions)
    finally:
        consumer.close()


def holds_at_least(settings: Settings, topic: str, n: int) -> bool:
    """Whether ``topic`` holds ``n`` committed records: its offsets first (cheap), then a count when they could."""
    return end_offsets(settings, topic) >= n and sum(1 for _ in read_topic(settings, topic, timeout_s=300)) >= n


# The group coordinator cannot answer yet (a broker just started loads its offsets topic): nobody holds partitions.
COORDINATOR_NOT_READY = frozenset({KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                   KafkaError.NOT_COORDINATOR})


def assigned_members(settings: Settings, group: str) -> int:
    """How many members of consumer group ``group`` hold partitions now; 0 while its coordinator is not ready (the
    callers poll this until members come, and a broker that just started answers so for seconds)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(with_log(settings.librdkafka()))  # keep a reference: a collected client abandons its futures
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=15)
    except KafkaException as exc:
        if coordinator_not_ready(exc.args[0]):
            return 0
        raise
    finally:
        admin.poll(0)  # an AdminClient's librdkafka log comes out of poll only
    return sum(1 for m in description.members if m.assignment.topic_partitions)


def coordinator_not_ready(error: KafkaError) -> bool:
    return error.code() in COORDINATOR_NOT_READY


def read_partition(settings: Settings, topic: str, partition: int, start: int, *,
                   timeout_s: float) -> Iterator[list[InRecord]]:
    """The committed records of one partition from ``start`` to the end it has now, in chunks.

    Unlike ``read_topic`` it does not stop at the end of what is committed:
    a transaction still open when it is called (a writer that crashed
    mid-batch) is waited for until the broker aborts or commits it, so what
    it returns is final. ``KafkaUnreachable`` past ``timeout_s``.
    """
    consumer = reader(settings, "changelog")
    try:
        tp = TopicPartition(topic, partition)
        low, high = watermarks(consumer, tp)
        if high <= max(low, start):
            return
        consumer.assign([TopicPartition(topic, partition, max(low, start))])
        deadline = time.monotonic() + timeout_s
        while True:
            chunk = []
            for msg in consumer.consume(1000, timeout=0.5):
                error = msg.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise WeirError(f"reading {topic}[{partition}]: {error.str()}")
                if error is None:
                    chunk.append(InRecord.of(msg))
            if chunk:
                yield chunk
            if consumer.position([tp])[0].offset >= high:  # past the commit or abort marker of the last batch
                return
            if time.monotonic() > deadline:
                raise KafkaUnreachable(f"reading {topic}[{partition}] did not reach offset {high} within "
                                       f"{timeout_s:.0f} s")
    finally:
        consumer.close()
