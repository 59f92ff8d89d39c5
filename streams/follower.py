"""The registry follower: every worker applies new ``models`` records to its live registry view within a second.

It reads the single ``models`` partition from where the worker's start-up
load stopped, committed records only (a learner's aborted snapshot copy never
reaches a serve worker), and applies each record on the event loop, between
batches, so a stage never sees the registry change in the middle of one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mode
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector

from weir.contract.messages import InRecord
from weir.contract.topics import MODELS
from weir.kafka.reading import reader
from weir.registry.signing import BAD_SIGNATURE, UNSIGNED
from weir.registry.store import UNDECODABLE, UNLOADABLE, RegistryIntake
from weir.registry.view import ModelRegistry
from weir.settings import Settings

log = logging.getLogger("weir.registry")


class RegistryFollower(mode.Service):
    def __init__(self, settings: Settings, intake: RegistryIntake, registry: ModelRegistry,
                 follow_from: dict[int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.intake = intake
        self.registry = registry
        self.follow_from = follow_from
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="weir-registry")
        self.running: asyncio.Task[None] | None = None

    async def on_started(self) -> None:
        self.running = asyncio.get_running_loop().create_task(self._follow(), name="weir-registry")

    async def on_stop(self) -> None:
        if self.running is not None:
            await self.running
        self.thread.shutdown(wait=True)

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        consumer = await loop.run_in_executor(self.thread, lambda: reader(self.settings, "registry-follower"))
        topic = self.intake.serde.topic
        partitions = MODELS.partition_count(self.settings)
        consumer.assign([TopicPartition(topic, p, self.follow_from.get(p, 0)) for p in range(partitions)])
        try:
            while not self.should_stop:
                messages = await loop.run_in_executor(self.thread, lambda: consumer.consume(500, timeout=0.2))
                for m in messages:
                    error = m.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("registry follower: %s", error.str())
                        continue
                    record = InRecord.of(m)
                    if record.value is not None:
                        self.intake.apply(self.registry, record.partition, record.offset, record.value)
        finally:
            await loop.run_in_executor(self.thread, consumer.close)


class RefusedRecords(Collector):
    """``weir_registry_refused_total{reason}``: models records this worker would not load (an alert rule fires
    on any: someone wrote the topic without the deployment's key, or a copy it cannot load)."""

    def __init__(self, intake: RegistryIntake) -> None:
        self.intake = intake

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("weir_registry_refused", "models records refused, by reason", labels=["reason"])
        for reason in (UNSIGNED, BAD_SIGNATURE, UNDECODABLE, UNLOADABLE):
            family.add_metric([reason], self.intake.refused[reason])
        yield family
