"""Writing a valid event without encoding it again: its Avro body is the raw event's body plus one field.

``valid_event.avsc`` is ``raw_event.avsc`` with ``validated_at`` appended, and
Avro writes a record as its fields one after another. So when a raw event was
written with the current raw schema, the valid event's bytes are its bytes
under the valid schema's id, followed by ``validated_at`` as an Avro long: a
copy instead of an encode of a map of unions, which costs tens of
microseconds. Any other writer schema takes the ordinary encode.
"""

from __future__ import annotations

import struct
from typing import Any

from weir.contract.records import RawEvent, ValidEvent
from weir.contract.serde import AvroSerde, schema_id_of

_HEADER = struct.Struct(">bI")


def avro_long(n: int) -> bytes:
    """``n`` as Avro writes a long: zig-zag, then 7 bits per byte, low bits first."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _layout(fields: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """What decides the bytes of a record: its fields' names and types, in order (not their docs or defaults)."""
    return [(f["name"], f["type"]) for f in fields]


class ValidEncoder:
    """Encodes valid events, copying the raw bytes when their layout allows it."""

    def __init__(self, raw: AvroSerde[RawEvent], valid: AvroSerde[ValidEvent]) -> None:
        self.raw = raw
        self.valid = valid
        raw_fields = _layout(raw.catalog.current(raw.name).parsed["fields"])
        valid_fields = _layout(valid.catalog.current(valid.name).parsed["fields"])
        self.copies = valid_fields == [*raw_fields, ("validated_at", "long")]

    def encode(self, event: ValidEvent, raw_bytes: bytes | None) -> bytes:
        if self.copies and raw_bytes is not None and schema_id_of(raw_bytes) == self.raw.writer_id:
            return (_HEADER.pack(0, self.valid.writer_id) + raw_bytes[_HEADER.size:]
                    + avro_long(event["validated_at"]))
        return self.valid.encode(event)
