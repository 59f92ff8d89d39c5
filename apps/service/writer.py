"""The HTTP service's records go to Kafka before its answer goes to the caller.

One idempotent producer (``acks=all``) for the process; a poll thread serves
its delivery reports, and each request awaits the reports of its own records
on the event loop. An answer thus always has its records on the broker, and
a request whose records the broker did not take within
``WEIR_HTTP_WRITE_TIMEOUT_MS`` is answered 503, never served unrecorded.

Not a transaction per request: a commit would add its round trips to every
answer (see docs/http.md). The cost is that a process that dies between
writing a request's records and answering it may leave part of them; the
caller, with no answer, retries with the same event id, and the readers count
an event id once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from weir.contract.messages import OutRecord, kafka_headers
from weir.errors import WeirError
from weir.kafka.clients import DELIVERY_MARGIN_S, make_producer
from weir.settings import Settings

log = logging.getLogger("weir.http")


class RecordsNotWritten(WeirError):
    """The broker did not take a request's records in time (or refused them)."""


class _Deliveries:
    """One request's delivery reports, counted on the poll thread; complete, it joins the writer's finished list,
    which the poll thread hands to the event loop in one wake-up per poll (not one per request)."""

    def __init__(self, future: asyncio.Future[list[str]], on_done: Callable[[_Deliveries], None]) -> None:
        self.future = future
        self.on_done = on_done
        self.expected: int | None = None  # known once every record is queued
        self.reported = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        """On the poll thread."""
        with self.lock:
            self.reported += 1
            if err is not None:
                self.errors.append(err.str())
            done = self.expected is not None and self.reported >= self.expected
        if done:
            self.on_done(self)

    def queued(self, count: int, error: str | None = None) -> None:
        """On the event loop, once the request's records are queued (or the queue refused one)."""
        with self.lock:
            self.expected = count
            if error is not None:
                self.errors.append(error)
            done = self.reported >= count
        if done:  # every report came before this (or nothing was queued): no wake-up needed
            self.resolve()

    def resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(list(self.errors))

    def give_up(self, why: str) -> None:
        """On the event loop, when the reports are overdue (cheaper than ``asyncio.wait_for`` on every request)."""
        if not self.future.done():
            self.future.set_result([*self.errors, why])


def _resolve_all(finished: list[_Deliveries]) -> None:
    for deliveries in finished:
        deliveries.resolve()


class RecordWriter:
    """Writes a request's records and waits until the broker has every one of them."""

    def __init__(self, settings: Settings, **extra: Any) -> None:
        self.broken: str | None = None  # why this writer can write no more (a fatal producer error, a dead poller)
        # linger 1 ms: concurrent requests share a produce request without the default 5 ms in every answer
        self.producer = make_producer(settings, **{"linger.ms": 1,
                                                   "message.timeout.ms": settings.http_write_timeout_ms,
                                                   "error_cb": self._on_error, **extra})
        # librdkafka gives every record its verdict by its message timeout; past that and a margin, a request
        # stops waiting whatever happened to the poll thread
        self.wait_s = settings.http_write_timeout_ms / 1000 + DELIVERY_MARGIN_S
        self._finished: list[_Deliveries] = []
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="weir-http-producer", daemon=True)
        self._poller.start()

    def _done(self, deliveries: _Deliveries) -> None:
        """On the poll thread: a request's records are all reported."""
        self._finished.append(deliveries)

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's client-level errors: most it recovers from (and says so in its log); a fatal one ends the
        idempotent producer, and with it this writer."""
        if error.fatal():
            self.broken = f"the producer failed: {error.str()}"
            log.critical("HTTP service: %s; restart the process", self.broken)

    def _poll(self) -> None:
        try:
            while not self._stopping.is_set():
                self.producer.poll(0.05)
                if self._finished:
                    finished, self._finished = self._finished, []
                    finished[0].future.get_loop().call_soon_threadsafe(_resolve_all, finished)
        except Exception as exc:  # a request would otherwise wait out its timeout, and every later one too
            self.broken = f"the producer's poll thread died: {type(exc).__name__}: {exc}"
            log.critical("HTTP service: %s; restart the process", self.broken)

    @property
    def healthy(self) -> bool:
        return self.broken is None and self._poller.is_alive()

    async def write(self, records: list[OutRecord]) -> None:
        """Return once the broker has all of ``records``; ``RecordsNotWritten`` if it did not take them all."""
        if not records:
            return
        if self.broken is not None:
            raise RecordsNotWritten(self.broken)
        deliveries = _Deliveries(asyncio.get_running_loop().create_future(), self._done)
        queued, error = 0, None
        for record in records:
            try:
                self.producer.produce(record.topic, key=record.key, value=record.value,
                                      headers=kafka_headers(record.headers), on_delivery=deliveries.delivered)
            except BufferError:
                error = "the producer's queue is full (the broker is slow or away)"
                break
            except KafkaException as exc:
                error = str(exc)
                break
            queued += 1
        deliveries.queued(queued, error)
        timer = asyncio.get_running_loop().call_later(self.wait_s, deliveries.give_up,
                                                      f"no delivery report within {self.wait_s:.0f} s")
        try:
            errors = await deliveries.future
        finally:
            timer.cancel()
        if errors:
            raise RecordsNotWritten(f"{len(errors)} of {len(records)} records not written: {errors[0]}")

    def close(self, timeout_s: float) -> int:
        """Stop polling and flush what is queued; the number of records still undelivered."""
        self._stopping.set()
        self._poller.join()
        return int(self.producer.flush(timeout_s))
