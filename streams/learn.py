"""Learn stage: a label that completes its event teaches every active version, once.

Metrics are scored against the prediction each version actually made at
serving time (not a fresh prediction from today's model), which is what
river's delayed progressive validation measures too.
"""

from __future__ import annotations

from river import metrics

from streams.stage import InRecord, OutRecord, Route, dispatch
from weir.join import PendingEvent, PendingJoin
from weir.registry import ModelRegistry, metrics_record, record_key
from weir.serde import Record, SchemaCatalog
from weir.settings import Settings
from weir.topics import EVENTS_DLQ, FEATURES, FEEDBACK, MODELS, PREDICTIONS, topic_serde


class Learner:
    """Feeds joined labels to the registry's live models and keeps per-version metrics."""

    def __init__(self, registry: ModelRegistry, join: PendingJoin) -> None:
        self.registry = registry
        self.join = join
        self.accuracy: dict[str, metrics.Accuracy] = {}
        self.served_accuracy = metrics.Accuracy()  # of what was served, whichever version served it
        self.served_scored = 0
        self.learned: dict[str, int] = {}

    def on_features(self, vector: Record) -> None:
        self._learn(self.join.add_features(vector))

    def on_prediction(self, prediction: Record) -> None:
        self._learn(self.join.add_prediction(prediction))

    def on_feedback(self, feedback: Record) -> None:
        self._learn(self.join.add_feedback(feedback))
        self.join.expire()

    def _learn(self, event: PendingEvent | None) -> None:
        if event is None:
            return
        assert event.features is not None
        x, y = event.features["features"], event.label
        served = event.predictions[event.served_version] if event.served_version else None
        if served is not None:
            self.served_accuracy.update(y, served["predicted_label"])
            self.served_scored += 1
        for version in self.registry.active():
            prediction = event.predictions.get(version.version)
            if prediction is not None and prediction["error"] is None:
                self.accuracy.setdefault(version.version, metrics.Accuracy()).update(y, prediction["predicted_label"])
            version.model.learn_one(x, y)
            self.learned[version.version] = self.learned.get(version.version, 0) + 1

    def metrics_records(self) -> list[Record]:
        """One METRICS record per version that learned, with the stage's join counters."""
        c = self.join.counters
        stage = {
            "feedback_received": c.received, "feedback_joined": c.joined, "feedback_duplicate": c.duplicate,
            "feedback_unmatched": c.unmatched, "feedback_pending": self.join.labels_pending,
        }
        served = {"served_accuracy": self.served_accuracy.get()} if self.served_scored else {}
        return [
            metrics_record(
                self.registry.model_name, version,
                {**({"accuracy": self.accuracy[version].get()} if version in self.accuracy else {}), **served},
                {"learned": learned, **stage},
            )
            for version, learned in sorted(self.learned.items())
        ]


class LearnStage:
    """features + predictions + feedback -> learned models; METRICS records to models on a timer."""

    name = "learn"

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry) -> None:
        self.learner = Learner(registry, PendingJoin(window_ms=settings.join_window_ms, needs_features=True))
        vectors = topic_serde(catalog, settings, FEATURES)
        predictions = topic_serde(catalog, settings, PREDICTIONS)
        feedback = topic_serde(catalog, settings, FEEDBACK)
        self.models = topic_serde(catalog, settings, MODELS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (vectors.topic, predictions.topic, feedback.topic)
        self.outputs = (self.models.topic, self.dlq_topic)
        self.routes = {
            vectors.topic: Route(vectors, lambda _r, v: self.learner.on_features(v) or []),
            predictions.topic: Route(predictions, lambda _r, v: self.learner.on_prediction(v) or []),
            feedback.topic: Route(feedback, lambda _r, v: self.learner.on_feedback(v) or []),
        }

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)

    def tick(self) -> list[OutRecord]:
        return [
            OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(r))
            for r in self.learner.metrics_records()
        ]
