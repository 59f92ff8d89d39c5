"""A grouped stage's per-partition state, kept for its loop: restored from the changelog, told how commits end.

The stage writes each change of its ``PartitionedState`` as a record on the
changelog topic, in the same transaction as its outputs and input offsets, so
the changelog holds exactly the changes of committed batches. For the loop
that runs it, this keeper:

* restores each input partition the consumer is given from the changelog,
  from the state's checkpoint for it (in the consumer thread, before the
  first batch that holds that partition's records is processed);
* seals the state's changes when a batch's outputs are produced, and tells
  the state when that transaction committed; a session that fails forgets
  what it did not commit (its partitions are restored again by the next);
* every ``WEIR_SNAPSHOT_EVERY_S``, when no transaction is in flight, reads the
  changelog's end offsets and checkpoints the state at them: everything
  below them is in the state, so the next restore starts there.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, TopicPartition

from streams.runtime.stage import PartitionedState
from weir.kafka.reading import read_partition, watermarks
from weir.settings import Settings

log = logging.getLogger("weir.runner")

RESTORE_MARGIN_S = 60.0  # beyond the transaction timeout a crashed writer's open batch holds a restore back


class StateKeeper:
    def __init__(self, settings: Settings, state: PartitionedState, input_topic: str, stage: str) -> None:
        self.settings = settings
        self.state = state
        self.input_topic = input_topic
        self.stage = stage
        self.owned: set[int] = set()
        self.to_restore: set[int] = set()
        self.checkpointed_at = time.monotonic()

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """In the consumer's rebalance callback: restore these before their records are processed."""
        self.to_restore |= {tp.partition for tp in partitions if tp.topic == self.input_topic}

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """In the consumer's rebalance callback, after the commit in flight finished."""
        gone = {tp.partition for tp in partitions if tp.topic == self.input_topic}
        self.to_restore -= gone
        self.owned -= gone
        self.state.close(gone)

    def session_ended(self) -> None:
        """The session is over, committed or not: what it did not commit is forgotten."""
        self.state.close(self.owned)
        self.owned, self.to_restore = set(), set()

    def restore(self) -> None:
        """In the consumer thread: bring the partitions just assigned up to the end of their changelog."""
        partitions, self.to_restore = self.to_restore, set()
        started = time.monotonic()
        wait = self.settings.transaction_timeout_ms / 1000 + RESTORE_MARGIN_S
        self.owned |= partitions
        for partition, start in sorted(self.state.open(partitions).items()):
            taken = 0
            for chunk in read_partition(self.settings, self.state.changelog, partition, start, timeout_s=wait):
                taken += self.state.restore(partition, chunk)
            if taken:
                log.info("stage %s restored partition %d: %d changes from %s offset %d", self.stage, partition,
                         taken, self.state.changelog, start)
        if partitions:
            log.info("stage %s restored partitions %s in %.1f s", self.stage, sorted(partitions),
                     time.monotonic() - started)

    def checkpoint_due(self) -> bool:
        return bool(self.owned) and time.monotonic() - self.checkpointed_at >= self.settings.snapshot_every_s

    def checkpoint(self, consumer: Consumer) -> None:
        """In the consumer thread, with no transaction in flight: the changelog's ends bound what the state holds."""
        ends = {p: watermarks(consumer, TopicPartition(self.state.changelog, p))[1] for p in sorted(self.owned)}
        self.state.checkpoint(ends)
        self.checkpointed_at = time.monotonic()
