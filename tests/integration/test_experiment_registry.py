"""`weir experiment run --register-best`: the winner enters Weir's registry (on the real broker) and MLflow's."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from apps.cli import cli
from apps.processes import settings_env
from tests.unit.test_experiments import SPEC, _snapshot
from weir.contract.serde import SchemaCatalog
from weir.registry.decisions import current, promote
from weir.settings import Settings


def test_the_best_run_becomes_the_first_champion_then_a_shadow_challenger_with_its_lineage(
        kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    settings = kafka.with_overrides(model_key=SecretStr("k" * 32))
    _snapshot(tmp_path / "v1", settings, catalog)
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = {**settings_env(settings), "MLFLOW_TRACKING_URI": ""}
    args = ["experiment", "run", str(tmp_path / "spec.yaml"), "--runs-dir", str(tmp_path / "runs"), "--jobs", "1",
            "--no-progress", "--register-best", "churn", "--mlflow-model", "churn-model"]
    first = CliRunner().invoke(cli, args, env=env, prog_name="weir")
    assert first.exit_code == 0, first.output
    assert "registered churn v1 from run" in first.output and "(basic)" in first.output
    best_run = first.output.split("registered churn v1 from run ")[1].split()[0]
    second = CliRunner().invoke(cli, args, env=env, prog_name="weir")  # the same experiment again: a challenger
    assert second.exit_code == 0 and "registered churn v2" in second.output and "(shadow)" in second.output

    registry = current(settings, catalog, "churn")
    assert registry.routing is not None and (registry.routing.mode, registry.routing.champion,
                                             registry.routing.challengers) == ("shadow", "v1", ("v2",))
    history = {entry.describe() for entry in registry.history()}
    assert any(f"mlflow_run_id: {best_run}" in text for text in history), history
    assert any("data_version: sha256:" in text for text in history)
    assert registry.versions["v1"].model is not None  # the run's model, signed here, loads from the record

    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'runs' / 'mlflow' / 'mlflow.db').resolve()}")
    assert client.get_model_version_by_alias("churn-model", "champion").run_id == best_run
    assert str(client.get_model_version_by_alias("churn-model", "challenger").version) == "2"

    promote(settings, catalog, "churn", "v2")  # later, in Weir: v2 serves
    mirrored = CliRunner().invoke(cli, ["experiment", "aliases", "churn", "--mlflow-model", "churn-model",
                                        "--runs-dir", str(tmp_path / "runs")], env=env, prog_name="weir")
    assert mirrored.exit_code == 0, mirrored.output
    assert "churn-model@champion: v2 (MLflow version 2)" in mirrored.output and "churn-model@challenger: -" in \
        mirrored.output
    assert str(client.get_model_version_by_alias("churn-model", "champion").version) == "2"
    assert "challenger" not in client.get_registered_model("churn-model").aliases
