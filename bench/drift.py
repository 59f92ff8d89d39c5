"""Detection quality of the monitor against river's own detectors, over generators and seeds, every alert kind.

    python -m bench.drift [--seeds 10] [--events 100000] [--generators churn,sea,...] [--drift-at 20000]
                          [--after 15000] [--smoke]

The same monitor code as the worker's back, fed in-process (no broker), with a
model that learns every label as it comes: a logistic regression for the
classification streams, a linear regression for the regression one. Each
generator behaves differently: churn (noisy, one-hot features), simple (a
logistic skeleton), sea (separable classes with label noise), agrawal
(mixed features, rule-based classes), hyperplane (ten continuous features,
nearly separable, so the model keeps sharpening) and friedman (regression).

For each generator and seed:

* **false alarms**: FIRING alerts of each kind on a stationary stream, per
  100,000 events, beside river's ADWIN (default delta) over the same values:
  one per numeric feature for data drift, on the served score for prediction
  drift, on the error stream (0/1, or the absolute error) for concept drift
  and performance drops;
* **data drift**: half of the numeric features scaled by 1.5 from event
  20,000 plus 0-63 (drawn per seed) on (churn: its own abrupt drift, prices
  up and payments moving); events to the first data-drift alert, whether it
  named only moved features, against the first detection of the per-feature
  ADWINs;
* **concept drift**: the labelling concept switches at that same point (river's
  ConceptDriftStream; churn and simple: their own; friedman: the target moves
  by +10); labels to the first concept-drift alert, against river's ADWIN
  on the error stream.

Goals (issue 14): every kind at most 1 false alert per 100,000 stationary
events; data-drift delay at most the per-feature ADWIN's; concept-drift delay
at most 1.2x ADWIN's on the error stream, with no more false alarms.

A generator's figures are printed as soon as its seeds are done; ``--smoke``
runs every generator once on a few thousand events.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from river import drift

from bench.harness import arguments, figure
from producers.event import LabelledEvent
from producers.schedule import DriftSchedule
from producers.sources import open_source
from streams.features import feature_vector
from streams.monitor.detectors import DriftMonitor
from streams.serve.scorer import positive_score
from weir.contract.feedback import prediction_error
from weir.contract.records import Alert, Label, Prediction
from weir.registry.factories import Model, as_classifier, build_model
from weir.settings import Settings
from weir.state.join import PendingJoin

DRIFT_AT = 20_000  # events before the drift point in the drift runs (plus 0-63)
AFTER = 15_000  # events after it


@dataclass(frozen=True)
class Job:
    """One generator and seed: a stationary run of ``events``, then drift runs drifting at ``drift_base`` + 0-63
    and going on ``after`` events past it."""

    generator: str
    seed: int
    events: int
    drift_base: int = DRIFT_AT
    after: int = AFTER

    @property
    def drift_at(self) -> int:
        """Where this seed's drift starts: the base plus 0-63 events, so no detector's checking rhythm (ADWIN
        checks every 32 values from the stream's start) lines up with every drift point."""
        return self.drift_base + random.Random(self.seed).randrange(64)

KINDS = ("data_drift", "prediction_drift", "concept_drift", "performance_drop")
GENERATORS = ("churn", "simple", "sea", "agrawal", "hyperplane", "friedman")
CHURN_MOVED = {"monthly_charges", "payment_method", "total_charges"}  # what churn's abrupt drift moves


# --- the streams --------------------------------------------------------------------------------------------------


def _friedman(n: int, seed: int, jump_at: int | None) -> Iterator[LabelledEvent]:
    """river's Friedman regression stream; the target moves by +10 from ``jump_at`` on."""
    from river.datasets import synth

    for i, (x, y) in enumerate(synth.Friedman(seed=seed).take(n)):
        target = float(y) + (10.0 if jump_at is not None and i >= jump_at else 0.0)
        yield LabelledEvent(f"friedman-{seed}-{i}", f"e{i % 1_000}", i, {f"x{k}": float(v) for k, v in x.items()},
                            target)


def stream(generator: str, n: int, seed: int, *, concept_at: int | None = None) -> Iterator[LabelledEvent]:
    """``n`` events of ``generator``, stamped 0, 1, 2...; the concept switches at ``concept_at`` if given."""
    if generator == "friedman":
        return _friedman(n, seed, concept_at)
    schedule = DriftSchedule.parse(f"concept@{concept_at}" if concept_at is not None else "none", n)
    return open_source(generator, n, seed=seed, schedule=schedule, event_time=lambda i: i).events


def shifted(generator: str, n: int, seed: int, at: int) -> tuple[Iterator[LabelledEvent], set[str]]:
    """A data drift at ``at``, and the features it moves."""
    if generator == "churn":
        events = open_source("churn", n, seed=seed, schedule=DriftSchedule.parse(f"abrupt@{at}", n),
                             event_time=lambda i: i).events
        return events, CHURN_MOVED
    first = next(stream(generator, 1, seed))
    numeric = sorted(k for k, v in first.attributes.items() if isinstance(v, float) and not isinstance(v, bool))
    moved = set(numeric[::2])

    def scaled() -> Iterator[LabelledEvent]:
        for i, e in enumerate(stream(generator, n, seed)):
            if i >= at:
                e = LabelledEvent(e.event_id, e.entity_id, e.event_time_ms,
                                  {k: (v * 1.5 if k in moved and isinstance(v, float) else v)
                                   for k, v in e.attributes.items()}, e.label)
            yield e

    return scaled(), moved


def _model(generator: str) -> Model:
    return build_model("linear_regression" if generator == "friedman" else "logistic_regression", {})


# --- one pass: the monitor and river's detectors over the same values -------------------------------------------


@dataclass
class Pass:
    """What the monitor and the river baselines saw on one stream."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)  # (event index, FIRING alert)
    river: dict[str, list[int]] = field(default_factory=dict)  # baseline -> event indices of its detections


def run(generator: str, events: Iterator[LabelledEvent]) -> Pass:
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))
    model = _model(generator)
    classifier = as_classifier(model)
    features: dict[str, drift.ADWIN] = {}
    score, error = drift.ADWIN(), drift.ADWIN()
    seen = Pass(river={"data": [], "score": [], "error": []})
    for i, e in enumerate(events):
        vector = feature_vector(e.raw(generator))
        x = vector["features"]
        raised = monitor.on_features(vector)
        for name, value in x.items():
            if "=" not in name:  # numeric features; one-hot columns are categories
                detector = features.setdefault(name, drift.ADWIN())
                detector.update(value)
                if detector.drift_detected:
                    seen.river["data"].append(i)
        prediction = _predict(model, classifier, x, e, i)
        raised += monitor.on_prediction(prediction)
        if prediction["score"] is not None:
            score.update(prediction["score"])
            if score.drift_detected:
                seen.river["score"].append(i)
        assert e.label is not None
        raised += monitor.on_feedback(e.feedback(i))
        if prediction["predicted_label"] is not None:
            before = error.estimation
            error.update(prediction_error(prediction["predicted_label"], e.label))
            if error.drift_detected and error.estimation > before:  # as the monitor: only a worse error counts
                seen.river["error"].append(i)
        model.learn_one(x, e.label)
        seen.alerts += [(i, a) for a in raised if a["status"] == "FIRING"]
    return seen


def _predict(model: Model, classifier: Any, x: dict[str, float], e: LabelledEvent, i: int) -> Prediction:
    predicted: Label | None
    value: float | None
    sure: float | None = None
    if classifier is None:
        predicted = value = float(model.predict_one(x))
    else:
        proba = classifier.predict_proba_one(x)
        predicted = max(proba, key=proba.__getitem__) if proba else None
        value = positive_score(proba) if proba else None
        sure = float(proba[predicted]) if proba else None
    return {"event_id": e.event_id, "entity_id": e.entity_id, "event_time": i, "model_name": "m",
            "model_version": "v1", "role": "champion", "served": True, "score": value, "predicted_label": predicted,
            "latency_ms": 0.0, "predicted_at": i, "error": None, "confidence": sure}


# --- the measures -------------------------------------------------------------------------------------------------


def false_alarms(generator: str, seed: int, events: int) -> dict[str, float]:
    """FIRING alerts per 100,000 events of each kind, and of each river baseline, on a stationary stream."""
    seen = run(generator, stream(generator, events, seed))
    per = 100_000 / events
    counts = Counter(a["kind"] for _, a in seen.alerts)
    out = {kind: counts[kind] * per for kind in KINDS}
    out.update({f"river_{name}": len(hits) * per for name, hits in seen.river.items()})
    return out


def _first(indices: list[int], at: int) -> int | None:
    after = [i for i in indices if i >= at]
    return after[0] - at if after else None


def data_drift(job: Job) -> dict[str, Any]:
    at = job.drift_at
    events, moved = shifted(job.generator, at + job.after, job.seed, at)
    seen = run(job.generator, events)
    alerts = [(i, a) for i, a in seen.alerts if a["kind"] == "data_drift" and i >= at]
    named = alerts[0][1]["evidence"].get("moved_most", "") if alerts else ""
    named_features = {part.split(" (")[0] for part in named.split(", ") if part and part != "-"}
    return {"weir": alerts[0][0] - at if alerts else None, "river": _first(seen.river["data"], at),
            "named_right": bool(named_features) and named_features <= moved}


def concept_drift(job: Job) -> dict[str, int | None]:
    at = job.drift_at
    seen = run(job.generator, stream(job.generator, at + job.after, job.seed, concept_at=at))
    weir = [i for i, a in seen.alerts if a["kind"] == "concept_drift"]
    return {"weir": _first(weir, at), "river": _first(seen.river["error"], at)}


def measure(job: Job) -> dict[str, Any]:
    return {"generator": job.generator, "false": false_alarms(job.generator, job.seed, job.events),
            "data": data_drift(job), "concept": concept_drift(job)}


# --- the table ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--events", type=int, default=100_000, help="events of each stationary run")
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--drift-at", type=int, default=DRIFT_AT, help="events before the drift point (plus 0-63)")
    parser.add_argument("--after", type=int, default=AFTER, help="events after the drift point")
    args = arguments(parser, {"seeds": 1, "events": 1_000, "drift_at": 1_000, "after": 500})
    generators = args.generators.split(",")
    jobs = [Job(g, seed, args.events, args.drift_at, args.after) for g in generators for seed in range(args.seeds)]
    print(f"{args.seeds} seeds, {args.events:,} stationary events per run; drift at event {args.drift_at:,} + 0-63, "
          f"{args.after:,} events after it; delays are medians in events after the drift point", flush=True)
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = pool.map(measure, jobs)  # in the jobs' order: a generator's seeds one after the other
        for g in generators:
            rows = [next(results) for _ in range(args.seeds)]
            false = {k: statistics.fmean(r["false"][k] for r in rows) for k in rows[0]["false"]}
            figure(f"{g} false alerts per 100k", f"data {false['data_drift']:.1f}, prediction "
                   f"{false['prediction_drift']:.1f}, concept {false['concept_drift']:.1f}, performance "
                   f"{false['performance_drop']:.1f}; river ADWIN: data {false['river_data']:.1f}, score "
                   f"{false['river_score']:.1f}, error {false['river_error']:.1f}")
            data = [r["data"] for r in rows]
            wd, rd = _delays(data, "weir"), _delays(data, "river")
            named = sum(d["named_right"] for d in data)
            figure(f"{g} data drift", f"found {len(wd)}/{len(rd)} of {args.seeds} (weir/river), delay "
                   f"{_median(wd)}/{_median(rd)}, named only moved features {named}/{len(data)}")
            concept = [r["concept"] for r in rows]
            wc, rc = _delays(concept, "weir"), _delays(concept, "river")
            ratio = f"{statistics.median(wc) / statistics.median(rc):.2f}" if wc and rc and statistics.median(rc) \
                else "-"
            figure(f"{g} concept drift", f"found {len(wc)}/{len(rc)} of {args.seeds} (weir/river), delay "
                   f"{_median(wc)}/{_median(rc)}, ratio {ratio}")
    print("goals: <= 1 false alert per 100k for every kind; data drift no slower than river's per-feature ADWIN; "
          "concept drift <= 1.2x river's ADWIN on the error", flush=True)


def _delays(rows: list[dict[str, Any]], who: str) -> list[int]:
    return [r[who] for r in rows if r[who] is not None]


def _median(values: list[int]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


if __name__ == "__main__":
    main()
