"""Experiments: specs expand to candidates, and a run of several logs to a real local MLflow store, read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from apps.cli import cli
from apps.experiments import parse_spec
from apps.processes import settings_env
from apps.replay import replay_vectors
from apps.snapshots import write_snapshot
from streams.features import feature_vector
from tests.support import events
from weir.contract.records import FeatureVector, Label
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES
from weir.errors import ConfigError
from weir.kafka.ranges import TopicRange
from weir.settings import Settings
from weir.state import pickling

SPEC = """\
name: churn-test
data: {snapshot: v1}
rank_by: accuracy
every: 200
candidates:
  - factory: logistic_regression
    params: {lr: [0.01, 0.1]}
  - factory: hoeffding_tree
    params: {grace_period: 50}
    features: [monthly_charges, support_calls_30d, contract]
"""


def test_a_grid_expands_and_every_problem_is_named() -> None:
    spec, candidates = parse_spec(SPEC, "spec.yaml")
    assert spec.rank_by == "accuracy" and [c.name for c in candidates] == [
        "logistic_regression(lr=0.01)", "logistic_regression(lr=0.1)", "hoeffding_tree(grace_period=50) on 3 features"]
    for text, named in (
        (SPEC.replace("hoeffding_tree", "magic_tree"), "unknown model factory 'magic_tree'"),
        (SPEC.replace("grace_period: 50", "grace: 50"), "bad parameters for hoeffding_tree"),
        (SPEC.replace("[0.01, 0.1]", "[0.1, 0.1]"), "listed twice"),
        (SPEC.replace("{snapshot: v1}", "{snapshot: v1, since: 0}"), "not both"),
        (SPEC.replace("rank_by: accuracy", "rank_by: speed"), "rank_by"),
        (SPEC + "colour: blue\n", "colour"),
    ):
        with pytest.raises(ConfigError, match=named):
            parse_spec(text, "spec.yaml")


def _snapshot(folder: Path, settings: Settings, catalog: SchemaCatalog) -> tuple[list[FeatureVector],
                                                                                 dict[str, tuple[int, Label]]]:
    """1,200 churn events (a concept drift half-way), each label 20 events later, as a data version."""
    serde = topic_serde(catalog, settings, FEATURES)
    stream = events("churn", 1_200)
    vectors: list[FeatureVector] = [feature_vector(e.raw("churn")) for e in stream]
    labels = {e.event_id: (e.event_time_ms + 20, e.label) for e in stream if e.label is not None}
    span = TopicRange(vectors, labels, {}, {}, {v["event_id"]: serde.encode(v) for v in vectors})
    write_snapshot(span, folder, since_ms=0, until_ms=1_200)
    return vectors, labels


def test_an_experiment_logs_each_candidate_to_mlflow_and_ranks_them(tmp_path: Path, catalog: SchemaCatalog) -> None:
    settings = Settings(home=tmp_path / "home")
    vectors, labels = _snapshot(tmp_path / "v1", settings, catalog)
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = {**settings_env(settings), "MLFLOW_TRACKING_URI": ""}
    runner = CliRunner()
    done = runner.invoke(cli, ["experiment", "run", str(tmp_path / "spec.yaml"), "--runs-dir", str(tmp_path / "runs"),
                               "--jobs", "2", "--no-progress"], env=env, prog_name="weir")
    assert done.exit_code == 0, done.output
    ranking = [line for line in done.output.splitlines() if line.lstrip()[:2] in ("1.", "2.", "3.")]
    assert len(ranking) == 3

    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'runs' / 'mlflow' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("churn-test")
    assert experiment is not None
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"logistic_regression(lr=0.01)", "logistic_regression(lr=0.1)",
                         "hoeffding_tree(grace_period=50) on 3 features"}
    first = runs["logistic_regression(lr=0.1)"]
    ours = replay_vectors(vectors, labels, factory="logistic_regression", params={"lr": 0.1}, every=200)
    assert first.info.status == "FINISHED" and first.data.params["lr"] == "0.1"
    assert first.data.metrics["accuracy"] == ours.metrics["accuracy"]  # the same replay, to the last digit
    history = client.get_metric_history(first.info.run_id, "accuracy")
    assert [m.step for m in history] == [200, 400, 600, 800, 1000, 1200]  # every 200 labels
    assert first.data.tags["weir.data_version"].startswith("sha256:") and "river.version" in first.data.tags
    artifacts = {a.path for a in client.list_artifacts(first.info.run_id)} | {
        a.path for folder in ("data", "model", "plots") for a in client.list_artifacts(first.info.run_id, folder)}
    assert {"data/manifest.json", "model/model.pkl", "plots/accuracy.png"} <= artifacts
    model_file = client.download_artifacts(first.info.run_id, "model/model.pkl", str(tmp_path))
    model: Any = pickling.loads(Path(model_file).read_bytes())
    replayed: Any = ours.registry.versions["v1"].model
    probe = dict(vectors[0]["features"])
    assert model.predict_proba_one(probe) == replayed.predict_proba_one(probe)
    best = max(runs.values(), key=lambda r: r.data.metrics["accuracy"])
    assert best.info.run_name in ranking[0]

    compared = runner.invoke(cli, ["experiment", "compare", "churn-test", "--runs-dir", str(tmp_path / "runs")],
                             env=env, prog_name="weir")
    assert compared.exit_code == 0 and best.info.run_name in compared.output.splitlines()[0], compared.output

    drawn = runner.invoke(cli, ["report", "--experiment", "churn-test", "--runs-dir", str(tmp_path / "runs")],
                          env=env, prog_name="weir")
    assert drawn.exit_code == 0, drawn.output
    page = tmp_path / "runs" / "reports" / "churn-test" / "report.html"
    assert drawn.output.strip() == f"report: {page}"
    text = page.read_text()
    table = text.split('data-figure="ranking"')[1]
    assert table.index(best.info.run_name) < min(table.index(r) for r in runs if r != best.info.run_name)
    assert (page.parent / "report" / "runs.png").exists() and text.count("data:image/png;base64,") == 2
