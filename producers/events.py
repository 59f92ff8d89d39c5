"""Publish labelled events to ``events.raw`` and their labels, later, to ``feedback``.

One loop does both because the delay between an event and its label is part
of what the pipeline must cope with: each label is scheduled when its event is
accepted and sent once its delay has passed. Every record goes through the
idempotent producer; delivery failures are counted with their reasons and
reported, never swallowed.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Producer
from tqdm import tqdm

from producers.synthetic import LabelledEvent
from weir.clock import now_ms
from weir.kafka import DeliveryReport, flush_or_raise, make_producer
from weir.serde import AvroSerde, SchemaCatalog
from weir.settings import Settings
from weir.topics import EVENTS_RAW, FEEDBACK


@dataclass
class ProduceSummary:
    events_produced: int = 0
    feedback_sent: int = 0
    events: DeliveryReport = field(default_factory=DeliveryReport)
    feedback: DeliveryReport = field(default_factory=DeliveryReport)
    interrupted: bool = False


class EventPublisher:
    """Serializes and sends events and feedback with delivery accounting."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, producer: Producer | None = None) -> None:
        self.producer = producer or make_producer(settings)
        self.raw_topic = settings.topic(EVENTS_RAW.name)
        self.feedback_topic = settings.topic(FEEDBACK.name)
        self.raw: AvroSerde = catalog.serde(EVENTS_RAW.schema or "", self.raw_topic)
        self.labels: AvroSerde = catalog.serde(FEEDBACK.schema or "", self.feedback_topic)
        self.summary = ProduceSummary()

    def send_event(self, event: LabelledEvent, source: str) -> None:
        value = self.raw.encode({
            "event_id": event.event_id, "entity_id": event.entity_id, "event_time": event.event_time_ms,
            "source": source, "attributes": event.attributes,
        })
        self.send_bytes(self.raw_topic, event.entity_id, value, self.summary.events)
        self.summary.events_produced += 1

    def send_feedback(self, event: LabelledEvent) -> None:
        value = self.labels.encode({
            "event_id": event.event_id, "entity_id": event.entity_id, "label": event.label,
            "label_time": now_ms(),
        })
        self.send_bytes(self.feedback_topic, event.entity_id, value, self.summary.feedback)
        self.summary.feedback_sent += 1

    def send_bytes(self, topic: str, key: str, value: bytes, report: DeliveryReport) -> None:
        """Send, waiting for room in librdkafka's queue instead of failing when it is full."""
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=value, on_delivery=report.callback)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self) -> None:
        flush_or_raise(self.producer)


def publish(
    publisher: EventPublisher,
    events: Iterable[LabelledEvent],
    *,
    total: int | None = None,
    source: str = "synthetic",
    rate: float | None = None,
    feedback_delay_s: float = 2.0,
    stop: threading.Event | None = None,
    progress: bool = True,
) -> ProduceSummary:
    """Send ``events`` at ``rate`` events/s (``None``: as fast as possible), each label ``feedback_delay_s`` later.

    Setting ``stop`` ends the run early: what was accepted is flushed, the
    labels still scheduled are sent (their events are already out) and the
    summary says it was interrupted.
    """
    stop = stop or threading.Event()
    due: list[tuple[float, int, LabelledEvent]] = []
    started = time.monotonic()
    bar = tqdm(total=total, unit="ev", desc="producing", disable=not progress, dynamic_ncols=True)
    try:
        for i, event in enumerate(events):
            if stop.is_set():
                publisher.summary.interrupted = True
                break
            if rate:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    stop.wait(ahead)
            publisher.send_event(event, source)
            heapq.heappush(due, (time.monotonic() + feedback_delay_s, i, event))
            _send_due(publisher, due, time.monotonic())
            bar.update(1)
        while due:
            wait = due[0][0] - time.monotonic()
            if wait > 0:
                publisher.producer.poll(min(wait, 0.1))
            _send_due(publisher, due, time.monotonic())
    finally:
        bar.close()
        publisher.flush()
    return publisher.summary


def _send_due(publisher: EventPublisher, due: list[tuple[float, int, LabelledEvent]], now: float) -> None:
    while due and due[0][0] <= now:
        _, _, event = heapq.heappop(due)
        publisher.send_feedback(event)
