"""One false-alarm budget: levels derived from it, the data-drift fast lane, and performance drops with intervals."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from streams.features import feature_vector
from streams.monitor.budget import level_per_test, one_sided_z
from streams.monitor.detectors import DriftMonitor, ranked
from streams.monitor.metrics import MonitorMetrics
from tests import support
from weir.contract.records import Alert, AttributeValue, FeatureVector
from weir.settings import Settings
from weir.state.join import PendingJoin
from weir.stats.distribution import FeatureDistribution
from weir.stats.shift import EVERY, SCALES, QuantileShift


def test_a_level_is_the_budget_spread_over_the_tests_of_100k_events() -> None:
    assert level_per_test(1.0, 100) == pytest.approx(0.001)
    assert level_per_test(1.0, 16, family=10) == pytest.approx(1.6e-5)
    assert level_per_test(2.0, 16, family=10) == pytest.approx(2 * level_per_test(1.0, 16, family=10))
    assert one_sided_z(0.001) == pytest.approx(3.09, abs=0.01)


def _false_findings(draw: random.Random, value: str, n: int, level: float) -> int:
    def sample() -> float:
        return draw.random() if value == "uniform" else draw.lognormvariate(0, 2)

    reference = sorted(sample() for _ in range(2_000))
    d = FeatureDistribution("x", reference_size=2_000, window=1_000, fast_level=level)
    for v in reference:
        d.add(v)
    assert d.fast is not None
    found = 0
    for _ in range(n):
        d.add(sample())
        found += d.take_shift() is not None
    return found


@pytest.mark.parametrize("value", ["uniform", "lognormal"])
def test_the_fast_lane_holds_its_level_on_stationary_values_whatever_their_tails(value: str) -> None:
    """A budget of 20 findings per 100,000 values (a level large enough to count): stationary values stay within
    it, heavy tails included, as the test runs on quantiles, not on raw values."""
    level = level_per_test(20.0, EVERY, family=len(SCALES))
    assert _false_findings(random.Random(7), value, 100_000, level) <= 20


def test_the_fast_lane_finds_a_scaled_feature_within_128_values() -> None:
    draw = random.Random(8)
    shift = QuantileShift([(i + 0.5) / 2_000 for i in range(2_000)], level_per_test(1.0, EVERY, len(SCALES)))
    found = [i for i in range(400) if shift.add(min(1.0, 1.5 * draw.random())) is not None]
    assert found and SCALES[0] // 2 <= found[0] + 1 <= 128, found


def test_flags_and_small_counts_are_left_to_the_slow_lane() -> None:
    d = FeatureDistribution("flag", reference_size=500, window=500, fast_level=1e-5)
    for i in range(500):
        d.add(float(i % 2))
    assert d.reference and d.fast is None


def _vector(i: int, x: dict[str, AttributeValue]) -> FeatureVector:
    return feature_vector({"event_id": f"e{i}", "entity_id": "c1", "event_time": i, "source": "t", "attributes": x})


def test_a_data_drift_is_named_within_tens_of_events_by_the_fast_lane() -> None:
    draw = random.Random(9)
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))
    alerts: list[tuple[int, Alert]] = []
    for i in range(8_000):
        x: dict[str, AttributeValue] = {f"x{k}": draw.uniform(0, 10) * (1.5 if i >= 6_000 and k == 0 else 1.0)
                                   for k in range(4)}
        alerts += [(i, a) for a in monitor.on_features(_vector(i, x))]
    firing = [(i, a) for i, a in alerts if a["status"] == "FIRING"]
    assert firing and all(i >= 6_000 for i, _ in firing), firing
    at, alert = firing[0]
    assert at - 6_000 < 100 and alert["subject"] == "x0" and alert["evidence"]["test"].startswith("quantile z")
    assert {a["subject"] for _, a in firing} == {"x0"}


def _performance(accuracy: list[float], budget: float = 1.0, seed: int = 10,
                 monitor: DriftMonitor | None = None) -> list[tuple[int, Alert]]:
    """A classifier that predicts true, right with the given accuracy at each label, shown to the monitor."""
    draw = random.Random(seed)
    monitor = monitor or DriftMonitor(Settings(alert_budget=budget),
                                      PendingJoin(window_ms=2**62, needs_features=False))
    raised: list[tuple[int, Alert]] = []
    for i, p in enumerate(accuracy):
        prediction = support.prediction(f"e{i}", event_time=i, model_name="m", version="v1", served=True, score=0.8,
                                        error=None, role="champion", predicted_label=True)
        raised += [(i, a) for a in monitor.on_prediction(prediction)]
        label = draw.random() < p
        raised += [(i, a) for a in monitor.on_feedback({"event_id": f"e{i}", "entity_id": "c1", "label": label,
                                                        "label_time": i})]
    return [(i, a) for i, a in raised if a["kind"] == "performance_drop" and a["status"] == "FIRING"]


def _interval(alert: Alert) -> tuple[float, float]:
    low, high = alert["evidence"]["accuracy_change_interval"].strip("[]").split(", ")
    return float(low), float(high)


def test_a_large_drop_is_critical_its_interval_holds_the_true_change_and_it_ranks_by_impact() -> None:
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))
    firing = _performance([0.8] * 6_000 + [0.6] * 2_000, monitor=monitor)
    assert firing and firing[0][0] >= 6_000
    at, alert = firing[0]
    low, high = _interval(alert)
    assert alert["severity"] == "critical" and low <= -0.2 <= high and high <= -0.05, alert["evidence"]
    evidence = alert["evidence"]
    assert float(evidence["impact"]) == -float(evidence["accuracy_change"]) and evidence["impact_rank"][:5] == "1 of "
    registry = CollectorRegistry()
    MonitorMetrics(registry).publish(monitor)
    assert registry.get_sample_value("weir_alert_impact", {"kind": "performance_drop", "subject": "m:v1"}) == (
        monitor.impacts[("performance_drop", "m:v1")]) > 0.1


def test_alerts_raised_together_come_largest_impact_first() -> None:
    def alert(name: str, impact: str | None) -> Alert:
        evidence = {} if impact is None else {"impact": impact}
        return {"alert_id": name, "kind": "data_drift", "severity": "warning", "subject": name, "status": "FIRING",
                "statistic": None, "threshold": None, "evidence": evidence, "runbook": "", "detected_at": 0}

    order = ranked([alert("small", "+0.0100"), alert("unknown", None), alert("large", "+0.0800"),
                    alert("better", "-0.0200")])
    assert [a["alert_id"] for a in order] == ["large", "small", "better", "unknown"]


def test_a_drop_smaller_than_what_matters_is_a_warning() -> None:
    firing = _performance([0.8] * 6_000 + [0.72] * 6_000)
    assert firing and firing[0][0] >= 6_000
    low, high = _interval(firing[0][1])
    assert firing[0][1]["severity"] == "warning" and low <= -0.08 <= high < 0 and high > -0.05


def test_the_budget_sets_how_often_a_stationary_model_alerts() -> None:
    stationary = [0.8] * 60_000
    assert _performance(stationary, budget=1.0) == []
    lavish = DriftMonitor(Settings(alert_budget=1_000.0), PendingJoin(window_ms=2**62, needs_features=False))
    pages = _performance(stationary, monitor=lavish)
    # thresholds derived from a lavish budget detect often; the detections of one subject close together are
    # one incident, so fewer of them page
    assert lavish.alerts_raised[("performance_drop", "FIRING")] >= 5 and 1 <= len(pages) < 5
