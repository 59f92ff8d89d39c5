"""Stage logic without a broker: batches in, records out, bad input dead-lettered with its reason."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import fastavro
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from producers.synthetic import synthetic_events
from streams.features import FeaturesStage, feature_vector
from streams.learn.learner import Learner
from streams.learn.sequencer import Sequencer
from streams.learn.stage import LearnStage
from streams.monitor.stage import MonitorStage
from streams.serve.metrics import ServeMetrics
from streams.serve.scorer import Scorer
from streams.serve.stage import ServeStage
from streams.validate.stage import ValidateStage
from tests import support
from tests.support import predictions_of, rec
from weir.clock import now_ms
from weir.contract.deadletter import RESENT_HEADER, RESENT_SIGNATURE, read_headers, resend_signature
from weir.contract.features import compute_features
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import AttributeValue, FeatureVector, Label, Prediction, RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_RAW, FEATURES, FEEDBACK, PREDICTIONS
from weir.registry.records import STAGE_COUNTERS, routing_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin

SETTINGS = Settings(topic_prefix="u.", rules_file=support.MADE_UP_SOURCES_RULES)


def raw_event(catalog: SchemaCatalog, *, entity_id: str = "c1", event_time: int | None = None,
              attributes: dict[str, AttributeValue] | None = None) -> bytes:
    event: RawEvent = {"event_id": "e1", "entity_id": entity_id,
                       "event_time": now_ms() if event_time is None else event_time, "source": "t",
                       "attributes": {"x": 1.5, "plan": "pro", "flag": True, "gone": None} if attributes is None
                       else attributes}
    return topic_serde(catalog, SETTINGS, EVENTS_RAW).encode(event)


def registry_with(*versions: str) -> ModelRegistry:
    registry = ModelRegistry("m")
    for v in versions:
        registry.apply(version_record("m", v, "logistic_regression", {}))
    registry.apply(routing_record("m", "basic", versions[0], list(versions[1:])))
    return registry


def test_validate_passes_good_events_on_keyed_by_entity(catalog: SchemaCatalog) -> None:
    stage = ValidateStage(SETTINGS, catalog)
    [out, served] = stage.process([rec("u.events.raw", raw_event(catalog), key=b"whatever")])
    assert out.topic == "u.events.valid" and out.key == b"c1"
    assert (served.topic, served.key, served.partition) == ("u.events.served", b"e1", 0)  # its id, remembered
    assert stage.valid.decode(out.value)["attributes"]["plan"] == "pro"


@pytest.mark.parametrize(
    "value, reason, dimension",
    [
        (b"not avro at all", "bad-wire-format", "accuracy"),
        (b"\x00\x00\x00\x00\x07garbage", "unknown-schema-id", "accuracy"),
        ("truncated", "undecodable-payload", "accuracy"),
        ("nan", "non-finite-value", "accuracy"),
        ("no-entity", "missing-field", "completeness"),
        ("future", "future-event-time", "timeliness"),
    ],
)
def test_validate_dead_letters_bad_input_with_original_bytes_and_reason(
    catalog: SchemaCatalog, value: bytes | str, reason: str, dimension: str
) -> None:
    made: dict[str, Callable[[], bytes]] = {
        "truncated": lambda: raw_event(catalog)[:-4],
        "nan": lambda: raw_event(catalog, attributes={"x": math.nan}),
        "no-entity": lambda: raw_event(catalog, entity_id=""),
        "future": lambda: raw_event(catalog, event_time=now_ms() + 3_600_000),
    }
    data = made[value]() if isinstance(value, str) else value
    [out] = ValidateStage(SETTINGS, catalog).process([rec("u.events.raw", data, offset=41)])
    headers = read_headers(out.headers)
    assert out.topic == "u.events.dlq" and out.value == data and out.key == b"c1"
    assert headers["reason"] == reason and headers["dimension"] == dimension and headers["stage"] == "validate"
    assert (headers["original.topic"], headers["original.offset"]) == ("u.events.raw", "41")


def test_features_encode_numbers_booleans_and_categories() -> None:
    attributes: dict[str, AttributeValue] = {"x": 2, "ok": False, "plan": "pro", "missing": None}
    assert compute_features(attributes) == {"x": 2.0, "ok": 0.0, "plan=pro": 1.0}


def run_loop(catalog: SchemaCatalog, n: int, delay: int) -> tuple[LearnStage, MonitorStage, list[OutRecord]]:
    """Push ``n`` synthetic events through every stage in memory; each label arrives ``delay`` events later."""
    registry = registry_with("v1")
    validate, features = ValidateStage(SETTINGS, catalog), FeaturesStage(SETTINGS, catalog)
    serve, learn = ServeStage(SETTINGS, catalog, registry), LearnStage(SETTINGS, catalog, registry)
    monitor = MonitorStage(SETTINGS, catalog)
    fb = topic_serde(catalog, SETTINGS, FEEDBACK)
    raw = topic_serde(catalog, SETTINGS, EVENTS_RAW)
    start = now_ms() - 3_600_000  # an hour ago, well within the lag tolerance
    events = list(synthetic_events(n, seed=7, event_time=lambda i: start + 1_000 * i))
    alerts: list[OutRecord] = []
    for i, e in enumerate(events):
        value = raw.encode(e.raw("t"))
        [valid, _] = validate.process([rec("u.events.raw", value, offset=i)])  # and its id, remembered
        [vector] = features.process([rec(valid.topic, valid.value, offset=i)])
        predictions = serve.process([rec(vector.topic, vector.value, offset=i)])
        learn.process([rec(vector.topic, vector.value, offset=i)]
                      + [rec(p.topic, p.value, offset=i) for p in predictions])
        alerts += monitor.process([rec(p.topic, p.value, offset=i) for p in predictions])
        if i >= delay:
            late = events[i - delay]
            label = fb.encode(late.feedback(late.event_time_ms + 1))
            learn.process([rec("u.feedback", label, offset=i)])
            alerts += monitor.process([rec("u.feedback", label, offset=i)])
    return learn, monitor, alerts


def test_the_learner_learns_every_joined_label_once_and_beats_chance(catalog: SchemaCatalog) -> None:
    learn, _, _ = run_loop(catalog, 1_500, delay=10)
    c = learn.learner.join.counters
    assert (c.received, c.joined, c.duplicate, c.unmatched) == (1_490, 1_490, 0, 0)
    [metrics] = [learn.models.decode(o.value) for o in learn.tick()]
    assert metrics["kind"] == "METRICS" and metrics["counters"]["learned"] == 1_490
    assert metrics["metrics"]["accuracy"] > 0.7  # the label function is learnable before the drift at 750


def test_the_monitor_raises_concept_drift_after_the_label_function_flips(catalog: SchemaCatalog) -> None:
    _, monitor, alerts = run_loop(catalog, 3_000, delay=10)
    decoded = [monitor.alerts.decode(a.value) for a in alerts]
    concept = [a for a in decoded if a["kind"] == "concept_drift" and a["status"] == "FIRING"]
    assert concept, "the flip at event 1,500 must be detected"
    assert len(concept) == 1  # one episode, one alert
    assert 1_500 < int(concept[0]["evidence"]["labels_seen"]) < 2_500 and concept[0]["subject"] == "m:v1"
    assert {a["kind"] for a in decoded} <= {"concept_drift", "performance_drop"}


def test_a_label_teaches_the_versions_that_scored_its_event_not_those_active_when_it_arrives() -> None:
    """Which versions learn is a fact of the data, so a replay after a crash teaches the same ones."""
    registry = registry_with("v1", "v2")
    registry.apply(routing_record("m", "basic", "v1"))  # v2 registered, not scoring yet
    scorer = Scorer(registry, timeout_ms=float("inf"), metrics=ServeMetrics(CollectorRegistry()))
    learner = Learner(registry, PendingJoin(window_ms=60_000, needs_features=True), Sequencer())
    for i, routing in enumerate([routing_record("m", "basic", "v1"), routing_record("m", "shadow", "v1", ["v2"])]):
        registry.apply(routing)
        vector = feature_vector({"event_id": f"e{i}", "entity_id": "c1", "event_time": 1_000 + i, "source": "t",
                                 "attributes": {"x": float(i)}})
        learner.on_features(vector)
        for prediction in predictions_of(scorer.score(vector)):
            learner.on_prediction(prediction)
    for i in range(2):  # both labels arrive while v1 and v2 are active
        learner.on_feedback({"event_id": f"e{i}", "entity_id": "c1", "label": True, "label_time": 5_000 + i})
    learner.finish()
    assert learner.labels_learned == 2 and dict(learner.learned) == {"v1": 2, "v2": 1}
    v1, v2 = learner.metrics_records()
    assert (v1["version"], v1["counters"]["learned"], v1["counters"]["served"]) == ("v1", 2, 2)
    assert v1["metrics"]["served_accuracy"] == v1["metrics"]["accuracy"]  # v1 served both events it scored
    # v2 only shadowed: its record says what it learned and scored, and nothing of what v1 served.
    assert (v2["version"], v2["counters"]["learned"], v2["counters"]["served"]) == ("v2", 1, 0)
    assert "accuracy" in v2["metrics"] and not [k for k in v2["metrics"] if k.startswith("served_")]
    assert {k: v1["counters"][k] for k in STAGE_COUNTERS} == {k: v2["counters"][k] for k in STAGE_COUNTERS}


def test_the_learner_commits_waiting_parts_while_no_label_comes(catalog: SchemaCatalog, tmp_path: Path) -> None:
    """A feedback outage must not leave everything read since the last label in one open transaction."""
    settings = SETTINGS.with_overrides(state_dir=tmp_path, snapshot_every_s=3_600.0)
    learn = LearnStage(settings, catalog, registry_with("v1"))
    assert learn.restore() is None and not learn.snapshot_due(final=True)  # nothing read: nothing to commit
    vectors = topic_serde(catalog, settings, FEATURES)
    learn.process([rec(vectors.topic, vectors.encode(feature_vector({
        "event_id": f"e{i}", "entity_id": "c1", "event_time": 1_000 + i, "source": "t", "attributes": {"x": 1.0}})),
        offset=i) for i in range(3)])
    assert learn.learner.labels_learned == 0 and learn.snapshot_due(final=True)
    assert learn.snapshot({(vectors.topic, 0): 3}) == []  # committed; no model changed, so nothing to publish
    learn.close()
    again = LearnStage(settings, catalog, registry_with("v1"))
    assert again.restore() == {(vectors.topic, 0): 3} and len(again.learner.join) == 3
    again.close()


def test_labels_a_timer_releases_after_the_last_read_reach_a_snapshot(catalog: SchemaCatalog,
                                                                      tmp_path: Path) -> None:
    """The tail of a stream is learned by the timer, after the last record was read: a stop must still save it."""
    settings = SETTINGS.with_overrides(state_dir=tmp_path, snapshot_every_s=3_600.0, sequencer_idle_ms=0)
    learn = LearnStage(settings, catalog, registry_with("v1"))
    learn.restore()
    vectors, feedback = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, FEEDBACK)
    both = {(feedback.topic, 0), (feedback.topic, 1)}
    learn.note_partitions(both, set())  # partition 1 has sent nothing yet: the label waits for it
    served = topic_serde(catalog, settings, PREDICTIONS)
    learn.process([
        rec(vectors.topic, vectors.encode(feature_vector({
            "event_id": "e1", "entity_id": "c1", "event_time": 1_000, "source": "t", "attributes": {"x": 1.0}}))),
        rec(served.topic, served.encode(support.prediction(
            "e1", entity_id="c1", event_time=1_000, model_name="m", version="v1", role="champion", served=True,
            score=0.3, predicted_label=False, latency_ms=0.01, predicted_at=1_000, error=None))),
        rec(feedback.topic, feedback.encode({"event_id": "e1", "entity_id": "c1", "label": True,
                                             "label_time": 2_000}))])
    learn.snapshot({(vectors.topic, 0): 1, (feedback.topic, 0): 1})
    assert learn.learner.labels_learned == 0 and not learn.snapshot_due(final=True)  # the label waits its turn
    learn.note_partitions(both, both)  # both read to their end, and silent since
    learn.tick()
    assert learn.learner.labels_learned == 1 and learn.snapshot_due(final=True)
    learn.close()


def _event_at(catalog: SchemaCatalog, settings: Settings, event_id: str, event_time: int, offset: int = 0
              ) -> list[InRecord]:
    """The features and the served prediction of one event, as the learn stage reads them."""
    vectors, served = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, PREDICTIONS)
    return [
        rec(vectors.topic, vectors.encode(feature_vector({
            "event_id": event_id, "entity_id": "c1", "event_time": event_time, "source": "t",
            "attributes": {"x": 1.0}})), offset=offset),
        rec(served.topic, served.encode(support.prediction(
            event_id, entity_id="c1", event_time=event_time, model_name="m", version="v1", role="champion",
            served=True, score=0.3, predicted_label=False, latency_ms=0.01, predicted_at=event_time, error=None)),
            offset=offset),
    ]


def _label(catalog: SchemaCatalog, settings: Settings, event_id: str, label: Label = True, *,
           label_time: int | None = None, offset: int = 0) -> InRecord:
    feedback = topic_serde(catalog, settings, FEEDBACK)
    return rec(feedback.topic, feedback.encode({"event_id": event_id, "entity_id": "c1", "label": label,
                                                "label_time": now_ms() if label_time is None else label_time}),
               offset=offset)


@pytest.mark.parametrize("label,ahead_ms,reason", [
    (True, 365 * 24 * 3_600_000, "future-label-time"),  # would move the join's stream time a year ahead
    (True, -365 * 24 * 3_600_000, "label-before-event"),  # a label known a year before its event happened
    ("1", 0, "unsupported-label"),
    ("yes", 0, "unsupported-label"),  # would stop the learner at the classifier's int(y)
    (2, 0, "unsupported-label"),
    (float("nan"), 0, "non-finite-value"),
])
def test_a_label_no_model_can_take_is_dead_lettered_and_the_next_ones_are_learned(
        catalog: SchemaCatalog, tmp_path: Path, label: Label, ahead_ms: int, reason: str) -> None:
    settings = SETTINGS.with_overrides(state_dir=tmp_path)
    assert _dead_letter_of_bad_label(catalog, settings, _label(catalog, settings, "bad", label,
                                                               label_time=now_ms() + ahead_ms)) == reason


def _dead_letter_of_bad_label(catalog: SchemaCatalog, settings: Settings, bad: InRecord) -> str:
    """The reason the learner dead-letters the label ``bad`` of event "bad" with, having learned the next label
    and kept its stream time where the clock is."""
    observer = RefusalObserver()
    learn = LearnStage(settings, catalog, registry_with("v1"), observer=observer)
    learn.restore()
    out = learn.process([*_event_at(catalog, settings, "bad", now_ms(), 0),
                         *_event_at(catalog, settings, "good", now_ms(), 1), bad,
                         _label(catalog, settings, "good", offset=1)])
    [dead] = [o for o in out if o.topic == learn.dlq_topic]
    learn.learner.finish()
    assert learn.learner.labels_learned == 1 and learn.learner.join.stream_time_ms < now_ms() + 60_000
    learn.close()
    reason = read_headers(dead.headers)["reason"]
    assert observer.refused == [reason]  # the controller's quality hold hears of every refused label
    return reason


class RefusalObserver:
    """What the back hears of the learner: here, only the labels it refused."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def on_features(self, vector: FeatureVector) -> None:
        pass

    def on_prediction(self, prediction: Prediction) -> None:
        pass

    def on_learned(self, event: PendingEvent) -> None:
        pass

    def on_label_refused(self, reason: str) -> None:
        self.refused.append(reason)

    def on_event_refused(self, record: InRecord) -> None:
        pass


def _forged_label(catalog: SchemaCatalog, settings: Settings, event_id: str, label_type: object,
                  label: object) -> InRecord:
    """A feedback record a hostile producer wrote: the label of a type the schema has no branch for (null, a map,
    a list), under the feedback schema's own id."""
    feedback = topic_serde(catalog, settings, FEEDBACK)
    fields = [{"name": "event_id", "type": "string"}, {"name": "entity_id", "type": "string"},
              {"name": "label", "type": label_type}, {"name": "label_time", "type": "long"}]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema({"type": "record", "name": "F", "fields": fields}),
                               {"event_id": event_id, "entity_id": "c1", "label": label, "label_time": now_ms()})
    wire = feedback.encode({"event_id": "", "entity_id": "", "label": True, "label_time": 0})[:5]  # magic and id
    return rec(feedback.topic, wire + body.getvalue())


@pytest.mark.parametrize("label_type,label,reason", [
    # Read with the real schema, the bytes do not decode, or decode to a label that is not binary, or to a
    # boolean whose label time (the bytes after it) lies long before the event.
    (["null", "string"], None, "label-before-event"),
    ({"type": "map", "values": "long"}, {"a": 1}, "undecodable-payload"),
    ({"type": "array", "items": "long"}, [1, 0], "unsupported-label"),
])
def test_a_label_the_schema_has_no_type_for_is_dead_lettered_and_the_next_ones_are_learned(
        catalog: SchemaCatalog, tmp_path: Path, label_type: object, label: object, reason: str) -> None:
    settings = SETTINGS.with_overrides(state_dir=tmp_path)
    assert _dead_letter_of_bad_label(catalog, settings, _forged_label(catalog, settings, "bad", label_type,
                                                                      label)) == reason


class RefusesLabels(support.FakeClassifier):
    """A model that raises on every label, like an uploaded model trained for another label type."""

    def predict_proba_one(self, x: dict[str, float]) -> dict[Label, float]:
        return {True: 0.5, False: 0.5}

    def learn_one(self, x: dict[str, float], y: Label) -> None:
        raise ValueError(f"cannot learn {y!r}")


def test_a_label_one_version_refuses_goes_to_the_dlq_and_the_other_versions_learn_it(
        catalog: SchemaCatalog, tmp_path: Path) -> None:
    settings = SETTINGS.with_overrides(state_dir=tmp_path)
    registry = registry_with("v1", "v2")
    learn = LearnStage(settings, catalog, registry)
    learn.restore()  # models are built afresh here: swap v2's after it
    registry.versions["v2"].model = RefusesLabels()
    parts = _event_at(catalog, settings, "e1", now_ms(), 0)
    served = topic_serde(catalog, settings, PREDICTIONS)
    shadow = served.decode(parts[1].value or b"") | {"model_version": "v2", "role": "shadow", "served": False}
    out = learn.process([*parts, rec(served.topic, served.encode(shadow), offset=1),
                         _label(catalog, settings, "e1")])
    [dead] = [o for o in out if o.topic == learn.dlq_topic]
    assert read_headers(dead.headers)["reason"] == "unlearnable-label"
    assert dict(learn.learner.learned) == {"v1": 1} and learn.learner.unlearnable["v2"] == 1
    learn.close()


def test_only_a_signed_resend_is_exempt_from_lateness(catalog: SchemaCatalog) -> None:
    """Any producer can write the resent header; only `weir dlq resend`, holding the key, can sign it."""
    stage = ValidateStage(SETTINGS.with_overrides(resend_key=SecretStr("k")), catalog)
    old = raw_event(catalog, event_time=now_ms() - 3 * 86_400_000)
    origin = b"u.events.dlq/0/7"

    def verdict(headers: list[tuple[str, bytes | None]]) -> str:
        out = stage.check(InRecord("u.events.raw", 0, 0, 1_000, b"c1", old, headers))[1][0]
        return read_headers(out.headers).get("reason", "valid") if out.topic == stage.dlq_topic else "valid"

    assert verdict([]) == "late-event"
    assert verdict([(RESENT_HEADER, origin)]) == "late-event"  # forged: no signature
    assert verdict([(RESENT_HEADER, origin), (RESENT_SIGNATURE, resend_signature("guess", origin, old))]) == \
        "late-event"
    assert verdict([(RESENT_HEADER, origin), (RESENT_SIGNATURE, resend_signature("k", origin, old))]) == "valid"
    other = b"u.events.dlq/0/8"  # a signature is for one record: copied onto another, it proves nothing
    assert verdict([(RESENT_HEADER, other), (RESENT_SIGNATURE, resend_signature("k", origin, old))]) == "late-event"


def test_a_label_whose_event_never_came_stops_holding_learning_once_its_partition_moved_on(
        catalog: SchemaCatalog, tmp_path: Path) -> None:
    """An event validate dead-lettered, or an id nobody sent: its label must not hold learning for the window."""
    settings = SETTINGS.with_overrides(state_dir=tmp_path, unmatched_label_wait_ms=60_000)
    learn = LearnStage(settings, catalog, registry_with("v1"))
    learn.restore()
    t = now_ms() - 200_000
    out = learn.process([_label(catalog, settings, "ghost", label_time=t)])
    out += learn.process([*_event_at(catalog, settings, "e1", t + 30_000),
                          _label(catalog, settings, "e1", label_time=t + 31_000)])
    assert learn.learner.labels_learned == 0 and out == []  # 30 s of its partition's events: it may still come
    out = learn.process([*_event_at(catalog, settings, "e2", t + 61_000),
                         _label(catalog, settings, "e2", label_time=t + 62_000)])
    [dead] = [o for o in out if o.topic == learn.dlq_topic]
    assert read_headers(dead.headers)["reason"] == "unmatched-feedback" and dead.key == b"c1"
    assert learn.learner.labels_learned == 2 and learn.learner.join.counters.unmatched == 1
    assert learn.process(_event_at(catalog, settings, "ghost", t)) == []  # its event, if it ever comes, waits alone
    learn.close()


def test_a_label_whose_event_validation_refused_is_settled_as_soon_as_the_refusal_is_read(
        catalog: SchemaCatalog, tmp_path: Path) -> None:
    """The front dead-lettered the event: its label goes to the DLQ at once, not after its hour-long wait, and the
    labels behind it are learned."""
    settings = SETTINGS.with_overrides(state_dir=tmp_path, unmatched_label_wait_ms=3_600_000)
    learn = LearnStage(settings, catalog, registry_with("v1"))
    learn.restore()
    validate = ValidateStage(settings, catalog)
    t = now_ms() - 10_000
    [refused] = validate.process([rec(validate.inputs[0], raw_event(catalog, event_time=t + 3_600_000))])
    letter = InRecord(refused.topic, 0, 0, now_ms(), refused.key, refused.value, refused.headers or [])
    out = learn.process([_label(catalog, settings, "e1", label_time=t + 1), *_event_at(catalog, settings, "e2", t),
                         _label(catalog, settings, "e2", label_time=t + 2)])
    assert out == [] and learn.learner.labels_learned == 0  # e1's label holds e2's back
    out = learn.process([letter])
    [dead] = [o for o in out if o.topic == learn.dlq_topic]
    assert read_headers(dead.headers)["reason"] == "refused-event-feedback"
    assert learn.learner.labels_learned == 1 and learn.learner.join.counters.unmatched == 1
    learn.close()


def test_when_events_stop_a_label_whose_event_never_came_waits_only_so_long_on_the_clock_once_the_front_is_done(
        catalog: SchemaCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SETTINGS.with_overrides(state_dir=tmp_path, unmatched_label_wait_ms=60_000, sequencer_idle_ms=1_000)
    clock = [now_ms()]
    monkeypatch.setattr("streams.learn.stage.now_ms", lambda: clock[0])
    learn = LearnStage(settings, catalog, registry_with("v1"))
    learn.pacer.clock = lambda: clock[0]
    learn.restore()
    t = clock[0] - 10_000
    learn.process([*_event_at(catalog, settings, "e1", t), _label(catalog, settings, "ghost", label_time=t + 1),
                   _label(catalog, settings, "e1", label_time=t + 2)])
    every = {(topic, 0) for topic in learn.inputs}
    learn.note_partitions(every, every)  # read to the end: traffic has stopped, or the front is behind
    clock[0] += 61_000
    assert learn.tick()[:-1] == [] and learn.learner.labels_learned == 0  # (the last record is the METRICS one)
    learn.note_partitions(every, every | {(learn.raw.topic, 0)})  # the front has read every raw event: none to come
    clock[0] -= 2_000
    assert learn.tick()[:-1] == [] and learn.learner.labels_learned == 0  # not a minute on the clock yet
    clock[0] += 2_000
    dead = [o for o in learn.tick() if o.topic == learn.dlq_topic]
    assert [read_headers(d.headers)["reason"] for d in dead] == ["unmatched-feedback"]
    assert learn.learner.labels_learned == 1
    learn.close()
