"""100,000 events with 1% poison pills through the real broker: exactly the bad ones dead-lettered, with reasons."""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path
from typing import Protocol

from apps.processes import start_worker, stop_process
from consumers.dlq import resend, select
from producers.churn import ChurnDomain
from producers.publisher import EventPublisher
from weir.clock import now_ms, poll_until
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord
from weir.contract.records import AttributeValue, RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_RAW, EVENTS_VALID
from weir.kafka.reading import end_offsets, holds_at_least, read_topic
from weir.settings import Settings

TOTAL, PILLS = 100_000, 1_000


class Encode(Protocol):
    """A good churn event's bytes with some of its attributes changed (and its event time, if given)."""

    def __call__(self, change: dict[str, AttributeValue], *, event_time: int | None = None) -> bytes: ...


def key_text(record: InRecord) -> str:
    assert record.key is not None, f"a dead letter at offset {record.offset} lost its key"
    return record.key.decode()


def poison(kind: str, good: bytes, encode: Encode) -> tuple[bytes, str]:
    """A bad value of the given kind, built from a good event, and the reason it must be dead-lettered with."""
    pills = {
        "not-avro": (b"this is not avro at all", "bad-wire-format"),
        "wrong-magic": (b"\x01" + good[1:], "bad-wire-format"),
        "unknown-schema-id": (struct.pack(">bI", 0, 424242) + good[5:], "unknown-schema-id"),
        "truncated": (good[: len(good) // 2], "undecodable-payload"),
        "nan": (encode({"monthly_charges": float("nan")}), "non-finite-value"),
        "infinity": (encode({"data_usage_gb": float("inf")}), "non-finite-value"),
        "out-of-range": (encode({"age": 250}), "out-of-range"),
        "missing-required": (encode({"plan": None}), "missing-field"),
        "future-time": (encode({}, event_time=now_ms() + 3_600_000), "future-event-time"),
        "oversized": (encode({"notes": "x" * 70_000}), "oversized-record"),
    }
    return pills[kind]


def test_exactly_the_poison_pills_are_dead_lettered_with_the_right_reason(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    rng = random.Random(11)
    raw = topic_serde(catalog, kafka, EVENTS_RAW)
    good_events = list(ChurnDomain(seed=11).events(TOTAL - PILLS))
    base = good_events[0]

    def encode(change: dict[str, AttributeValue], *, event_time: int | None = None) -> bytes:
        event: RawEvent = {"event_id": "pill", "entity_id": "pill",
                           "event_time": now_ms() if event_time is None else event_time, "source": "churn",
                           "attributes": {**base.attributes, **change}}
        return raw.encode(event)

    kinds = ["not-avro", "wrong-magic", "unknown-schema-id", "truncated", "nan", "infinity", "out-of-range",
             "missing-required", "future-time", "oversized"]
    expected: dict[str, tuple[bytes, str]] = {}
    sent_good: set[str] = set()
    pill_slots = set(rng.sample(range(TOTAL), PILLS))
    publisher = EventPublisher(kafka, catalog)
    worker = start_worker(kafka, tmp_path / "worker.log", "validate", loglevel="info")
    try:
        goods = iter(good_events)
        for slot in range(TOTAL):
            if slot in pill_slots:
                key = f"pill-{slot}"
                value, reason = poison(kinds[len(expected) % len(kinds)], raw.encode({
                    "event_id": key, "entity_id": key, "event_time": now_ms(), "source": "churn",
                    "attributes": base.attributes}), encode)
                expected[key] = (value, reason)
                publisher.send_bytes(kafka.topic("events.raw"), key, value, publisher.summary.events)
            else:
                e = next(goods)
                value = raw.encode(e.raw("churn"))
                publisher.send_bytes(kafka.topic("events.raw"), e.entity_id, value, publisher.summary.events)
                sent_good.add(e.event_id)
        publisher.flush()
        assert publisher.summary.events.delivered == TOTAL and publisher.summary.events.failed == 0

        def all_routed() -> bool:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            if end_offsets(kafka, kafka.topic("events.valid")) + end_offsets(kafka, kafka.topic("events.dlq")) < TOTAL:
                return False  # offsets are an upper bound (transaction markers): count once they could be there
            return sum(1 for topic in ("events.valid", "events.dlq")
                       for _ in read_topic(kafka, kafka.topic(topic), timeout_s=120)) >= TOTAL

        poll_until(all_routed, timeout_s=300, interval_s=0.5, what="every raw event routed")
        dead = {key_text(m): m for m in read_topic(kafka, kafka.topic("events.dlq"), timeout_s=60)}
        valid = topic_serde(catalog, kafka, EVENTS_VALID)
        passed = [valid.decode(m.value)["event_id"] for m in read_topic(kafka, kafka.topic("events.valid"),
                                                                           timeout_s=120)]
    finally:
        code = stop_process(worker)
    assert set(dead) == set(expected)
    wrong = {k: (read_headers(m.headers)["reason"], expected[k][1]) for k, m in dead.items()
             if read_headers(m.headers)["reason"] != expected[k][1]}
    assert wrong == {}
    assert all(m.value == expected[k][0] for k, m in dead.items())  # original bytes, untouched
    assert all(read_headers(m.headers)["original.topic"] == kafka.topic("events.raw") for m in dead.values())
    assert len(passed) == len(sent_good) == TOTAL - PILLS and set(passed) == sent_good
    log = (tmp_path / "worker.log").read_text()
    assert code == 0 and "Crashed" not in log and "Restarting" not in log, log[-2000:]


def test_a_record_just_under_the_message_limit_is_dead_lettered_without_its_value_and_validation_goes_on(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    """Its dead letter (value plus a dozen headers) would not fit in a message: the stage must not stall on it."""
    raw = topic_serde(catalog, kafka, EVENTS_RAW)
    near_limit = b"\x00" * 999_800
    good_events = list(ChurnDomain(seed=12).events(50))
    publisher = EventPublisher(kafka, catalog)
    publisher.send_bytes(kafka.topic("events.raw"), "huge", near_limit, publisher.summary.events)
    for e in good_events:
        publisher.send_bytes(kafka.topic("events.raw"), e.entity_id, raw.encode(e.raw("churn")),
                             publisher.summary.events)
    publisher.flush()
    assert publisher.summary.events.delivered == 51
    worker = start_worker(kafka, tmp_path / "worker.log", "validate", loglevel="info")
    try:
        poll_until(lambda: holds_at_least(kafka, kafka.topic("events.valid"), 50), timeout_s=120, interval_s=0.5,
                   what="the events after the huge record validated")
        [letter] = list(read_topic(kafka, kafka.topic("events.dlq")))
        report = resend(kafka, select())
    finally:
        assert stop_process(worker) == 0
    h = read_headers(letter.headers)
    assert h["reason"] == "oversized-record" and h["value.dropped"] == "true" and letter.value == b""
    assert h["original.bytes"] == "999800" and h["original.sha256"] == hashlib.sha256(near_limit).hexdigest()
    assert report.selected == 1 and report.failed == 1 and report.delivered == 0  # nothing to send back
