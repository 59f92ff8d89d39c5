"""`weir replay`: a dataset, in event-time order, through the serve and learn code, deterministically.

No broker and no clock: events are taken in event-time order; before each
event is scored, every label due by then (label time <= event time) is
learned, in (label time, event id) order; at the end the rest are learned.
That is exactly the question/answer order of river's
``evaluate.progressive_val_score`` with the same label delay, so the two give
the same metric, and the same replay gives the same result every time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from producers.sources import LabelledEvent
from streams.features import feature_vector
from streams.learn import Learner
from streams.serve import Scorer
from weir.join import PendingJoin
from weir.metrics import ServeMetrics
from weir.registry import ModelRegistry, routing_record, version_record
from weir.sequencer import Sequencer

MODEL = "replay"


@dataclass
class ReplayResult:
    events: int
    labels: int
    metrics: dict[str, float]  # the champion's cumulative and rolling metrics
    registry: ModelRegistry


def replay(events: Iterable[LabelledEvent], *, factory: str, params: dict[str, Any], delay: int = 0) -> ReplayResult:
    """Score and learn ``events``; each label becomes known ``delay`` time units after its event."""
    registry = ModelRegistry(MODEL)
    registry.apply(version_record(MODEL, "v1", factory, params))
    registry.apply(routing_record(MODEL, "basic", "v1"))
    scorer = Scorer(registry, timeout_ms=float("inf"), metrics=ServeMetrics(CollectorRegistry()))
    learner = Learner(registry, PendingJoin(window_ms=2**62, needs_features=True), Sequencer())
    due: list[tuple[int, str, dict[str, Any]]] = []
    ordered = sorted(enumerate(events), key=lambda pair: (pair[1].event_time_ms, pair[0]))
    for _, event in ordered:
        while due and due[0][0] <= event.event_time_ms:
            _learn(learner, heapq.heappop(due)[2])
        vector = feature_vector({"event_id": event.event_id, "entity_id": event.entity_id,
                                 "event_time": event.event_time_ms, "attributes": event.attributes})
        learner.on_features(vector)
        result = scorer.score(vector)
        if isinstance(result, list):
            for prediction in result:
                learner.on_prediction(prediction)
        if event.label is not None:
            label_time = event.event_time_ms + delay
            heapq.heappush(due, (label_time, event.event_id, {"event_id": event.event_id, "label": event.label,
                                                               "label_time": label_time}))
    while due:
        _learn(learner, heapq.heappop(due)[2])
    learner.finish()
    metrics = learner.metrics["v1"].values() if "v1" in learner.metrics else {}
    return ReplayResult(len(ordered), learner.labels_learned, metrics, registry)


def _learn(learner: Learner, feedback: dict[str, Any]) -> None:
    learner.on_feedback(feedback)
    learner.advance(0)
