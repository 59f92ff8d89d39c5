"""The batch loop that runs one stage inside the faust app: consume, process, deliver, then commit.

faust's per-message path costs about 200 µs (see docs/benchmarks.md), so the
stages read with a confluent-kafka batch consumer instead, run as a
``mode.Service`` of the faust app (which keeps lifecycle, timers and /metrics).
The ordering is the at-least-once guarantee:

1. consume a batch (in a thread; the event loop stays free);
2. ``stage.process`` it (on the event loop: every stage of a process runs one
   batch at a time, so stages sharing live models never race);
3. produce every output and wait until the broker acknowledged all of them;
4. only then store the batch's offsets, which librdkafka commits (on a timer,
   on revocation and on close).

A stage that raises, or an output the broker refuses, ends the process before
step 4 (``os._exit``): the batch is read again after the restart, and the
stages' effects are idempotent.

A stateful stage (one with ``restore``/``snapshot``, the learner) keeps its
offsets in its own snapshots instead: it is assigned every partition of its
inputs (no consumer group: each replica learns everything), starts at the
offsets its snapshot reflects, and takes a new snapshot when it says one is due.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import mode
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.runtime.metrics import StageMetrics
from streams.runtime.stage import Stage, StatefulStage
from weir.contract.messages import InRecord, OutRecord, kafka_headers
from weir.kafka.clients import DeliveryReport, make_consumer
from weir.settings import Settings

EXIT_STAGE_FAILED = 70


EXIT_DELIVERY_FAILED = 71


log = logging.getLogger("weir.runner")


def die(code: int, message: str) -> NoReturn:
    """End the process without committing anything more: the current batch is processed again after restart."""
    log.critical("%s; exiting before the batch's offsets are committed", message, exc_info=True)
    logging.shutdown()
    os._exit(code)


class OutputProducer:
    """One idempotent producer per process; ``deliver`` returns once the broker acknowledged every record.

    The producer reports deliveries for errors only, so an acknowledged record
    costs no Python callback; it simply leaves the producer's queue. Waiting
    for the queue to empty happens on the event loop, not in a thread: a thread
    polling librdkafka beside the CPU-bound stages loses every GIL hand-over
    (measured: 150 ms per batch instead of 7 ms).
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.lock = asyncio.Lock()

    async def deliver(self, out: list[OutRecord], stage: str, timeout_s: float = 60.0) -> None:
        if not out:
            return
        report = DeliveryReport()
        async with self.lock:  # the queue drains as a whole, so one batch waits at a time
            for o in out:
                while True:
                    try:
                        self.producer.produce(o.topic, key=o.key, value=o.value, headers=kafka_headers(o.headers),
                                              on_delivery=report.callback)
                        break
                    except BufferError:  # librdkafka's queue is full: let it drain, then go on
                        await self._pause()
            deadline = time.monotonic() + timeout_s
            while len(self.producer) and time.monotonic() < deadline:
                await self._pause()
        remaining = len(self.producer)
        if remaining or report.failed:
            die(EXIT_DELIVERY_FAILED, f"stage {stage}: {report.failed} outputs refused ({dict(report.errors)}), "
                                      f"{remaining} undelivered")

    async def _pause(self) -> None:
        self.producer.poll(0)  # serve error reports
        await asyncio.sleep(0.001)  # yield to the other stages while the broker acknowledges


class BatchLoop(mode.Service):
    """Runs one stage: a confluent-kafka consumer (its own group) feeding ``stage.process`` in batches."""

    def __init__(self, settings: Settings, stage: Stage, group: str, output: OutputProducer,
                 metrics: StageMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stage = stage
        self.group = group
        self.output = output
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"weir-{stage.name}")
        self.consumer: Consumer | None = None
        self.running: asyncio.Task[None] | None = None
        self.stateful: StatefulStage | None = stage if isinstance(stage, StatefulStage) else None
        self.positions: dict[tuple[str, int], int] = {}  # stateful stages: next offset per input partition

    async def on_start(self) -> None:
        self.consumer = make_consumer(self.settings, self.group, **{
            # Range assignment keeps partition i of every input topic on one member: the label
            # join needs an entity's features, predictions and feedback in the same process.
            "partition.assignment.strategy": "range",
            "session.timeout.ms": int(self.settings.session_timeout_s * 1000),
            "heartbeat.interval.ms": 1000,
            "auto.commit.interval.ms": int(self.settings.commit_interval_s * 1000),
            "max.poll.interval.ms": 300_000,
        })
        if self.stateful is None:
            self.consumer.subscribe(list(self.stage.inputs), on_assign=self._on_assign, on_revoke=self._on_revoke)
            return
        self.positions = self.stateful.restore() or {}
        assignment = []
        for topic in self.stage.inputs:
            partitions = self.consumer.list_topics(topic, timeout=15).topics[topic].partitions
            assignment += [TopicPartition(topic, p, self.positions.get((topic, p), OFFSET_BEGINNING))
                           for p in sorted(partitions)]
        self.consumer.assign(assignment)
        log.info("stage %s resumes at %s", self.stage.name, _describe(assignment))

    async def on_started(self) -> None:
        self.running = asyncio.get_running_loop().create_task(self._run(), name=f"weir-{self.stage.name}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.consumer is not None
        while not self.should_stop:
            messages = await loop.run_in_executor(self.executor, self._next_batch)
            batch = [InRecord.of(m) for m in messages if not self._is_error(m)]
            lags = self._lags()
            self.metrics.observe_lag(self.stage.name, lags)
            if self.stateful is not None:
                assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
                self.stateful.note_partitions(assigned, self._caught_up(lags))
            if not batch:
                continue
            started = time.perf_counter()
            try:
                out = self.stage.process(batch)
            except Exception:
                die(EXIT_STAGE_FAILED, f"stage {self.stage.name} raised on a batch of {len(batch)}")
            await self.output.deliver(out, self.stage.name)
            if self.stateful is None:
                self.consumer.store_offsets(offsets=_next_offsets(batch))
            else:
                self.positions.update({(tp.topic, tp.partition): tp.offset for tp in _next_offsets(batch)})
                if self.stateful.snapshot_due():
                    await self.output.deliver(self.stateful.snapshot(dict(self.positions)), self.stage.name)
            self.metrics.observe_batch(self.stage.name, batch, out, time.perf_counter() - started)

    def _next_batch(self) -> list[Message]:
        """Wait up to one batch window for the first record, then take what is already there.

        ``consume(n, timeout)`` alone would wait out the whole window whenever
        fewer than n records come, which stalls a chain of stages fed a trickle.
        """
        assert self.consumer is not None
        first = self.consumer.poll(self.settings.batch_window_s)
        if first is None:
            return []
        return [first, *self.consumer.consume(self.settings.batch_size - 1, timeout=0)]

    def _lags(self) -> dict[tuple[str, int], int]:
        """Records between this stage's position and each assigned partition's end, as last heard of.

        Cached watermarks and positions: no round trip to the broker on the batch path.
        """
        assert self.consumer is not None
        lags = {}
        assignment = self.consumer.assignment()
        positions = self.consumer.position(assignment) if self.stateful is None else None
        for i, tp in enumerate(assignment):
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            if positions is not None:
                at = positions[i].offset
            else:
                at = self.positions.get((tp.topic, tp.partition), 0)
            lags[(tp.topic, tp.partition)] = max(0, high - at) if at >= 0 else high
        return lags

    def _caught_up(self, lags: dict[tuple[str, int], int]) -> set[tuple[str, int]]:
        return {tp for tp, lag in lags.items() if lag == 0}

    def _is_error(self, m: Message) -> bool:
        err = m.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            log.error("stage %s: consumer error: %s", self.stage.name, err.str())
            if err.fatal():
                die(EXIT_STAGE_FAILED, f"stage {self.stage.name}: fatal consumer error {err.str()}")
        return True

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("stage %s assigned %s", self.stage.name, _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Everything consumed so far was delivered and stored (the loop stores only after delivery);
        # commit it now so the next owner starts right after it.
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("stage %s: commit on revoke failed: %s", self.stage.name, exc.args[0].str())
        log.info("stage %s revoked %s", self.stage.name, _describe(partitions))

    async def tick(self) -> None:
        """The stage's timer output (metrics snapshots), delivered like any other output."""
        try:
            out = self.stage.tick()
        except Exception:
            die(EXIT_STAGE_FAILED, f"stage {self.stage.name} raised in its timer")
        await self.output.deliver(out, self.stage.name)
        self.metrics.observe_output(self.stage.name, out)

    async def on_stop(self) -> None:
        if self.running is not None:
            await self.running  # the loop sees should_stop after its current batch (at most one batch window)
        await self.tick()  # a last metrics snapshot that includes the last batch
        if self.stateful is not None:
            if self.stateful.snapshot_due(final=True):
                await self.output.deliver(self.stateful.snapshot(dict(self.positions)), self.stage.name)
            self.stateful.close()
        if self.consumer is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.consumer.close)  # commits
        self.executor.shutdown(wait=True)


def _next_offsets(batch: list[InRecord]) -> list[TopicPartition]:
    """Per partition, the offset after the last record of the batch: what to commit once it is delivered."""
    last = {(r.topic, r.partition): r.offset for r in batch}
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def _describe(partitions: list[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for p in partitions:
        by_topic.setdefault(p.topic, []).append(p.partition)
    return "; ".join(f"{t} {sorted(ps)}" for t, ps in sorted(by_topic.items())) or "nothing"
