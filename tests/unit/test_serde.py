"""Every schema round-trips in the Confluent wire format, and every way bytes can be wrong is named."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro.utils import generate_many

from weir.contract.serde import MAGIC_BYTE, SchemaCatalog, local_schema_id, schema_id_of
from weir.errors import PayloadDecodeError, RecordEncodeError, UnknownSchemaError, WireFormatError
from weir.settings import Settings


def test_catalog_has_one_schema_per_topic_value(catalog: SchemaCatalog) -> None:
    from weir.contract.topics import CONTRACT

    assert {t.schema for t in CONTRACT if t.schema} == set(catalog.names)


@pytest.mark.parametrize("name", SchemaCatalog(Settings().schemas_dir).names)
def test_every_schema_round_trips_generated_records(catalog: SchemaCatalog, name: str) -> None:
    serde = catalog.serde(name, f"topic-of-{name}")
    for record in generate_many(catalog.current(name).parsed, 50):
        data = serde.encode(record)
        assert data[0] == MAGIC_BYTE
        assert schema_id_of(data) == local_schema_id(catalog.current(name).parsed)
        assert serde.decode(data) == record


def test_local_ids_are_stable_and_distinct(catalog: SchemaCatalog) -> None:
    ids = {name: local_schema_id(catalog.current(name).parsed) for name in catalog.names}
    assert len(set(ids.values())) == len(ids)
    again = SchemaCatalog(catalog.schemas_dir)
    assert ids == {name: local_schema_id(again.current(name).parsed) for name in again.names}
    assert all(0 < i < 2**31 for i in ids.values())


def _feedback(catalog: SchemaCatalog) -> bytes:
    return catalog.serde("feedback", "fb").encode(
        {"event_id": "e1", "entity_id": "c1", "label": True, "label_time": 1}
    )


def test_wrong_magic_byte_is_a_wire_format_error(catalog: SchemaCatalog) -> None:
    data = bytearray(_feedback(catalog))
    data[0] = 1
    with pytest.raises(WireFormatError, match="magic byte is 1"):
        catalog.serde("feedback", "fb").decode(bytes(data))


@pytest.mark.parametrize("data", [None, b"", b"\x00\x00\x01"])
def test_too_short_is_a_wire_format_error(catalog: SchemaCatalog, data: bytes | None) -> None:
    with pytest.raises(WireFormatError):
        catalog.serde("feedback", "fb").decode(data)


def test_unknown_schema_id(catalog: SchemaCatalog) -> None:
    data = struct.pack(">bI", 0, 12345) + _feedback(catalog)[5:]
    with pytest.raises(UnknownSchemaError, match="12345"):
        catalog.serde("feedback", "fb").decode(data)


def test_truncated_payload(catalog: SchemaCatalog) -> None:
    with pytest.raises(PayloadDecodeError):
        catalog.serde("feedback", "fb").decode(_feedback(catalog)[:-3])


def test_trailing_bytes_are_refused(catalog: SchemaCatalog) -> None:
    with pytest.raises(PayloadDecodeError, match="trailing"):
        catalog.serde("feedback", "fb").decode(_feedback(catalog) + b"\x00")


def test_encode_refuses_a_record_that_does_not_fit(catalog: SchemaCatalog) -> None:
    with pytest.raises(RecordEncodeError):
        catalog.serde("feedback", "fb").encode({"event_id": "e1"})


def test_old_writer_versions_decode_into_the_current_reader(tmp_path: Path, catalog: SchemaCatalog) -> None:
    """A record written with v1 of a schema reads with a v2 that added a defaulted field."""
    import json
    import shutil

    shutil.copytree(catalog.schemas_dir, tmp_path / "schemas")
    path = tmp_path / "schemas" / "feedback.avsc"
    v2 = json.loads(path.read_text())
    v2["fields"].append({"name": "source", "type": "string", "default": "unknown"})
    old = catalog.serde("feedback", "fb").encode({"event_id": "e1", "entity_id": "c1", "label": 1.5,
                                                    "label_time": 7})
    path.write_text(json.dumps(v2))
    newer = SchemaCatalog(tmp_path / "schemas")
    assert newer.serde("feedback", "fb").decode(old) == {
        "event_id": "e1", "entity_id": "c1", "label": 1.5, "label_time": 7, "source": "unknown"
    }


def test_schema_registry_ids_are_registered_per_topic_and_fetched_when_unknown(catalog: SchemaCatalog) -> None:
    """With a registry configured, writers register under <topic>-value and readers resolve ids from it.

    The registry here is confluent-kafka's own in-memory client (``mock://``), a
    Schema Registry stand-in shipped by the library; no Kafka API is involved.
    """
    registry = SchemaRegistryClient.new_client({"url": "mock://weir-test"})
    writer = SchemaCatalog(catalog.schemas_dir, registry=registry)
    data = writer.serde("feedback", "prod.feedback").encode(
        {"event_id": "e1", "entity_id": "c1", "label": False, "label_time": 3}
    )
    registered = registry.get_latest_version("prod.feedback-value")
    assert schema_id_of(data) == registered.schema_id
    reader = SchemaCatalog(catalog.schemas_dir, registry=registry)
    assert reader.serde("feedback", "prod.feedback").decode(data)["label"] is False
