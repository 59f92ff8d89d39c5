"""A valid event written by copying its raw bytes decodes exactly as one encoded the ordinary way."""

from __future__ import annotations

from producers.sources import open_source
from streams.validate.encoding import ValidEncoder, avro_long
from weir.contract.records import ValidEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_RAW, EVENTS_VALID
from weir.settings import Settings

SETTINGS = Settings(topic_prefix="c.")


def test_the_copy_and_the_encode_give_the_same_record(catalog: SchemaCatalog) -> None:
    raw, valid = topic_serde(catalog, SETTINGS, EVENTS_RAW), topic_serde(catalog, SETTINGS, EVENTS_VALID)
    encoder = ValidEncoder(raw, valid)
    assert encoder.copies  # the schemas are laid out for the copy
    for i, e in enumerate(open_source("churn", 500).events):
        event = e.raw("churn")
        record: ValidEvent = {**event, "validated_at": 1_767_225_600_000 + i * 7919}
        copied = encoder.encode(record, raw.encode(event))
        assert copied == valid.encode(record)
        assert valid.decode(copied) == record


def test_a_raw_event_of_another_writer_schema_is_encoded_the_ordinary_way(catalog: SchemaCatalog) -> None:
    raw, valid = topic_serde(catalog, SETTINGS, EVENTS_RAW), topic_serde(catalog, SETTINGS, EVENTS_VALID)
    record: ValidEvent = {"event_id": "e", "entity_id": "c", "event_time": 1, "source": "s", "attributes": {},
                          "validated_at": 2}
    foreign = b"\x00\x00\x00\x00\x01" + raw.encode(record)[5:]  # an id that is not the raw schema's
    assert ValidEncoder(raw, valid).encode(record, foreign) == valid.encode(record)


def test_avro_longs_are_zigzag_varints() -> None:
    assert [avro_long(n) for n in (0, -1, 1, -64, 64)] == [b"\x00", b"\x01", b"\x02", b"\x7f", b"\x80\x01"]
