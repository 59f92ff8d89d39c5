"""Drift detectors over the stream: data, prediction and concept drift and performance drops.

* Data drift: every feature (numbers, and categories decoded back from their
  one-hot form) against its reference, with PSI, KS or chi-square, and ADWIN
  on each number's mean (``weir.stats``).
* Prediction drift: with the models at hand (the back), the served scores
  against reference inputs re-scored by the same version at the same time
  (``streams.monitor.scores``), so a model's own learning, or a promotion,
  is not drift; without them (a monitor on its own), the served score's
  distribution against a reference refreshed while nothing moves, with a
  larger smallest PSI.
* Concept drift: ADWIN on each version's error stream from joined labels: a
  classifier's misses (0/1), a regressor's absolute errors scaled to [0, 1] by
  its own warm-up errors.
* Performance drop: each version's recent loss (misses, or absolute errors)
  against the loss of its own first labels, with a one-sided z-test; critical
  only when the drop's confidence bound passes a drop that matters.

Every threshold derives from one false-alarm budget (``streams.monitor.budget``).

Each kind alerts once per episode (FIRING) and once when it ends (RESOLVED),
with the statistic, its threshold, the windows compared, the features that
moved most and a runbook hint.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from river import drift, stats, utils

from streams.monitor.budget import concept_delta, level_per_test, one_sided_z
from streams.monitor.estimate import AccuracyEstimate, confidence
from streams.monitor.incidents import Incidents
from streams.monitor.scores import PairedScoreWatch, Rescore
from weir.clock import now_ms
from weir.contract.features import attributes_of
from weir.contract.feedback import is_regression, prediction_error
from weir.contract.records import Alert, FeatureVector, Feedback, Prediction
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin
from weir.stats.distribution import Comparison, FeatureDistribution
from weir.stats.episodes import Episodes, Transition
from weir.stats.profile import FeatureProfiles
from weir.stats.shift import EVERY as FAST_EVERY
from weir.stats.shift import SCALES as FAST_SCALES

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


CONCEPT_CLOCK = 32  # labels between two of ADWIN's checks on the error stream: its delta is a level per check


ROLLING_LABELS, PERFORMANCE_EVERY = 500, 100  # labels in the recent window; a performance test every 100
# The baseline: the loss of the last 20 windows of 500 labels seen while quiet (tests start after 2 of them). Once
# it has 5, the spread of their means is a floor under the test's standard error: a model that learns online
# wanders (a logistic regression on agrawal swings by 10 points of accuracy on stationary data), and that is its
# normal, not a drop.
BASELINE_WINDOWS, FIRST_TEST_WINDOWS, SPREAD_WINDOWS = 20, 2, 5
# A drop that matters: an alert is critical only when the drop's confidence bound passes it: 5 points of accuracy,
# or a regressor's mean absolute error 20% above its baseline's.
CRITICAL_ACCURACY_DROP, CRITICAL_ERROR_RISE = 0.05, 0.2


# A new model's errors and scores move while it learns its first labels: that is warm-up, not drift.
WARMUP_LABELS = 1_000


WARMUP_SCORES = 2_000


# A model that learns online moves its own scores slowly (learning, not drift): the score reference is refreshed
# from the live window every 8 checks while nothing moves (about every 2,750 scores, as the emptied live window
# refills first), so only a faster shift alerts. Measured on stationary churn with a logistic regression: 4
# alerts per 100,000 events against a fixed reference, 0 with the refresh and a PSI floor of 0.25.
SCORE_REFRESH_CHECKS = 8

UNSCORED_INPUTS = 20_000  # feature vectors kept until their served score comes (the oldest go first)


@dataclass
class ConceptEpisode:
    detector: drift.ADWIN
    labels: int = 0
    open: bool = False
    quiet: int = 0
    # A regressor's errors are scaled by twice the 95th percentile of its late warm-up errors, then capped at 1:
    # ADWIN's bound holds for values in [0, 1].
    warmup_errors: Any = field(default_factory=lambda: stats.Quantile(0.95))

    def bounded(self, error: float, regression: bool) -> float:
        if not regression:
            return error
        scale = 2.0 * float(self.warmup_errors.get() or 0.0)
        return min(1.0, error / scale) if scale > 0 else min(1.0, error)


@dataclass
class Performance:
    """A version's loss on its baseline labels and on its recent ones (river's mean and variance)."""

    regression: bool
    losses: Any = field(default_factory=stats.Var)  # per-label losses of every quiet window: their variance
    windows: Any = field(default_factory=lambda: utils.Rolling(stats.Var, window_size=BASELINE_WINDOWS))
    window: Any = field(default_factory=stats.Var)  # the window of ROLLING_LABELS being filled
    rolling: Any = field(default_factory=lambda: utils.Rolling(stats.Var, window_size=ROLLING_LABELS))
    labels: int = 0
    low_checks: int = 0
    ok_checks: int = 0
    open: bool = False
    severity: str = "warning"


@dataclass(frozen=True)
class Drop:
    """A version's loss now against its baseline's: the rise and its one-sided confidence bounds."""

    baseline: float
    recent: float
    rise: float
    lower: float
    upper: float
    critical: float  # the rise that matters
    now: float  # accuracy, or the mean absolute error
    limit: float

    def evidence(self, regression: bool, z: float) -> dict[str, str]:
        name = "mae" if regression else "accuracy"
        size = (f"{self.rise:+.4f}", f"{self.lower:+.4f}", f"{self.upper:+.4f}") if regression else (
            f"{-self.rise:+.4f}", f"{-self.upper:+.4f}", f"{-self.lower:+.4f}")
        return {f"baseline_{name}": f"{self.limit:.4f}", f"rolling_{name}": f"{self.now:.4f}",
                f"{name}_change": size[0], f"{name}_change_interval": f"[{size[1]}, {size[2]}]",
                "critical_change": f"{self.critical:.4f}", "test": f"one-sided z >= {z:.2f} on per-label loss",
                "windows": f"the last {ROLLING_LABELS} labels vs up to {BASELINE_WINDOWS} quiet windows of "
                           f"{ROLLING_LABELS} before"}


def impact(evidence: dict[str, str]) -> float | None:
    """How much worse served quality is because of what an alert found, from its evidence: accuracy points lost
    (measured by labels, or estimated without them), or a regressor's relative rise of its mean absolute error."""
    if "accuracy_change" in evidence:
        return -float(evidence["accuracy_change"])
    if "mae_change" in evidence:
        return float(evidence["mae_change"]) / max(float(evidence["baseline_mae"]), 1e-12)
    if "estimated_effect" in evidence:
        return -float(evidence["estimated_effect"])
    if "error_rate_now" in evidence:
        return float(evidence["error_rate_now"]) - float(evidence["error_before"])
    return None


def ranked(alerts: list[Alert]) -> list[Alert]:
    """Alerts raised together, the largest impact first (those of unknown impact last)."""
    return sorted(alerts, key=lambda a: -float(a["evidence"].get("impact", "-inf")))


class DistributionWatch:
    """A set of features, their distributions, and the episodes over their comparisons.

    ``reference`` gives features a stored reference from the start;
    ``on_reference`` hears the whole reference whenever part of it is set
    (a feature's first values, a re-baseline), to keep it.
    """

    def __init__(self, settings: Settings, reference: FeatureProfiles | None = None,
                 on_reference: Callable[[FeatureProfiles], None] | None = None, min_psi: float | None = None,
                 refresh_checks: int | None = None, fast_lane: bool = True) -> None:
        self.settings = settings
        self.reference = reference or {}
        self.on_reference = on_reference
        self.refresh_checks = refresh_checks
        self.fast_lane = fast_lane
        self.checks = 0
        self.features: dict[str, FeatureDistribution] = {}
        # the slow lane's checks (Holm across features within each): the budget, or half of it beside a fast lane
        budget = settings.alert_budget / 2 if fast_lane else settings.alert_budget
        self.episodes = Episodes(alpha=level_per_test(budget, settings.drift_check_every),
                                 min_psi=settings.drift_min_psi if min_psi is None else min_psi)
        self.seen = 0

    def add(self, values: dict[str, Any]) -> list[Transition]:
        new = values.keys() - self.features.keys()
        # The fast lane's tests: every feature at every window size, at each check (Bonferroni), within its half
        # of the budget.
        fast_level = level_per_test(self.settings.alert_budget / 2, FAST_EVERY,
                                    family=len(values) * len(FAST_SCALES)) if self.fast_lane and new else None
        for name in new:
            distribution = FeatureDistribution(name, reference_size=self.settings.drift_reference_events,
                                               window=self.settings.drift_window, fast_level=fast_level)
            if name in self.reference:
                distribution.load_profile(self.reference[name])
            self.features[name] = distribution
        changed = False
        for name, distribution in self.features.items():
            changed = distribution.add(values.get(name)) or changed
        self.seen += 1
        shifted = [c for d in self.features.values() if (c := d.take_shift()) is not None]
        transitions = [t for c in shifted if (t := self.episodes.open_now(c, shifted)) is not None]
        if self.seen % self.settings.drift_check_every == 0:
            transitions += self._check()
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
                 data_reference: FeatureProfiles | None = None,
                 on_data_reference: Callable[[FeatureProfiles], None] | None = None,
                 rescore: Rescore | None = None) -> None:
        """``rescore``: the models' scores of any input now, for prediction drift that learning cannot raise."""
        self.settings = settings
        self.join = join
        self.concept_delta = concept_delta(settings.alert_budget, CONCEPT_CLOCK)
        self.performance_z = one_sided_z(level_per_test(settings.alert_budget, PERFORMANCE_EVERY))
        self.data = DistributionWatch(settings, data_reference, on_data_reference)
        self.scores: dict[str, DistributionWatch | PairedScoreWatch] = {}
        self.scores_seen: dict[str, int] = {}
        self.rescore = rescore
        # The inputs of the events whose served scores came last, which the paired score watch takes as its
        # reference inputs: taken when the score comes, not when the features do, as the two topics are read at
        # their own pace (a back catching up can be thousands of events ahead on one of them).
        self.recent_inputs: deque[dict[str, Any]] = deque(maxlen=settings.drift_reference_events)
        self.unscored_inputs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.concept: dict[str, ConceptEpisode] = {}
        self.performance: dict[str, Performance] = {}
        self.alerts_raised: dict[tuple[str, str], int] = {}
        self.estimates: dict[str, AccuracyEstimate] = {}  # per model: served accuracy, estimated without labels
        self.impacts: dict[tuple[str, str], float] = {}  # open episodes (kind, subject) -> their impact
        self.incidents = Incidents()
        self.inputs_seen: Counter[str] = Counter()  # features, served scores and joined labels: the incidents' clock

    # --- inputs ------------------------------------------------------------------------

    def on_features(self, vector: FeatureVector) -> list[Alert]:
        if self.rescore is not None:
            self.unscored_inputs[vector["event_id"]] = dict(vector["features"])
            if len(self.unscored_inputs) > UNSCORED_INPUTS:
                self.unscored_inputs.popitem(last=False)
        return self._page("features", ranked([self._distribution_alert("data_drift", t.subject, t, vector)
                                              for t in self.data.add(attributes_of(vector["features"]))]))

    def _page(self, clock: str, alerts: list[Alert]) -> list[Alert]:
        """What goes out of the detectors' ``alerts``: grouped into incidents (``streams.monitor.incidents``),
        on a clock of events (the most of features, served scores and joined labels seen)."""
        self.inputs_seen[clock] += 1
        now = max(self.inputs_seen.values())
        return self.incidents.admit(alerts, now) + self.incidents.due(now)

    def on_prediction(self, prediction: Prediction) -> list[Alert]:
        return ranked(self.on_served(prediction) + self.on_joined(self.join.add_prediction(prediction)))

    def on_served(self, prediction: Prediction) -> list[Alert]:
        """Prediction drift: the served scores of each model against their reference; and the estimate of its
        served accuracy."""
        if not prediction["served"] or prediction["score"] is None:
            return []
        return self._page("scores", self._scores(prediction))

    def _scores(self, prediction: Prediction) -> list[Alert]:
        assert prediction["score"] is not None
        model = prediction["model_name"]
        sure = confidence(prediction)
        if sure is not None:
            self._estimate(model).on_served(sure)
        self.scores_seen[model] = self.scores_seen.get(model, 0) + 1
        scored = self.unscored_inputs.pop(prediction["event_id"], None)
        if scored is not None:
            self.recent_inputs.append(scored)
        if self.scores_seen[model] <= WARMUP_SCORES:
            return []
        if self.rescore is not None:
            return self._paired_scores(model, prediction, prediction["score"])
        watch = self.scores.get(model)
        if watch is None:
            watch = self.scores[model] = DistributionWatch(
                self.settings, min_psi=self.settings.prediction_drift_min_psi, refresh_checks=SCORE_REFRESH_CHECKS,
                fast_lane=False)  # a learning model's scores sharpen quickly: only the slow lane judges them
        assert isinstance(watch, DistributionWatch)
        return [self._distribution_alert("prediction_drift", f"{model}:score", t, prediction)
                for t in watch.add({"score": prediction["score"]})]

    def _paired_scores(self, model: str, prediction: Prediction, score: float) -> list[Alert]:
        """The served score against a reference input scored by the same version now; the watch starts once
        there are reference inputs to take."""
        assert self.rescore is not None
        watch = self.scores.get(model)
        if watch is None:
            if len(self.recent_inputs) < (self.recent_inputs.maxlen or 0):
                return []
            watch = self.scores[model] = PairedScoreWatch(self.settings, self.rescore, self.recent_inputs)
        assert isinstance(watch, PairedScoreWatch)
        transitions, renew = watch.add(prediction["model_version"], score)
        if renew:
            watch.rebase(self.recent_inputs)
        return [self._distribution_alert("prediction_drift", f"{model}:score", t, prediction) for t in transitions]

    def on_feedback(self, feedback: Feedback) -> list[Alert]:
        event = self.join.add_feedback(feedback)
        alerts = self.on_joined(event if event is not None and event.complete else None)
        self.join.expire()
        self.join.take_strays()  # the learn stage routes strays; the monitor only counts on joined labels
        return ranked(alerts)

    def _estimate(self, model: str) -> AccuracyEstimate:
        """The model's accuracy estimate, built at its first prediction (not with ``setdefault``, which would build
        three rolling means on every call and throw them away)."""
        estimate = self.estimates.get(model)
        if estimate is None:
            estimate = self.estimates[model] = AccuracyEstimate()
        return estimate

    # --- concept drift and performance ---------------------------------------------------

    def on_joined(self, event: PendingEvent | None) -> list[Alert]:
        """Concept drift and performance of every version that predicted a labelled event."""
        if event is None:
            return []
        return self._page("labels", self._labelled(event))

    def _labelled(self, event: PendingEvent) -> list[Alert]:
        alerts = []
        served = event.predictions.get(event.served_version or "")
        sure = confidence(served) if served is not None else None
        if served is not None and sure is not None:
            self._estimate(served["model_name"]).on_labelled(sure, served["predicted_label"], event.label)
        for version, prediction in sorted(event.predictions.items()):
            if prediction["error"] is not None or prediction["predicted_label"] is None:
                continue
            subject = f"{prediction['model_name']}:{version}"
            regression = is_regression(prediction["predicted_label"], event.label)
            error = prediction_error(prediction["predicted_label"], event.label)
            alerts += self._concept(subject, error, regression, prediction)
            alerts += self._performance(subject, error, regression, prediction)
        return alerts

    def _concept(self, subject: str, error: float, regression: bool, prediction: Prediction) -> list[Alert]:
        e = self.concept.get(subject)
        if e is None:
            e = self.concept[subject] = ConceptEpisode(drift.ADWIN(delta=self.concept_delta, clock=CONCEPT_CLOCK))
        e.labels += 1
        if e.labels <= WARMUP_LABELS:
            if e.labels > WARMUP_LABELS // 2:
                e.warmup_errors.update(error)
            return []
        before = e.detector.estimation
        e.detector.update(e.bounded(error, regression))
        # Only a rising error rate is a problem: ADWIN also reports a model getting better (while it learns).
        if e.detector.drift_detected and e.detector.estimation > before:
            e.quiet = 0
            if not e.open:
                e.open = True
                measure = "scaled_error_now" if regression else "error_rate_now"
                return [self._alert("concept_drift", subject, "FIRING", float(e.detector.estimation),
                                    self.concept_delta, prediction, {
                                        "detector": "ADWIN", "delta": f"{self.concept_delta:.3g}",
                                        "labels_seen": str(e.labels), "error_before": f"{before:.4f}",
                                        measure: f"{e.detector.estimation:.4f}",
                                        "windows": f"ADWIN's adaptive window of {e.detector.width:.0f} labels"})]
        elif e.open:
            e.quiet += 1
            if e.quiet >= QUIET_LABELS:
                e.open = False
                return [self._alert("concept_drift", subject, "RESOLVED", float(e.detector.estimation), None,
                                    prediction, {"labels_seen": str(e.labels),
                                                 "quiet_labels": str(QUIET_LABELS)})]
        return []

    def _performance(self, subject: str, loss: float, regression: bool, prediction: Prediction) -> list[Alert]:
        """A one-sided z-test of the recent loss against the baseline's, every PERFORMANCE_EVERY labels, at the
        budget's level; two low tests in a row open an episode, three fine ones close it."""
        p = self.performance.get(subject)
        if p is None:
            p = self.performance[subject] = Performance(regression)
        p.labels += 1
        if p.labels <= WARMUP_LABELS:
            return []
        p.rolling.update(loss)
        p.window.update(loss)
        if (p.labels - WARMUP_LABELS) % ROLLING_LABELS == 0:  # a window is complete: a quiet one joins the baseline
            if not p.open and p.low_checks == 0:
                p.windows.update(p.window.mean.get())
                p.losses += p.window
            p.window = stats.Var()
        if p.windows.obj.n < FIRST_TEST_WINDOWS or p.labels % PERFORMANCE_EVERY:
            return []
        drop = self._drop(p)
        low = drop.lower > 0
        p.low_checks, p.ok_checks = (p.low_checks + 1, 0) if low else (0, p.ok_checks + 1)
        evidence = drop.evidence(p.regression, self.performance_z)
        severity = "critical" if drop.lower >= drop.critical else "warning"
        if not p.open and p.low_checks >= 2:
            p.open, p.severity = True, severity
            return [self._alert("performance_drop", subject, "FIRING", drop.now, drop.limit, prediction, evidence,
                                severity)]
        if p.open and low and severity == "critical" and p.severity != "critical":  # the drop became critical
            p.severity = severity
            return [self._alert("performance_drop", subject, "FIRING", drop.now, drop.limit, prediction, evidence,
                                severity)]
        if p.open and p.ok_checks >= 3:
            p.open = False
            return [self._alert("performance_drop", subject, "RESOLVED", drop.now, drop.limit, prediction, evidence,
                                p.severity)]
        return []

    def _drop(self, p: Performance) -> Drop:
        """How far the recent loss is above the baseline's, with the test's confidence bounds."""
        base, recent, windows = p.windows.obj.mean.get(), p.rolling.obj.mean.get(), int(p.windows.obj.n)
        # Variances merged from windows can come out a hair below zero (a model that never misses): none is.
        se = math.sqrt(max(0.0, p.losses.get()) / ROLLING_LABELS * (1 + 1 / windows))  # per-label noise
        if windows >= SPREAD_WINDOWS:  # the model's own wander between windows
            se = max(se, math.sqrt(max(0.0, p.windows.get()) * (1 + 1 / windows)))
        if not p.regression:  # a miss rate moves by one label's share at least: a smaller rise is no evidence
            se = max(se, 1 / ROLLING_LABELS)
        rise = recent - base
        critical = CRITICAL_ERROR_RISE * base if p.regression else CRITICAL_ACCURACY_DROP
        # the statistic people read: accuracy (1 - miss rate), or the mean absolute error
        now, limit = (recent, base) if p.regression else (1.0 - recent, 1.0 - base)
        return Drop(base, recent, rise, rise - self.performance_z * se, rise + self.performance_z * se, critical,
                    now, limit)

    # --- alerts -------------------------------------------------------------------------

    def _distribution_alert(self, kind: str, subject: str, t: Transition,
                            record: FeatureVector | Prediction) -> Alert:
        c = t.comparison
        fast = c.test.startswith("quantile")
        paired = kind == "prediction_drift" and self.rescore is not None
        evidence = {
            "test": c.test, "p_value": f"{c.p_value:.3g}", "psi": f"{c.psi:.4f}",
            "fast_lane_shift": str(c.fast).lower(),
            "windows": (f"reference: {self.settings.drift_reference_events} inputs, each re-scored by the version "
                        f"serving at that moment; live: the last {self.settings.drift_window} served scores"
                        if paired else f"reference: first {self.settings.drift_reference_events} values; "
                                       f"live: last {self.settings.drift_window}"),
            "compared_with": ("reference inputs scored by the same model now: the inputs moved, not the model"
                              if paired else "past scores: a model that learned or changed moves them too")
            if kind == "prediction_drift" else "reference values",
            "moved_most": ", ".join(f"{m.feature} (psi {m.psi:.2f})" for m in t.moved) or "-",
        }
        if t.rebaselined:
            evidence["rebaselined"] = ("the recent inputs are the new reference" if paired
                                       else "the live window is the new reference")
        evidence.update(self._estimated_effect(record))
        settings = self.settings
        if fast:  # the fast lane's finding: its statistic is the z of the mean quantile
            evidence["quantile_z"] = f"{c.statistic:+.2f}"
            return self._alert(kind, subject, t.status, c.statistic, c.threshold, record, evidence)
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
               threshold: float | None, record: FeatureVector | Prediction, evidence: dict[str, str],
               severity: str = "warning") -> Alert:
        self.alerts_raised[(kind, status)] = self.alerts_raised.get((kind, status), 0) + 1
        evidence = {**evidence, **self._rank(kind, subject, status, evidence)}
        return {
            "alert_id": str(uuid.uuid4()), "kind": kind,
            "severity": severity,
            "subject": subject, "status": status, "statistic": statistic, "threshold": threshold,
            "evidence": {**evidence, "event_id": record["event_id"], "event_time": str(record["event_time"])},
            "runbook": RUNBOOKS[kind], "detected_at": now_ms(),
        }

    def _rank(self, kind: str, subject: str, status: str, evidence: dict[str, str]) -> dict[str, str]:
        """The alert's impact on served quality, and its rank among the open episodes by impact."""
        value = impact(evidence)
        if status == "RESOLVED" or value is None:
            self.impacts.pop((kind, subject), None)
        else:
            self.impacts[(kind, subject)] = value
        if value is None:
            return {}
        if status == "RESOLVED":
            return {"impact": f"{value:+.4f}"}
        rank = 1 + sum(other > value for other in self.impacts.values())
        return {"impact": f"{value:+.4f}", "impact_rank": f"{rank} of {len(self.impacts)} open with a known impact"}

    def active(self) -> dict[tuple[str, str], bool]:
        """Every episode the monitor knows, open or not, for the drift gauges."""
        out = {("data_drift", name): open_ for name, open_ in self.data.episodes.active().items()}
        for model, watch in self.scores.items():
            out[("prediction_drift", f"{model}:score")] = watch.episodes.active().get("score", False)
        out.update({("concept_drift", s): e.open for s, e in self.concept.items()})
        out.update({("performance_drop", s): p.open for s, p in self.performance.items()})
        return out
