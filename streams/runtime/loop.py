"""The batch loop that runs one stage inside the faust app: consume, process, then commit outputs with offsets.

faust's per-message path costs about 200 µs (see docs/benchmarks.md), so the
stages read with a confluent-kafka batch consumer instead, run as a
``mode.Service`` of the faust app (which keeps lifecycle, timers and /metrics).

With ``WEIR_EXACTLY_ONCE`` (the default) each batch is one Kafka transaction:

1. consume a batch (in the loop's consumer thread; the event loop stays free);
2. ``stage.process`` it (on the event loop: the stages of a process run one
   batch at a time, so stages sharing live models never race);
3. begin a transaction, produce every output, add the batch's input offsets
   to it (``send_offsets_to_transaction``);
4. commit it in the loop's commit thread, while the next batch is consumed and
   processed; the next transaction begins only once this one is committed.

Readers read committed records only, so a batch's outputs appear exactly when
its offsets move: a crash anywhere gives each input one set of outputs. The
consumer group's generation fences a worker that lost its partitions; with a
stable ``WEIR_INSTANCE_ID`` the transactional id is stable too, so a restarted
worker also aborts at once what its crashed predecessor left open.
Without exactly-once, step 3 produces, and step 4 waits for the broker's
acknowledgements, then commits the offsets: at-least-once.

A consumer-group rebalance waits for the transaction in flight, so the next
owner of a partition starts right after the last committed batch.

A stateful stage (the learner) keeps its state in snapshots of its own. It is
assigned every partition of its inputs (each replica learns everything) and
starts at the offsets its last snapshot reflects. Its transactions carry its
offsets too, and a snapshot is taken only after the transaction that reached
its offsets committed. After a crash it re-reads from the snapshot up to the
committed offsets in catch-up: rebuilding its state, writing nothing, since
those outputs were committed already.

The loop supervises its stage. A Kafka failure (broker gone, transaction
fenced or aborted, a delivery that timed out) ends the session: the loop
closes its clients and starts again after a backoff, resuming from what was
committed, for as long as it takes. A stage that raises on a batch ends the
session the same way, committing nothing of that batch; a stateful stage is
restored from its snapshot. If it fails ``WEIR_STAGE_RESTART_LIMIT`` times
in a row without committing a batch in between, the loop gives up and tells
the worker, which stops its other stages cleanly and exits with code 70 and
the reason, for its own supervisor (compose, Kubernetes) to restart.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import mode
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.runtime.changelog import StateKeeper
from streams.runtime.metrics import StageMetrics
from streams.runtime.stage import (
    MAX_RECORD_BYTES,
    HoldsBack,
    KeepsPartitionedState,
    Stage,
    StatefulStage,
    WaitsOnUpstream,
    oversized_output,
    record_size,
)
from streams.runtime.upstream import UpstreamWatch
from weir.contract.messages import InRecord, OutRecord, kafka_headers
from weir.contract.topics import EVENTS_DLQ, MODELS, largest_record_bytes
from weir.errors import WeirError
from weir.kafka.clients import (
    DeliveryReport,
    delivery_wait_s,
    make_consumer,
    make_producer,
    make_transactional_producer,
)
from weir.settings import Settings

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner picks one by key
HUNG_AFTER_S = 60.0  # a librdkafka call given 30 s that has not returned after this never will
# Records a stage processes before the event loop lets the process's other stages run: the stages share one
# thread, and a whole batch of the learner would hold the front's next batch, and its latency, back.
SLICE = 200
STALE_AFTER_RESUME_S = 5.0  # a resumed partition's first fetches refresh its end offset well within this

log = logging.getLogger("weir.runner")

T = TypeVar("T")
Positions = dict[tuple[str, int], int]


class SessionFailed(Exception):
    """The loop's Kafka clients cannot go on (broker gone, transaction fenced or aborted): start a new session."""


class ClientHung(Exception):
    """A librdkafka call did not return by its own timeout (``send_offsets_to_transaction`` after the group
    coordinator went away: librdkafka issues #5456 and #5511). The thread it blocks cannot be freed, so only a new
    process recovers: the loop gives up and its worker exits for its supervisor to start it again."""


class StageFailed(Exception):
    """The stage raised: its batch is dropped uncommitted and the stage starts again (a bug, or input it chokes on)."""


class Session:
    """One incarnation of a loop's clients: a consumer, a producer, and the transaction in flight."""

    def __init__(self, settings: Settings, loop: StageLoop) -> None:
        self.settings = settings
        self.owner = loop
        self.stage = loop.stage
        extra = {
            # Range assignment keeps partition i of every input topic on one member: a join needs an entity's
            # records of every input in the same process.
            "partition.assignment.strategy": "range",
            "session.timeout.ms": int(settings.session_timeout_s * 1000),
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 300_000,
            "enable.auto.commit": not settings.exactly_once,
            "auto.commit.interval.ms": int(settings.commit_interval_s * 1000),
        }
        if settings.instance_id and loop.stateful is None:
            # Static membership: a worker restarted under its instance id takes its partitions back at once,
            # without a rebalance or waiting for its predecessor's session to time out.
            extra["group.instance.id"] = loop.transactional_id
        self.consumer: Consumer = make_consumer(settings, loop.group, **extra)
        # Delivery reports for failures only: a Python callback per acknowledged record would cost the
        # stages the GIL while they work.
        only_errors = {"delivery.report.only.error": True}
        self.producer: Producer = (
            make_transactional_producer(settings, loop.transactional_id, **only_errors) if settings.exactly_once
            else make_producer(settings, **only_errors))
        self.report = DeliveryReport()
        self.in_flight: Future[None] | None = None  # the commit running in the commit thread
        self.catch_up: Positions = {}  # stateful: re-read up to these offsets, writing nothing
        self.held: set[tuple[str, int]] = set()  # input partitions the stage asked to pause
        # Paused partitions are not fetched, so their cached end offsets go stale: until this time (monotonic)
        # after a resume, or while paused, a partition is never reported as read to its end.
        self.stale_until: dict[tuple[str, int], float] = {}
        self.committed = 0  # batches this session committed: a failure after some starts the backoff over

    def close(self) -> None:
        """Close the clients and let them go, in the calling thread (the loop's consumer thread): librdkafka's
        destroy waits for requests still out to a broker that may be away, which must not block the event loop."""
        for close in (self.consumer.close, lambda: self.producer.flush(5)):
            try:
                close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("stage %s: closing a client: %s", self.stage.name, exc)
        del self.consumer, self.producer


class StageLoop(mode.Service):
    """Runs one stage: a confluent-kafka consumer feeding ``stage.process`` in batches, outputs committed with
    the input offsets."""

    def __init__(self, settings: Settings, stage: Stage, metrics: StageMetrics,
                 on_give_up: Callable[[StageLoop], None] | None = None, **kwargs: Any) -> None:
        """``on_give_up`` hears of the loop when it stopped for good (``gave_up`` says why)."""
        super().__init__(**kwargs)
        self.settings = settings
        self.stage = stage
        self.metrics = metrics
        self.on_give_up = on_give_up
        # By then each record of a commit is delivered or failed.
        self.delivery_wait_s = delivery_wait_s(settings, transactional=settings.exactly_once)
        self.ready = False  # a session is open and its first batch went through
        self.gave_up: str | None = None
        self.hung = False  # a librdkafka call never returned: this process cannot recover the loop
        self.heartbeat = time.monotonic()  # the loop's last sign of life (liveness)
        self.stateful: StatefulStage | None = stage if isinstance(stage, StatefulStage) else None
        # A grouped stage with per-partition state: restored from its changelog as partitions come.
        self.keeper = (StateKeeper(settings, stage.partitioned_state, stage.inputs[0], stage.name)
                       if isinstance(stage, KeepsPartitionedState) else None)
        self.upstream = UpstreamWatch(settings, *stage.upstream) if isinstance(stage, WaitsOnUpstream) else None
        # A stateful stage reads every partition in every replica, and keeps its own offsets: its identity is its
        # state file's (app id and state directory, one learner each), so its ids are stable by default. A grouped
        # stage's zombies are fenced by the group's generation whatever its transactional id; a stable one
        # (WEIR_INSTANCE_ID) also lets a restart abort what its crashed predecessor left open.
        state_file = hashlib.blake2b(str(settings.state_dir.resolve()).encode(), digest_size=4).hexdigest()
        instance = settings.instance_id or (f"local-{state_file}" if self.stateful else uuid.uuid4().hex[:12])
        self.group = f"{settings.app_id}-{stage.name}" + (f"-{instance}" if self.stateful else "")
        self.transactional_id = f"{settings.app_id}-{stage.name}-{instance}"
        self.consumer_thread = ThreadPoolExecutor(1, thread_name_prefix=f"weir-{stage.name}-consume")
        self.commit_thread = ThreadPoolExecutor(1, thread_name_prefix=f"weir-{stage.name}-commit")
        self.session: Session | None = None
        self.positions: Positions = {}  # the next offset of every input partition, after what was processed
        self.running: asyncio.Task[None] | None = None
        self.last_tick = time.monotonic()

    async def on_started(self) -> None:
        self.running = asyncio.get_running_loop().create_task(self._supervise(), name=f"weir-{self.stage.name}")

    async def on_stop(self) -> None:
        if self.running is not None:
            await self.running  # the loop sees should_stop after its current batch (at most one batch window)
        self.consumer_thread.shutdown(wait=True)
        self.commit_thread.shutdown(wait=not self.hung)

    # --- supervision ---------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Run sessions until stopped; a failed session is closed and a new one starts after a backoff."""
        failures = stage_failures = 0
        while not self.should_stop:
            session: Session | None = None
            try:
                session = await self._open()
                await self._run(session)
                await self._finish(session)
            except ClientHung as exc:
                self.hung = True
                self._give_up(f"stage {self.stage.name}: {exc}")
            except (SessionFailed, KafkaException) as exc:
                failures = self._failed("kafka", _describe_error(exc), session, failures)
            except Exception as exc:  # the stage raised, or could not be restored: a bug or input it chokes on
                log.error("stage %s failed", self.stage.name, exc_info=True)
                stage_failures = 0 if session is not None and session.committed else stage_failures
                stage_failures += 1
                if stage_failures >= self.settings.stage_restart_limit:
                    self._give_up(f"stage {self.stage.name} failed {stage_failures} times in a row without "
                                  f"committing a batch; the last time: {type(exc).__name__}: {exc}")
                else:
                    failures = self._failed("stage", f"{type(exc).__name__}: {exc}", session, failures)
            finally:
                self.ready = False
                self.metrics.up.labels(self.stage.name).set(0)
                opened = session or self.session  # a session that failed while opening has clients to close too
                if opened is not None and not self.hung:  # a hung client is left alone: closing it would hang too
                    await self._close(opened)
                if self.keeper is not None:
                    self.keeper.session_ended()
                self.session = None
            if self.gave_up is not None:
                break
            if failures:
                await self._back_off(failures)
        if self.stateful is not None:
            self.stateful.close()
        if self.upstream is not None:
            self.upstream.close()
        if self.keeper is not None:
            self.keeper.state.shut()

    def _failed(self, cause: str, reason: str, session: Session | None, failures: int) -> int:
        """Count a failed session; the number of failures in a row (a session that committed starts it over)."""
        failures = 1 if session is not None and session.committed else failures + 1
        self.metrics.restarts.labels(self.stage.name, cause).inc()
        log.error("stage %s: %s; starting again in %.0f s from what was committed", self.stage.name, reason,
                  backoff_s(failures))
        return failures

    async def _back_off(self, failures: int) -> None:
        until = time.monotonic() + backoff_s(failures)
        while not self.should_stop and time.monotonic() < until:
            self.heartbeat = time.monotonic()  # waiting on purpose is alive
            await asyncio.sleep(min(0.5, until - time.monotonic()))

    def _give_up(self, reason: str) -> None:
        self.gave_up = reason
        log.critical("%s: giving up, nothing more is committed", reason)
        if self.on_give_up is not None:
            self.on_give_up(self)

    async def _close(self, session: Session) -> None:
        """Let the commit in flight end (its failure is this session's, already counted), then close the clients."""
        try:
            await self._settle(session)
        except Exception as exc:
            log.warning("stage %s: the commit in flight when the session ended failed: %s", self.stage.name, exc)
        await self._in_thread(self.consumer_thread, session.close)

    async def _open(self) -> Session:
        session = self.session = await self._in_thread(self.consumer_thread, lambda: Session(self.settings, self))
        if self.settings.exactly_once:
            await self._init_transactions(session)
        if self.stateful is None:
            session.consumer.subscribe(list(self.stage.inputs), on_assign=self._on_assign,
                                       on_revoke=self._on_revoke)
            return session
        self.positions = self.stateful.restore() or {}
        assignment = await self._in_thread(self.consumer_thread, lambda: self._assign_all(session))
        if self.settings.exactly_once:
            committed = await self._in_thread(self.consumer_thread,
                                              lambda: session.consumer.committed(assignment, timeout=30))
            session.catch_up = {(tp.topic, tp.partition): tp.offset for tp in committed
                                if tp.offset > self.positions.get((tp.topic, tp.partition), 0)}
        log.info("stage %s resumes at %s%s", self.stage.name, _describe(assignment),
                 f"; catching up to {session.catch_up} without writing" if session.catch_up else "")
        return session

    async def _init_transactions(self, session: Session) -> None:
        """Register the transactional id, however long the broker takes to answer.

        A timed-out ``init_transactions`` goes on inside librdkafka ("retry call
        to resume"): it is called again on the same producer. A new producer
        with the same id instead would be fenced later by this one's request
        when the broker comes back, and the loop would chase its own tail.
        """
        while True:
            try:
                await self._in_thread(self.commit_thread, lambda: session.producer.init_transactions(30))
                return
            except KafkaException as exc:
                error = exc.args[0]
                if not (isinstance(error, KafkaError) and error.retriable()) or self.should_stop:
                    raise
                self.heartbeat = time.monotonic()
                log.warning("stage %s: registering the transactional id: %s; trying again", self.stage.name,
                            error.str())

    def _assign_all(self, session: Session) -> list[TopicPartition]:
        assignment = []
        for topic in self.stage.inputs:
            partitions = session.consumer.list_topics(topic, timeout=15).topics[topic].partitions
            assignment += [TopicPartition(topic, p, self.positions.get((topic, p), OFFSET_BEGINNING))
                           for p in sorted(partitions)]
        session.consumer.assign(assignment)
        return assignment

    # --- the loop ------------------------------------------------------------------------------------------

    async def _run(self, session: Session) -> None:
        while not self.should_stop:
            self.heartbeat = time.monotonic()
            batch = await self._in_thread(self.consumer_thread, lambda: self._next_batch(session))
            if self.keeper is not None and self.keeper.to_restore:  # partitions just assigned: state first
                try:
                    await self._in_thread(self.consumer_thread, self.keeper.restore)
                except WeirError as exc:  # the changelog could not be read (the cluster went away): a Kafka failure
                    raise SessionFailed(f"restoring {self.keeper.state.changelog}: {exc}") from exc
            lags = self._lags(session)
            self.metrics.observe_lag(self.stage.name, lags)
            self._hold_back(session, lags)
            if self.stateful is not None:
                assigned = {(tp.topic, tp.partition) for tp in session.consumer.assignment()}
                caught_up = self._caught_up_with(session, lags)
                if self.upstream is not None:
                    if self.upstream.due():
                        await self._in_thread(self.consumer_thread,
                                              functools.partial(self.upstream.refresh, {p for _, p in assigned}))
                    caught_up |= self.upstream.caught_up
                self.stateful.note_partitions(assigned, caught_up)
            started = time.perf_counter()
            out: list[OutRecord] = []
            for i in range(0, len(batch), SLICE):
                out += self._process(batch[i:i + SLICE])
                await asyncio.sleep(0)  # let the process's other stages take a turn: a batch is long, a slice short
            if time.monotonic() - self.last_tick >= self.settings.commit_interval_s:
                self.last_tick = time.monotonic()
                out += self._process(None)
            offsets = _next_offsets(batch)
            self.positions.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
            if session.catch_up:
                self._caught_up(session)
                continue  # re-reading what was committed before a crash: its outputs were written then
            if out or offsets:
                await self._commit(session, out, offsets)
            if self.stateful is not None and self.stateful.snapshot_due():
                await self._snapshot(session)
            if batch:
                self.metrics.observe_batch(self.stage.name, batch, out, time.perf_counter() - started)
            if not self.ready:
                self.ready = True
                self.metrics.up.labels(self.stage.name).set(1)

    def _process(self, batch: list[InRecord] | None) -> list[OutRecord]:
        """The stage's outputs for ``batch`` (None: its timer's); a stage that raises ends the session."""
        try:
            return self.stage.process(batch) if batch is not None else self.stage.tick()
        except Exception as exc:
            where = f"a batch of {len(batch)} from {_describe(_next_offsets(batch))}" if batch else "its timer"
            raise StageFailed(f"raised on {where}: {type(exc).__name__}: {exc}") from exc

    async def _finish(self, session: Session) -> None:
        """At a stop: a last tick (metrics that include the last batch), its commit, and a last snapshot."""
        if session.catch_up:
            return
        await self._commit(session, self.stage.tick(), [])
        await self._settle(session)
        if self.keeper is not None:
            await self._checkpoint(session, final=True)
        if self.stateful is not None and self.stateful.snapshot_due(final=True):
            await self._snapshot(session)
            await self._settle(session)

    def _next_batch(self, session: Session) -> list[InRecord]:
        """Wait up to one batch window for the first record, then take what is already there.

        ``consume(n, timeout)`` alone would wait out the whole window whenever
        fewer than n records come, which stalls a chain of stages fed a trickle.
        In catch-up, records at or past the committed offsets are held back.
        """
        consumer = session.consumer
        first = consumer.poll(self.settings.batch_window_s)
        if first is None:
            return []
        messages = [first, *consumer.consume(self.settings.batch_size - 1, timeout=0)]
        batch = [InRecord.of(m) for m in messages if not self._is_error(m)]
        if not session.catch_up:
            return batch
        kept: list[InRecord] = []
        rewind: Positions = {}
        for r in batch:
            until = session.catch_up.get((r.topic, r.partition))
            if until is not None and r.offset >= until:
                rewind.setdefault((r.topic, r.partition), until)
            else:
                kept.append(r)
        for (topic, partition), offset in rewind.items():
            consumer.seek(TopicPartition(topic, partition, offset))  # read again once caught up, in a transaction
        return kept

    def _hold_back(self, session: Session, lags: dict[tuple[str, int], int]) -> None:
        """Pause the input partitions the stage asks to hold back, resume the others."""
        if not isinstance(self.stage, HoldsBack):
            return
        held = self.stage.held_back({tp for tp, lag in lags.items() if lag > 0})
        if held == session.held:
            return
        assignment = session.consumer.assignment()
        pause = [tp for tp in assignment if (tp.topic, tp.partition) in held - session.held]
        resume = [tp for tp in assignment if (tp.topic, tp.partition) in session.held - held]
        if pause:
            session.consumer.pause(pause)
        if resume:
            session.consumer.resume(resume)
        now = time.monotonic()
        session.stale_until.update({tp: float("inf") for tp in held})
        session.stale_until.update({tp: now + STALE_AFTER_RESUME_S for tp in session.held - held})
        session.held = held

    def _caught_up_with(self, session: Session, lags: dict[tuple[str, int], int]) -> set[tuple[str, int]]:
        """The input partitions read to their end, as far as the cached end offsets can tell."""
        now = time.monotonic()
        return {tp for tp, lag in lags.items() if lag == 0 and session.stale_until.get(tp, 0.0) <= now}

    def _caught_up(self, session: Session) -> None:
        for tp, until in list(session.catch_up.items()):
            if self.positions.get(tp, 0) >= until:
                del session.catch_up[tp]
        if not session.catch_up:
            log.info("stage %s caught up with what was committed before its restart", self.stage.name)

    # --- committing ----------------------------------------------------------------------------------------

    async def _commit(self, session: Session, out: list[OutRecord], offsets: list[TopicPartition]) -> None:
        """Hand the outputs and the offsets they came from to the broker; the commit runs in the background
        while the next batch is read and processed. The previous one must have succeeded first."""
        await self._settle(session)
        if self.keeper is not None:
            await self._checkpoint(session)
            self.keeper.state.seal()  # the state's changes are part of this commit from now on
        producer = session.producer
        if self.settings.exactly_once:
            producer.begin_transaction()
        await self._produce(session, out)
        if self.settings.exactly_once:
            if offsets:
                metadata = session.consumer.consumer_group_metadata()
                sending = self._in_thread(self.commit_thread,
                                          lambda: producer.send_offsets_to_transaction(offsets, metadata, 30))
                try:
                    await asyncio.wait_for(sending, HUNG_AFTER_S)
                except TimeoutError:
                    raise ClientHung(f"send_offsets_to_transaction did not return within {HUNG_AFTER_S:.0f} s, "
                                     "its own timeout being 30 s (librdkafka #5456: the group coordinator went away "
                                     "mid-transaction)") from None
            session.in_flight = self.commit_thread.submit(self._commit_transaction, session)
        else:
            session.in_flight = self.commit_thread.submit(self._acknowledge_then_commit, session, offsets)

    def _commit_transaction(self, session: Session) -> None:
        try:
            session.producer.commit_transaction(self.delivery_wait_s)
        except KafkaException as exc:
            error = exc.args[0]
            if error.txn_requires_abort():
                session.producer.abort_transaction(30)
            raise SessionFailed(f"commit refused: {error.str()}") from exc
        self._check_deliveries(session)
        session.committed += 1

    def _acknowledge_then_commit(self, session: Session, offsets: list[TopicPartition]) -> None:
        remaining = session.producer.flush(self.delivery_wait_s)
        self._check_deliveries(session, remaining)
        if offsets and self.stateful is None:
            session.consumer.store_offsets(offsets=offsets)  # committed on librdkafka's timer, and on revoke
        session.committed += 1

    def _check_deliveries(self, session: Session, remaining: int = 0) -> None:
        report = session.report
        if report.failed or remaining:
            raise SessionFailed(f"{report.failed} outputs refused ({dict(report.errors)}), {remaining} undelivered")

    async def _produce(self, session: Session, out: list[OutRecord]) -> None:
        producer, report = session.producer, session.report
        for o in out:
            if record_size(o) > self._largest(o.topic):  # the broker would refuse it, and the stage never get past it
                o = self._oversized(o)
            while True:
                try:
                    producer.produce(o.topic, key=o.key, value=o.value, headers=kafka_headers(o.headers),
                                     partition=ANY_PARTITION if o.partition is None else o.partition,
                                     on_delivery=report.callback)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain, then go on
                    producer.poll(0)
                    await asyncio.sleep(0.001)
        producer.poll(0)  # serve error reports

    def _largest(self, topic: str) -> int:
        """The largest record ``topic`` takes: ``models`` is created to take a model copy, the rest Kafka's
        default."""
        return largest_record_bytes(self.settings) if topic == self.settings.topic(MODELS.name) else MAX_RECORD_BYTES

    def _oversized(self, record: OutRecord) -> OutRecord:
        limit = self._largest(record.topic)
        log.error("stage %s: an output to %s is %d bytes, over the %d a record may have: dead-lettered without its "
                  "value", self.stage.name, record.topic, record_size(record), limit)
        return oversized_output(self.settings.topic(EVENTS_DLQ.name), self.stage.name, record, limit)

    async def _settle(self, session: Session) -> None:
        """Wait for the commit in flight; its failure ends the session."""
        in_flight, session.in_flight = session.in_flight, None
        if in_flight is not None:
            await asyncio.wrap_future(in_flight)
            if self.keeper is not None:
                self.keeper.state.committed()

    async def _checkpoint(self, session: Session, final: bool = False) -> None:
        """Checkpoint the partitioned state when due (or ``final``), with no commit in flight."""
        assert self.keeper is not None
        if final or self.keeper.checkpoint_due():
            keeper = self.keeper
            await self._in_thread(self.consumer_thread, lambda: keeper.checkpoint(session.consumer))

    async def _snapshot(self, session: Session) -> None:
        """Persist the state once the offsets it reflects are committed; the copies it publishes go out in the
        next transaction."""
        assert self.stateful is not None
        await self._settle(session)
        copies = self.stateful.snapshot(dict(self.positions))
        if copies:
            await self._commit(session, copies, [])

    # --- consumer callbacks and bookkeeping ----------------------------------------------------------------

    def _is_error(self, m: Message) -> bool:
        err = m.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            log.error("stage %s: consumer error: %s", self.stage.name, err.str())
            if err.fatal():
                raise SessionFailed(f"fatal consumer error {err.str()}")
        return True

    def _lags(self, session: Session) -> dict[tuple[str, int], int]:
        """Records between this stage's position and each assigned partition's end, as last heard of.

        The position is the consumer's own, which steps over the commit markers
        a transactional writer leaves: the offset after the last record read
        stays one short of a transactional topic's end forever, and a stage
        that waits for its inputs to be read to their end would wait for ever.
        Cached watermarks and positions: no round trip to the broker on the
        batch path.
        """
        consumer = session.consumer
        lags = {}
        for tp in consumer.position(consumer.assignment()):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            at = tp.offset if tp.offset >= 0 else self.positions.get((tp.topic, tp.partition), 0)
            lags[(tp.topic, tp.partition)] = max(0, high - at)
        return lags

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        session = self.session
        if session is not None:  # new partitions start unpaused; the next batch pauses them again if needed
            session.stale_until.update(dict.fromkeys(session.held, time.monotonic() + STALE_AFTER_RESUME_S))
            session.held = set()
        if self.keeper is not None:
            self.keeper.assigned(partitions)
        log.info("stage %s assigned %s", self.stage.name, _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The next owner starts after the last committed batch: let the commit in flight finish first."""
        session = self.session
        in_flight = session.in_flight if session is not None else None
        if in_flight is not None:
            try:
                # This is the consumer thread; the commit thread finishes the transaction.
                in_flight.result(timeout=self.delivery_wait_s)
            except Exception as exc:  # the event loop sees the same failure and starts a new session
                log.warning("stage %s: the commit in flight at a revocation failed: %s", self.stage.name, exc)
        if not self.settings.exactly_once:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    log.warning("stage %s: commit on revoke failed: %s", self.stage.name, exc.args[0].str())
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)
        if self.keeper is not None:
            self.keeper.revoked(partitions)
        log.info("stage %s revoked %s", self.stage.name, _describe(partitions))

    async def _in_thread(self, thread: ThreadPoolExecutor, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, call)


def _next_offsets(batch: list[InRecord]) -> list[TopicPartition]:
    """Per partition, the offset after the last record of the batch: what to commit once it is delivered."""
    last = {(r.topic, r.partition): r.offset for r in batch}
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def _describe(partitions: list[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for p in partitions:
        by_topic.setdefault(p.topic, []).append(p.partition)
    return "; ".join(f"{t} {sorted(ps)}" for t, ps in sorted(by_topic.items())) or "nothing"


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].str()
    return str(exc)



def backoff_s(failures: int) -> float:
    """Seconds before the next session after ``failures`` failed ones in a row."""
    return RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S)) - 1]
