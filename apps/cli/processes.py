"""``weir worker`` and ``weir produce``: the long-running processes of a deployment."""

from __future__ import annotations

import sys

import click

from apps.cli.common import PORT, POSITIVE, SHARE, Session, pass_session, source_options, stop_on_signals
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, publish, publisher_collector
from producers.schedule import DEFAULT_DRIFT
from producers.sources import SourceSpec
from weir.kafka.admin import ensure_reachable
from weir.metrics import serve_metrics

STAGES = ("front", "back", "validate", "features", "serve", "learn", "monitor")  # as streams.worker names them


@click.command()
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGES),
              help="Run only these stages (repeatable); default: all of them in this process, as the front "
                   "(validate, features and serve fused) and the back (learn and monitor fused) unless "
                   "WEIR_FUSED=false.")
@click.option("--web-port", type=PORT, help="Port of this worker's /metrics endpoint (env WEIR_WEB_PORT).")
@click.option("--loglevel", default="info", type=click.Choice(["crit", "error", "warn", "info", "debug"]),
              show_default=True)
@pass_session
def worker(session: Session, stages: tuple[str, ...], web_port: int | None, loglevel: str) -> None:
    """Run stream stages as a faust-streaming worker until SIGINT/SIGTERM.

    All stages in one process share the live models (serving uses what the
    learner just learned). Several workers with the same --app-id split the
    partitions between them.
    """
    from streams.worker import default_stages, run_worker  # faust takes a second to import: only workers pay

    settings = session.settings.with_overrides(web_port=web_port)
    run_worker(settings, stages or default_stages(settings), loglevel=loglevel)


@click.command()
@source_options(default_events=None, default_drift=DEFAULT_DRIFT)
@click.option("--duration", type=POSITIVE, help="Stop after this many seconds instead.")
@click.option("--rate", type=POSITIVE, help="Target events/s; default: as fast as the broker takes them.")
@click.option("--feedback-delay", default="fixed:1", show_default=True,
              help="When labels follow their event: fixed:<s>, exp:<mean s>, or column (a file's --delay-column).")
@click.option("--label-loss", type=SHARE, default=0.0, show_default=True, help="Share of labels that never arrive.")
@click.option("--label-duplicates", type=SHARE, default=0.0, show_default=True, help="Share of labels sent twice.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--metrics-port", type=PORT, help="Serve this producer's counters on /metrics at this port.")
@pass_session
def produce(session: Session, source: SourceSpec, duration: float | None, rate: float | None, feedback_delay: str,
            label_loss: float, label_duplicates: float, progress: bool, metrics_port: int | None) -> None:
    """Send events to events.raw and, after their delay, their labels to feedback.

    Keys are entity ids; records go through the idempotent producer. Delivery
    failures are counted with their reasons and make the exit code 1.
    SIGINT/SIGTERM stops early: accepted records are flushed, the labels of
    events already sent are delivered, and the summary is printed.
    """
    events = source.open()  # a missing file says so before anything waits on the broker
    ensure_reachable(session.settings)
    publisher = EventPublisher(session.settings, session.catalog)
    serve_metrics(metrics_port, publisher_collector(publisher), session.settings.web_bind)
    summary = publish(publisher, events, policy=FeedbackPolicy(feedback_delay, label_loss, label_duplicates),
                      rate=rate, duration_s=duration, stop=stop_on_signals(), progress=progress, seed=source.seed)
    click.echo(summary.describe())
    for reason, n in {**summary.events.errors, **summary.feedback.errors}.items():
        click.echo(f"  delivery failure x{n}: {reason}", err=True)
    if summary.failed:
        sys.exit(1)
