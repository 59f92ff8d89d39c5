"""The front's memory of served event ids: only committed ids count, it survives a restart through its checkpoint and
changelog, it forgets past its horizon, and a duplicate is dead-lettered instead of served."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from streams.front import FrontStage
from streams.validate.stage import ValidateStage
from tests.unit.test_stages import SETTINGS, raw_event, registry_with
from weir.clock import now_ms
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord, OutRecord
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_SERVED, PREDICTIONS
from weir.state.served import ServedIds

HOUR = 3_600_000


def memory(catalog: SchemaCatalog, directory: Path | None, horizon_ms: int = 24 * HOUR) -> ServedIds:
    return ServedIds(directory, "front", topic_serde(catalog, SETTINGS, EVENTS_SERVED), horizon_ms=horizon_ms)


def as_read(record: OutRecord, offset: int) -> InRecord:
    assert record.partition is not None
    return InRecord(record.topic, record.partition, offset, 0, record.key, record.value, [])


def test_an_id_counts_as_served_only_once_its_transaction_committed(catalog: SchemaCatalog) -> None:
    served = memory(catalog, None)
    served.open({0, 1})
    record = served.add(1, "e1", 1_000)
    assert (record.topic, record.key, record.partition) == ("u.events.served", b"e1", 1)
    assert served.seen(1, "e1") and not served.seen(0, "e1")  # within its batch already; per partition
    served.seal()
    served.close({1})  # the session failed before the commit: never served
    assert not served.seen(1, "e1")
    served.open({1})
    served.add(1, "e2", 1_000)
    served.seal()
    served.committed()
    assert served.seen(1, "e2")
    served.shut()


def test_a_restart_finds_its_file_and_restores_the_rest_from_the_changelog(catalog: SchemaCatalog,
                                                                          tmp_path: Path) -> None:
    served = memory(catalog, tmp_path)
    assert served.open({0}) == {0: 0}  # never had it: the whole changelog
    changelog = [served.add(0, f"e{i}", 1_000 + i) for i in range(3)]
    served.seal()
    served.committed()
    served.checkpoint({0: 4})  # three records and a commit marker
    changelog += [served.add(0, "e3", 2_000)]
    served.seal()
    served.committed()  # committed on Kafka, but no checkpoint since: the file does not hold it after a crash
    served.shut()

    again = memory(catalog, tmp_path)
    assert again.open({0}) == {0: 4} and again.path == tmp_path / "front-0.db"
    assert all(again.seen(0, f"e{i}") for i in range(3)) and not again.seen(0, "e3")
    assert again.restore(0, [as_read(changelog[3], 4)]) == 1
    assert again.seen(0, "e3")
    again.shut()


def test_a_second_process_takes_a_file_of_its_own(catalog: SchemaCatalog, tmp_path: Path) -> None:
    first, second = memory(catalog, tmp_path), memory(catalog, tmp_path)
    first.open({0})
    second.open({1})
    assert (first.path, second.path) == (tmp_path / "front-0.db", tmp_path / "front-1.db")
    first.shut()
    second.shut()


def test_an_id_is_forgotten_past_the_horizon_of_its_partitions_event_time(catalog: SchemaCatalog) -> None:
    served = memory(catalog, None, horizon_ms=HOUR)
    served.open({0})
    served.add(0, "old", 0)
    served.seal()
    served.committed()
    assert served.seen(0, "old")
    served.add(0, "new", HOUR + 1)
    served.seal()
    served.committed()
    assert not served.seen(0, "old") and served.seen(0, "new")
    served.checkpoint({0: 2})
    assert served.count(0) == 1
    served.shut()


def test_a_changelog_record_that_is_no_served_id_is_skipped(catalog: SchemaCatalog) -> None:
    served = memory(catalog, None)
    served.open({0})
    good = served.add(0, "e1", 1_000)
    served.close({0})
    assert served.restore(0, [InRecord(good.topic, 0, 0, 0, b"e0", b"garbage", []), as_read(good, 1)]) == 1
    assert served.seen(0, "e1") and not served.seen(0, "e0")
    served.shut()


def test_the_front_dead_letters_an_event_id_it_served_and_counts_it(catalog: SchemaCatalog) -> None:
    metrics = CollectorRegistry()
    front = FrontStage(SETTINGS, catalog, registry_with("v1"), metrics)
    front.partitioned_state.open({0})
    event = InRecord("u.events.raw", 0, 0, 1_000, b"c1", raw_event(catalog, event_time=now_ms()), [])
    first = front.process([event])
    assert sum(o.topic == "u.events.served" for o in first) == 1
    front.partitioned_state.seal()
    front.partitioned_state.committed()
    again = front.process([event, event])  # a producer's retry, twice
    assert [read_headers(o.headers)["reason"] for o in again] == ["duplicate-event"] * 2
    assert not [o for o in again if o.topic == topic_serde(catalog, SETTINGS, PREDICTIONS).topic]
    assert 'weir_front_duplicates_total{source="t"} 2.0' in generate_latest(metrics).decode()
    front.partitioned_state.shut()


def test_an_event_the_http_service_served_is_remembered_as_served(catalog: SchemaCatalog) -> None:
    """Covered end to end in test_http_service; here: a dead letter of an invalid event is not remembered, so the
    event can be fixed and sent again under its id."""
    validate = ValidateStage(SETTINGS, catalog)
    validate.served.open({0})
    bad = InRecord("u.events.raw", 0, 0, 1_000, b"c1", raw_event(catalog, event_time=now_ms() + 10 * HOUR), [])
    [letter] = validate.process([bad])
    assert read_headers(letter.headers)["reason"] == "future-event-time"
    fixed = InRecord("u.events.raw", 0, 1, 1_000, b"c1", raw_event(catalog, event_time=now_ms()), [])
    assert [o.topic for o in validate.process([fixed])] == ["u.events.valid", "u.events.served"]
    validate.served.shut()
