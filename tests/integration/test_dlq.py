"""`weir dlq`: dead letters grouped by reason, and resent after a fix with every record accounted for."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from apps.cli import cli
from apps.processes import start_worker, stop_process
from consumers.dlq import inspect, resend, select
from producers.churn import ChurnDomain
from producers.publisher import EventPublisher
from weir.clock import now_ms, poll_until
from weir.contract.deadletter import RESENT_HEADER, read_headers
from weir.contract.records import AttributeValue, RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_RAW, EVENTS_VALID
from weir.kafka.clients import make_producer
from weir.kafka.reading import read_topic
from weir.settings import Settings


def count(settings: Settings, topic: str) -> int:
    return sum(1 for _ in read_topic(settings, settings.topic(topic)))


def test_inspect_groups_by_reason_and_resend_resubmits_what_a_fix_lets_through(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    raw = topic_serde(catalog, kafka, EVENTS_RAW)
    events = list(ChurnDomain(seed=3).events(4))

    def encode(i: int, change: dict[str, AttributeValue] | None = None, age_s: int = 0) -> bytes:
        e = events[i]
        event: RawEvent = {"event_id": e.event_id, "entity_id": e.entity_id, "event_time": now_ms() - age_s * 1000,
                           "source": "churn", "attributes": {**e.attributes, **(change or {})}}
        return raw.encode(event)

    publisher = EventPublisher(kafka, catalog)
    sends = [("good", encode(0)), ("late-1", encode(1, age_s=3 * 86_400)), ("late-2", encode(2, age_s=2 * 86_400)),
             ("age", encode(3, {"age": 300})), ("junk", b"junk")]
    for key, value in sends:
        publisher.send_bytes(kafka.topic("events.raw"), key, value, publisher.summary.events)
    publisher.flush()
    worker = start_worker(kafka, tmp_path / "worker.log", "validate")
    try:
        poll_until(lambda: count(kafka, "events.valid") + count(kafka, "events.dlq") >= 5, timeout_s=120,
                   what="raw events routed")
        groups = {g.reason: g for g in inspect(kafka, examples=1)}
        assert {r: g.count for r, g in groups.items()} == {"late-event": 2, "out-of-range": 1, "bad-wire-format": 1}
        assert groups["late-event"].dimension == "timeliness" and groups["late-event"].rules == {"max-lag": 2}
        assert len(groups["late-event"].examples) == 1

        shown = CliRunner().invoke(cli, ["--prefix", kafka.topic_prefix, "dlq", "inspect"], prog_name="weir")
        assert shown.exit_code == 0 and "late-event" in shown.output and "[timeliness]" in shown.output

        report = resend(kafka, select(reasons=("late-event", "out-of-range")))
        assert (report.selected, report.delivered, report.failed) == (3, 3, 0)
        assert all(r["status"] == "delivered" and r["at"].startswith(kafka.topic("events.raw"))
                   for r in report.records)

        # The late ones now pass (a resent record is late by nature); the out-of-range one is dead again, marked
        # as resent.
        poll_until(lambda: count(kafka, "events.valid") >= 3 and count(kafka, "events.dlq") >= 4, timeout_s=120,
                   what="resent events routed")
    finally:
        stop_process(worker)
    valid = topic_serde(catalog, kafka, EVENTS_VALID)
    assert sorted(valid.decode(m.value)["event_id"] for m in read_topic(kafka, kafka.topic("events.valid"))) == \
        sorted(e.event_id for e in events[:3])
    again = [m for m in read_topic(kafka, kafka.topic("events.dlq")) if m.key == b"age"]
    assert len(again) == 2 and read_headers(again[1].headers)["reason"] == "out-of-range"
    resent_from = dict(again[1].headers)[RESENT_HEADER]
    first = again[0]  # the resent copy names the dead letter it was made from
    assert resent_from is not None and resent_from.decode() == f"{first.topic}/{first.partition}/{first.offset}"
    assert resent_from.decode() in {r["dlq"] for r in report.records}


def test_resend_dry_run_sends_nothing_and_the_cli_writes_its_log(kafka: Settings, tmp_path: Path) -> None:
    producer = make_producer(kafka)
    producer.produce(kafka.topic("events.dlq"), key=b"k", value=b"v",
                     headers=[("weir.reason", b"bad-wire-format"), ("weir.original.topic",
                                                                    kafka.topic("events.raw").encode())])
    producer.flush(10)
    dry = resend(kafka, select(), dry_run=True)
    assert (dry.selected, dry.delivered) == (1, 0) and count(kafka, "events.raw") == 0
    log = tmp_path / "resend.jsonl"
    result = CliRunner().invoke(cli, ["--prefix", kafka.topic_prefix, "dlq", "resend", "--reason", "bad-wire-format",
                                      "--log", str(log)], prog_name="weir")
    assert result.exit_code == 0, result.output
    assert "resent 1 dead letters (bad-wire-format x1); delivered 1, failed 0" in result.output
    assert '"status": "delivered"' in log.read_text() and count(kafka, "events.raw") == 1
