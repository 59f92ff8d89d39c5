"""``weir report``: a demo run, an experiment or a topic range as a self-contained HTML page and PNG images."""

from __future__ import annotations

from pathlib import Path

import click

from apps.cli.common import Instant, Session, pass_session


@click.command("report")
@click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--experiment", default=None, metavar="NAME", help="An experiment's runs instead of a demo run.")
@click.option("--rank-by", type=click.Choice(["accuracy", "log_loss", "roc_auc", "mae", "rmse"]), default="accuracy",
              show_default=True, help="With --experiment: the metric its runs are drawn and ranked by.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="With --experiment: where its MLflow store is (see weir experiment run).")
@click.option("--since", type=Instant(), default=None, help="A topic range instead: the first event time taken.")
@click.option("--until", type=Instant(), default=None, help="A topic range: the event time where it stops.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A topic range: the folder for the page (default runs/reports/range-<since>-<until>).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A topic range: the policy whose business values price the outcomes (default WEIR_POLICY_FILE).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def report(session: Session, run_dir: Path | None, experiment: str | None, rank_by: str, runs_dir: Path,
           since: int | None, until: int | None, out: Path | None, policy_file: Path | None, progress: bool) -> None:
    """Write report.html and its PNG images for a demo run folder (RUN_DIR), an experiment (--experiment) or
    a topic range (--since/--until).

    A demo run's page shows accuracy and log loss per version over the
    stream with the drift points and the policy's decisions marked, who served
    (the canary share), data quality per dimension, data drift per feature,
    the alerts on a timeline, latency and throughput, the recovery after each
    promotion, and, when the run's policy has `business:` values, the money
    gained against no model and against the previous champion. A topic range's
    page shows the same from what the topics hold (its predictions, labels,
    alerts, decisions and dead letters), placed by event time. An
    experiment's page shows its runs side by side. Every figure lists the
    numbers it plots. The page embeds its images: it is one file to share.
    """
    from apps import report as reporting
    from apps.replay import END_OF_TIME
    from weir.registry.policy import load_policy

    ranged = since is not None or until is not None
    if sum((run_dir is not None, experiment is not None, ranged)) != 1:
        raise click.UsageError("give one of: a demo run folder, --experiment NAME, or --since/--until")
    if run_dir is not None:
        if not (run_dir / "summary.json").exists():
            raise click.ClickException(f"{run_dir} holds no summary.json: not a demo run folder")
        path = reporting.report_demo_run(run_dir)
    elif experiment is not None:
        try:
            path = reporting.report_experiment(experiment, rank_by, runs_dir)
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        first, end = since or 0, until or END_OF_TIME
        policy = policy_file or session.settings.policy_file
        try:
            path = reporting.report_topic_range(
                session.settings, session.catalog, since_ms=first, until_ms=end,
                out=out or runs_dir / "reports" / f"range-{first}-{until or 'end'}",
                business=load_policy(policy).business if policy else None, progress=progress)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"report: {path}")
