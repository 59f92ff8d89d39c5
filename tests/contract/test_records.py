"""Each typed record in ``weir/contract/records.py`` says exactly what its ``.avsc`` says: the same fields, the
same types, the same nullability; and every schema of the contract has its record."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from weir.contract import records
from weir.contract.serde import SchemaCatalog
from weir.contract.topics import CONTRACT

RECORDS: dict[str, Any] = {
    "raw_event": records.RawEvent, "valid_event": records.ValidEvent, "feature_vector": records.FeatureVector,
    "prediction": records.Prediction, "feedback": records.Feedback, "model_record": records.ModelRecord,
    "alert": records.Alert, "served_event": records.ServedEvent,
}
PRIMITIVES: dict[str, Any] = {"string": str, "long": int, "int": int, "double": float, "float": float,
                              "boolean": bool, "bytes": bytes, "null": type(None)}


def python_type(avro: Any) -> Any:
    """The Python type an Avro type decodes to, in the terms the typed records use."""
    if isinstance(avro, str):
        return PRIMITIVES[avro]
    if isinstance(avro, list):
        return frozenset(python_type(branch) for branch in avro)
    kind = avro["type"]
    if kind == "map":
        return ("dict", str, python_type(avro["values"]))
    if kind == "array":
        return ("list", python_type(avro["items"]))
    if kind == "enum":
        return ("literal", frozenset(avro["symbols"]))
    if kind == "record":
        return ("record", tuple(sorted((f["name"], python_type(f["type"])) for f in avro["fields"])))
    return python_type(kind)


def described(hint: Any) -> Any:
    """A type hint in the same terms as ``python_type``."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        flat: set[Any] = set()
        for arg in get_args(hint):
            inner = described(arg)
            flat |= inner if isinstance(inner, frozenset) else {inner}
        return frozenset(flat)
    if origin is dict:
        key, value = get_args(hint)
        return ("dict", key, described(value))
    if origin is list:
        return ("list", described(get_args(hint)[0]))
    if origin is Literal:
        return ("literal", frozenset(get_args(hint)))
    if typing.is_typeddict(hint):
        return ("record", tuple(sorted((name, described(h)) for name, h in get_type_hints(hint).items())))
    return hint


def test_every_schema_of_the_contract_has_a_typed_record(catalog: SchemaCatalog) -> None:
    assert set(catalog.names) == set(RECORDS)
    assert {t.schema for t in CONTRACT if t.schema} <= set(RECORDS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_the_typed_record_matches_its_schema(name: str, catalog: SchemaCatalog) -> None:
    schema = json.loads(catalog.current(name).text)
    assert described(RECORDS[name]) == python_type(schema)


def test_the_check_sees_a_field_of_the_wrong_type() -> None:
    class Wrong(typing.TypedDict):
        event_id: str
        label_time: float  # the schema says long

    schema = {"type": "record", "name": "Feedback", "fields": [
        {"name": "event_id", "type": "string"}, {"name": "label_time", "type": "long"}]}
    assert described(Wrong) != python_type(schema)


def test_the_check_sees_a_missing_null() -> None:
    class Wrong(typing.TypedDict):
        score: float  # the schema allows null

    schema = {"type": "record", "name": "P", "fields": [{"name": "score", "type": ["null", "double"]}]}
    assert described(Wrong) != python_type(schema)
