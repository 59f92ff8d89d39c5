"""``weir demo``: what `make demo` runs."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from apps.cli.common import COUNT, POSITIVE, Session, pass_session, stop_on_signals
from producers.schedule import DEMO_DRIFT
from weir.errors import WeirError


@click.command()
@click.option("--events", "count", type=COUNT, default=30_000, show_default=True,
              help="Events in the bounded demo stream.")
@click.option("--feedback-delay", default=1.0, show_default=True, help="Seconds between an event and its label.")
@click.option("--rate", type=POSITIVE, default=500.0, show_default=True,
              help="Events/s the producer sends; the back (learning a Hoeffding tree) keeps up at this rate, so the "
                   "policy's retraining and promotion land while the stream still runs.")
@click.option("--drift", default=DEMO_DRIFT, show_default=True,
              help="Drift schedule of the churn stream (see `weir produce --help`).")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--broker-outage", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="SECONDS",
              help="Also kill -9 the local broker at 70%% of the stream and start it again this many seconds later; "
                   "the run must still reconcile, with no one stepping in.")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The automation policy of the demo's model (`model: default`); by default the demo's own, written "
                   "to runs/<id>/policy.yaml. See docs/automation.md.")
@pass_session
def demo(session: Session, count: int, feedback_delay: float, rate: float, drift: str, runs_dir: Path,
         broker_outage: float, policy_file: Path | None) -> None:
    """Run the whole loop end to end on a bounded churn stream and write runs/<id>/summary.json.

    Starts the local broker unless WEIR_KAFKA_BOOTSTRAP names a cluster,
    creates the run's own topics, starts a worker, produces customer events
    with a drift schedule and their labels, waits until every event is served
    or dead-lettered and every label learned, reads what the summary needs,
    then stops everything it started (also on Ctrl-C or a failure). The summary
    is always written and its path is the last line printed; it reconciles the
    counts and reports data quality per dimension and the alerts next to the
    drift points. Exit code 0 only when the run reconciled.
    """
    from apps.demo import run_demo

    stop = stop_on_signals()
    outcome = run_demo(session.settings, events=count, feedback_delay_s=feedback_delay, rate=rate, drift=drift,
                       runs_dir=runs_dir, stop=stop, broker_outage_s=broker_outage, policy=policy_file)
    if outcome.failure is not None and not isinstance(outcome.failure, WeirError | KeyboardInterrupt):
        traceback.print_exception(outcome.failure)
    if outcome.failure is not None:
        click.secho(f"weir demo: the run failed: {outcome.failure}", fg="red", err=True)
    elif not outcome.ok:
        click.secho("weir demo: the run did not reconcile", fg="red", err=True)
    sys.stderr.flush()
    if outcome.report is not None:
        click.echo(f"report: {outcome.report}")
    click.echo(f"summary: {outcome.path}")  # always the last line
    if not outcome.ok:
        sys.exit(130 if stop.is_set() else 1)
