"""`weir replay` reproduces river's delayed progressive validation exactly, and is deterministic."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from river import evaluate, metrics

from apps.cli import cli
from apps.processes import settings_env
from apps.replay import read_topic_range, replay, replay_vectors
from producers.schedule import DriftSchedule
from producers.sources import open_source
from streams.features import feature_vector
from weir.contract.features import compute_features
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK
from weir.kafka.clients import flush_or_raise, make_producer, produce
from weir.registry.factories import build_model
from weir.registry.records import snapshot_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings


def events(name: str, n: int = 2_000):
    return list(open_source(name, n, seed=11, schedule=DriftSchedule.parse("concept@0.5", n),
                            event_time=lambda i: i).events)


@pytest.mark.parametrize("source", ["churn", "sea", "agrawal"])
@pytest.mark.parametrize("delay", [0, 25])
@pytest.mark.parametrize("factory", ["logistic_regression", "hoeffding_tree"])
def test_replay_equals_progressive_val_score(source: str, delay: int, factory: str) -> None:
    stream = events(source)
    ours = replay(stream, factory=factory, params={}, delay=delay).metrics
    dataset = [(compute_features({"attributes": e.attributes}), e.label) for e in stream]
    for name, metric in (("accuracy", metrics.Accuracy()), ("log_loss", metrics.LogLoss())):
        river = evaluate.progressive_val_score(dataset, build_model(factory, {}), metric, delay=delay or None)
        assert abs(ours[name] - river.get()) < 1e-9, (name, ours[name], river.get())


def test_the_same_replay_gives_the_same_numbers_and_models() -> None:
    stream = events("churn", 1_000)
    a, b = (replay(stream, factory="logistic_regression", params={}, delay=10) for _ in range(2))
    assert a.metrics == b.metrics and a.labels == b.labels == 1_000
    x = compute_features({"attributes": stream[0].attributes})
    assert a.registry.versions["v1"].model.predict_proba_one(x) == b.registry.versions["v1"].model.predict_proba_one(x)


def test_the_replay_command_compares_with_river() -> None:
    result = CliRunner().invoke(cli, ["replay", "--source", "sea", "--events", "1000", "--delay", "20",
                                      "--compare-river"], prog_name="weir")
    assert result.exit_code == 0, result.output
    assert "river accuracy" in result.output and "difference 0.00e+00" in result.output


def test_a_serve_worker_without_a_learner_takes_newer_snapshots_only() -> None:
    model = build_model("logistic_regression", {})
    model.learn_one({"x": 1.0}, True)
    follower, learner = ModelRegistry("m", follows_snapshots=True), ModelRegistry("m")
    for registry in (follower, learner):
        registry.apply(version_record("m", "v1", "logistic_regression", {}))
        registry.apply(snapshot_record("m", "v1", pickle.dumps(model), learned=10))
    assert follower.versions["v1"].snapshot_learned == 10
    assert follower.versions["v1"].model.predict_proba_one({"x": 1.0}) == model.predict_proba_one({"x": 1.0})
    assert learner.versions["v1"].snapshot_learned == 0  # the learner's own live model is never replaced
    older = build_model("logistic_regression", {})
    follower.apply(snapshot_record("m", "v1", pickle.dumps(older), learned=5))
    assert follower.versions["v1"].snapshot_learned == 10  # an older snapshot does not roll the copy back


BASE_MS, STEP_MS = 1_767_225_600_000, 10  # 2026-01-01T00:00:00Z, one event every 10 ms


def test_a_topic_range_replays_what_the_topics_hold_whatever_the_partitions(
    kafka: Settings, catalog: SchemaCatalog
) -> None:
    """SEA events 0..1999 with labels 25 events later, written shuffled, repeated and over 3 partitions: the range
    100..1899 replays like river's progressive validation of those events with delay 25, every time."""
    stream, delay = events("sea", 2_000), 25
    rng = random.Random(5)
    vectors = [feature_vector({"event_id": e.event_id, "entity_id": e.entity_id, "event_time": BASE_MS + i * STEP_MS,
                               "attributes": e.attributes}) for i, e in enumerate(stream)]
    labels = [{"event_id": e.event_id, "entity_id": e.entity_id, "label": e.label,
               "label_time": BASE_MS + (i + delay) * STEP_MS} for i, e in enumerate(stream)]
    repeated = rng.sample(range(2_000), 200)
    late_copies = [{**labels[i], "label": not labels[i]["label"], "label_time": labels[i]["label_time"] + 5_000}
                   for i in repeated]  # a second, later label: the learner took the first
    features, feedback = topic_serde(catalog, kafka, FEATURES), topic_serde(catalog, kafka, FEEDBACK)
    writes = ([(features, v) for v in vectors + [vectors[i] for i in repeated]]
              + [(feedback, f) for f in labels + late_copies])
    rng.shuffle(writes)
    producer = make_producer(kafka)
    for serde, record in writes:
        produce(producer, serde.topic, serde.encode(record), key=record["entity_id"].encode())
    flush_or_raise(producer)

    since, until = BASE_MS + 100 * STEP_MS, BASE_MS + 1_900 * STEP_MS
    span = read_topic_range(kafka, catalog, since_ms=since, until_ms=until, progress=False)
    assert [v["event_id"] for v in span.vectors] == [e.event_id for e in stream[100:1_900]]
    assert span.counts["features_outside_range"] == 200 + sum(1 for i in repeated if not 100 <= i < 1_900)
    assert span.counts["feedback_without_event"] == 200 + sum(1 for i in repeated if not 100 <= i < 1_900)
    assert all(span.labels[e.event_id][1] == e.label for e in stream[100:1_900])

    ours = replay_vectors(span.vectors, span.labels, factory="logistic_regression", params={})
    dataset = [(compute_features({"attributes": e.attributes}), e.label) for e in stream[100:1_900]]
    for name, metric in (("accuracy", metrics.Accuracy()), ("log_loss", metrics.LogLoss())):
        river = evaluate.progressive_val_score(dataset, build_model("logistic_regression", {}), metric, delay=delay)
        assert abs(ours.metrics[name] - river.get()) < 1e-9, (name, ours.metrics[name], river.get())

    start = datetime.fromtimestamp(since / 1000, UTC).replace(tzinfo=None).isoformat()  # no zone: read as UTC
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--since", start, "--until", str(until),
                                      "--no-progress"], env=settings_env(kafka), prog_name="weir")
    assert result.exit_code == 0, result.output
    assert "replayed 1800 events, learned 1800 labels" in result.output
    assert f"accuracy           {ours.metrics['accuracy']:.10f}" in result.output


def test_replaying_topics_refuses_a_fixed_delay_and_a_time_it_cannot_read() -> None:
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--delay", "5"], prog_name="weir")
    assert result.exit_code == 2 and "real label times" in result.output
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--since", "\u00b2"], prog_name="weir")
    assert result.exit_code == 2 and "neither epoch milliseconds nor an ISO 8601 time" in result.output
