"""The retrainer: a worker's service that runs the controller's retrain jobs in a process of their own.

A job reads its window back from ``features`` and ``feedback`` at the
offsets it names (``weir.kafka.ranges``, replay's rules) and fits the
challenger: seconds to minutes of Python. Run in the worker's process, even
in a thread, it would hold the interpreter lock the front serves with; so
each job runs in a spawned child process, at a lower CPU priority than the
worker (nice 10), and its outcome comes back through a pipe; a job not done
in 30 minutes is ended and reported as failed. The back takes it at its
next batch (``Retraining.finished``) and registers the challenger in its
own transaction, as it does every decision.

A job still running when the worker stops is ended with it: the controller
of the next worker decides again when the policy's trigger recurs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import mode
from confluent_kafka import KafkaException

from weir.contract.serde import open_catalog
from weir.errors import WeirError
from weir.kafka.ranges import Spans, read_offset_range, widen
from weir.registry.retraining import MIN_WINDOW, Retrained, RetrainJob, RetrainOutcome, fit

log = logging.getLogger("weir.retrainer")

# Below the worker's priority, not the lowest: at nice 19 a job on a busy machine got 1.5% of a core and never
# finished (a demo run beside a CPU-bound benchmark); at 10 it gets a tenth of a contended core.
NICENESS = 10
JOB_TIMEOUT_S = 1_800.0  # a job not done by then is ended and counts as failed: the controller tries again later


def run_job(job: RetrainJob) -> RetrainOutcome:
    """Read the job's window back and fit its challenger; a failure is the outcome's error, not an exception."""
    started = time.monotonic()
    try:
        if len(job.positions) < MIN_WINDOW:
            raise WeirError(f"{len(job.positions)} joined events seen since the back started; a retraining needs "
                            f"{MIN_WINDOW}")
        features: Spans = {}
        feedback: Spans = {}
        for features_at, label_at in job.positions:
            widen(features, features_at)
            widen(feedback, label_at)
        try:
            data = read_offset_range(job.settings, open_catalog(job.settings), features, feedback)
        except KafkaException as exc:
            raise WeirError(f"reading the window back failed: {exc}") from exc
        if not data.labels:
            raise WeirError(f"no labelled event at {data.describe_spans()} (gone with the topics' retention?)")
        log.info("%s: retraining on %d labels read back from %s", job.model, len(data.labels), data.describe_spans())
        challenger, made_by, candidates = fit(job, data.learning_order())
    except WeirError as exc:
        return RetrainOutcome(job.job_id, None, str(exc))
    times = [label_time for label_time, _ in data.labels.values()]
    return RetrainOutcome(job.job_id, Retrained(
        challenger, made_by, len(times), (min(times), max(times)), data.describe_spans(), data.content_hash(),
        candidates, time.monotonic() - started))


def _child(job: RetrainJob, send: Connection) -> None:
    """The spawned process: run the job at a lower priority, send the outcome back."""
    os.nice(NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        outcome = run_job(job)
    except Exception as exc:  # noqa: BLE001  # any failure of the fit is the job's outcome, said with its type
        outcome = RetrainOutcome(job.job_id, None, f"{type(exc).__name__}: {exc}")
    send.send(outcome)
    send.close()


class Retrainer(mode.Service):
    """``Retraining`` for a worker: one child process per job, its outcome kept until the back takes it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.done: list[RetrainOutcome] = []
        self.running: dict[str, tuple[BaseProcess, asyncio.Task[None]]] = {}
        self.waiting = ThreadPoolExecutor(4, thread_name_prefix="weir-retrainer")
        self.spawn = multiprocessing.get_context("spawn")  # a fork would copy librdkafka's threads and locks

    def submit(self, job: RetrainJob) -> None:
        receive, send = self.spawn.Pipe(duplex=False)
        process = self.spawn.Process(target=_child, args=(job, send), name="weir-retrain",
                                     daemon=True)
        process.start()
        send.close()  # the child holds the other end: when it dies, receive() ends
        task = asyncio.get_running_loop().create_task(self._wait(job, process, receive))
        self.running[job.job_id] = (process, task)

    def finished(self) -> list[RetrainOutcome]:
        done, self.done = self.done, []
        return done

    async def _wait(self, job: RetrainJob, process: BaseProcess, receive: Connection) -> None:
        outcome = await asyncio.get_running_loop().run_in_executor(self.waiting, _receive, job, process, receive)
        self.running.pop(job.job_id, None)
        if not self.should_stop:
            self.done.append(outcome)

    async def on_stop(self) -> None:
        for process, _ in list(self.running.values()):
            process.terminate()
        for _, task in list(self.running.values()):
            await task
        self.waiting.shutdown(wait=True)


def _receive(job: RetrainJob, process: BaseProcess, receive: Connection) -> RetrainOutcome:
    """The child's outcome; if it died without one, or took longer than ``JOB_TIMEOUT_S``, that."""
    try:
        if receive.poll(JOB_TIMEOUT_S):
            outcome: RetrainOutcome = receive.recv()
        else:
            process.terminate()
            outcome = RetrainOutcome(job.job_id, None, f"not done in {JOB_TIMEOUT_S:.0f} s (no CPU to spare?)")
    except EOFError:
        outcome = RetrainOutcome(job.job_id, None, "the retraining process died without a result")
    finally:
        receive.close()
    process.join()
    if outcome.error is not None and process.exitcode not in (0, None):
        outcome = RetrainOutcome(job.job_id, None, f"{outcome.error} (exit code {process.exitcode})")
    return outcome
