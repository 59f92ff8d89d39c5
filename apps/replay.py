"""`weir replay`: a dataset or a topic range, in event-time order, through the serve and learn code.

No clock: events are taken in event-time order; before each event is scored,
every label due by then (label time <= event time) is learned, in (label
time, event id) order; at the end the rest are learned. That is exactly the
question/answer order of river's ``evaluate.progressive_val_score`` with the
same label delay, so the two give the same metric, and the same replay gives
the same result every time.

A dataset's labels come a fixed delay after their events. A topic range
(``weir.kafka.ranges.read_topic_range``) replays what really happened: the feature vectors the
models saw on ``features`` and the labels of ``feedback`` at their real label
times, in an order that does not depend on partitions or arrival.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from producers.event import LabelledEvent
from streams.features import feature_vector
from streams.learn.learner import Learner
from streams.learn.sequencer import Sequencer
from streams.serve.metrics import ServeMetrics
from streams.serve.scorer import Scorer
from weir.contract.features import compute_features
from weir.contract.feedback import fits
from weir.contract.records import FeatureVector, Feedback, Label
from weir.kafka.ranges import Labels
from weir.registry.factories import refuse_unlearnable
from weir.registry.records import routing_record, version_record
from weir.registry.view import ModelRegistry
from weir.state.join import PendingJoin

MODEL = "replay"
END_OF_TIME = 2**63 - 1  # the largest event time a topic range can end at

log = logging.getLogger("weir.replay")



def index_time(index: int) -> int:
    """Event times 0, 1, 2...: a dataset replayed in its own order, label delays counted in events."""
    return index


@dataclass
class ReplayResult:
    events: int
    labels: int
    metrics: dict[str, float]  # the champion's cumulative and rolling metrics
    registry: ModelRegistry
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (labels learned, metrics then)


def replay(events: Iterable[LabelledEvent], *, factory: str, params: dict[str, Any], delay: int = 0,
           positive: Label | None = None) -> ReplayResult:
    """Score and learn ``events``; each label becomes known ``delay`` time units after its event. ``positive``:
    the class scores, log loss and ROC AUC are about (WEIR_POSITIVE_LABEL)."""
    ordered = [e for _, e in sorted(enumerate(events), key=lambda pair: (pair[1].event_time_ms, pair[0]))]
    vectors = [feature_vector(e.raw("replay")) for e in ordered]
    labels = {e.event_id: (e.event_time_ms + delay, e.label) for e in ordered if e.label is not None}
    return replay_vectors(vectors, labels, factory=factory, params=params, positive=positive)


def replay_vectors(vectors: Iterable[FeatureVector], labels: Labels, *, factory: str,
                   params: dict[str, Any], positive: Label | None = None, every: int = 0) -> ReplayResult:
    """Score ``vectors`` in the order given (event-time order) and learn ``labels`` (event id -> (label time,
    label)) as they fall due; ``every``: also keep the metrics after each that many labels (``history``)."""
    refuse_unlearnable(factory, labels=(label for _, label in labels.values()), where="the data")
    registry = ModelRegistry(MODEL)
    registry.apply(version_record(MODEL, "v1", factory, params))
    registry.apply(routing_record(MODEL, "basic", "v1"))
    scorer = Scorer(registry, timeout_ms=float("inf"), metrics=ServeMetrics(CollectorRegistry()), positive=positive)
    learner = Learner(registry, PendingJoin(window_ms=2**62, needs_features=True), Sequencer(), positive=positive)
    due: list[tuple[int, str, Feedback]] = []
    history: list[tuple[int, dict[str, float]]] = []

    def learn(feedback: Feedback) -> None:
        learner.on_feedback(feedback)
        learner.advance(0)
        if every and learner.labels_learned // every > len(history) and "v1" in learner.metrics:  # a mark passed
            history.append((learner.labels_learned, learner.metrics["v1"].values()))

    scored = 0
    for vector in vectors:
        while due and due[0][0] <= vector["event_time"]:
            learn(heapq.heappop(due)[2])
        learner.on_features(vector)
        result = scorer.score(vector)
        if isinstance(result, list):
            for prediction in result:
                learner.on_prediction(prediction)
        scored += 1
        if vector["event_id"] in labels:
            label_time, label = labels[vector["event_id"]]
            feedback: Feedback = {"event_id": vector["event_id"], "entity_id": vector["entity_id"], "label": label,
                                  "label_time": label_time}
            heapq.heappush(due, (label_time, vector["event_id"], feedback))
    while due:
        learn(heapq.heappop(due)[2])
    learner.finish()
    metrics = learner.metrics["v1"].values() if "v1" in learner.metrics else {}
    return ReplayResult(scored, learner.labels_learned, metrics, registry, history)


def river_progressive_scores(events: list[LabelledEvent], factory: str, params: dict[str, Any], delay: int,
                             *, timed: bool) -> dict[str, float]:
    """river's own ``progressive_val_score`` on the same events and delay: what ``replay`` must reproduce.

    ``timed``: the delay is in the events' time (ms), which river measures with ``moment``; the time rides in
    each ``x`` for that and is discarded before the model sees it. Otherwise the delay counts events.
    """
    from river import compose, evaluate, metrics

    from weir.registry.factories import REGRESSORS, build_model, encode_params

    dataset: list[tuple[dict[Hashable, Any], Any]] = []
    for e in events:
        if e.label is not None:
            x: dict[Hashable, Any] = {k: v for k, v in compute_features(e.attributes).items()}
            if timed:
                x[RIVER_MOMENT] = e.event_time_ms
            dataset.append((x, e.label))
    measures: tuple[tuple[str, Any], ...]
    if factory in REGRESSORS:
        measures = (("mae", metrics.MAE), ("rmse", metrics.RMSE))
    elif all(fits(y, "binary") for _, y in dataset):
        measures = (("accuracy", metrics.Accuracy), ("log_loss", metrics.LogLoss))
    else:  # classes without a positive one: log loss is about one class
        measures = (("accuracy", metrics.Accuracy),)
    scores = {}
    for name, make_metric in measures:
        metric = make_metric()
        model = build_model(factory, encode_params(params))
        if timed:
            timeless = compose.Pipeline(compose.Discard(RIVER_MOMENT), model)
            score = evaluate.progressive_val_score(dataset, timeless, metric, moment=RIVER_MOMENT, delay=delay)
        else:
            score = evaluate.progressive_val_score(dataset, model, metric, delay=delay or None)
        scores[name] = float(score.get())
    return scores


RIVER_MOMENT = "__weir_event_time"
