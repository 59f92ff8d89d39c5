"""Request bodies to raw events and labels, and answers to response bodies: the simple JSON form and the Open
Inference Protocol's (KServe v2) tensors.

Nothing here judges an event: a body that cannot be read as events is a
``PayloadError`` with the reason; whether an event may be served is the
validation rules' call, the same rules the front applies
(``apps.service.inference``).

In the Open Inference Protocol an event is a row: every input is one column
(``shape`` ``[n]`` or ``[n, 1]``), named after the attribute it holds. The
columns ``entity_id``, ``event_id``, ``event_time`` and ``source`` are the
event's own fields; a request of one row may give them as ``parameters``
instead. Outputs are columns too: the served label and score, the version
that served each row, and each row's event id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weir.contract.records import AttributeValue, Feedback, Label, RawEvent

EVENT_FIELDS = ("entity_id", "event_id", "event_time", "source")


class PayloadError(ValueError):
    """A body that is not a request of its endpoint: malformed JSON, a missing or mistyped field."""


@dataclass(frozen=True)
class Answer:
    """One served event: who it is about, and what was served by which version."""

    event_id: str
    entity_id: str
    model_name: str
    model_version: str
    role: str
    predicted_label: Label | None
    score: float | None

    def as_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "entity_id": self.entity_id, "model_name": self.model_name,
                "model_version": self.model_version, "role": self.role, "predicted_label": self.predicted_label,
                "score": self.score}


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:  # arrays in arrays, thousands deep
        raise PayloadError("the body is nested too deeply to be a request") from exc


def simple_event(body: Any, *, now_ms: int, default_source: str) -> RawEvent:
    """``{"entity_id", "attributes", ["event_id"], ["event_time"], ["source"]}`` as a raw event."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be a JSON object with entity_id and attributes")
    unknown = set(body) - {*EVENT_FIELDS, "attributes"}
    if unknown:
        raise PayloadError(f"unknown fields: {', '.join(sorted(unknown))} (the event's fields go in attributes)")
    attributes = body.get("attributes")
    if not isinstance(attributes, dict):
        raise PayloadError("attributes must be a JSON object of the event's fields")
    return _event(body, {str(k): _scalar(k, v) for k, v in attributes.items()}, now_ms=now_ms,
                  default_source=default_source)


def oip_events(body: Any, *, now_ms: int, default_source: str) -> tuple[str | None, list[RawEvent]]:
    """An inference request's id and its rows as raw events."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise PayloadError("an inference request is a JSON object with a non-empty list of inputs")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise PayloadError("id must be a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise PayloadError("parameters must be a JSON object")
    columns = dict(_column(tensor) for tensor in body["inputs"])
    if len(columns) != len(body["inputs"]):
        raise PayloadError("two inputs have the same name")
    rows = {len(values) for values in columns.values()}
    if len(rows) != 1:
        raise PayloadError(f"inputs of different lengths: {sorted(rows)}; each input holds one value per event")
    n = rows.pop()
    if n == 0:
        raise PayloadError("the inputs hold no events")
    if n > 1 and set(parameters) & set(EVENT_FIELDS):
        raise PayloadError("a request of several events gives entity_id, event_id, event_time and source as "
                           "inputs (one per event), not as parameters")
    events = []
    for i in range(n):
        row = {name: values[i] for name, values in columns.items()}
        fields = {**{k: v for k, v in parameters.items() if k in EVENT_FIELDS},
                  **{k: row.pop(k) for k in EVENT_FIELDS if k in row}}
        fields = {k: v for k, v in fields.items() if v is not None}  # null: not given, so its default
        events.append(_event(fields, row, now_ms=now_ms, default_source=default_source))
    return request_id, events


def oip_response(model_name: str, request_id: str | None, answers: list[Answer]) -> dict[str, Any]:
    """The inference response: one output column per answer field, one row per event."""
    versions = {a.model_version for a in answers}
    labels = [a.predicted_label for a in answers]
    response: dict[str, Any] = {
        "model_name": model_name,
        "outputs": [
            {"name": "predicted_label", "shape": [len(answers)], "datatype": _datatype(labels), "data": labels},
            {"name": "score", "shape": [len(answers)], "datatype": "FP64", "data": [a.score for a in answers]},
            {"name": "model_version", "shape": [len(answers)], "datatype": "BYTES",
             "data": [a.model_version for a in answers]},
            {"name": "event_id", "shape": [len(answers)], "datatype": "BYTES", "data": [a.event_id for a in answers]},
        ],
    }
    if len(versions) == 1:
        response["model_version"] = versions.pop()
    if request_id is not None:
        response["id"] = request_id
    return response


def labels_of(body: Any, *, now_ms: int) -> list[Feedback]:
    """A label or a list of labels: ``{"event_id", "entity_id", "label", ["label_time"]}``."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise PayloadError("no labels in the body")
    out: list[Feedback] = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("a label is a JSON object with event_id, entity_id and label")
        unknown = set(item) - {"event_id", "entity_id", "label", "label_time"}
        if unknown:
            raise PayloadError(f"unknown fields in a label: {', '.join(sorted(unknown))}")
        label = item.get("label")
        if label is None or not isinstance(label, bool | int | float | str):
            raise PayloadError("label must be a boolean, a number or a string")
        out.append({"event_id": _text(item, "event_id"), "entity_id": _text(item, "entity_id"), "label": label,
                    "label_time": _millis(item.get("label_time", now_ms), "label_time")})
    return out


# --- pieces ------------------------------------------------------------------------------------------------------

_INTEGER = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FITS: dict[str, Callable[[Any], bool]] = {
    "BOOL": lambda v: isinstance(v, bool),
    "BYTES": lambda v: isinstance(v, str),
    **{t: (lambda v: isinstance(v, int) and not isinstance(v, bool)) for t in _INTEGER},
    **{t: (lambda v: isinstance(v, int | float) and not isinstance(v, bool)) for t in ("FP16", "FP32", "FP64")},
}


def _column(tensor: Any) -> tuple[str, list[AttributeValue]]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise PayloadError("each input is an object with a name, a shape, a datatype and data")
    name, datatype, shape, data = tensor["name"], tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    fits = _FITS.get(datatype) if isinstance(datatype, str) else None
    if fits is None or not isinstance(datatype, str):
        raise PayloadError(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(_FITS)}")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise PayloadError(f"input {name!r}: shape must be a list of sizes, such as [1]")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise PayloadError(f"input {name!r}: shape {shape} is not [n] or [n, 1] (one value per event)")
    values = _flat(data, name)
    if len(values) != shape[0]:
        raise PayloadError(f"input {name!r}: shape {shape} but {len(values)} values")
    for v in values:
        if v is not None and not fits(v):
            raise PayloadError(f"input {name!r}: {v!r} is not {datatype}")
    if datatype.startswith("FP"):
        values = [None if v is None else float(v) for v in values]
    return name, values


def _flat(data: Any, name: str) -> list[AttributeValue]:
    if not isinstance(data, list):
        raise PayloadError(f"input {name!r}: data must be a list")
    out: list[AttributeValue] = []
    for v in data:
        if isinstance(v, list):
            out += _flat(v, name)
        else:
            out.append(v)
    return out


def _event(fields: dict[str, Any], attributes: dict[str, AttributeValue], *, now_ms: int,
           default_source: str) -> RawEvent:
    source = fields.get("source", default_source)
    if not isinstance(source, str):
        raise PayloadError("source must be a string")
    event_id = fields.get("event_id")
    return {"event_id": uuid.uuid4().hex if event_id is None else _text(fields, "event_id"),
            "entity_id": _text(fields, "entity_id"),
            "event_time": _millis(fields.get("event_time", now_ms), "event_time"),
            "source": source, "attributes": attributes}


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string" if name in fields else f"{name} is missing")
    return value


def _millis(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{name} must be an integer: epoch milliseconds UTC")
    return value


def _scalar(name: Any, value: Any) -> AttributeValue:
    if value is not None and not isinstance(value, bool | int | float | str):
        raise PayloadError(f"attribute {name!r} is a {type(value).__name__}: attributes are numbers, strings, "
                           "booleans or null")
    return value


def _datatype(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"
