"""Detection quality of the monitor, measured over seeds (no broker: the same monitor code, fed in-process).

    python -m bench.drift [--seeds 10]

For each seed:

* false alarms: data-drift, prediction-drift and concept-drift alerts on
  100,000 stationary churn events, served by a logistic regression that learns
  every label from scratch (its scores move while it converges);
* data drift: an abrupt shift at event 20,000 (prices rise, payments move to
  paypal); delay to the first alert, and whether the moved features were named;
* concept drift, every label fed back at once: the churn label function
  changes at event 20,000, and river's SEA and Agrawal switch concept there
  (ConceptDriftStream); delay in labels to the first concept-drift alert of a
  logistic regression learning online.

Goals (from the monitoring issue): at most 1 false alert per 100,000 stationary
events; median delay at most 1,000 events after an abrupt data drift and at
most 2,000 labels after a concept drift.
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from producers.event import LabelledEvent
from producers.schedule import DriftSchedule
from producers.sources import open_source
from streams.features import feature_vector
from streams.monitor.detectors import DriftMonitor
from streams.serve.scorer import positive_score
from weir.contract.records import Alert, FeatureVector
from weir.registry.factories import Model, as_classifier, build_model
from weir.settings import Settings
from weir.state.join import PendingJoin

DRIFT_AT = 20_000
STATIONARY = 100_000
AFTER = 15_000  # events after the drift point in the drift runs
MOVED = {"monthly_charges", "payment_method", "total_charges"}  # what the abrupt churn drift moves


def _monitor() -> DriftMonitor:
    return DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))


def _vector(e: LabelledEvent) -> FeatureVector:
    return feature_vector(e.raw("churn"))


def false_alarms(seed: int) -> tuple[int, int, int]:
    """Data-, prediction- and concept-drift alerts on a stationary stream (a model learning every label, from
    scratch)."""
    monitor, model = _monitor(), build_model("logistic_regression", {})
    data = prediction = concept = 0
    for i, e in enumerate(open_source("churn", STATIONARY, seed=seed, event_time=lambda i: i).events):
        vector = _vector(e)
        data += sum(a["status"] == "FIRING" for a in monitor.on_features(vector))
        for a in _learn(monitor, model, e, i, vector["features"]):
            prediction += a["status"] == "FIRING" and a["kind"] == "prediction_drift"
            concept += a["status"] == "FIRING" and a["kind"] == "concept_drift"
    return data, prediction, concept


def _learn(monitor: DriftMonitor, model: Model, e: LabelledEvent, i: int, x: dict[str, float]) -> list[Alert]:
    """Predict, show the monitor the served prediction (with its score) and the label at once, then learn."""
    assert e.label is not None
    classifier = as_classifier(model)
    assert classifier is not None, "the drift benchmark's model is a classifier"
    proba = classifier.predict_proba_one(x)
    alerts = monitor.on_prediction({
        "event_id": e.event_id, "entity_id": e.entity_id, "event_time": i, "model_name": "m",
        "model_version": "v1", "role": "champion", "served": True, "score": positive_score(proba) if proba else None,
        "predicted_label": max(proba, key=proba.__getitem__) if proba else None, "latency_ms": 0.0,
        "predicted_at": i, "error": None})
    alerts += monitor.on_feedback(e.feedback(i))
    model.learn_one(x, e.label)
    return alerts


def data_drift(seed: int) -> tuple[int | None, bool]:
    """Events from the drift point to the first alert, and whether the alert named a feature that moved."""
    monitor = _monitor()
    n = DRIFT_AT + AFTER
    events = open_source("churn", n, seed=seed, schedule=DriftSchedule.parse(f"abrupt@{DRIFT_AT}", n),
                         event_time=lambda i: i).events
    for i, e in enumerate(events):
        for a in monitor.on_features(_vector(e)):
            if a["status"] == "FIRING":
                return (i - DRIFT_AT if i >= DRIFT_AT else -1), a["subject"] in MOVED
    return None, False


def concept_drift(source: str, seed: int) -> int | None:
    """Labels from the drift point to the first concept-drift alert (None: missed; negative: before it)."""
    monitor, model = _monitor(), build_model("logistic_regression", {})
    n = DRIFT_AT + AFTER
    events = open_source(source, n, seed=seed, schedule=DriftSchedule.parse(f"concept@{DRIFT_AT}", n),
                         event_time=lambda i: i).events
    for i, e in enumerate(events):
        alerts = _learn(monitor, model, e, i, _vector(e)["features"])
        if any(a["kind"] == "concept_drift" and a["status"] == "FIRING" and i >= DRIFT_AT - 1_000 for a in alerts):
            return i - DRIFT_AT
    return None


def _run(seed: int) -> dict[str, Any]:
    return {"false": false_alarms(seed), "data": data_drift(seed),
            "concept": {s: concept_drift(s, seed) for s in ("churn", "sea", "agrawal")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(_run, range(args.seeds)))
    false_data = sum(r["false"][0] for r in runs)
    false_prediction = sum(r["false"][1] for r in runs)
    false_concept = sum(r["false"][2] for r in runs)
    data_delays = [r["data"][0] for r in runs if r["data"][0] is not None and r["data"][0] >= 0]
    named = sum(r["data"][1] for r in runs)
    print(f"seeds: {args.seeds}")
    print(f"{'measure':52} {'value':>14} {'goal':>12}")
    print(f"{'false data-drift alerts per 100,000 stationary events':52} "
          f"{false_data / args.seeds:14.2f} {'<= 1':>12}")
    print(f"{'false concept-drift alerts per 100,000 stationary labels':52} "
          f"{false_concept / args.seeds:14.2f} {'<= 1':>12}")
    print(f"{'false prediction-drift alerts per 100,000 stationary events':52} "
          f"{false_prediction / args.seeds:14.2f} {'<= 1':>12}")
    print(f"{'abrupt data drift: median delay (events)':52} {_median(data_delays):>14} {'<= 1000':>12}")
    print(f"{'abrupt data drift: detected / named a moved feature':52} "
          f"{f'{len(data_delays)}/{args.seeds} / {named}/{args.seeds}':>14}")
    for source in ("churn", "sea", "agrawal"):
        delays = [r["concept"][source] for r in runs if r["concept"][source] is not None]
        label = f"concept drift ({source}): median delay (labels), detected"
        print(f"{label:52} {f'{_median(delays)}, {len(delays)}/{args.seeds}':>14} {'<= 2000':>12}")


def _median(values: list[int]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


if __name__ == "__main__":
    main()
