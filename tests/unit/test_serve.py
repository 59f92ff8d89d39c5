"""Serving without a broker: routing, canary stickiness, failure isolation, registry history."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.serve.scorer import Scorer
from streams.serve.stage import ServeStage
from tests.support import FakeClassifier, predictions_of, rejection_of
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord
from weir.contract.records import FeatureVector, Label, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES
from weir.registry.records import record_key, routing_record, version_record
from weir.registry.routing import canary_bucket
from weir.registry.view import CHALLENGER, CHAMPION, REGISTERED, RETIRED, ModelRegistry
from weir.settings import Settings

SETTINGS = Settings(topic_prefix="u.")


def registry(*versions: str, mode: str = "basic", percent: float = 0.0) -> ModelRegistry:
    r = ModelRegistry("m")
    for v in versions:
        r.apply(version_record("m", v, "logistic_regression", {}))
    r.apply(routing_record("m", mode, versions[0], list(versions[1:]), percent))
    return r


def vector(entity: str = "c1", event: str = "e1") -> FeatureVector:
    return {"event_id": event, "entity_id": entity, "event_time": 1, "features": {"x": 1.0},
            "feature_set_version": "fs1"}


class Broken(FakeClassifier):
    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]:
        raise RuntimeError("boom")

    def learn_one(self, x: dict[str, float], y: Label) -> None:
        raise RuntimeError("boom")


class Slow(FakeClassifier):
    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]:
        busy_until = time.perf_counter() + 0.02  # a model that computes for 20 ms
        while time.perf_counter() < busy_until:
            pass
        return {True: 0.9, False: 0.1}

    def learn_one(self, x: dict[str, float], y: Label) -> None:
        pass


def served(records: list[Prediction]) -> list[str]:
    return [r["model_version"] for r in records if r["served"]]


def test_basic_routing_scores_and_serves_the_champion_only() -> None:
    out = predictions_of(Scorer(registry("v1")).score(vector()))
    assert [(r["model_version"], r["role"], r["served"]) for r in out] == [("v1", "champion", True)]
    score = out[0]["score"]
    assert score is not None and 0.0 <= score <= 1.0 and out[0]["error"] is None


@given(st.text(min_size=1, max_size=20))
def test_shadow_versions_score_every_event_and_are_never_served(entity: str) -> None:
    out = predictions_of(Scorer(registry("v1", "v2", "v3", mode="shadow")).score(vector(entity)))
    assert [(r["model_version"], r["role"]) for r in out] == [("v2", "shadow"), ("v3", "shadow"), ("v1", "champion")]
    assert served(out) == ["v1"]


def test_a_canary_serves_its_share_of_entities_and_each_entity_keeps_its_arm() -> None:
    scorer = Scorer(registry("v1", "v2", mode="canary", percent=5.0))
    arms = {f"entity-{i}": served(predictions_of(scorer.score(vector(f"entity-{i}"))))[0] for i in range(20_000)}
    share = sum(arm == "v2" for arm in arms.values()) / len(arms)
    assert 0.045 < share < 0.055
    assert all(served(predictions_of(scorer.score(vector(e, "again"))))[0] == arm
               for e, arm in list(arms.items())[:2_000])


@given(st.text(min_size=1), st.floats(0, 99), st.floats(0, 99))
def test_raising_the_canary_share_never_moves_an_entity_back(entity: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    bucket = canary_bucket("m", entity)
    assert 0.0 <= bucket < 100.0
    assert not (bucket < low and bucket >= high)  # in the canary at low => in it at high


def test_a_failing_challenger_is_recorded_and_never_touches_the_served_prediction() -> None:
    r = registry("v1", "v2", mode="shadow")
    r.versions["v2"].model = Broken()
    out = predictions_of(Scorer(r).score(vector()))
    assert [(x["model_version"], x["served"], x["error"]) for x in out] == [
        ("v2", False, "RuntimeError: boom"), ("v1", True, None)]
    assert out[0]["score"] is None and out[1]["score"] is not None


def test_a_failing_canary_hands_its_entities_to_the_champion() -> None:
    r = registry("v1", "v2", mode="canary", percent=99.9)
    r.versions["v2"].model = Broken()
    entity = next(f"c{i}" for i in range(1000) if canary_bucket("m", f"c{i}") < 99.9)
    assert served(predictions_of(Scorer(r).score(vector(entity)))) == ["v1"]


class Untrained(FakeClassifier):
    """A model that has seen no label yet, as a fresh river Hoeffding tree: it predicts no class."""

    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]:
        return {}

    def learn_one(self, x: dict[str, float], y: Label) -> None:
        pass


def test_a_canary_that_predicts_no_class_yet_hands_its_entities_to_the_champion() -> None:
    r = registry("v1", "v2", mode="canary", percent=99.9)
    r.versions["v2"].model = Untrained()
    entity = next(f"c{i}" for i in range(1000) if canary_bucket("m", f"c{i}") < 99.9)
    out = predictions_of(Scorer(r).score(vector(entity)))
    assert served(out) == ["v1"] and out[-1]["predicted_label"] is not None
    assert out[0]["model_version"] == "v2" and out[0]["error"] == "no answer: the model predicts no class yet"


def test_a_champion_that_predicts_no_class_yet_still_serves() -> None:
    r = registry("v1")
    r.versions["v1"].model = Untrained()
    [out] = predictions_of(Scorer(r).score(vector()))
    assert out["served"] and out["error"] is None and out["predicted_label"] is None


def test_a_failing_champion_dead_letters_the_events_it_should_serve() -> None:
    r = registry("v1", "v2", mode="shadow")
    r.versions["v1"].model = Broken()
    rejection = rejection_of(Scorer(r).score(vector()))
    assert rejection.reason == "champion-failed" and "v1: RuntimeError: boom" in rejection.message


def test_a_challenger_slower_than_its_budget_counts_as_a_timeout() -> None:
    r = registry("v1", "v2", mode="shadow")
    r.versions["v2"].model = Slow()
    out = predictions_of(Scorer(r, timeout_ms=5).score(vector()))
    error = out[0]["error"]
    assert out[0]["model_version"] == "v2" and error is not None and error.startswith("timeout")
    assert served(out) == ["v1"]


def test_a_slow_champion_still_serves_rather_than_dead_letter_the_event() -> None:
    r = registry("v1", "v2", mode="shadow")
    r.versions["v1"].model = Slow()
    out = predictions_of(Scorer(r, timeout_ms=5).score(vector()))
    assert served(out) == ["v1"] and out[-1]["error"] is None and out[-1]["latency_ms"] >= 5


def test_no_routing_dead_letters_through_the_stage(catalog: SchemaCatalog) -> None:
    value = topic_serde(catalog, SETTINGS, FEATURES).encode(vector())
    [dead] = ServeStage(SETTINGS, catalog, ModelRegistry("m")).process(
        [InRecord("u.features", 0, 0, 0, b"c1", value, [])])
    assert dead.topic == "u.events.dlq" and read_headers(dead.headers)["reason"] == "no-champion"


def test_status_and_rollback_target_come_from_the_decision_history() -> None:
    r = registry("v1", "v2", "v3", mode="shadow")  # v2 and v3 shadow v1 ...
    r.apply(routing_record("m", "basic", "v1"))  # ... then stop
    assert [r.status(v) for v in ("v1", "v2", "v3")] == [CHAMPION, RETIRED, RETIRED]
    r.apply(version_record("m", "v4", "logistic_regression", {}))
    assert r.status("v4") == REGISTERED
    r.apply(routing_record("m", "canary", "v1", ["v4"], 10))
    assert r.status("v4") == CHALLENGER and r.previous_champion() is None
    r.apply(routing_record("m", "basic", "v4"))
    assert r.previous_champion() == "v1" and r.status("v1") == RETIRED
    assert [d.mode for d in r.decisions] == ["shadow", "basic", "canary", "basic"]


def test_each_routing_decision_has_its_own_key_and_versions_are_immutable() -> None:
    a, b = routing_record("m", "basic", "v1"), routing_record("m", "basic", "v2")
    b["created_at"] = a["created_at"] + 1
    assert record_key(a) != record_key(b) and record_key(a).startswith("m:routing:")
    r = registry("v1")
    model = r.versions["v1"].model
    r.apply(version_record("m", "v1", "hoeffding_tree", {}))
    assert r.versions["v1"].model is model and r.versions["v1"].factory == "logistic_regression"


def test_serve_metrics_count_per_version(catalog: SchemaCatalog) -> None:
    from prometheus_client import CollectorRegistry

    metrics = CollectorRegistry()
    r = registry("v1", "v2", mode="shadow")
    r.versions["v2"].model = Broken()
    stage = ServeStage(SETTINGS, catalog, r, metrics)
    value = topic_serde(catalog, SETTINGS, FEATURES).encode(vector())
    stage.process([InRecord("u.features", 0, i, 0, b"c1", value, []) for i in range(3)])
    get = metrics.get_sample_value
    assert get("weir_serve_served_total", {"model": "m", "version": "v1"}) == 3
    assert get("weir_serve_errors_total", {"model": "m", "version": "v2", "kind": "exception"}) == 3
    assert get("weir_serve_predictions_total", {"model": "m", "version": "v1", "role": "champion"}) == 3
    assert get("weir_serve_latency_seconds_count", {"model": "m", "version": "v2"}) == 3


def test_an_unknown_routing_mode_is_refused() -> None:
    from weir.errors import ConfigError

    with pytest.raises(ConfigError, match="basic"):
        routing_record("m", "sideways", "v1")
