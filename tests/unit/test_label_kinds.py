"""Labels of every kind a model learns: binary, classes of any type (strings too), and numbers for regressors,
through the checks, the learner and its metrics, the monitor and replay."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from apps.cli import cli
from apps.replay import replay, river_progressive_scores
from producers.event import LabelledEvent
from streams.features import feature_vector
from streams.learn.learner import Learner
from streams.learn.sequencer import Sequencer
from streams.learn.stage import LearnStage
from streams.monitor.detectors import DriftMonitor
from streams.serve.scorer import Scorer
from tests.support import predictions_of, rec
from weir.contract.deadletter import read_headers
from weir.contract.feedback import LabelKind, fits, parse_positive
from weir.contract.messages import OutRecord
from weir.contract.records import Alert, Label
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK, PREDICTIONS
from weir.errors import ConfigError
from weir.registry.factories import refuse_unlearnable
from weir.registry.records import routing_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingJoin


@pytest.mark.parametrize("label,kinds", [
    (True, {"binary", "multiclass"}), (1, {"binary", "multiclass", "regression"}),
    (0.0, {"binary", "regression"}), ("churned", {"multiclass"}), (3, {"multiclass", "regression"}),
    (2.5, {"regression"}), ("", set()),
])
def test_each_kind_takes_its_labels(label: Label, kinds: set[LabelKind]) -> None:
    assert {k for k in ("binary", "multiclass", "regression") if fits(label, k)} == kinds


def test_a_declared_positive_class_reads_as_json_or_as_text() -> None:
    assert (parse_positive("true"), parse_positive("1"), parse_positive("churned"), parse_positive(None)) == \
        (True, 1, "churned", None)


def _registry(*versions: tuple[str, str]) -> ModelRegistry:
    registry = ModelRegistry("m")
    for name, factory in versions:
        registry.apply(version_record("m", name, factory, {}))
    registry.apply(routing_record("m", "shadow", versions[0][0], [v for v, _ in versions[1:]]))
    return registry


def _classes(n: int, seed: int = 5) -> list[tuple[dict[str, float], Label]]:
    rng = random.Random(seed)
    out: list[tuple[dict[str, float], Label]] = []
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        out.append((x, "churned" if x["a"] > 0.3 else "stayed" if x["b"] > 0 else "paused"))
    return out


def _serve_and_learn(catalog: SchemaCatalog, settings: Settings, learn: LearnStage,
                     events: list[tuple[dict[str, float], Label]]) -> list[OutRecord]:
    """Each event scored by every active version with what they learned so far, then read by the learn stage with
    its label, one event at a time, as a worker running both does."""
    vectors, served = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, PREDICTIONS)
    labels = topic_serde(catalog, settings, FEEDBACK)
    scorer = Scorer(learn.learner.registry, timeout_ms=float("inf"), positive=parse_positive(settings.positive_label))
    out = []
    for i, (x, y) in enumerate(events):
        vector = feature_vector({"event_id": f"e{i}", "entity_id": f"c{i}", "event_time": 1_000 + i, "source": "t",
                                 "attributes": dict(x)})
        batch = [rec(vectors.topic, vectors.encode(vector), offset=i)]
        batch += [rec(served.topic, served.encode(p), offset=i) for p in predictions_of(scorer.score(vector))]
        batch.append(rec(labels.topic, labels.encode({"event_id": f"e{i}", "entity_id": f"c{i}", "label": y,
                                                      "label_time": 2_000 + i}), offset=i))
        out += learn.process(batch)
    return out


@pytest.mark.parametrize("positive", [None, "churned"])
def test_string_classes_are_learned_and_scored_and_a_binary_only_model_refuses_them_alone(
        catalog: SchemaCatalog, tmp_path: Path, positive: str | None) -> None:
    settings = Settings(state_dir=tmp_path, label_kind="multiclass", positive_label=positive, model_name="m")
    registry = _registry(("v1", "hoeffding_tree"), ("v2", "logistic_regression"))
    learn = LearnStage(settings, catalog, registry)
    learn.restore()
    out = _serve_and_learn(catalog, settings, learn, list(_classes(600)))
    learn.learner.finish()
    assert learn.learner.labels_learned == 600 and learn.learner.learned["v1"] == 600
    assert learn.learner.learned["v2"] == 0 and learn.learner.unlearnable["v2"] == 600  # the binary model refuses
    reasons = {read_headers(o.headers)["reason"] for o in out if o.topic == learn.dlq_topic}
    assert reasons == {"unlearnable-label"}
    metrics = learn.learner.metrics["v1"].values()
    assert metrics["accuracy"] > 0.6
    # Log loss and ROC AUC are about one class: there when it is declared, left out when not.
    assert ("roc_auc" in metrics and "log_loss" in metrics) == (positive is not None)
    learn.close()


def _numbers(n: int, jump_at: int, seed: int = 6) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        out.append((x, 2.0 * x["a"] - x["b"] + rng.gauss(0, 0.3) + (10.0 if i >= jump_at else 0.0)))
    return out


def _monitor_regressor(events: list[tuple[dict[str, float], float]]) -> tuple[Learner, list[tuple[int, Alert]]]:
    """A linear regression served and learned label by label, its joined events shown to the monitor."""
    registry = _registry(("v1", "linear_regression"))
    scorer = Scorer(registry, timeout_ms=float("inf"))
    monitor = DriftMonitor(Settings(), PendingJoin(window_ms=2**62, needs_features=False))
    raised: list[tuple[int, Alert]] = []
    learning_at = [0]  # the event whose label is being learned
    learner = Learner(registry, PendingJoin(window_ms=2**62, needs_features=True), Sequencer(),
                      on_learned=lambda e: raised.extend((learning_at[0], a) for a in monitor.on_joined(e)))
    for i, (x, y) in enumerate(events):
        learning_at[0] = i
        vector = feature_vector({"event_id": f"e{i}", "entity_id": "c1", "event_time": i, "source": "t",
                                 "attributes": dict(x)})
        learner.on_features(vector)
        for p in predictions_of(scorer.score(vector)):
            assert isinstance(p["predicted_label"], float) and p["score"] == p["predicted_label"]
            learner.on_prediction(p)
        learner.on_feedback({"event_id": f"e{i}", "entity_id": "c1", "label": y, "label_time": i})
        learner.advance(0)
    return learner, raised


def test_a_regressor_gets_error_metrics_and_its_target_jump_raises_concept_drift_and_a_performance_drop() -> None:
    learner, raised = _monitor_regressor(_numbers(9_000, jump_at=6_000))
    metrics = learner.metrics["v1"].values()
    assert set(metrics) == {"mae", "rmse", "mae_rolling", "rmse_rolling"}
    firing = [(i, a["kind"]) for i, a in raised if a["status"] == "FIRING"]
    assert [i for i, _ in firing if i < 6_000] == []  # nothing before the jump
    kinds = {kind: i for i, kind in reversed(firing)}  # the first of each kind
    assert {"concept_drift", "performance_drop"} <= set(kinds), firing
    assert kinds["concept_drift"] - 6_000 < 100 and kinds["performance_drop"] - 6_000 < 1_000, firing


@pytest.mark.parametrize("delay", [0, 30])
def test_replay_takes_string_classes_and_numbers_and_agrees_with_river(delay: int) -> None:
    classes = [LabelledEvent(f"s{i}", "c1", i, dict(x), y) for i, (x, y) in enumerate(_classes(1_500))]
    numbers = [LabelledEvent(f"n{i}", "c1", i, dict(x), y) for i, (x, y) in enumerate(_numbers(1_500, jump_at=10**9))]
    for events, factory, names in ((classes, "hoeffding_tree", {"accuracy"}),
                                   (numbers, "linear_regression", {"mae", "rmse"})):
        ours = replay(events, factory=factory, params={}, delay=delay).metrics
        river = river_progressive_scores(events, factory, {}, delay, timed=False)
        assert set(river) == names and all(abs(ours[n] - river[n]) < 1e-9 for n in names), (ours, river)


def test_replay_scores_string_classes_for_a_declared_positive_class() -> None:
    classes = [LabelledEvent(f"s{i}", "c1", i, dict(x), y) for i, (x, y) in enumerate(_classes(1_500))]
    without = replay(classes, factory="hoeffding_tree", params={}).metrics
    declared = replay(classes, factory="hoeffding_tree", params={}, positive="churned").metrics
    assert "roc_auc" not in without and declared["roc_auc"] > 0.8 and declared["accuracy"] == without["accuracy"]


def test_a_model_that_cannot_learn_the_labels_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    """String classes with the binary logistic regression: the replay used to learn nothing and print accuracy
    0.0000 (and --compare-river ended in a river traceback); it is refused before it starts, naming the way out."""
    path = tmp_path / "classes.csv"
    pd.DataFrame([{**x, "label": y} for x, y in _classes(300)]).to_csv(path, index=False)
    for extra in ([], ["--compare-river"]):
        result = CliRunner().invoke(cli, ["replay", "--no-progress", "--source", str(path), "--factory",
                                          "logistic_regression", *extra], prog_name="weir")
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert "logistic_regression learns labels that are true/false or 1/0, and the data has" in lines[0], lines
        assert "use hoeffding_tree instead" in lines[0], lines
    with pytest.raises(ConfigError, match="linear_regression learns labels that are a number, and "
                                          "WEIR_LABEL_KIND is multiclass: use hoeffding_tree instead"):
        refuse_unlearnable("linear_regression", kind="multiclass")
    refuse_unlearnable("hoeffding_tree", kind="binary", labels=[True, 0])  # what it learns passes
    refuse_unlearnable("pickle", kind="regression")  # a pickled model's kind is unknown: it passes
