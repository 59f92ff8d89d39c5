"""No single label holds learning back: a label whose event never came, or whose event the front refused, is settled
while nothing else arrives, by a real worker (front and back) on the real broker."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import TopicPartition

from apps.processes import start_worker, stop_process
from producers.churn import ChurnDomain
from streams.runtime.upstream import UpstreamWatch
from tests.integration.test_learning import learner_counters
from weir.clock import now_ms, poll_until
from weir.contract.deadletter import read_headers
from weir.contract.records import Feedback, RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, FEEDBACK
from weir.kafka.clients import make_consumer, make_producer, produce
from weir.kafka.reading import read_topic, watermarks
from weir.settings import Settings

GOOD = 50


class Traffic:
    """Raw events and their labels, as producers send them to a running worker."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        self.producer = make_producer(settings)
        self.raw = topic_serde(catalog, settings, EVENTS_RAW)
        self.feedback = topic_serde(catalog, settings, FEEDBACK)
        start = now_ms()
        self.events = [e.raw("churn") for e in ChurnDomain(seed=3).events(GOOD, event_time=lambda i: start + i)]

    def event(self, event: RawEvent) -> None:
        produce(self.producer, self.raw.topic, self.raw.encode(event), event["entity_id"].encode())

    def label(self, event_id: str, entity_id: str) -> None:
        feedback: Feedback = {"event_id": event_id, "entity_id": entity_id, "label": True, "label_time": now_ms()}
        produce(self.producer, self.feedback.topic, self.feedback.encode(feedback), entity_id.encode())

    def good_events_then_their_labels(self) -> None:
        for event in self.events:
            self.event(event)
        for event in self.events:
            self.label(event["event_id"], event["entity_id"])
        assert self.producer.flush(30) == 0


def _label_letters(settings: Settings) -> dict[str, str]:
    """The labels the learner dead-lettered: entity id -> reason."""
    dlq = settings.topic(EVENTS_DLQ.name)
    feedback = settings.topic(FEEDBACK.name)
    letters = {}
    for m in read_topic(settings, dlq):
        headers = read_headers(m.headers)
        if headers.get("original.topic") == feedback:
            letters[(m.key or b"").decode()] = headers["reason"]
    return letters


def _learned_all_then_stopped(settings: Settings, catalog: SchemaCatalog, log: Path, traffic: Traffic,
                              settled: dict[str, str]) -> None:
    """Run a worker until it learned every good label and dead-lettered ``settled`` (entity -> reason) with no more
    traffic than what was sent before."""
    worker = start_worker(settings, log, loglevel="info")
    try:
        traffic.good_events_then_their_labels()
        poll_until(lambda: learner_counters(settings, catalog).get("labels_learned", 0) == GOOD, timeout_s=120,
                   interval_s=0.5, what=f"{GOOD} labels learned while no new event arrives")
        poll_until(lambda: _label_letters(settings) == settled, timeout_s=60, interval_s=0.5,
                   what=f"the held labels dead-lettered as {settled}")
    finally:
        assert stop_process(worker) == 0, log.read_text()[-3000:]
    counters = learner_counters(settings, catalog)
    assert (counters["feedback_received"], counters["feedback_unmatched"]) == (GOOD + 1, 1)


def test_a_label_whose_event_never_came_stops_holding_learning_while_no_event_arrives(
        kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    settings = kafka.with_overrides(state_dir=tmp_path / "state", unmatched_label_wait_ms=3_000)
    traffic = Traffic(settings, catalog)
    traffic.label("ghost", "ghost-entity")  # before every other label: it is first in the learning order
    _learned_all_then_stopped(settings, catalog, tmp_path / "worker.log", traffic,
                              {"ghost-entity": "unmatched-feedback"})


def test_a_label_whose_event_the_front_refused_is_settled_at_once(
        kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """Its wait is an hour, but its event is on events.dlq: the learner reads the refusal and lets the label go."""
    settings = kafka.with_overrides(state_dir=tmp_path / "state", unmatched_label_wait_ms=3_600_000)
    traffic = Traffic(settings, catalog)
    first = traffic.events[0]
    refused: RawEvent = {**first, "event_id": "refused", "entity_id": "refused-entity",
                         "attributes": {**first["attributes"], "age": 7}}  # under the rules' minimum of 18
    traffic.event(refused)
    traffic.label("refused", "refused-entity")
    _learned_all_then_stopped(settings, catalog, tmp_path / "worker.log", traffic,
                              {"refused-entity": "refused-event-feedback"})


def test_the_front_counts_as_done_only_once_it_committed_every_raw_event(kafka: Settings,
                                                                          catalog: SchemaCatalog) -> None:
    """The learner's proof that an event will not come: the front's group has committed events.raw to its end. A
    front behind on a backlog is not done, however quiet its outputs are."""
    traffic = Traffic(kafka, catalog)
    traffic.good_events_then_their_labels()
    raw = kafka.topic(EVENTS_RAW.name)
    watch = UpstreamWatch(kafka, "front", raw)
    front = make_consumer(kafka, f"{kafka.app_id}-front", **{"enable.auto.commit": False})
    try:
        watch.refresh({0, 1, 2})
        assert watch.caught_up == set()  # the front never ran: every event is still to come
        ends = {p: watermarks(front, TopicPartition(raw, p))[1] for p in range(3)}
        assert all(ends.values())
        front.commit(offsets=[TopicPartition(raw, 0, ends[0]), TopicPartition(raw, 1, ends[1] - 2)],
                     asynchronous=False)
        watch.refresh({0, 1, 2})
        assert watch.caught_up == {(raw, 0)}
    finally:
        front.close()
        watch.close()
