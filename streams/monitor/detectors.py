"""Drift detectors over the stream: data, prediction and concept drift and performance drops.

* Data drift: every feature (numbers, and categories decoded back from their
  one-hot form) against its reference, with PSI, KS or chi-square, and ADWIN
  on each number's mean (``weir.stats``).
* Prediction drift: the served score's distribution, the same way, against a
  reference refreshed while nothing moves and with a larger smallest PSI: a
  model that learns online moves its own scores slowly, which is not drift.
* Concept drift: ADWIN on each version's 0/1 error stream from joined labels.
* Performance drop: each version's rolling accuracy against the accuracy of
  its own first labels.

Each kind alerts once per episode (FIRING) and once when it ends (RESOLVED),
with the statistic, its threshold, the windows compared, the features that
moved most and a runbook hint.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from river import drift, metrics, utils

from streams.monitor.estimate import AccuracyEstimate, confidence
from weir.clock import now_ms
from weir.contract.features import attributes_of
from weir.contract.feedback import is_regression
from weir.contract.records import Alert, FeatureVector, Feedback, Label, Prediction
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin
from weir.stats.distribution import Comparison, FeatureDistribution
from weir.stats.episodes import Episodes, Transition
from weir.stats.profile import FeatureProfiles

log = logging.getLogger("weir.monitor")


RUNBOOKS = {
    "data_drift": "Inputs moved. Check the named features upstream (a source, a deploy, a season?), the data-quality "
                  "metrics for the same window, and whether the champion's accuracy follows; retrain if it does.",
    "prediction_drift": "The served scores moved. Look for data drift at the same time; if there is none, the model "
                        "changed (a promotion, a snapshot) or its inputs are being computed differently.",
    "concept_drift": "The model's error rate changed while its inputs may not have: the relationship to the label "
                     "moved. Compare rolling accuracy before and after; retrain or promote a challenger.",
    "performance_drop": "This version's rolling accuracy fell below its own baseline. Compare with its challengers "
                        "in shadow and consider a rollback or a promotion.",
}


QUIET_LABELS = 2_000  # a concept-drift episode ends after this many labels without a new detection


# ADWIN's confidence on the error stream: 0.02 found the churn concept drift within about 1,300 labels where
# the default 0.002 took 1,000-7,000, with no false alarm on 60,000 stationary churn or SEA labels (3 seeds).
CONCEPT_DELTA = 0.02


BASELINE_LABELS, ROLLING_LABELS, PERFORMANCE_MARGIN = 1_000, 500, 0.05
REGRESSION_MARGIN = 0.2  # a regressor's rolling mean absolute error this much above its baseline's is a drop


# A new model's errors and scores move while it learns its first labels: that is warm-up, not drift.
WARMUP_LABELS = 1_000


WARMUP_SCORES = 2_000


# A model that learns online moves its own scores slowly (learning, not drift): the score reference is refreshed
# from the live window every 8 checks while nothing moves (about every 2,750 scores, as the emptied live window
# refills first), so only a faster shift alerts. Measured on stationary churn with a logistic regression: 4
# alerts per 100,000 events against a fixed reference, 0 with the refresh and a PSI floor of 0.25.
SCORE_REFRESH_CHECKS = 8


@dataclass
class ConceptEpisode:
    detector: drift.ADWIN
    labels: int = 0
    open: bool = False
    quiet: int = 0


def prediction_error(predicted: Label | None, label: Label | None) -> float:
    """What concept drift watches: a regressor's absolute error, a classifier's miss (0 or 1)."""
    if is_regression(predicted, label):
        assert isinstance(predicted, float) and isinstance(label, int | float)
        return abs(predicted - label)
    return 0.0 if predicted == label else 1.0


@dataclass
class Performance:
    baseline: Any  # metrics.Accuracy, or metrics.MAE for a regressor
    rolling: Any
    labels: int = 0
    low_checks: int = 0
    ok_checks: int = 0
    open: bool = False


class DistributionWatch:
    """A set of features, their distributions, and the episodes over their comparisons.

    ``reference`` gives features a stored reference from the start;
    ``on_reference`` hears the whole reference whenever part of it is set
    (a feature's first values, a re-baseline), to keep it.
    """

    def __init__(self, settings: Settings, reference: FeatureProfiles | None = None,
                 on_reference: Callable[[FeatureProfiles], None] | None = None, min_psi: float | None = None,
                 refresh_checks: int | None = None) -> None:
        self.settings = settings
        self.reference = reference or {}
        self.on_reference = on_reference
        self.refresh_checks = refresh_checks
        self.checks = 0
        self.features: dict[str, FeatureDistribution] = {}
        self.episodes = Episodes(alpha=settings.drift_alpha,
                                 min_psi=settings.drift_min_psi if min_psi is None else min_psi)
        self.seen = 0

    def add(self, values: dict[str, Any]) -> list[Transition]:
        for name in values.keys() - self.features.keys():
            distribution = FeatureDistribution(name, reference_size=self.settings.drift_reference_events,
                                               window=self.settings.drift_window)
            if name in self.reference:
                distribution.load_profile(self.reference[name])
            self.features[name] = distribution
        changed = False
        for name, distribution in self.features.items():
            changed = distribution.add(values.get(name)) or changed
        self.seen += 1
        transitions = self._check() if self.seen % self.settings.drift_check_every == 0 else []
        changed = changed or any(t.rebaselined for t in transitions)
        if changed and self.on_reference is not None:
            self.on_reference(self.profile())
        return transitions

    def _check(self) -> list[Transition]:
        comparisons = [d.compare() for d in self.features.values() if d.ready]
        if not comparisons:
            return []
        transitions, rebase = self.episodes.update(comparisons)
        self.checks += 1
        if self.refresh_checks and self.checks % self.refresh_checks == 0:
            rebase += [name for name, e in self.episodes.episodes.items()
                       if not e.open and e.moving_checks == 0 and name not in rebase]
        for name in rebase:
            self.features[name].rebaseline()
        return transitions

    def profile(self) -> FeatureProfiles:
        """The reference of every feature that has one, and the stored one of features not seen yet."""
        current = {name: p for name, d in self.features.items() if (p := d.profile()) is not None}
        return dict(sorted({**self.reference, **current}.items()))

    def comparisons(self) -> dict[str, Comparison]:
        return {name: e.last for name, e in self.episodes.episodes.items() if e.last is not None}


class DriftMonitor:
    def __init__(self, settings: Settings, join: PendingJoin,
                 make_detector: Callable[[], drift.ADWIN] = lambda: drift.ADWIN(delta=CONCEPT_DELTA),
                 data_reference: FeatureProfiles | None = None,
                 on_data_reference: Callable[[FeatureProfiles], None] | None = None) -> None:
        self.settings = settings
        self.join = join
        self.make_detector = make_detector
        self.data = DistributionWatch(settings, data_reference, on_data_reference)
        self.scores: dict[str, DistributionWatch] = {}
        self.scores_seen: dict[str, int] = {}
        self.concept: dict[str, ConceptEpisode] = {}
        self.performance: dict[str, Performance] = {}
        self.alerts_raised: dict[tuple[str, str], int] = {}
        self.estimates: dict[str, AccuracyEstimate] = {}  # per model: served accuracy, estimated without labels
        self.positive_declared = settings.positive_label is not None

    # --- inputs ------------------------------------------------------------------------

    def on_features(self, vector: FeatureVector) -> list[Alert]:
        out = []
        for t in self.data.add(attributes_of(vector["features"])):
            out.append(self._distribution_alert("data_drift", t.subject, t, vector))
        return out

    def on_prediction(self, prediction: Prediction) -> list[Alert]:
        return self.on_served(prediction) + self.on_joined(self.join.add_prediction(prediction))

    def on_served(self, prediction: Prediction) -> list[Alert]:
        """Prediction drift: the served scores of each model against their reference; and the estimate of its
        served accuracy."""
        if not prediction["served"] or prediction["score"] is None:
            return []
        model = prediction["model_name"]
        sure = confidence(prediction, self.positive_declared)
        if sure is not None:
            self.estimates.setdefault(model, AccuracyEstimate()).on_served(sure)
        self.scores_seen[model] = self.scores_seen.get(model, 0) + 1
        watch = self.scores.get(model)
        if watch is None:
            watch = self.scores[model] = DistributionWatch(
                self.settings, min_psi=self.settings.prediction_drift_min_psi, refresh_checks=SCORE_REFRESH_CHECKS)
        if self.scores_seen[model] <= WARMUP_SCORES:
            return []
        return [self._distribution_alert("prediction_drift", f"{model}:score", t, prediction)
                for t in watch.add({"score": prediction["score"]})]

    def on_feedback(self, feedback: Feedback) -> list[Alert]:
        event = self.join.add_feedback(feedback)
        alerts = self.on_joined(event if event is not None and event.complete else None)
        self.join.expire()
        self.join.take_strays()  # the learn stage routes strays; the monitor only counts on joined labels
        return alerts

    # --- concept drift and performance ---------------------------------------------------

    def on_joined(self, event: PendingEvent | None) -> list[Alert]:
        """Concept drift and performance of every version that predicted a labelled event."""
        if event is None:
            return []
        alerts = []
        served = event.predictions.get(event.served_version or "")
        sure = confidence(served, self.positive_declared) if served is not None else None
        if served is not None and sure is not None:
            estimate = self.estimates.setdefault(served["model_name"], AccuracyEstimate())
            estimate.on_labelled(sure, served["predicted_label"], event.label)
        for version, prediction in sorted(event.predictions.items()):
            if prediction["error"] is not None or prediction["predicted_label"] is None:
                continue
            subject = f"{prediction['model_name']}:{version}"
            alerts += self._concept(subject, prediction_error(prediction["predicted_label"], event.label),
                                    prediction)
            alerts += self._performance(subject, event.label, prediction)
        return alerts

    def _concept(self, subject: str, error: float, prediction: Prediction) -> list[Alert]:
        e = self.concept.get(subject)
        if e is None:
            e = self.concept[subject] = ConceptEpisode(self.make_detector())
        e.labels += 1
        if e.labels <= WARMUP_LABELS:
            return []
        before = e.detector.estimation
        e.detector.update(error)
        # Only a rising error rate is a problem: ADWIN also reports a model getting better (while it learns).
        if e.detector.drift_detected and e.detector.estimation > before:
            e.quiet = 0
            if not e.open:
                e.open = True
                return [self._alert("concept_drift", subject, "FIRING", float(e.detector.estimation),
                                    float(getattr(e.detector, "delta", 0.0)), prediction, {
                                        "detector": type(e.detector).__name__, "labels_seen": str(e.labels),
                                        "error_rate_now": f"{e.detector.estimation:.4f}",
                                        "windows": f"ADWIN's adaptive window of {e.detector.width:.0f} labels"})]
        elif e.open:
            e.quiet += 1
            if e.quiet >= QUIET_LABELS:
                e.open = False
                return [self._alert("concept_drift", subject, "RESOLVED", float(e.detector.estimation), None,
                                    prediction, {"labels_seen": str(e.labels),
                                                 "quiet_labels": str(QUIET_LABELS)})]
        return []

    def _performance(self, subject: str, label: Label | None, prediction: Prediction) -> list[Alert]:
        p = self.performance.get(subject)
        if p is None:
            measure = metrics.MAE if is_regression(prediction["predicted_label"], label) else metrics.Accuracy
            p = self.performance[subject] = Performance(measure(), utils.Rolling(measure, window_size=ROLLING_LABELS))
        p.labels += 1
        if p.labels <= WARMUP_LABELS:
            return []
        if p.labels <= WARMUP_LABELS + BASELINE_LABELS:
            p.baseline.update(label, prediction["predicted_label"])
            return []
        p.rolling.update(label, prediction["predicted_label"])
        if p.labels < WARMUP_LABELS + BASELINE_LABELS + ROLLING_LABELS or p.labels % 100:
            return []
        baseline, rolling = p.baseline.get(), p.rolling.get()
        if isinstance(p.baseline, metrics.MAE):  # an error: worse is higher
            name, limit = "mae", baseline * (1 + REGRESSION_MARGIN)
            low = rolling > limit
        else:
            name, limit = "accuracy", baseline - PERFORMANCE_MARGIN
            low = rolling < limit
        p.low_checks, p.ok_checks = (p.low_checks + 1, 0) if low else (0, p.ok_checks + 1)
        evidence = {f"baseline_{name}": f"{baseline:.4f}", f"rolling_{name}": f"{rolling:.4f}",
                    "windows": f"labels {WARMUP_LABELS + 1}-{WARMUP_LABELS + BASELINE_LABELS} vs the last "
                               f"{ROLLING_LABELS}"}
        if not p.open and p.low_checks >= 2:
            p.open = True
            return [self._alert("performance_drop", subject, "FIRING", rolling, limit, prediction, evidence)]
        if p.open and p.ok_checks >= 3:
            p.open = False
            return [self._alert("performance_drop", subject, "RESOLVED", rolling, limit, prediction, evidence)]
        return []

    # --- alerts -------------------------------------------------------------------------

    def _distribution_alert(self, kind: str, subject: str, t: Transition,
                            record: FeatureVector | Prediction) -> Alert:
        c = t.comparison
        evidence = {
            "test": c.test, "p_value": f"{c.p_value:.3g}", "psi": f"{c.psi:.4f}",
            "adwin_mean_shift": str(c.adwin).lower(),
            "windows": f"reference: first {self.settings.drift_reference_events} values; "
                       f"live: last {self.settings.drift_window}",
            "moved_most": ", ".join(f"{m.feature} (psi {m.psi:.2f})" for m in t.moved) or "-",
        }
        if t.rebaselined:
            evidence["rebaselined"] = "the live window is the new reference"
        evidence.update(self._estimated_effect(record))
        settings = self.settings
        threshold = settings.prediction_drift_min_psi if kind == "prediction_drift" else settings.drift_min_psi
        return self._alert(kind, subject, t.status, c.psi, threshold, record, evidence)

    def _estimated_effect(self, record: FeatureVector | Prediction) -> dict[str, str]:
        """What the drift is doing to served quality, before labels say: the label-free estimate of served
        accuracy now against the accuracy labels last measured (of the model served, or of the only one)."""
        name = record.get("model_name")
        estimate = self.estimates.get(str(name)) if name is not None else (
            next(iter(self.estimates.values())) if len(self.estimates) == 1 else None)  # a feature: one model
        now = estimate.value() if estimate is not None else None
        measured = estimate.measured() if estimate is not None else None
        if now is None:
            return {}
        effect = {"estimated_served_accuracy": f"{now:.4f}"}
        if measured is not None:
            effect["measured_served_accuracy"] = f"{measured:.4f}"
            effect["estimated_effect"] = f"{now - measured:+.4f}"
        return effect

    def _alert(self, kind: str, subject: str, status: Literal["FIRING", "RESOLVED"], statistic: float | None,
               threshold: float | None, record: FeatureVector | Prediction, evidence: dict[str, str]) -> Alert:
        self.alerts_raised[(kind, status)] = self.alerts_raised.get((kind, status), 0) + 1
        return {
            "alert_id": str(uuid.uuid4()), "kind": kind,
            "severity": "critical" if kind == "performance_drop" else "warning",
            "subject": subject, "status": status, "statistic": statistic, "threshold": threshold,
            "evidence": {**evidence, "event_id": record["event_id"], "event_time": str(record["event_time"])},
            "runbook": RUNBOOKS[kind], "detected_at": now_ms(),
        }

    def active(self) -> dict[tuple[str, str], bool]:
        """Every episode the monitor knows, open or not, for the drift gauges."""
        out = {("data_drift", name): open_ for name, open_ in self.data.episodes.active().items()}
        for model, watch in self.scores.items():
            out[("prediction_drift", f"{model}:score")] = watch.episodes.active().get("score", False)
        out.update({("concept_drift", s): e.open for s, e in self.concept.items()})
        out.update({("performance_drop", s): p.open for s, p in self.performance.items()})
        return out
