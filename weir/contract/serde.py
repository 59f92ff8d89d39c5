"""Avro on every topic, in the Confluent wire format.

Each value is ``0x00`` + a 4-byte big-endian schema id + the Avro body, so
standard tools (kcat, Kafka UI, Confluent deserializers) can read Weir's topics.
Schema ids come from a Schema Registry when one is configured; otherwise from a
local catalog built from ``schemas/``, where an id is the schema's CRC-64-AVRO
fingerprint folded to 31 bits: the same schema gets the same id on every
machine, and every historical version in ``schemas/history`` stays readable.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from weir.contract.topics import ContractTopic
from weir.errors import (
    PayloadDecodeError,
    RecordEncodeError,
    SerdeError,
    UnknownSchemaError,
    WeirError,
    WireFormatError,
)
from weir.settings import Settings

MAGIC_BYTE = 0


_HEADER = struct.Struct(">bI")


R = TypeVar("R")


def local_schema_id(parsed: dict[str, Any]) -> int:
    """Deterministic id of a schema without a registry: its fingerprint folded to a positive int32."""
    digest = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    return int(digest, 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one schema file, parsed."""

    name: str
    version: int
    text: str
    parsed: dict[str, Any]


@dataclass
class SchemaCatalog:
    """Every schema in ``schemas/`` (current and historical versions), parsed once.

    ``registry`` is a ``confluent_kafka.schema_registry.SchemaRegistryClient``;
    when given, writer ids are registered there under ``<topic>-value`` and
    unknown ids are fetched from it.
    """

    schemas_dir: Path
    registry: Any = None
    _current: dict[str, SchemaVersion] = field(default_factory=dict, init=False)
    _history: dict[str, list[SchemaVersion]] = field(default_factory=dict, init=False)
    _by_id: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)
    _registered: dict[tuple[str, str], int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for path in sorted(self.schemas_dir.glob("*.avsc")):
            self._current[path.stem] = _load(path.stem, 0, path)
        history_dir = self.schemas_dir / "history"
        for name_dir in sorted(p for p in history_dir.glob("*") if p.is_dir()):
            versions = [_load(name_dir.name, int(p.stem[1:]), p) for p in name_dir.glob("v*.avsc")]
            self._history[name_dir.name] = sorted(versions, key=lambda v: v.version)
        for version in [*self._current.values(), *(v for vs in self._history.values() for v in vs)]:
            schema_id = local_schema_id(version.parsed)
            known = self._by_id.setdefault(schema_id, version.parsed)
            if to_parsing_canonical_form(known) != to_parsing_canonical_form(version.parsed):
                raise SerdeError(f"schema id collision in {self.schemas_dir}: {version.name} v{version.version}")

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    def current(self, name: str) -> SchemaVersion:
        try:
            return self._current[name]
        except KeyError:
            raise SerdeError(f"no schema {name!r} in {self.schemas_dir}") from None

    def history(self, name: str) -> list[SchemaVersion]:
        return list(self._history.get(name, []))

    def writer_id(self, name: str, topic: str) -> int:
        """The id records of schema ``name`` carry on ``topic``."""
        current = self.current(name)
        if self.registry is None:
            return local_schema_id(current.parsed)
        key = (name, topic)
        if key not in self._registered:
            from confluent_kafka.schema_registry import Schema

            schema_id = self.registry.register_schema(f"{topic}-value", Schema(current.text, "AVRO"))
            self._registered[key] = schema_id
            self._by_id[schema_id] = current.parsed
        return self._registered[key]

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """The schema a record with ``schema_id`` was written with."""
        known = self._by_id.get(schema_id)
        if known is not None:
            return known
        if self.registry is not None:
            try:
                fetched = self.registry.get_schema(schema_id)
            except Exception as exc:  # SchemaRegistryError: id not there, registry down
                raise UnknownSchemaError(f"schema id {schema_id} not found in the registry: {exc}") from exc
            parsed = _parsed(json.loads(fetched.schema_str))
            self._by_id[schema_id] = parsed
            return parsed
        raise UnknownSchemaError(f"schema id {schema_id} is not in the local catalog {self.schemas_dir}")

    def serde(self, name: str, topic: str) -> AvroSerde[Any]:
        return AvroSerde(self, name, topic)


def open_catalog(settings: Settings) -> SchemaCatalog:
    """The catalog every process uses: ``schemas/``, plus the Schema Registry when one is configured."""
    registry = None
    if settings.schema_registry_url:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    return SchemaCatalog(settings.schemas_dir, registry=registry)


def _load(name: str, version: int, path: Path) -> SchemaVersion:
    text = path.read_text()
    try:
        parsed = _parsed(json.loads(text))
    except Exception as exc:
        raise SerdeError(f"{path} is not a valid Avro schema: {exc}") from exc
    return SchemaVersion(name, version, text, parsed)


class AvroSerde(Generic[R]):
    """Encodes and decodes one schema's records (typed ``R``) for one topic."""

    def __init__(self, catalog: SchemaCatalog, name: str, topic: str) -> None:
        self.catalog = catalog
        self.name = name
        self.topic = topic
        self._reader = catalog.current(name).parsed
        self._writer_id: int | None = None

    @property
    def writer_id(self) -> int:
        if self._writer_id is None:
            self._writer_id = self.catalog.writer_id(self.name, self.topic)
        return self._writer_id

    def encode(self, record: R) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC_BYTE, self.writer_id))
        try:
            fastavro.schemaless_writer(buf, self._reader, record)
        except Exception as exc:  # fastavro raises ValueError/TypeError/KeyError/AttributeError
            raise RecordEncodeError(f"record does not fit {self.name}: {type(exc).__name__}: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes | None) -> R:
        schema_id = schema_id_of(data)
        writer = self.catalog.writer_schema(schema_id)
        assert data is not None
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            reader = None if writer is self._reader else self._reader
            record = fastavro.schemaless_reader(buf, writer, reader)
        except Exception as exc:  # truncated (EOFError/StopIteration), garbage (ValueError, UnicodeDecodeError...)
            raise PayloadDecodeError(
                f"{self.name} body (schema id {schema_id}) does not decode: {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(data):
            raise PayloadDecodeError(f"{len(data) - buf.tell()} trailing bytes after a {self.name} record")
        return cast(R, record)


def _parsed(schema: Any) -> dict[str, Any]:
    """A parsed record schema (every topic value is an Avro record)."""
    parsed = parse_schema(schema)
    if not isinstance(parsed, dict):
        raise SerdeError(f"a topic value's schema must be an Avro record, not {schema!r}")
    return parsed


def schema_id_of(data: bytes | None) -> int:
    """The schema id in a Confluent-framed value, or ``WireFormatError``."""
    if data is None or len(data) < _HEADER.size:
        raise WireFormatError(f"value of {0 if data is None else len(data)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise WireFormatError(f"magic byte is {magic}, expected {MAGIC_BYTE}")
    return int(schema_id)


def topic_serde(catalog: SchemaCatalog, settings: Settings, topic: ContractTopic[R]) -> AvroSerde[R]:
    """The serde for values of contract ``topic`` under this deployment's prefix."""
    if topic.schema is None:
        raise WeirError(f"{topic.name} carries other records' bytes and has no schema of its own")
    return catalog.serde(topic.schema, settings.topic(topic.name))
