"""``weir experiment``: candidates replayed over one data version, tracked in MLflow, ranked, the best registered."""

from __future__ import annotations

import os
from pathlib import Path

import click

from apps.cli.common import Session, pass_session
from weir.contract.feedback import parse_positive


@click.group()
def experiment() -> None:
    """Experiments: model specs replayed over one data version and tracked in MLflow (docs/experiments.md)."""


@experiment.command("run")
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="the CPU count",
              help="Candidates replayed at once, each in its own process.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="The embedded MLflow store lives in <runs-dir>/mlflow, unless "
                                      "MLFLOW_TRACKING_URI names another.")
@click.option("--register-best", "model_name", default=None, metavar="MODEL",
              help="Register the best run's model as a new version of MODEL in Weir's registry, shadowing its "
                   "champion (a person's routing: it pauses MODEL's policy until `weir policy resume`).")
@click.option("--mlflow-model", default=None, metavar="NAME",
              help="With --register-best: also make it a version of MLflow's registered model NAME, alias "
                   "`challenger` (or `champion` when it is MODEL's first).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def run(session: Session, spec_file: Path, jobs: int, runs_dir: Path, model_name: str | None,
        mlflow_model: str | None, progress: bool) -> None:
    """Replay every candidate of SPEC_FILE over its data and track each as an MLflow run.

    The data is a snapshot (`weir data snapshot`) or a topic range; each
    candidate (a factory, its hyperparameters, a grid where a value is a list,
    and a feature subset) goes through the deterministic progressive
    validation of `weir replay`, labels learned at their recorded times. Each
    run holds the parameters, the metrics over time (step: labels learned),
    the data manifest and version, the model, a plot, and the code and library
    versions. The runs are then ranked by the spec's `rank_by`.
    """
    from apps import experiments
    from apps.tracking import Tracker

    if mlflow_model is not None and model_name is None:
        raise click.UsageError("--mlflow-model goes with --register-best")
    spec, candidates = experiments.parse_spec(spec_file.read_text(), str(spec_file))
    vectors, labels, data = experiments.load_data(session.settings, session.catalog, spec.data, spec_file.parent,
                                                  progress)
    if not labels:
        raise click.ClickException("the data holds no labels: an experiment has nothing to score")
    tracker = Tracker(spec.name, runs_dir)
    click.echo(f"experiment {spec.name}: {len(candidates)} candidates over {len(vectors)} events, {len(labels)} "
               f"labels ({data.data_version}); tracking at {tracker.uri}")
    outcomes: list[experiments.Outcome] = []
    run_ids: dict[str, str] = {}

    def done(outcome: experiments.Outcome) -> None:
        run_ids[outcome.candidate.name] = tracker.log(outcome, data, spec.rank_by)
        outcomes.append(outcome)

    experiments.run_all(candidates, vectors, labels, positive=parse_positive(session.settings.positive_label),
                        every=spec.every, jobs=min(jobs, len(candidates)), progress=progress, on_done=done)
    best = experiments.ranked(outcomes, spec.rank_by)
    for rank, outcome in enumerate(best, 1):
        score = outcome.metrics.get(spec.rank_by)
        click.echo(f"{rank:3}. {spec.rank_by} {'-' if score is None else f'{score:.6f}'}  "
                   f"{outcome.candidate.name}  run {run_ids[outcome.candidate.name]}")
    if model_name is None:
        return
    winner = best[0]
    run_id, score = run_ids[winner.candidate.name], winner.metrics.get(spec.rank_by)
    version, mode = experiments.register_winner(
        session.settings, session.catalog, model_name, winner.model, run=run_id, experiment=spec.name,
        candidate=winner.candidate.name, data_version=data.data_version, tracking_uri=tracker.uri,
        score=f"{spec.rank_by} {score}")
    click.echo(f"registered {model_name} {version} from run {run_id} ({mode})")
    if mlflow_model is not None:
        alias = "champion" if mode == "basic" else "challenger"
        mlflow_version = tracker.register_in_mlflow(mlflow_model, run_id, alias)
        click.echo(f"MLflow registered model {mlflow_model} version {mlflow_version}, alias {alias}")


@experiment.command("compare")
@click.argument("name")
@click.option("--rank-by", type=click.Choice(["accuracy", "log_loss", "roc_auc", "mae", "rmse"]), default="accuracy",
              show_default=True)
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True)
def compare(name: str, rank_by: str, runs_dir: Path) -> None:
    """Rank the finished runs of experiment NAME, read back from MLflow, best first."""
    from apps.tracking import Tracker

    tracker = Tracker(name, runs_dir)
    runs = tracker.runs(rank_by)
    if not runs:
        raise click.ClickException(f"experiment {name} has no finished runs at {tracker.uri}")
    for rank, found in enumerate(runs, 1):
        score = found.data.metrics.get(rank_by)
        click.echo(f"{rank:3}. {rank_by} {'-' if score is None else f'{score:.6f}'}  {found.info.run_name}  "
                   f"run {found.info.run_id}  data {found.data.tags.get('weir.data_version', '-')[:19]}")


@experiment.command("aliases")
@click.argument("model")
@click.option("--mlflow-model", required=True, metavar="NAME", help="MLflow's registered model to update.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Where the embedded MLflow store is, unless MLFLOW_TRACKING_URI names another.")
@pass_session
def aliases(session: Session, model: str, mlflow_model: str, runs_dir: Path) -> None:
    """Mirror MODEL's routing in Weir's registry as MLflow aliases: `champion` and `challenger`.

    Run it after a promotion or a rollback (by the policy or a person): the
    aliases then name the MLflow versions made from the Weir versions that
    serve now, found through each Weir version's `mlflow_run_id`.
    """
    from apps.tracking import client, mirror_aliases, tracking_uri
    from weir.registry.decisions import current

    registry = current(session.settings, session.catalog, model)
    if registry.routing is None:
        raise click.ClickException(f"{model} has no routing yet")
    runs = {v.version: v.evidence["mlflow_run_id"] for v in registry.versions.values()
            if "mlflow_run_id" in v.evidence}
    routing, store = registry.routing, client(tracking_uri(runs_dir))
    done = mirror_aliases(store, mlflow_model, runs, routing.champion, list(routing.challengers))
    for alias, target in done.items():
        click.echo(f"{mlflow_model}@{alias}: {target}")

