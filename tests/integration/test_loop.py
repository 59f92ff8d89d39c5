"""The walking skeleton end to end on the real broker: counts reconcile, nothing is lost."""

from __future__ import annotations

import struct
from pathlib import Path

from apps.processes import start_worker, stop_process
from apps.tally import TopicTally
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, publish
from producers.sources import open_source
from weir.clock import poll_until
from weir.contract.serde import SchemaCatalog
from weir.settings import Settings

EVENTS = 2_000

POISON = {
    "bad-wire-format": [b"", b"{\"json\": true}", b"\x01\x00\x00\x00\x01abc"],
    "unknown-schema-id": [struct.pack(">bI", 0, 999) + b"\x02a"],
}


def test_every_event_is_served_or_dead_lettered_and_every_label_learned(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    worker = start_worker(kafka, tmp_path / "worker.log", loglevel="info")
    tally = TopicTally(kafka, catalog)
    try:
        publisher = EventPublisher(kafka, catalog)
        pills = [(reason, value) for reason, values in POISON.items() for value in values]
        for i, (_, value) in enumerate(pills):
            publisher.send_bytes(kafka.topic("events.raw"), f"poison-{i}", value, publisher.summary.events)
        produced = publish(publisher, open_source("simple", EVENTS, seed=3), policy=FeedbackPolicy("fixed:0.5"),
                           progress=False)
        assert produced.events.failed == produced.feedback.failed == 0
        t = tally.tally

        def settled() -> bool:
            tally.poll()
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            return t.served + t.dead_letters >= EVENTS + len(pills) and \
                t.learner_counter("feedback_joined") >= EVENTS

        poll_until(settled, timeout_s=240, interval_s=0, what="pipeline drained")
        assert t.served == EVENTS and t.served_twice == 0
        assert t.predictions == EVENTS  # one active version: one prediction per event
        assert t.dead_letters == len(pills)
        assert dict(t.dead_letter_reasons) == {reason: len(values) for reason, values in POISON.items()}
        assert t.learner_counter("feedback_joined") == produced.feedback_sent == EVENTS
        assert t.learner_counter("feedback_duplicate") == t.learner_counter("feedback_unmatched") == 0
    finally:
        tally.close()
        code = stop_process(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
