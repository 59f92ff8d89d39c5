"""Detection quality of the monitor against river's own detectors, over generators, models and seeds, every kind.

    python -m bench.drift [--seeds 10] [--events 100000] [--generators churn,sea,...] [--models linear,tree]
                          [--drift-at 20000] [--after 15000] [--smoke]

The same monitor code as the worker's back, fed in-process (no broker), with
a model that learns every label as it comes, as a user's would, and that the
monitor can score reference inputs with (as the back's models): on every
classification stream a logistic regression (``linear``; one per class,
one-vs-rest, on the multiclass rbf) and a Hoeffding tree (``tree``), whose
first splits reshape its scores at once; on the two regression streams a
linear regression. The generators differ on purpose: churn (noisy, one-hot features), simple (a logistic skeleton), sea
(separable classes with label noise), agrawal (mixed features, rule-based
classes), hyperplane (ten continuous features, nearly separable, so a model
keeps sharpening), sine (two features, a noiseless curve: a model sharpens
for ever), rbf (three classes around random centroids: multiclass, scored by
the top class's probability), friedman and mv (regression; mv mixes
categories and numbers on very different scales).

For each generator, model and seed:

* **false alarms**: FIRING alerts of each kind on a stationary stream, per
  100,000 events, beside river's ADWIN (default delta) over the same values:
  one per numeric feature for data drift, on the served score for prediction
  drift, on the error stream (0/1, or the absolute error) for concept drift
  and performance drops;
* **data drift**: half of the numeric features scaled by 1.5 from event
  20,000 plus 0-63 (drawn per seed) on (churn: its own abrupt drift, prices
  up and payments moving); events to the first data-drift alert, whether it
  named only moved features, against the first detection of the per-feature
  ADWINs; and, on the same run, events to the first prediction-drift alert
  (the scores moved by the inputs) against river's ADWIN on the score;
* **concept drift**: the labelling concept switches at that same point (river's
  ConceptDriftStream; churn and simple: their own; sine: the curve's other
  side; rbf: each class becomes the next; friedman and mv: the target moves
  by +10); labels to the first concept-drift alert, against river's ADWIN
  on the error stream.

Goals (issues 14 and 26): every kind at most 1 false alert per 100,000
stationary events on every row; data-drift delay at most the per-feature
ADWIN's; concept-drift delay at most 1.2x ADWIN's on the error stream.

A row's figures are printed as soon as its seeds are done; ``--smoke`` runs
every row once on a few thousand events.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from river import drift

from bench.harness import arguments, figure
from producers.event import LabelledEvent
from producers.schedule import DriftSchedule
from producers.sources import open_source
from streams.features import feature_vector
from streams.monitor.detectors import DriftMonitor
from weir.contract.feedback import prediction_error
from weir.contract.records import Alert, Label, Prediction
from weir.registry.factories import Model, as_classifier, build_model, positive_score, score_one
from weir.settings import Settings
from weir.state.join import PendingJoin

DRIFT_AT = 20_000  # events before the drift point in the drift runs (plus 0-63)
AFTER = 15_000  # events after it


@dataclass(frozen=True)
class Job:
    """One generator, model and seed: a stationary run of ``events``, then drift runs drifting at ``drift_base``
    + 0-63 and going on ``after`` events past it."""

    generator: str
    model: str  # linear or tree
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
GENERATORS = ("churn", "simple", "sea", "agrawal", "hyperplane", "sine", "rbf", "friedman", "mv")
REGRESSION = frozenset({"friedman", "mv"})
MULTICLASS = frozenset({"rbf"})
MODELS = ("linear", "tree")
CHURN_MOVED = {"monthly_charges", "payment_method", "total_charges"}  # what churn's abrupt drift moves


# --- the streams --------------------------------------------------------------------------------------------------


def _river(generator: str, n: int, seed: int, concept_at: int | None) -> Iterator[LabelledEvent]:
    """The bench's own river streams, their concept moved at ``concept_at`` (P(y|x) only: the inputs stay)."""
    from river.datasets import synth

    data: Iterable[tuple[dict[Any, Any], Any]]
    if generator == "friedman":
        data = synth.Friedman(seed=seed)
    elif generator == "mv":
        data = synth.Mv(seed=seed)
    elif generator == "sine":
        data = synth.Sine(seed=seed)
    else:
        data = synth.RandomRBF(seed_model=seed, seed_sample=seed + 1_000, n_classes=3, n_features=6)
    for i, (x, y) in enumerate(itertools.islice(data, n)):
        moved = concept_at is not None and i >= concept_at
        if generator in REGRESSION:
            label: Label = float(y) + (10.0 if moved else 0.0)
        elif generator == "sine":
            label = bool(y) != moved  # the other side of the curve
        else:
            label = (int(y) + 1) % 3 if moved else int(y)
        yield LabelledEvent(f"{generator}-{seed}-{i}", f"e{i % 1_000}", i,
                            {f"x{k}": v if isinstance(v, str) else float(v) for k, v in x.items()}, label)


def stream(generator: str, n: int, seed: int, *, concept_at: int | None = None) -> Iterator[LabelledEvent]:
    """``n`` events of ``generator``, stamped 0, 1, 2...; the concept switches at ``concept_at`` if given."""
    if generator in ("friedman", "mv", "sine", "rbf"):
        return _river(generator, n, seed, concept_at)
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


def _model(generator: str, kind: str) -> Model:
    if generator in REGRESSION:
        return build_model("linear_regression", {})
    if kind == "tree":
        return build_model("hoeffding_tree", {})
    if generator in MULTICLASS:  # a logistic regression per class: a binary one would learn "not class 0"
        from river import linear_model, multiclass, preprocessing

        return cast(Model, preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
            linear_model.LogisticRegression()))
    return build_model("logistic_regression", {})


def rows(generators: list[str], models: list[str]) -> list[tuple[str, str]]:
    """(generator, model) pairs: both models on a classification stream, the linear regression on a regression
    one."""
    return [(g, m) for g in generators for m in models if g not in REGRESSION or m == "linear"]


# --- one pass: the monitor and river's detectors over the same values -------------------------------------------


@dataclass
class Pass:
    """What the monitor and the river baselines saw on one stream."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)  # (event index, FIRING alert)
    river: dict[str, list[int]] = field(default_factory=dict)  # baseline -> event indices of its detections


def run(generator: str, kind: str, events: Iterator[LabelledEvent]) -> Pass:
    model = _model(generator, kind)
    # The back's monitor scores reference inputs with the live model: so does this one.
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False),
                           rescore=lambda _version, x: score_one(model, x))
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


def false_alarms(job: Job) -> dict[str, float]:
    """FIRING alerts per 100,000 events of each kind, and of each river baseline, on a stationary stream."""
    events = job.events
    seen = run(job.generator, job.model, stream(job.generator, events, job.seed))
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
    seen = run(job.generator, job.model, events)
    alerts = [(i, a) for i, a in seen.alerts if a["kind"] == "data_drift" and i >= at]
    named = alerts[0][1]["evidence"].get("moved_most", "") if alerts else ""
    named_features = {part.split(" (")[0] for part in named.split(", ") if part and part != "-"}
    scores = [i for i, a in seen.alerts if a["kind"] == "prediction_drift"]
    return {"weir": alerts[0][0] - at if alerts else None, "river": _first(seen.river["data"], at),
            "named_right": bool(named_features) and named_features <= moved,
            "scores": _first(scores, at), "river_scores": _first(seen.river["score"], at)}


def concept_drift(job: Job) -> dict[str, int | None]:
    at = job.drift_at
    seen = run(job.generator, job.model, stream(job.generator, at + job.after, job.seed, concept_at=at))
    weir = [i for i, a in seen.alerts if a["kind"] == "concept_drift"]
    return {"weir": _first(weir, at), "river": _first(seen.river["error"], at)}


def measure(job: Job) -> dict[str, Any]:
    return {"generator": job.generator, "false": false_alarms(job),
            "data": data_drift(job), "concept": concept_drift(job)}


# --- the table ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--events", type=int, default=100_000, help="events of each stationary run")
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--models", default=",".join(MODELS), help="of linear, tree (regression streams: linear)")
    parser.add_argument("--drift-at", type=int, default=DRIFT_AT, help="events before the drift point (plus 0-63)")
    parser.add_argument("--after", type=int, default=AFTER, help="events after the drift point")
    args = arguments(parser, {"seeds": 1, "events": 1_000, "drift_at": 1_000, "after": 500})
    table = rows(args.generators.split(","), args.models.split(","))
    jobs = [Job(g, m, seed, args.events, args.drift_at, args.after) for g, m in table for seed in range(args.seeds)]
    print(f"{args.seeds} seeds, {args.events:,} stationary events per run; drift at event {args.drift_at:,} + 0-63, "
          f"{args.after:,} events after it; delays are medians in events after the drift point", flush=True)
    worst: dict[str, float] = {}
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = pool.map(measure, jobs)  # in the jobs' order: a row's seeds one after the other
        for g, m in table:
            row = f"{g} {m}"
            done = [next(results) for _ in range(args.seeds)]
            false = {k: statistics.fmean(r["false"][k] for r in done) for k in done[0]["false"]}
            for kind in KINDS:
                worst[kind] = max(worst.get(kind, 0.0), false[kind])
            figure(f"{row} false alerts per 100k", f"data {false['data_drift']:.1f}, prediction "
                   f"{false['prediction_drift']:.1f}, concept {false['concept_drift']:.1f}, performance "
                   f"{false['performance_drop']:.1f}; river ADWIN: data {false['river_data']:.1f}, score "
                   f"{false['river_score']:.1f}, error {false['river_error']:.1f}")
            data = [r["data"] for r in done]
            wd, rd = _delays(data, "weir"), _delays(data, "river")
            named = sum(d["named_right"] for d in data)
            ws, rs = _delays(data, "scores"), _delays(data, "river_scores")
            figure(f"{row} data drift", f"found {len(wd)}/{len(rd)} of {args.seeds} (weir/river), delay "
                   f"{_median(wd)}/{_median(rd)}, named only moved features {named}/{len(data)}; the scores' "
                   f"prediction drift found {len(ws)}/{len(rs)}, delay {_median(ws)}/{_median(rs)}")
            concept = [r["concept"] for r in done]
            wc, rc = _delays(concept, "weir"), _delays(concept, "river")
            ratio = f"{statistics.median(wc) / statistics.median(rc):.2f}" if wc and rc and statistics.median(rc) \
                else "-"
            figure(f"{row} concept drift", f"found {len(wc)}/{len(rc)} of {args.seeds} (weir/river), delay "
                   f"{_median(wc)}/{_median(rc)}, ratio {ratio}")
    figure("worst row, false alerts per 100k", ", ".join(f"{k} {v:.1f}" for k, v in worst.items()))
    print("goals: <= 1 false alert per 100k for every kind on every row; data drift no slower than river's "
          "per-feature ADWIN; concept drift <= 1.2x river's ADWIN on the error", flush=True)


def _delays(rows: list[dict[str, Any]], who: str) -> list[int]:
    return [r[who] for r in rows if r[who] is not None]


def _median(values: list[int]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


if __name__ == "__main__":
    main()
