"""The registry follower: every worker applies new ``models`` records to its live registry view within a second.

``load_live_registry`` gives a process (a worker, the HTTP service) that view
in the first place, loaded from the topic, and where to follow it from.

It reads the single ``models`` partition from where the worker's start-up
load stopped, committed records only (a learner's aborted snapshot copy never
reaches a serve worker), and applies each record on the event loop, between
batches, so a stage never sees the registry change in the middle of one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mode
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector

from streams.runtime.loop import backoff_s
from weir.contract.messages import InRecord
from weir.contract.serde import SchemaCatalog
from weir.contract.topics import MODELS
from weir.errors import KafkaUnreachable
from weir.kafka.admin import ensure_reachable
from weir.kafka.reading import reader
from weir.registry.signing import BAD_SIGNATURE, UNSIGNED
from weir.registry.store import UNDECODABLE, UNLOADABLE, RegistryIntake, load_registry, register_default_model
from weir.registry.view import ModelRegistry
from weir.settings import Settings

log = logging.getLogger("weir.registry")


def load_live_registry(settings: Settings, catalog: SchemaCatalog, metrics: CollectorRegistry, *,
                       follows_snapshots: bool, register_default: bool
                       ) -> tuple[ModelRegistry, RegistryIntake, dict[int, int]]:
    """A process's registry view as the topic holds it, the intake that loads its records (its refusals counted
    on ``metrics``), and, per partition, where to follow from. ``register_default``: give an empty registry its
    v1 champion (a process that serves or learns)."""
    registry = ModelRegistry(settings.model_name, follows_snapshots=follows_snapshots)
    intake = RegistryIntake(settings, catalog)
    metrics.register(RefusedRecords(intake))
    follow_from = _load_when_reachable(settings, catalog, registry, intake)
    if register_default and register_default_model(settings, catalog, registry):
        log.info("registry was empty: registered %s v1 (%s) as champion", settings.model_name,
                 settings.default_factory)
    return registry, intake, follow_from


def _load_when_reachable(settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                         intake: RegistryIntake) -> dict[int, int]:
    """The registry as the topic holds it; a process started during a broker outage waits for the cluster, as
    running stages do, instead of exiting. A cluster that refuses Weir (credentials, ACLs) ends it at once."""
    failures = 0
    while True:
        try:
            ensure_reachable(settings)
            return load_registry(settings, catalog, registry, intake)
        except (KafkaUnreachable, KafkaException) as exc:
            failures += 1
            log.warning("waiting for the Kafka cluster (attempt %d, next in %.0f s): %s", failures,
                        backoff_s(failures), exc)
            time.sleep(backoff_s(failures))


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
