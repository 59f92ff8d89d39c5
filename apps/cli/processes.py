"""``weir worker`` and ``weir produce``: the long-running processes of a deployment."""

from __future__ import annotations

import sys

import click

from apps.cli.common import PORT, POSITIVE, SHARE, Session, pass_session, source_options, stop_on_signals
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, publish, publisher_collector
from producers.schedule import DEFAULT_DRIFT
from producers.sources import SourceSpec
from streams.validate.rules import RuleSet
from weir.clock import now_ms
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


def _warn_if_all_refused(session: Session, source: str, newest_ms: int | None) -> None:
    """Say so when the validate stage would refuse every event, before any is sent: a source the rules file does
    not declare (a file's own name, say), or a file whose events are all late."""
    rules = RuleSet.load(session.settings.rules_path)
    if rules.for_source(source) is None:
        click.secho(f"weir produce: warning: {session.settings.rules_path}: {rules.unknown_source(source)}; every "
                    "event would be dead-lettered as unknown-source.", fg="yellow", err=True)
    max_lag = rules.max_lag_ms
    if newest_ms is None or max_lag is None or now_ms() - newest_ms <= max_lag:
        return
    click.secho(f"weir produce: warning: the newest event of this file is {(now_ms() - newest_ms) / 86_400_000:.1f} "
                f"days old, beyond the validate stage's max lag ({max_lag / 3_600_000:g} h): every event would be "
                "dead-lettered as late-event. --rebase-time moves the times so the newest is now.", fg="yellow",
                err=True)


@click.command()
@source_options(default_events=None, default_drift=DEFAULT_DRIFT)
@click.option("--duration", type=POSITIVE, help="Stop after this many seconds instead.")
@click.option("--rate", type=POSITIVE, help="Target events/s; default: as fast as the broker takes them.")
@click.option("--feedback-delay", default="fixed:1", show_default=True,
              help="When labels follow their event: fixed:<s>, exp:<mean s>, or column (a file's --delay-column).")
@click.option("--label-loss", type=SHARE, default=0.0, show_default=True, help="Share of labels that never arrive.")
@click.option("--label-duplicates", type=SHARE, default=0.0, show_default=True, help="Share of labels sent twice.")
@click.option("--resend", type=SHARE, default=0.0, show_default=True,
              help="Share of events sent a second time, same id, as a retrying application does (the front serves "
                   "each id once and dead-letters the copy as duplicate-event).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--metrics-port", type=PORT, help="Serve this producer's counters on /metrics at this port.")
@click.option("--rebase-time", is_flag=True,
              help="A file with --time-column: shift its times so the newest event is now, spacing kept (history "
                   "older than the validate stage's max lag would otherwise all be dead-lettered as late).")
@pass_session
def produce(session: Session, source: SourceSpec, duration: float | None, rate: float | None, feedback_delay: str,
            label_loss: float, label_duplicates: float, resend: float, progress: bool, metrics_port: int | None,
            rebase_time: bool) -> None:
    """Send events to events.raw and, after their delay, their labels to feedback.

    Keys are entity ids; records go through the idempotent producer. Delivery
    failures are counted with their reasons and make the exit code 1.
    SIGINT/SIGTERM stops early: accepted records are flushed, the labels of
    events already sent are delivered, and the summary is printed.
    """
    timed = source.columns is not None and source.columns.event_time is not None
    if rebase_time and not timed:
        raise click.UsageError("--rebase-time moves a file's times: give a file with --time-column")
    # A missing file, or one with no rows or with labels the learners refuse, says so before anything waits on the
    # broker.
    events = source.open(rebase_to_ms=now_ms() if rebase_time else None, label_kind=session.settings.label_kind)
    _warn_if_all_refused(session, events.name, events.newest_time_ms)
    ensure_reachable(session.settings)
    publisher = EventPublisher(session.settings, session.catalog)
    serve_metrics(metrics_port, publisher_collector(publisher), session.settings.web_bind)
    summary = publish(publisher, events, policy=FeedbackPolicy(feedback_delay, label_loss, label_duplicates),
                      rate=rate, duration_s=duration, stop=stop_on_signals(), progress=progress, seed=source.seed,
                      resend=resend)
    click.echo(summary.describe())
    for reason, n in {**summary.events.errors, **summary.feedback.errors}.items():
        click.echo(f"  delivery failure x{n}: {reason}", err=True)
    if summary.failed:
        sys.exit(1)


@click.command("serve-http")
@click.option("--port", type=PORT, help="Port to listen on (env WEIR_HTTP_PORT; default 8080).")
@click.option("--bind", help="Address to listen on (env WEIR_WEB_BIND; default 127.0.0.1, 0.0.0.0 in a container).")
@click.option("--source", help="Source of a request's event when it names none, which picks its validation rules: "
              "one the rules file declares, or any if it names a default_source (env WEIR_HTTP_SOURCE; default "
              "churn).")
@click.option("--loglevel", default="info", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              show_default=True)
@pass_session
def serve_http(session: Session, port: int | None, bind: str | None, source: str | None, loglevel: str) -> None:
    """Serve the model over HTTP, on the same registry, routing, topics and feedback loop as the stream.

    \b
    Endpoints (Open Inference Protocol v2 REST, plus two of Weir's own):
      POST /v2/models/NAME/infer                  inputs are columns, one row per event
      POST /v2/models/NAME/versions/V/infer       served by V (the champion or the canary)
      POST /predict                               {"entity_id", "attributes", ...} -> the served prediction
      POST /v2/feedback                           {"event_id", "entity_id", "label"} or a list of them
      GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/V][/ready], /metrics

    Each event is checked by the validation rules (422 and a dead letter if it
    breaks one), featurised, scored by every active version and served by the
    same router as the stream, so an entity gets the same arm either way. Its
    raw event, features and predictions are on the topics before the answer
    goes out. Routing changes reach the service within a second. SIGTERM lets
    requests in flight finish and flushes the producer. See docs/http.md.
    """
    from apps.service.inference import source_rules  # the stream stages and uvicorn load only for this command
    from apps.service.server import run_service

    settings = session.settings.with_overrides(http_port=port, web_bind=bind, http_source=source)
    source_rules(settings)  # a source without rules says so before anything waits on the broker
    ensure_reachable(settings)
    run_service(settings, loglevel=loglevel)
