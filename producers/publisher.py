"""Publish labelled events to ``events.raw`` and their labels, later, to ``feedback``.

One loop does both because the delay between an event and its label is part
of what the pipeline must cope with: each label is scheduled when its event is
accepted and sent once its delay has passed. Every record goes through the
idempotent producer; delivery failures are counted with their reasons and
reported, never swallowed.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Producer
from tqdm import tqdm

from producers.event import LabelledEvent, Source
from producers.labels import FeedbackPolicy
from weir.clock import now_ms
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_RAW, FEEDBACK
from weir.kafka.clients import DeliveryReport, flush_or_raise, make_producer, produce
from weir.metrics import CountersCollector, CounterValues
from weir.settings import Settings


@dataclass
class ProduceSummary:
    events_produced: int = 0
    feedback_sent: int = 0
    labels_withheld: int = 0  # events whose label the policy (or the data) never sends
    labels_duplicated: int = 0  # labels sent twice on purpose
    events_resent: int = 0  # events sent a second time on purpose, as a retrying application does (in events_produced)
    events: DeliveryReport = field(default_factory=DeliveryReport)
    feedback: DeliveryReport = field(default_factory=DeliveryReport)
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return self.events.failed + self.feedback.failed

    def describe(self) -> str:
        return (f"events: {self.events_produced} sent ({self.events_resent} resent on purpose), "
                f"{self.events.delivered} delivered, {self.events.failed} failed; "
                f"feedback: {self.feedback_sent} sent ({self.labels_duplicated} duplicated on purpose, "
                f"{self.labels_withheld} withheld), {self.feedback.delivered} delivered, {self.feedback.failed} failed"
                + (" (interrupted)" if self.interrupted else ""))


class EventPublisher:
    """Serializes and sends events and feedback with delivery accounting."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, producer: Producer | None = None) -> None:
        self.settings = settings
        self.producer = producer or make_producer(settings)
        self.raw_topic = settings.topic(EVENTS_RAW.name)
        self.feedback_topic = settings.topic(FEEDBACK.name)
        self.raw = topic_serde(catalog, settings, EVENTS_RAW)
        self.labels = topic_serde(catalog, settings, FEEDBACK)
        self.summary = ProduceSummary()

    def send_event(self, event: LabelledEvent, source: str) -> None:
        value = self.raw.encode(event.raw(source))
        self.send_bytes(self.raw_topic, event.entity_id, value, self.summary.events)
        self.summary.events_produced += 1

    def send_feedback(self, event: LabelledEvent) -> None:
        value = self.labels.encode(event.feedback(now_ms()))
        self.send_bytes(self.feedback_topic, event.entity_id, value, self.summary.feedback)
        self.summary.feedback_sent += 1

    def send_bytes(self, topic: str, key: str, value: bytes, report: DeliveryReport) -> None:
        produce(self.producer, topic, value, key.encode(), on_delivery=report.callback)
        self.producer.poll(0)

    def flush(self) -> None:
        flush_or_raise(self.producer, self.settings)


def publisher_collector(publisher: EventPublisher) -> CountersCollector:
    """The producer's delivery counters for /metrics: ``weir_produced_total{topic, outcome}``."""
    def read() -> CounterValues:
        summary = publisher.summary
        return {("weir_produced", (("topic", topic), ("outcome", outcome))): n
                for topic, report in (("events.raw", summary.events), ("feedback", summary.feedback))
                for outcome, n in (("delivered", report.delivered), ("failed", report.failed))}

    return CountersCollector("Records the producer sent, by topic and delivery outcome", read)


def publish(
    publisher: EventPublisher,
    source: Source,
    *,
    policy: FeedbackPolicy = FeedbackPolicy(),
    rate: float | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    progress: bool = True,
    seed: int = 0,
    milestones: dict[int, Callable[[], None]] | None = None,
    resend: float = 0.0,
) -> ProduceSummary:
    """Send ``source``'s events at ``rate`` events/s (``None``: as fast as possible) and their labels per ``policy``;
    a ``resend`` share of the events is sent again, the same bytes under the same id, up to a second later (an
    application retrying what it thinks failed): the front must serve each event id once.

    Stops after the source is exhausted, after ``duration_s`` seconds, or when
    ``stop`` is set: what was accepted is flushed, the labels of events already
    sent are still delivered (their delays are honoured), and the summary says
    whether it was interrupted. ``milestones`` run once the event with their
    index has been sent (the demo deploys challengers that way).
    """
    milestones = milestones or {}
    stop = stop or threading.Event()
    rng = random.Random(seed)
    summary = publisher.summary
    due: list[tuple[float, int, LabelledEvent]] = []  # (when, order, event): a label, or with an odd order a resend
    started = time.monotonic()
    bar = tqdm(total=source.total, unit="ev", desc="producing", disable=not progress, dynamic_ncols=True)
    try:
        for i, event in enumerate(source.events):
            if stop.is_set() or (duration_s is not None and time.monotonic() - started >= duration_s):
                summary.interrupted = stop.is_set()
                break
            if rate:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    stop.wait(ahead)
            publisher.send_event(event, source.name)
            sent_at = time.monotonic()
            delays = policy.sends(event, rng)
            summary.labels_withheld += not delays
            summary.labels_duplicated += len(delays) > 1
            for n, delay in enumerate(delays):
                heapq.heappush(due, (sent_at + delay, 4 * i + 2 * n, event))
            if resend and rng.random() < resend:
                heapq.heappush(due, (sent_at + rng.uniform(0, 1), 4 * i + 1, event))
            _send_due(publisher, due, time.monotonic(), source.name)
            bar.update(1)
            if i in milestones:
                milestones[i]()
        while due:
            wait = due[0][0] - time.monotonic()
            if wait > 0:
                publisher.producer.poll(min(wait, 0.1))
            _send_due(publisher, due, time.monotonic(), source.name)
    finally:
        bar.close()
        publisher.flush()
    return summary


def _send_due(publisher: EventPublisher, due: list[tuple[float, int, LabelledEvent]], now: float,
              source: str) -> None:
    while due and due[0][0] <= now:
        _, order, event = heapq.heappop(due)
        if order % 2:
            publisher.send_event(event, source)
            publisher.summary.events_resent += 1
        else:
            publisher.send_feedback(event)
