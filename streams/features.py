"""Features stage: a valid event becomes the feature vector every model scores (``weir.contract.features``)."""

from __future__ import annotations

from streams.runtime.stage import Route, dispatch
from weir.contract.features import FEATURE_SET_VERSION, compute_features
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import FeatureVector, RawEvent, ValidEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, EVENTS_VALID, FEATURES
from weir.settings import Settings


def feature_vector(event: ValidEvent | RawEvent) -> FeatureVector:
    """The ``features`` topic record for a valid event."""
    return {
        "event_id": event["event_id"],
        "entity_id": event["entity_id"],
        "event_time": event["event_time"],
        "features": compute_features(event["attributes"]),
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

    def _vector(self, record: InRecord, event: ValidEvent) -> list[OutRecord]:
        return [self.record(feature_vector(event))]

    def record(self, vector: FeatureVector) -> OutRecord:
        """The ``features`` record of a vector, keyed by its entity."""
        return OutRecord(self.vectors.topic, vector["entity_id"].encode(), self.vectors.encode(vector))

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)

    def tick(self) -> list[OutRecord]:
        return []
