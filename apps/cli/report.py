"""``weir report``: a demo run or an experiment as a self-contained HTML page and PNG images."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--experiment", default=None, metavar="NAME", help="An experiment's runs instead of a demo run.")
@click.option("--rank-by", type=click.Choice(["accuracy", "log_loss", "roc_auc", "mae", "rmse"]), default="accuracy",
              show_default=True, help="With --experiment: the metric its runs are drawn and ranked by.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="With --experiment: where its MLflow store is (see weir experiment run).")
def report(run_dir: Path | None, experiment: str | None, rank_by: str, runs_dir: Path) -> None:
    """Write report.html and its PNG images for a demo run folder (RUN_DIR) or an experiment.

    A demo run's page shows accuracy and log loss per version over the
    stream with the drift points and the policy's decisions marked, who served
    (the canary share), data quality per dimension, data drift per feature,
    the alerts on a timeline, latency and throughput, the recovery after each
    promotion, and, when the run's policy has `business:` values, the money
    gained against no model and against the previous champion. An
    experiment's page shows its runs side by side. Every figure lists the
    numbers it plots. The page embeds its images: it is one file to share.
    """
    from apps import report as reporting

    if (run_dir is None) == (experiment is None):
        raise click.UsageError("give a demo run folder or --experiment NAME (one of them)")
    if run_dir is not None:
        if not (run_dir / "summary.json").exists():
            raise click.ClickException(f"{run_dir} holds no summary.json: not a demo run folder")
        path = reporting.report_demo_run(run_dir)
    else:
        assert experiment is not None
        try:
            path = reporting.report_experiment(experiment, rank_by, runs_dir)
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"report: {path}")
