"""Features stage: turn a valid event into the numeric feature vector every model scores.

Numbers pass through as floats, booleans become 0/1 and categories are one-hot
encoded as ``name=value``; a missing (null) attribute is simply absent, which
river's linear models read as zero. The version string travels with every
vector so a prediction can always be traced to the code that built its input.
"""

from __future__ import annotations

from streams.stage import InRecord, OutRecord, Route, dispatch
from weir.serde import Record, SchemaCatalog
from weir.settings import Settings
from weir.topics import EVENTS_DLQ, EVENTS_VALID, FEATURES, topic_serde

FEATURE_SET_VERSION = "fs1"


def compute_features(event: Record) -> dict[str, float]:
    features: dict[str, float] = {}
    for name, value in event["attributes"].items():
        if value is None:
            continue
        if isinstance(value, bool):
            features[name] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            features[name] = float(value)
        else:
            features[f"{name}={value}"] = 1.0
    return features


def feature_vector(event: Record) -> Record:
    """The ``features`` topic record for a valid event."""
    return {
        "event_id": event["event_id"],
        "entity_id": event["entity_id"],
        "event_time": event["event_time"],
        "features": compute_features(event),
        "feature_set_version": FEATURE_SET_VERSION,
    }


class FeaturesStage:
    """events.valid -> features."""

    name = "features"

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        valid = topic_serde(catalog, settings, EVENTS_VALID)
        self.vectors = topic_serde(catalog, settings, FEATURES)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (valid.topic,)
        self.outputs = (self.vectors.topic, self.dlq_topic)
        self.routes = {valid.topic: Route(valid, self._vector)}

    def _vector(self, record: InRecord, event: Record) -> list[OutRecord]:
        return [OutRecord(self.vectors.topic, record.key, self.vectors.encode(feature_vector(event)))]

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)

    def tick(self) -> list[OutRecord]:
        return []
