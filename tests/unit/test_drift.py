"""Drift statistics: PSI and tests on bounded windows, Holm's correction, and one alert per episode."""

from __future__ import annotations

import random
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from streams.monitor.detectors import DriftMonitor
from tests import support
from weir.contract.features import attributes_of
from weir.contract.records import Prediction
from weir.settings import Settings
from weir.state.join import PendingJoin
from weir.stats.distribution import Comparison, FeatureDistribution
from weir.stats.episodes import Episodes, holm


def distribution(values: Iterable[float | str], window: int = 500) -> FeatureDistribution:
    d = FeatureDistribution("x", reference_size=500, window=window)
    for v in values:
        d.add(v)
    return d


def test_same_distribution_has_small_psi_and_a_shift_a_large_one() -> None:
    rng = random.Random(1)
    same = distribution([rng.gauss(0, 1) for _ in range(1_000)])
    shifted = distribution([rng.gauss(0, 1) for _ in range(500)] + [rng.gauss(1.5, 1) for _ in range(500)])
    a, b = same.compare(), shifted.compare()
    assert a.psi < 0.1 and a.p_value > 0.01 and a.test == "ks"
    assert b.psi > 0.5 and b.p_value < 1e-6


def test_categories_use_chi_square_and_count_unseen_ones() -> None:
    rng = random.Random(2)
    d = distribution([rng.choice("ab") for _ in range(500)] + [rng.choice("abcc") for _ in range(500)])
    c = d.compare()
    assert c.test == "chi2" and c.p_value < 1e-6 and d.live_counts[-2] > 0  # "c" is a category never seen


def test_memory_is_bounded_by_the_window() -> None:
    d = distribution(range(100_000), window=300)
    assert len(d.live) == len(d.live_values) == 300 and sum(d.live_counts) == 300


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.floats(0, 1), min_size=1, max_size=12),
       st.floats(0.001, 0.2))
def test_holm_rejects_a_prefix_of_the_sorted_p_values(p_values: dict[str, float], alpha: float) -> None:
    rejected = holm(p_values, alpha)
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    k = len(rejected)
    assert {name for name, _ in ordered[:k]} == rejected
    assert all(p <= alpha / (len(ordered) - i) for i, (_, p) in enumerate(ordered[:k]))


def moved(feature: str = "x") -> Comparison:
    return Comparison(feature, psi=0.5, p_value=1e-9, test="ks", statistic=0.3, fast=False)


def quiet(feature: str = "x") -> Comparison:
    return Comparison(feature, psi=0.01, p_value=0.8, test="ks", statistic=0.01, fast=False)


def test_one_episode_gives_one_firing_and_one_resolution() -> None:
    e = Episodes(open_after=2, close_after=3, rebaseline_after=100)
    script = [moved(), quiet(), moved(), moved(), moved(), quiet(), moved(), quiet(), quiet(), quiet(), quiet()]
    statuses = [t.status for c in script for t in e.update([c])[0]]
    assert statuses == ["FIRING", "RESOLVED"]


def test_a_tiny_effect_never_fires_however_significant() -> None:
    e = Episodes()
    tiny = Comparison("x", psi=0.02, p_value=1e-12, test="ks", statistic=0.05, fast=True)
    assert all(e.update([tiny])[0] == [] for _ in range(20))


def test_a_lasting_shift_is_rebaselined_once() -> None:
    e = Episodes(open_after=1, rebaseline_after=3)
    transitions = [t for _ in range(6) for t in e.update([moved()])[0]]
    assert [(t.status, t.rebaselined) for t in transitions[:2]] == [("FIRING", False), ("RESOLVED", True)]


def test_one_hot_features_become_their_categorical_variables() -> None:
    assert attributes_of({"age": 40.0, "plan=pro": 1.0, "autopay": 1.0}) == {"age": 40.0, "plan": "pro", "autopay": 1.0}


def served(i: int, score: float) -> Prediction:
    return support.prediction(f"e{i}", event_time=i, model_name="m", version="v1", served=True, score=score,
                              error=None, role="champion", predicted_label=score > 0.5)


def prediction_alerts(scores: list[float]) -> list[tuple[int, str]]:
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))
    return [(i, a["status"]) for i, s in enumerate(scores) for a in monitor.on_prediction(served(i, s))
            if a["kind"] == "prediction_drift"]


def test_prediction_drift_fires_on_a_large_shift_of_the_served_scores_once() -> None:
    rng = random.Random(3)
    scores = [rng.betavariate(2, 6) for _ in range(8_000)] + [rng.betavariate(6, 2) for _ in range(4_000)]
    alerts = prediction_alerts(scores)
    assert [status for _, status in alerts][:1] == ["FIRING"] and 8_000 <= alerts[0][0] <= 9_500
    assert sum(status == "FIRING" for _, status in alerts) == 1


def test_prediction_drift_ignores_scores_that_slide_slowly_as_a_model_learns() -> None:
    """Scores that move from Beta(2, 6) to Beta(4, 6) over 30,000 events (PSI well above 0.25 end to end) are a
    model learning, not drift: the reference follows them."""
    rng = random.Random(4)
    scores = [rng.betavariate(2 + 2 * min(1.0, i / 30_000), 6) for i in range(36_000)]
    assert prediction_alerts(scores) == []
