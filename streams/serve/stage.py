"""Serve stage: features -> predictions (one per active version, one served), or events.dlq."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.runtime.stage import Route, dead_letter, dispatch
from streams.serve.metrics import ServeMetrics
from streams.serve.scorer import STAGE, Scorer
from weir.contract.deadletter import Rejection
from weir.contract.feedback import parse_positive
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import FeatureVector
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, FEATURES, PREDICTIONS
from weir.registry.view import ModelRegistry
from weir.settings import Settings


class ServeStage:
    """features -> predictions (one per active version, one served), or events.dlq."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry | None = None) -> None:
        vectors = topic_serde(catalog, settings, FEATURES)
        self.predictions = topic_serde(catalog, settings, PREDICTIONS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (vectors.topic,)
        self.outputs = (self.predictions.topic, self.dlq_topic)
        self.scorer = Scorer(registry, timeout_ms=settings.predict_timeout_ms,
                             metrics=ServeMetrics(metrics or CollectorRegistry()),
                             positive=parse_positive(settings.positive_label))
        self.routes = {vectors.topic: Route(vectors, self._score)}

    def _score(self, record: InRecord, vector: FeatureVector) -> list[OutRecord] | Rejection:
        result = self.scorer.score(vector)
        if isinstance(result, Rejection):
            return result
        key = vector["entity_id"].encode()
        return [OutRecord(self.predictions.topic, key, self.predictions.encode(p)) for p in result]

    def score(self, record: InRecord, vector: FeatureVector) -> list[OutRecord]:
        """The predictions of one vector, or the dead letter of ``record`` (the input it came from) saying why."""
        result = self._score(record, vector)
        return [dead_letter(self.dlq_topic, record, result)] if isinstance(result, Rejection) else result

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        out = dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)
        self.scorer.metrics.flush()
        return out

    def tick(self) -> list[OutRecord]:
        """Publish how stale each served model copy is (0 when the learner's live model serves)."""
        registry = self.scorer.registry
        for v in registry.active():
            stale = max(0, v.learned - v.snapshot_learned) if registry.follows_snapshots else 0
            self.scorer.metrics.staleness.labels(v.name, v.version).set(stale)
        return []
