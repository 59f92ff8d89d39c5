"""Drift statistics: PSI and tests on bounded windows, Holm's correction, and one alert per episode."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from river.datasets import synth

from streams.features import feature_vector
from streams.monitor.detectors import DriftMonitor
from tests import support
from weir.contract.features import attributes_of
from weir.contract.records import Prediction
from weir.registry.factories import Model, build_model, score_one
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


# --- prediction drift beside the models: served scores against reference inputs re-scored now ------------------


def score_alerts(events: Iterable[tuple[dict[str, float], bool]], models: dict[str, Model],
                 serving: Callable[[int], str], *, paired: bool) -> list[tuple[int, str]]:
    """Prediction-drift transitions over a stream the serving version scores and every version then learns;
    ``paired``: the monitor scores reference inputs with the models (as the back does), else past scores only."""
    def rescore(version: str, x: dict[str, Any]) -> float | None:
        return score_one(models[version], x)

    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False),
                           rescore=rescore if paired else None)
    out: list[tuple[int, str]] = []
    for i, (x, y) in enumerate(events):
        vector = feature_vector({"event_id": f"e{i}", "entity_id": "c", "event_time": i, "source": "t",
                                 "attributes": dict(x)})
        monitor.on_features(vector)
        version = serving(i)
        score = score_one(models[version], vector["features"])
        if score is not None:
            prediction = support.prediction(f"e{i}", event_time=i, model_name="m", version=version, served=True,
                                            score=score, error=None, role="champion", predicted_label=score > 0.5)
            out += [(i, a["status"]) for a in monitor.on_served(prediction) if a["kind"] == "prediction_drift"]
        for model in models.values():
            model.learn_one(vector["features"], y)
    return out


def sine(n: int, seed: int, *, shift_at: int | None = None) -> Iterator[tuple[dict[str, float], bool]]:
    """river's Sine: two inputs in [0, 1], the class the side of a curve (no noise: a model sharpens for ever);
    from ``shift_at`` on, the first input moves by +0.5 (moving both would leave a linear model's scores where
    they were: its boundary runs along the diagonal)."""
    for i, (x, y) in enumerate(synth.Sine(seed=seed).take(n)):
        moved = shift_at is not None and i >= shift_at
        yield {f"x{k}": float(v) + (0.5 if moved and k == 0 else 0.0) for k, v in x.items()}, bool(y)


def test_a_tree_that_learns_raises_no_prediction_drift_beside_its_model() -> None:
    """A Hoeffding tree on a stationary stream reshapes its scores at each split: against past scores that is
    drift, again and again; against reference inputs scored by the tree as it is now, nothing moved."""
    for seed in (1, 2):
        past = score_alerts(sine(24_000, seed), {"v1": build_model("hoeffding_tree", {})}, lambda i: "v1",
                            paired=False)
        assert ("FIRING" in {status for _, status in past}), past  # why the models are needed
        assert score_alerts(sine(24_000, seed), {"v1": build_model("hoeffding_tree", {})}, lambda i: "v1",
                            paired=True) == []


def test_a_new_version_serving_is_not_prediction_drift() -> None:
    """A promotion: the tree serves instead of the logistic regression from event 12,000 on, the inputs as
    before. The scores change their shape (a tree's are a few leaf values), which a past-score reference calls
    drift; paired with the same version's scores of reference inputs, it is none."""
    def models() -> dict[str, Model]:
        return {"v1": build_model("logistic_regression", {}), "v2": build_model("hoeffding_tree", {})}

    def promoted(i: int) -> str:
        return "v1" if i < 12_000 else "v2"

    past = [i for i, status in score_alerts(sine(20_000, 3), models(), promoted, paired=False) if status == "FIRING"]
    assert past and 12_000 < past[0] <= 14_000, past
    assert score_alerts(sine(20_000, 3), models(), promoted, paired=True) == []


def test_inputs_that_move_the_scores_are_prediction_drift_beside_the_models() -> None:
    """An input moves by half its range at event 10,000, and the model keeps learning: the served scores no
    longer look like the reference inputs' scores, found within 2,000 events, once."""
    alerts = score_alerts(sine(16_000, 4, shift_at=10_000), {"v1": build_model("logistic_regression", {})},
                          lambda i: "v1", paired=True)
    firing = [i for i, status in alerts if status == "FIRING"]
    assert len(firing) == 1 and 10_000 < firing[0] <= 12_000, alerts


def test_reference_inputs_are_those_of_the_scored_events_whatever_the_topics_pace() -> None:
    """A back catching up reads the features topic thousands of events ahead of the predictions: the reference
    inputs must be the inputs of the events whose scores came, not the latest features. Here every feature
    vector comes first (the second half moved), then the scores of the first half only: nothing moved."""
    model = build_model("logistic_regression", {})
    events = list(sine(12_000, 5, shift_at=6_000))
    for x, y in events[:3_000]:
        model.learn_one(x, y)
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False),
                           rescore=lambda _version, x: score_one(model, x))
    vectors = [feature_vector({"event_id": f"e{i}", "entity_id": "c", "event_time": i, "source": "t",
                               "attributes": dict(x)}) for i, (x, _) in enumerate(events)]
    for vector in vectors:
        monitor.on_features(vector)
    alerts = []
    for i, vector in enumerate(vectors[:6_000]):
        score = score_one(model, vector["features"])
        assert score is not None
        alerts += monitor.on_served(support.prediction(f"e{i}", event_time=i, model_name="m", version="v1",
                                                       served=True, score=score, error=None, role="champion",
                                                       predicted_label=score > 0.5))
    assert [a for a in alerts if a["kind"] == "prediction_drift"] == []
