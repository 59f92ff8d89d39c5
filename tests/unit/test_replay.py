"""`weir replay` reproduces river's delayed progressive validation exactly, and is deterministic."""

from __future__ import annotations

import pickle

import pytest
from click.testing import CliRunner
from river import evaluate, metrics

from apps.cli import cli
from apps.replay import replay
from tests.support import events, river_dataset
from weir.contract.features import compute_features
from weir.registry.factories import build_model
from weir.registry.records import snapshot_record, version_record
from weir.registry.view import ModelRegistry


@pytest.mark.parametrize("source", ["churn", "sea", "agrawal"])
@pytest.mark.parametrize("delay", [0, 25])
@pytest.mark.parametrize("factory", ["logistic_regression", "hoeffding_tree"])
def test_replay_equals_progressive_val_score(source: str, delay: int, factory: str) -> None:
    stream = events(source)
    ours = replay(stream, factory=factory, params={}, delay=delay).metrics
    dataset = river_dataset(stream)
    for name, metric in (("accuracy", metrics.Accuracy()), ("log_loss", metrics.LogLoss())):
        river = evaluate.progressive_val_score(dataset, build_model(factory, {}), metric, delay=delay or None)
        assert abs(ours[name] - river.get()) < 1e-9, (name, ours[name], river.get())


def test_the_same_replay_gives_the_same_numbers_and_models() -> None:
    stream = events("churn", 1_000)
    a, b = (replay(stream, factory="logistic_regression", params={}, delay=10) for _ in range(2))
    assert a.metrics == b.metrics and a.labels == b.labels == 1_000
    x = compute_features(stream[0].attributes)
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


def test_replaying_topics_refuses_a_fixed_delay_and_a_time_it_cannot_read() -> None:
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--delay", "5"], prog_name="weir")
    assert result.exit_code == 2 and "real label times" in result.output
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--since", "\u00b2"], prog_name="weir")
    assert result.exit_code == 2 and "neither epoch milliseconds nor an ISO 8601 time" in result.output
