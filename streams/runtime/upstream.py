"""Whether the stage upstream of a stage has read its input to the end: the learner's proof that an event will not
come.

A label whose event was never seen may only be let go when nothing upstream
can still produce that event. The learner cannot tell "the front is busy
with a backlog on this partition" from "the event was never sent" by looking
at its own inputs: both are silent. The front's group can: once its committed
offsets on ``events.raw`` reach the partition's end, every event sent so far
has been served or refused. This watch asks the broker, at most every
``REFRESH_S``, in the loop's consumer thread.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.runtime.stage import Partition
from weir.kafka.reading import reader
from weir.settings import Settings

REFRESH_S = 2.0


class UpstreamWatch:
    """The partitions of ``topic`` that group ``<app id>-<stage>`` has committed to their end, as last asked."""

    def __init__(self, settings: Settings, stage: str, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.stage = stage
        self.consumer: Consumer | None = None  # of the upstream group: asks its committed offsets, never joins it
        self.caught_up: set[Partition] = set()
        self.asked_at = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self.asked_at >= REFRESH_S

    def refresh(self, partitions: set[int]) -> None:
        """In the consumer thread: ask again which of ``partitions`` the upstream group committed to their end. A
        transactional writer leaves a commit marker after its last record, which a committed offset never passes:
        a partition one short of its end counts as read to it (a front that stopped with exactly one event unread
        would let a label whose event that is go early; a live one reads it within a batch window)."""
        self.asked_at = time.monotonic()
        if self.consumer is None:
            self.consumer = reader(self.settings, self.stage)  # group <app id>-<stage>: the upstream stage's own
        wanted = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        try:
            committed = self.consumer.committed(wanted, timeout=10)
            ends = {p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                    for p in partitions}
        except KafkaException:
            self.caught_up = set()  # not known now: nothing counts as done upstream
            return
        self.caught_up = {(self.topic, tp.partition) for tp in committed
                          if ends[tp.partition] == 0 or (tp.offset >= 0 and ends[tp.partition] - tp.offset <= 1)}

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
