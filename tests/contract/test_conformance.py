"""One conformance suite, run over every stage, every model factory, every drift detector and every router.

Each kind has one contract, and everything of that kind must keep it:

* a stage takes any batch without raising: an empty one, garbage bytes, a
  record written with another topic's schema, an oversized record, the same
  record twice; what it cannot use goes to the dead-letter topic with its bytes
  untouched and a reason; everything else it writes decodes with its topic's
  schema;
* a model factory builds a fresh river classifier from its spec alone, learns
  and predicts one event at a time, behaves the same every time it is built,
  and saves as plain state (``weir.state.pickling``);
* a drift detector stays silent on a stationary stream, fires once when its
  stream shifts, and its alerts fit the alert schema;
* a router scores with the champion first, serves exactly one of the versions
  that score, is sticky per entity, and never serves a shadow.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.features import FeaturesStage
from streams.learn.stage import LearnStage
from streams.monitor.detectors import DriftMonitor
from streams.monitor.stage import MonitorStage
from streams.runtime.stage import Stage
from streams.serve.stage import ServeStage
from streams.validate.stage import ValidateStage
from tests.support import MADE_UP_SOURCES_RULES
from weir.clock import now_ms
from weir.contract.deadletter import Origin, Rejection, dead_letter_headers, read_headers
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert, FeatureVector, Feedback, Label, Prediction, RawEvent, ValidEvent
from weir.contract.serde import AvroSerde, SchemaCatalog, topic_serde
from weir.contract.topics import (
    ALERTS,
    CONTRACT,
    EVENTS_DLQ,
    EVENTS_RAW,
    EVENTS_VALID,
    FEATURES,
    FEEDBACK,
    FEEDBACK_LATE,
    PREDICTIONS,
    ContractTopic,
)
from weir.errors import ConfigError
from weir.registry.factories import FACTORIES, REGRESSORS, Model, as_classifier, build_model
from weir.registry.records import routing_record, version_record
from weir.registry.routing import Basic, Canary, Router, Shadow, router_of
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state import pickling
from weir.state.join import PendingJoin

SETTINGS = Settings(topic_prefix="c.", app_id="conformance", rules_file=MADE_UP_SOURCES_RULES)
OVERSIZED = 2_000_000  # twice the broker's default message limit
DEAD_LETTER_TOPICS = {SETTINGS.topic(EVENTS_DLQ.name), SETTINGS.topic(FEEDBACK_LATE.name)}


# --- stages ------------------------------------------------------------------------------------------------------


def _registry() -> ModelRegistry:
    registry = ModelRegistry(SETTINGS.model_name)
    registry.apply(version_record(SETTINGS.model_name, "v1", "logistic_regression", {}))
    registry.apply(version_record(SETTINGS.model_name, "v2", "hoeffding_tree", {}))
    registry.apply(routing_record(SETTINGS.model_name, "shadow", "v1", ["v2"]))
    return registry


def _learn(catalog: SchemaCatalog, state_dir: Path) -> Stage:
    stage = LearnStage(SETTINGS.with_overrides(state_dir=state_dir), catalog, _registry(), CollectorRegistry())
    stage.restore()
    return stage


STAGES: dict[str, Callable[[SchemaCatalog, Path], Stage]] = {
    "validate": lambda catalog, _: ValidateStage(SETTINGS, catalog, CollectorRegistry()),
    "features": lambda catalog, _: FeaturesStage(SETTINGS, catalog),
    "serve": lambda catalog, _: ServeStage(SETTINGS, catalog, _registry(), CollectorRegistry()),
    "learn": _learn,
    "monitor": lambda catalog, _: MonitorStage(SETTINGS, catalog, CollectorRegistry()),
}


def _raw(i: int) -> RawEvent:
    return {"event_id": f"e{i}", "entity_id": f"c{i % 7}", "event_time": now_ms(), "source": "conformance",
            "attributes": {"x": float(i), "plan": "pro" if i % 2 else "basic", "flag": i % 3 == 0, "gone": None}}


def _valid(i: int) -> ValidEvent:
    raw = _raw(i)
    return {"event_id": raw["event_id"], "entity_id": raw["entity_id"], "event_time": raw["event_time"],
            "source": raw["source"], "attributes": raw["attributes"], "validated_at": now_ms()}


def _vector(i: int) -> FeatureVector:
    return {"event_id": f"e{i}", "entity_id": f"c{i % 7}", "event_time": 1_000 + i,
            "features": {"x": float(i), "plan=pro": 1.0}, "feature_set_version": "fs1"}


def _prediction(i: int) -> Prediction:
    return {"event_id": f"e{i}", "entity_id": f"c{i % 7}", "event_time": 1_000 + i, "model_name": SETTINGS.model_name,
            "model_version": "v1", "role": "champion", "served": True, "score": 0.4, "predicted_label": False,
            "latency_ms": 0.1, "predicted_at": 1_001 + i, "error": None, "confidence": 0.6}


def _feedback(i: int) -> Feedback:
    return {"event_id": f"e{i}", "entity_id": f"c{i % 7}", "label": i % 2 == 0, "label_time": 2_000 + i}


VALID: dict[str, Callable[[int], Any]] = {
    EVENTS_RAW.name: _raw, EVENTS_VALID.name: _valid, FEATURES.name: _vector, PREDICTIONS.name: _prediction,
    FEEDBACK.name: _feedback,
}


@dataclass
class Harness:
    """A stage under test, and records for each of its input topics."""

    stage: Stage
    catalog: SchemaCatalog
    offsets: Iterator[int]

    def record(self, topic: str, value: bytes | None, key: bytes = b"c1",
               headers: Sequence[tuple[str, bytes | None]] = ()) -> InRecord:
        return InRecord(topic, 0, next(self.offsets), now_ms(), key, value, list(headers))

    @property
    def decoded_inputs(self) -> list[str]:
        """The inputs whose records the stage decodes, and dead-letters when it cannot: a dead letter it reads
        (``events.dlq``) is someone else's bytes, never dead-lettered again."""
        return [t for t in self.stage.inputs if t not in DEAD_LETTER_TOPICS]

    def contract_topic(self, physical: str) -> ContractTopic[Any]:
        return next(t for t in CONTRACT if SETTINGS.topic(t.name) == physical)

    def serde(self, physical: str) -> AvroSerde[Any]:
        return topic_serde(self.catalog, SETTINGS, self.contract_topic(physical))

    def valid(self, physical: str, i: int) -> InRecord:
        if physical in DEAD_LETTER_TOPICS:  # validation's dead letter of a raw event
            raw = self.serde(SETTINGS.topic(EVENTS_RAW.name)).encode(_raw(i))
            return self.record(physical, raw, headers=dead_letter_headers(
                Rejection("out-of-range", "validate", "x is out of range"),
                Origin(SETTINGS.topic(EVENTS_RAW.name), 0, i, now_ms())))
        record = VALID[self.contract_topic(physical).name](i)
        return self.record(physical, self.serde(physical).encode(record), key=record["entity_id"].encode())

    def check_outputs(self, out: list[OutRecord], batch: list[InRecord]) -> None:
        """Every output goes to a topic the stage declares; dead letters keep their input's bytes and say why;
        everything else decodes with its topic's schema."""
        inputs = {r.value for r in batch}
        for o in out:
            assert o.topic in self.stage.outputs, f"{self.stage.name} wrote to {o.topic}, not one of its outputs"
            if o.topic in DEAD_LETTER_TOPICS:
                h = read_headers(o.headers)
                if h.get("value.dropped") == "true":  # too large for a message: its digest names the input
                    assert h["original.sha256"] in {hashlib.sha256(v or b"").hexdigest() for v in inputs}
                else:
                    assert o.value in inputs, "a dead letter keeps the bytes it was read with"
                assert h.get("reason"), "a dead letter says why"
            else:
                self.serde(o.topic).decode(o.value)


@pytest.fixture(params=sorted(STAGES))
def harness(request: pytest.FixtureRequest, catalog: SchemaCatalog, tmp_path: Path) -> Iterator[Harness]:
    stage = STAGES[request.param](catalog, tmp_path)
    yield Harness(stage, catalog, iter(range(10**9)))
    close = getattr(stage, "close", None)
    if close is not None:
        close()


def _dead_letters(out: list[OutRecord]) -> list[OutRecord]:
    return [o for o in out if o.topic in DEAD_LETTER_TOPICS]


def _counts_only(harness: Harness) -> Counter[str] | None:
    """The rejection counts of a stage that leaves dead letters to another stage reading the same topics (the
    monitor: learn dead-letters them), so one bad record makes one dead letter; None for a stage that writes
    them."""
    counted = getattr(harness.stage, "rejected", None)
    return counted if isinstance(counted, Counter) else None


def _rejected(harness: Harness, batch: list[InRecord]) -> list[tuple[str, OutRecord | None]]:
    """Process ``batch``; the reason for each record rejected, with its dead letter if the stage writes them."""
    counted = _counts_only(harness)
    before = Counter(counted) if counted is not None else Counter[str]()
    out = harness.stage.process(batch)
    harness.check_outputs(out, batch)
    if counted is None:
        return [(read_headers(d.headers)["reason"], d) for d in _dead_letters(out)]
    assert _dead_letters(out) == [], f"{harness.stage.name} leaves dead letters to the learn stage"
    return [(reason, None) for reason in (counted - before).elements()]


def test_a_stage_takes_an_empty_batch(harness: Harness) -> None:
    out = harness.stage.process([])
    harness.check_outputs(out, [])
    assert _dead_letters(out) == []


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"not avro at all", b"\x00\x00\x00\x00\x01" + bytes(range(40))])
def test_a_stage_dead_letters_garbage_on_every_input(harness: Harness, garbage: bytes) -> None:
    for topic in harness.decoded_inputs:
        [(_, dead)] = _rejected(harness, [harness.record(topic, garbage)])
        assert dead is None or dead.value == garbage, f"{harness.stage.name} on {topic}"


def test_a_stage_never_dead_letters_a_dead_letter_it_reads(harness: Harness) -> None:
    for topic in set(harness.stage.inputs) & DEAD_LETTER_TOPICS:
        assert _rejected(harness, [harness.record(topic, b"\x00garbage"), harness.valid(topic, 1)]) == []


def test_a_stage_dead_letters_a_record_of_another_topics_schema(harness: Harness) -> None:
    alert: Alert = {"alert_id": "a", "kind": "data_drift", "severity": "warning", "subject": "x", "status": "FIRING",
                    "statistic": 1.0, "threshold": 0.1, "evidence": {}, "runbook": None, "detected_at": 1}
    foreign = topic_serde(harness.catalog, SETTINGS, ALERTS).encode(alert)
    for topic in harness.decoded_inputs:
        [(reason, _)] = _rejected(harness, [harness.record(topic, foreign)])
        assert reason == "undecodable-payload"


def test_a_stage_dead_letters_an_oversized_record(harness: Harness) -> None:
    for topic in harness.decoded_inputs:
        huge = (harness.valid(topic, 1).value or b"") + b"\x00" * OVERSIZED
        [(_, dead)] = _rejected(harness, [harness.record(topic, huge)])
        if dead is None:
            continue  # counted only: the learn stage writes its dead letter
        h = read_headers(dead.headers)  # too large to carry its value and still fit in a Kafka message
        assert dead.value == b"" and h["value.dropped"] == "true" and h["original.bytes"] == str(len(huge))
        assert sum(len(k) + len(v or b"") for k, v in dead.headers or []) < 10_000


def test_a_stage_takes_the_same_records_twice(harness: Harness) -> None:
    batch = [harness.valid(topic, i) for i in range(20) for topic in harness.stage.inputs]
    first = harness.stage.process(batch)
    again = harness.stage.process(batch)
    harness.check_outputs(first + again, batch)
    assert _dead_letters(first) == [], [read_headers(d.headers) for d in _dead_letters(first)]


def test_a_stage_takes_a_mixed_batch_without_raising(harness: Harness) -> None:
    rng = random.Random(3)
    batch = [harness.valid(topic, i) for i in range(50) for topic in harness.stage.inputs]
    batch += [harness.record(topic, bytes(rng.randrange(256) for _ in range(rng.randrange(60))))
              for topic in harness.stage.inputs for _ in range(30)]
    rng.shuffle(batch)
    out = harness.stage.process(batch) + harness.stage.tick()
    harness.check_outputs(out, batch)


# --- model factories ---------------------------------------------------------------------------------------------


def _events(factory: str, n: int, seed: int = 7) -> list[tuple[dict[str, float], Label]]:
    """Events the factory's kind of model can learn: a class (bool) for a classifier, a number for a regressor."""
    rng = random.Random(seed)
    out: list[tuple[dict[str, float], Label]] = []
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), f"plan={rng.choice('xyz')}": 1.0}
        target = x["a"] + 0.5 * x["b"]
        out.append((x, 3.0 * target + rng.gauss(0, 0.1) if factory in REGRESSORS else target > 0))
    return out


def _trained(factory: str, events: list[tuple[dict[str, float], Label]]) -> Model:
    model = build_model(factory, {})
    for x, y in events:
        model.learn_one(x, y)
    return model


def _answer(model: Model, x: dict[str, float]) -> object:
    """What the model says of ``x``: its class probabilities, or a regressor's number."""
    classifier = as_classifier(model)
    return classifier.predict_proba_one(x) if classifier is not None else model.predict_one(x)


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_a_factory_builds_a_model_that_predicts_before_and_after_learning(factory: str) -> None:
    model = build_model(factory, {})
    classifier = as_classifier(model)
    assert (classifier is None) == (factory in REGRESSORS)
    _answer(model, {"a": 1.0})  # a fresh model answers (an empty dict, or 0) rather than raising
    events = _events(factory, 2_000)
    for x, y in events:
        model.learn_one(x, y)
    probe = _events(factory, 500, seed=8)
    if classifier is None:
        error = sum(abs(model.predict_one(x) - float(y)) for x, y in probe) / len(probe)
        guess = sum(abs(float(y)) for _, y in probe) / len(probe)  # always predicting 0
        assert error < guess / 3, f"{factory} learned nothing: mean error {error:.3f} against {guess:.3f}"
        return
    after = classifier.predict_proba_one(events[0][0])
    assert set(after) <= {True, False} and math.isclose(sum(after.values()), 1.0, abs_tol=1e-6)
    correct = sum(max(p, key=p.__getitem__) == y for x, y in probe if (p := classifier.predict_proba_one(x)))
    assert correct > 400, f"{factory} learned nothing: {correct}/500"


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_a_factory_gives_the_same_model_every_time(factory: str) -> None:
    events = _events(factory, 1_000)
    one, two = _trained(factory, events), _trained(factory, events)
    probe = _events(factory, 50, seed=9)
    assert [_answer(one, x) for x, _ in probe] == [_answer(two, x) for x, _ in probe]


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_a_model_saves_as_plain_state_and_comes_back_the_same(factory: str) -> None:
    model = _trained(factory, _events(factory, 1_000))
    restored = pickling.loads(pickling.dumps(model))
    probe = _events(factory, 50, seed=9)
    assert [_answer(restored, x) for x, _ in probe] == [_answer(model, x) for x, _ in probe]


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_a_factory_refuses_parameters_it_does_not_take(factory: str) -> None:
    with pytest.raises(ConfigError):
        build_model(factory, {"no_such_parameter": "1"})


# --- drift detectors ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A stream for one detector: what it sees before the shift, and after."""

    kind: str
    before: Callable[[random.Random, int], tuple[FeatureVector, Prediction, Feedback]]
    after: Callable[[random.Random, int], tuple[FeatureVector, Prediction, Feedback]]


def _event(i: int, x: float, score: float, predicted: bool, label: bool) -> tuple[FeatureVector, Prediction, Feedback]:
    vector: FeatureVector = {"event_id": f"e{i}", "entity_id": f"c{i % 50}", "event_time": i,
                             "features": {"x": x}, "feature_set_version": "fs1"}
    prediction: Prediction = {"event_id": f"e{i}", "entity_id": f"c{i % 50}", "event_time": i, "model_name": "m",
                              "model_version": "v1", "role": "champion", "served": True, "score": score,
                              "predicted_label": predicted, "latency_ms": 0.1, "predicted_at": i, "error": None,
                              "confidence": max(score, 1 - score)}
    return vector, prediction, {"event_id": f"e{i}", "entity_id": f"c{i % 50}", "label": label, "label_time": i}


def _steady(rng: random.Random, i: int) -> tuple[FeatureVector, Prediction, Feedback]:
    """Inputs N(0, 1), scores Beta(2, 6), and a model right 90% of the time."""
    predicted = rng.random() < 0.5
    right = rng.random() < 0.9
    return _event(i, rng.gauss(0, 1), rng.betavariate(2, 6), predicted, predicted if right else not predicted)


def _inputs_moved(rng: random.Random, i: int) -> tuple[FeatureVector, Prediction, Feedback]:
    vector, prediction, feedback = _steady(rng, i)
    vector["features"]["x"] += 1.5
    return vector, prediction, feedback


def _scores_moved(rng: random.Random, i: int) -> tuple[FeatureVector, Prediction, Feedback]:
    vector, prediction, feedback = _steady(rng, i)
    prediction["score"] = rng.betavariate(6, 2)
    return vector, prediction, feedback


def _model_wrong(rng: random.Random, i: int) -> tuple[FeatureVector, Prediction, Feedback]:
    predicted = rng.random() < 0.5
    right = rng.random() < 0.5
    return _event(i, rng.gauss(0, 1), rng.betavariate(2, 6), predicted, predicted if right else not predicted)


SCENARIOS = [Scenario("data_drift", _steady, _inputs_moved), Scenario("prediction_drift", _steady, _scores_moved),
             Scenario("concept_drift", _steady, _model_wrong), Scenario("performance_drop", _steady, _model_wrong)]
STEADY, SHIFTED = 12_000, 8_000


def _run(scenario: Scenario, seed: int) -> list[tuple[int, Alert]]:
    rng = random.Random(seed)
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))
    alerts: list[tuple[int, Alert]] = []
    for i in range(STEADY + SHIFTED):
        vector, prediction, feedback = (scenario.before if i < STEADY else scenario.after)(rng, i)
        raised = monitor.on_features(vector) + monitor.on_prediction(prediction) + monitor.on_feedback(feedback)
        alerts += [(i, a) for a in raised if a["kind"] == scenario.kind]
    return alerts


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.kind)
def test_a_detector_is_silent_on_a_steady_stream_and_fires_once_after_a_shift(scenario: Scenario,
                                                                              catalog: SchemaCatalog) -> None:
    alerts = _run(scenario, seed=11)
    firing = [(i, a) for i, a in alerts if a["status"] == "FIRING"]
    assert all(i >= STEADY for i, _ in firing), f"{scenario.kind} fired on the steady stream: {firing[:3]}"
    assert len({a["subject"] for _, a in firing}) == len(firing) >= 1, f"{scenario.kind}: {len(firing)} firings"
    serde = topic_serde(catalog, SETTINGS, ALERTS)
    for _, alert in alerts:
        assert serde.decode(serde.encode(alert)) == alert
    thresholds = {"data_drift": SETTINGS.drift_min_psi, "prediction_drift": SETTINGS.prediction_drift_min_psi}
    for _, a in alerts:  # the alert names the threshold its own detector used
        if a["evidence"].get("test", "").startswith("quantile z"):  # the fast lane: the |z| it had to reach
            assert a["threshold"] is not None and abs(a["statistic"] or 0.0) >= a["threshold"] > 3
        elif scenario.kind in thresholds:
            assert a["threshold"] == thresholds[scenario.kind]


# --- routers -----------------------------------------------------------------------------------------------------


ROUTERS: dict[str, Router] = {
    "basic": Basic("v1"),
    "shadow": Shadow("v1", ("v2", "v3")),
    "canary": Canary("m", "v1", "v2", 10.0),
    "canary with shadows": Canary("m", "v1", "v2", 10.0, ("v3",)),
}
ENTITIES = [f"entity-{i}" for i in range(20_000)]


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_a_router_scores_with_the_champion_first_and_serves_one_that_scores(name: str) -> None:
    router = ROUTERS[name]
    assert router.scoring()[0] == router.champion and router.role_of(router.champion) == "champion"
    assert len(set(router.scoring())) == len(router.scoring())
    served = {router.serving(e) for e in ENTITIES}
    assert served <= set(router.scoring())
    assert all(router.role_of(v) != "shadow" for v in served), "a shadow served"
    assert all(v in router.describe() for v in router.scoring())


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_a_router_is_sticky_and_rebuilt_from_its_record_the_same(name: str) -> None:
    router = ROUTERS[name]
    challengers = [v for v in router.scoring() if v != router.champion]
    record = routing_record("m", router.mode, router.champion, challengers,
                            router.percent if isinstance(router, Canary) else 0.0)
    assert record["routing"] is not None
    rebuilt = router_of("m", record["routing"])
    assert rebuilt == router
    assert [router.serving(e) for e in ENTITIES[:2_000]] == [rebuilt.serving(e) for e in ENTITIES[:2_000]]


def test_a_canary_takes_its_share_and_a_larger_share_only_adds_entities() -> None:
    small, large = Canary("m", "v1", "v2", 10.0), Canary("m", "v1", "v2", 25.0)
    in_small = {e for e in ENTITIES if small.serving(e) == "v2"}
    in_large = {e for e in ENTITIES if large.serving(e) == "v2"}
    assert abs(len(in_small) / len(ENTITIES) - 0.10) < 0.01 and abs(len(in_large) / len(ENTITIES) - 0.25) < 0.01
    assert in_small <= in_large
