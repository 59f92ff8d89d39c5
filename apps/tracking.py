"""Experiment runs in MLflow: one run per candidate, read back through MLflow's own client.

Only this process writes (the workers that replay the candidates return
their outcomes), so the embedded SQLite store never sees two writers. The
tracking URI is MLflow's own setting (``MLFLOW_TRACKING_URI``) when it is
set, else the embedded store under the runs folder; artifacts of an
experiment created here live beside that store.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  # after choosing the backend
from mlflow.entities import Metric, Param, Run  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from apps.experiments import LOWER_IS_BETTER, DataVersion, Outcome, code_tags, default_tracking_uri  # noqa: E402

MODEL_ARTIFACT = "model/model.pkl"


class Tracker:
    """One experiment in one tracking store."""

    def __init__(self, experiment: str, runs_dir: Path) -> None:
        self.uri = tracking_uri(runs_dir)
        self.client = client(self.uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            artifacts = None if os.environ.get("MLFLOW_TRACKING_URI") else (runs_dir / "mlflow" / "artifacts")
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifacts.resolve().as_uri() if artifacts else None)

    def log(self, outcome: Outcome, data: DataVersion, rank_by: str) -> str:
        """One finished candidate as a run; its id."""
        candidate = outcome.candidate
        tags = {**code_tags(), "weir.data_version": data.data_version, "weir.factory": candidate.factory,
                "weir.rank_by": rank_by}
        run_id: str = self.client.create_run(self.experiment_id, run_name=candidate.name, tags=tags).info.run_id
        now = int(time.time() * 1000)
        params = [Param("factory", candidate.factory), Param("features", json.dumps(candidate.features)),
                  *(Param(k, json.dumps(v)) for k, v in sorted(candidate.params.items()))]
        metrics = [Metric(k, v, now, outcome.labels) for k, v in outcome.metrics.items()]
        metrics += [Metric(k, v, now, step) for step, values in outcome.history for k, v in values.items()]
        metrics.append(Metric("labels", outcome.labels, now, outcome.labels))
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics in one batch
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000],
                                  params=params if start == 0 else ())
        self.client.log_dict(run_id, data.manifest, "data/manifest.json")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(MODEL_ARTIFACT).name
            path.write_bytes(outcome.model)
            self.client.log_artifact(run_id, str(path), str(Path(MODEL_ARTIFACT).parent))
        self.client.log_figure(run_id, _plot(outcome, rank_by), f"plots/{rank_by}.png")
        self.client.set_terminated(run_id)
        return run_id

    def runs(self, rank_by: str) -> list[Run]:
        """Every finished run of the experiment, best first by ``rank_by``."""
        order = "ASC" if rank_by in LOWER_IS_BETTER else "DESC"
        return list(self.client.search_runs([self.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                            order_by=[f"metrics.{rank_by} {order}", "attributes.run_name ASC"]))

    def model_bytes(self, run_id: str) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            local: str = self.client.download_artifacts(run_id, MODEL_ARTIFACT, folder)
            return Path(local).read_bytes()

    def register_in_mlflow(self, name: str, run_id: str, alias: str) -> str:
        """The run's model as a version of MLflow's registered model ``name``, with ``alias``; the version."""
        if not _exists(self.client, name):
            self.client.create_registered_model(name)
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{Path(MODEL_ARTIFACT).parent}"
        version = self.client.create_model_version(name, source, run_id=run_id).version
        self.client.set_registered_model_alias(name, alias, str(version))
        return str(version)


def tracking_uri(runs_dir: Path) -> str:
    """MLflow's own setting when given, else the embedded store under the runs folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(runs_dir)


def client(uri: str) -> MlflowClient:
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its table migrations at every command
    return MlflowClient(tracking_uri=uri)


def mirror_aliases(client: MlflowClient, name: str, runs: dict[str, str], champion: str,
                   challengers: list[str]) -> dict[str, str]:
    """Set MLflow's aliases of registered model ``name`` to Weir's routing: ``champion`` and ``challenger`` (the
    first challenger) point at the MLflow versions made from those Weir versions' runs (``runs``: Weir version
    -> MLflow run id). An alias whose Weir version has no MLflow version is removed. What each alias now
    names."""
    versions = {v.run_id: str(v.version) for v in client.search_model_versions(f"name='{name}'")}
    wanted = {"champion": champion, "challenger": challengers[0] if challengers else None}
    out = {}
    aliases = client.get_registered_model(name).aliases
    for alias, weir_version in wanted.items():
        mlflow_version = versions.get(runs.get(weir_version or "", ""))
        if mlflow_version is not None:
            client.set_registered_model_alias(name, alias, mlflow_version)
            out[alias] = f"{weir_version} (MLflow version {mlflow_version})"
        elif alias in aliases:
            client.delete_registered_model_alias(name, alias)
            out[alias] = "-"
    return out


def _exists(client: MlflowClient, name: str) -> bool:
    return any(m.name == name for m in client.search_registered_models(filter_string=f"name = '{name}'"))


def _plot(outcome: Outcome, rank_by: str) -> Any:
    """The ranking metric (and its rolling form) over the labels learned."""
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for key in (rank_by, f"{rank_by}_rolling"):
        points = [(step, values[key]) for step, values in outcome.history if key in values]
        if points:
            axes.plot([s for s, _ in points], [v for _, v in points], label=key)
    axes.set_xlabel("labels learned")
    axes.set_ylabel(rank_by)
    axes.set_title(outcome.candidate.name, fontsize=9)
    axes.legend()
    figure.tight_layout()
    plt.close(figure)
    return figure
