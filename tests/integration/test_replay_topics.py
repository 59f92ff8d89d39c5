"""`weir replay --source topics`: a range of the real topics replays like river's progressive validation."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from river import evaluate, metrics

from apps.cli import cli
from apps.processes import settings_env
from apps.replay import replay_vectors
from streams.features import feature_vector
from tests.support import events, label_of, river_dataset
from weir.contract.records import FeatureVector, Feedback
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK
from weir.kafka.clients import flush_or_raise, make_producer, produce
from weir.kafka.ranges import read_topic_range
from weir.registry.factories import build_model
from weir.settings import Settings

BASE_MS, STEP_MS = 1_767_225_600_000, 10  # 2026-01-01T00:00:00Z, one event every 10 ms


def test_a_topic_range_replays_what_the_topics_hold_whatever_the_partitions(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    """SEA events 0..1999 with labels 25 events later, written shuffled, repeated and over 3 partitions: the range
    100..1899 replays like river's progressive validation of those events with delay 25, every time."""
    stream, delay = events("sea", 2_000), 25
    rng = random.Random(5)
    vectors: list[FeatureVector] = [
        feature_vector({"event_id": e.event_id, "entity_id": e.entity_id, "event_time": BASE_MS + i * STEP_MS,
                        "source": "sea", "attributes": e.attributes}) for i, e in enumerate(stream)]
    labels: list[Feedback] = [{"event_id": e.event_id, "entity_id": e.entity_id, "label": label_of(e),
                               "label_time": BASE_MS + (i + delay) * STEP_MS} for i, e in enumerate(stream)]
    repeated = rng.sample(range(2_000), 200)
    late_copies: list[Feedback] = [
        {**labels[i], "label": not labels[i]["label"], "label_time": labels[i]["label_time"] + 5_000}
        for i in repeated]  # a second, later label: the learner took the first
    features, feedback = topic_serde(catalog, kafka, FEATURES), topic_serde(catalog, kafka, FEEDBACK)
    writes = ([(features.topic, v["entity_id"], features.encode(v)) for v in vectors + [vectors[i] for i in repeated]]
              + [(feedback.topic, f["entity_id"], feedback.encode(f)) for f in labels + late_copies])
    rng.shuffle(writes)
    producer = make_producer(kafka)
    for topic, entity, value in writes:
        produce(producer, topic, value, key=entity.encode())
    flush_or_raise(producer, kafka)

    since, until = BASE_MS + 100 * STEP_MS, BASE_MS + 1_900 * STEP_MS
    span = read_topic_range(kafka, catalog, since_ms=since, until_ms=until, progress=False)
    assert [v["event_id"] for v in span.vectors] == [e.event_id for e in stream[100:1_900]]
    assert span.counts["features_outside_range"] == 200 + sum(1 for i in repeated if not 100 <= i < 1_900)
    assert span.counts["feedback_without_event"] == 200 + sum(1 for i in repeated if not 100 <= i < 1_900)
    assert all(span.labels[e.event_id][1] == e.label for e in stream[100:1_900])

    ours = replay_vectors(span.vectors, span.labels, factory="logistic_regression", params={})
    dataset = river_dataset(stream[100:1_900])
    for name, metric in (("accuracy", metrics.Accuracy()), ("log_loss", metrics.LogLoss())):
        river = evaluate.progressive_val_score(dataset, build_model("logistic_regression", {}), metric, delay=delay)
        assert abs(ours.metrics[name] - river.get()) < 1e-9, (name, ours.metrics[name], river.get())

    start = datetime.fromtimestamp(since / 1000, UTC).replace(tzinfo=None).isoformat()  # no zone: read as UTC
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--since", start, "--until", str(until),
                                      "--no-progress"], env=settings_env(kafka), prog_name="weir")
    assert result.exit_code == 0, result.output
    assert "replayed 1800 events, learned 1800 labels" in result.output
    assert f"accuracy           {ours.metrics['accuracy']:.10f}" in result.output

    # A data version: the same range snapshotted replays bit for bit, and names the same version.
    runner, env = CliRunner(), settings_env(kafka)
    snapshot = runner.invoke(cli, ["data", "snapshot", "--since", start, "--until", str(until), "--out",
                                   str(tmp_path / "v1"), "--no-progress"], env=env, prog_name="weir")
    assert snapshot.exit_code == 0, snapshot.output
    version = f"data version {span.content_hash()}"
    assert "1800 events, 1800 labels" in snapshot.output and version in snapshot.output
    assert version in result.output  # the topics replay names it too
    again = runner.invoke(cli, ["replay", "--snapshot", str(tmp_path / "v1")], env=env, prog_name="weir")
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[1:] == result.output.splitlines()[1:]  # version and every metric, to 10 places
    refused = runner.invoke(cli, ["replay", "--snapshot", str(tmp_path / "v1"), "--since", start], env=env,
                            prog_name="weir")
    assert refused.exit_code == 2 and "not with --snapshot" in refused.output
