"""One typed record per topic value, as the Avro schemas in ``schemas/`` declare them.

They are ``TypedDict``s, not classes with behaviour: fastavro decodes a value
into a plain dict, so a typed dict costs nothing per record while mypy checks
every key a stage reads or writes. ``tests/contract/test_records.py`` checks
each one against its ``.avsc``: the same fields, the same types, the same
nullability.
"""

from __future__ import annotations

from typing import Literal, TypedDict

AttributeValue = bool | int | float | str | None
Label = bool | int | float | str


class RawEvent(TypedDict):
    """``events.raw``: an event as a producer published it, nothing validated."""

    event_id: str
    entity_id: str
    event_time: int  # epoch ms
    source: str
    attributes: dict[str, AttributeValue]


class ValidEvent(TypedDict):
    """``events.valid``: an event that passed every rule."""

    event_id: str
    entity_id: str
    event_time: int
    source: str
    attributes: dict[str, AttributeValue]
    validated_at: int


class FeatureVector(TypedDict):
    """``features``: the point-in-time features the models scored."""

    event_id: str
    entity_id: str
    event_time: int
    features: dict[str, float]
    feature_set_version: str


class Prediction(TypedDict):
    """``predictions``: one version's answer for one event; exactly one per event has ``served``."""

    event_id: str
    entity_id: str
    event_time: int
    model_name: str
    model_version: str
    role: str
    served: bool
    score: float | None
    predicted_label: Label | None
    latency_ms: float
    predicted_at: int
    error: str | None
    confidence: float | None  # classifiers: P(predicted class); None for regressors and older records


class ServedEvent(TypedDict):
    """``events.served``: an event id the front served (the key), for its memory of served ids."""

    event_time: int


class Feedback(TypedDict):
    """``feedback``: the true label of an event, known later."""

    event_id: str
    entity_id: str
    label: Label
    label_time: int


class ModelSpec(TypedDict):
    factory: str
    params: dict[str, str]  # JSON values
    pickle: bytes | None


class TrainingWindow(TypedDict):
    start_ms: int
    end_ms: int


class RoutingSpec(TypedDict):
    mode: str
    champion: str
    challengers: list[str]
    canary_percent: float


RecordKind = Literal["VERSION", "ROUTING", "METRICS", "SNAPSHOT"]


class ModelRecord(TypedDict):
    """``models``: a version, a routing decision, a version's metrics or a copy of its model."""

    model_name: str
    kind: RecordKind
    version: str | None
    status: str | None
    spec: ModelSpec | None
    parent_version: str | None
    training_window: TrainingWindow | None
    routing: RoutingSpec | None
    metrics: dict[str, float]
    counters: dict[str, int]
    snapshot: bytes | None
    created_at: int
    note: str | None
    signature: bytes | None
    actor: str | None  # person, controller, approved or resume (v5)
    evidence: dict[str, str]  # a controller's decision: what it rests on (v5)


class Alert(TypedDict):
    """``alerts``: a detector's finding, when it opens (FIRING) and when it ends (RESOLVED)."""

    alert_id: str
    kind: str
    severity: str
    subject: str
    status: Literal["FIRING", "RESOLVED"]
    statistic: float | None
    threshold: float | None
    evidence: dict[str, str]
    runbook: str | None
    detected_at: int
