"""Serve stage: every active version scores the event; exactly one prediction is served.

In the walking skeleton the routing is "basic": the champion serves and every
challenger scores in its shadow. A challenger that raises is skipped for that
event and never affects the champion; if the champion cannot score, the event
is rejected (dead-lettered with the reason), never dropped.
"""

from __future__ import annotations

import time
from typing import Any

from streams.stage import InRecord, OutRecord, Route, dispatch
from weir.clock import now_ms
from weir.dlq import Rejection
from weir.registry import ModelRegistry, ModelVersion
from weir.serde import Record, SchemaCatalog
from weir.settings import Settings
from weir.topics import EVENTS_DLQ, FEATURES, PREDICTIONS, topic_serde

STAGE = "serve"


class Scorer:
    """Scores feature vectors with the registry's active versions."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.errors: dict[str, int] = {}

    def score(self, vector: Record) -> list[Record] | Rejection:
        """All predictions for one event, the served one last; or why the event cannot be served."""
        active = self.registry.active()
        if not active:
            return Rejection("no-champion", STAGE, f"model {self.registry.model_name!r} has no champion routed")
        champion, challengers = active[0], active[1:]
        out = []
        for version in challengers:
            try:
                out.append(self._predict(version, vector, role="shadow", served=False))
            except Exception:  # a challenger's failure must never touch the served answer
                self.errors[version.version] = self.errors.get(version.version, 0) + 1
        try:
            out.append(self._predict(champion, vector, role="champion", served=True))
        except Exception as exc:
            self.errors[champion.version] = self.errors.get(champion.version, 0) + 1
            return Rejection("champion-failed", STAGE, f"champion {champion.version} raised", exception=exc)
        return out

    @staticmethod
    def _predict(version: ModelVersion, vector: Record, *, role: str, served: bool) -> Record:
        started = time.perf_counter()
        proba: dict[Any, float] = version.model.predict_proba_one(vector["features"])
        latency_ms = (time.perf_counter() - started) * 1000.0
        label = max(proba, key=proba.__getitem__) if proba else None
        return {
            "event_id": vector["event_id"],
            "entity_id": vector["entity_id"],
            "event_time": vector["event_time"],
            "model_name": version.name,
            "model_version": version.version,
            "role": role,
            "served": served,
            "score": float(proba.get(True, 0.0)) if proba else None,
            "predicted_label": label,
            "latency_ms": latency_ms,
            "predicted_at": now_ms(),
        }


class ServeStage:
    """features -> predictions (one per active version, one served), or events.dlq."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry) -> None:
        vectors = topic_serde(catalog, settings, FEATURES)
        self.predictions = topic_serde(catalog, settings, PREDICTIONS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (vectors.topic,)
        self.outputs = (self.predictions.topic, self.dlq_topic)
        self.scorer = Scorer(registry)
        self.routes = {vectors.topic: Route(vectors, self._score)}

    def _score(self, record: InRecord, vector: Record) -> list[OutRecord] | Rejection:
        result = self.scorer.score(vector)
        if isinstance(result, Rejection):
            return result
        return [OutRecord(self.predictions.topic, record.key, self.predictions.encode(p)) for p in result]

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)

    def tick(self) -> list[OutRecord]:
        return []
