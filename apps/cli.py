"""The ``weir`` command: one entry point for every process and chore.

Global options (``--bootstrap``, ``--prefix``...) override the ``WEIR_*``
environment; every subcommand explains itself with ``--help``. A ``WeirError``
ends the command with its one-line message and exit code 1, not a traceback.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from producers.schedule import DEFAULT_DRIFT, DriftSchedule
from weir.errors import WeirError
from weir.kafka import local as local_kafka
from weir.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so loops can finish what they accepted and report."""
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


class WeirGroup(click.Group):
    """Turns Weir's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WeirError as exc:
            click.secho(f"weir: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=WeirGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--bootstrap", help="Bootstrap servers of an existing cluster (env WEIR_KAFKA_BOOTSTRAP); "
              "without it Weir uses the local broker it manages.")
@click.option("--prefix", "topic_prefix", help="Prefix of every topic name (env WEIR_TOPIC_PREFIX).")
@click.option("--app-id", help="faust app id, the root of consumer group ids (env WEIR_APP_ID).")
@click.option("--partitions", type=int, help="Partitions of the topics Weir creates (env WEIR_PARTITIONS).")
@click.pass_context
def cli(ctx: click.Context, bootstrap: str | None, topic_prefix: str | None, app_id: str | None,
        partitions: int | None) -> None:
    """Weir: the whole machine-learning loop on live Kafka data.

    Producers publish events; stream stages validate them, compute features,
    score them with every active model version, learn from delayed labels and
    watch for drift; alerts go to on-call. Settings come from WEIR_* environment
    variables; the options here override them.
    """
    ctx.obj = Settings().with_overrides(
        kafka_bootstrap=bootstrap, topic_prefix=topic_prefix, app_id=app_id, partitions=partitions
    )


@cli.group()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) from Maven Central.

    The broker's jars are resolved by Maven from kafka/pom.xml into WEIR_HOME
    (default ~/.cache/weir), its data and log live there too. With
    WEIR_KAFKA_BOOTSTRAP set these commands leave that cluster alone.
    """


@kafka.command("up")
@click.pass_context
def kafka_up(ctx: click.Context) -> None:
    """Provision (first time only), format and start the broker; wait until it answers."""
    settings = _settings(ctx)
    if not settings.uses_local_broker:
        state = local_kafka.status(settings)
        click.echo(f"using the configured cluster {settings.bootstrap} "
                   f"({'answering' if state.running else 'NOT answering'}); nothing started")
        return
    click.echo("starting the local Kafka broker (the first run downloads it from Maven Central)...")
    state = local_kafka.up(settings)
    verb = "started" if state.started_here else "already running"
    click.echo(f"Kafka {verb} at {state.bootstrap} (pid {state.pid}); log: {state.log}")


@kafka.command("down")
@click.pass_context
def kafka_down(ctx: click.Context) -> None:
    """Stop the local broker (SIGTERM, then SIGKILL after 30 s). Its data is kept."""
    settings = _settings(ctx)
    if not settings.uses_local_broker:
        click.echo(f"the configured cluster {settings.bootstrap} is not Weir's to stop; nothing done")
        return
    click.echo("stopped the local broker" if local_kafka.down(settings) else "no local broker was running")


@kafka.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def kafka_run(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Run COMMAND with the local broker up; stop it afterwards only if this started it.

    A broker that was already running (yours) is left running; one started
    here is stopped when COMMAND ends, fails, or is interrupted. The exit code
    is COMMAND's. Example: `weir kafka run -- make test` (what .ci/run does).
    """
    import subprocess

    settings = _settings(ctx)
    state = local_kafka.up(settings)
    click.echo(f"weir kafka run: broker {'started' if state.started_here else 'already running'} at "
               f"{state.bootstrap}", err=True)
    stop = _stop_on_signals()
    child = subprocess.Popen(command)
    try:
        while child.poll() is None:
            if stop.wait(0.2):
                child.terminate()
                child.wait()
    finally:
        if state.started_here:
            local_kafka.down(settings)
            click.echo("weir kafka run: stopped the broker it started", err=True)
    sys.exit(child.returncode)


@kafka.command("status")
@click.pass_context
def kafka_status(ctx: click.Context) -> None:
    """Say whether the broker answers, where, and where its log is. Exit code 1 when it does not."""
    state = local_kafka.status(_settings(ctx))
    where = f"{state.bootstrap}" + (f" (pid {state.pid}; log: {state.log})" if state.pid else "")
    click.echo(f"Kafka {'answering' if state.running else 'not answering'} at {where}")
    if not state.running:
        sys.exit(1)


@cli.group()
def topics() -> None:
    """The topic contract: events.raw, events.dlq, events.valid, features, predictions, feedback, models, alerts."""


@topics.command("create")
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create every contract topic that is missing; report the ones that exist. Safe to run twice."""
    from weir.kafka.admin import create_topics

    outcomes = create_topics(_settings(ctx))
    for o in outcomes:
        click.echo(f"{o.action:8} {o.topic}" + (f"  ({o.detail})" if o.detail else ""))
    created = sum(o.action == "created" for o in outcomes)
    click.echo(f"{created} created, {len(outcomes) - created} already there"
               + ("; nothing changed" if created == 0 else ""))
    if any(o.action == "differs" for o in outcomes):
        sys.exit(1)


@topics.command("list")
@click.pass_context
def topics_list(ctx: click.Context) -> None:
    """Show the contract: logical name, physical name, value schema, cleanup."""
    from weir.contract.topics import CONTRACT

    settings = _settings(ctx)
    for t in CONTRACT:
        schema = f"schemas/{t.schema}.avsc" if t.schema else "(original bytes)"
        cleanup = "compact" if t.compacted else "delete"
        click.echo(f"{t.name:13} {settings.topic(t.name):30} {schema:28} {cleanup:8} {t.doc}")


@cli.group()
def schemas() -> None:
    """The Avro schemas of schemas/ and their evolution rule (BACKWARD_TRANSITIVE)."""


@schemas.command("check")
@click.pass_context
def schemas_check(ctx: click.Context) -> None:
    """Fail if any schema cannot read a version kept in schemas/history, or left no history entry."""
    from weir.contract.compat import check_catalog
    from weir.contract.serde import SchemaCatalog

    catalog = SchemaCatalog(_settings(ctx).schemas_dir)
    problems = check_catalog(catalog)
    for name in catalog.names:
        status = "ok" if name not in problems else "BROKEN"
        click.echo(f"{status:6} {name} (history: {len(catalog.history(name))} versions)")
        for p in problems.get(name, []):
            click.echo(f"         {p}")
    if problems:
        sys.exit(1)


@cli.command()
@click.option("--stage", "stages", multiple=True,
              type=click.Choice(["validate", "features", "serve", "learn", "monitor"]),
              help="Run only these stages (repeatable); default: all of them in this process.")
@click.option("--web-port", type=int, help="Port of this worker's /metrics endpoint (env WEIR_WEB_PORT).")
@click.option("--loglevel", default="info", type=click.Choice(["crit", "error", "warn", "info", "debug"]),
              show_default=True)
@click.pass_context
def worker(ctx: click.Context, stages: tuple[str, ...], web_port: int | None, loglevel: str) -> None:
    """Run stream stages as a faust-streaming worker until SIGINT/SIGTERM.

    All stages in one process share the live models (serving uses what the
    learner just learned). Several workers with the same --app-id split the
    partitions between them.
    """
    from streams.worker import ALL_STAGES, run_worker

    settings = _settings(ctx).with_overrides(web_port=web_port)
    run_worker(settings, stages or ALL_STAGES, loglevel=loglevel)


@cli.command()
@click.option("--source", default="churn", show_default=True,
              help="churn, simple, sea, agrawal, hyperplane, or a .csv/.parquet file to replay.")
@click.option("--events", "count", type=int, help="How many events to send (default: 10,000; a file: all rows).")
@click.option("--duration", type=float, help="Stop after this many seconds instead.")
@click.option("--rate", type=float, help="Target events/s; default: as fast as the broker takes them.")
@click.option("--feedback-delay", default="fixed:1", show_default=True,
              help="When labels follow their event: fixed:<s>, exp:<mean s>, or column (a file's --delay-column).")
@click.option("--label-loss", default=0.0, show_default=True, help="Share of labels that never arrive.")
@click.option("--label-duplicates", default=0.0, show_default=True, help="Share of labels sent twice.")
@click.option("--drift", default=DEFAULT_DRIFT, show_default=True,
              help="Drift schedule kind@where[:width],... (abrupt, gradual, recurring, concept); where/width below 1 "
                   "are fractions of --events; 'none' for a stationary stream.")
@click.option("--seed", default=42, show_default=True, help="Seed of generated sources and of the label policy.")
@click.option("--entity-column", default="entity_id", show_default=True, help="File replay: the entity column.")
@click.option("--label-column", default="label", show_default=True, help="File replay: the label column.")
@click.option("--time-column", help="File replay: event-time column (epoch ms or a date); default: live time.")
@click.option("--id-column", help="File replay: event-id column; default: <file>-<row>.")
@click.option("--delay-column", help="File replay: per-row label delay in seconds (with --feedback-delay column).")
@click.option("--column", "columns", multiple=True, metavar="COLUMN=ATTRIBUTE",
              help="File replay: send only these columns, renamed (repeatable); default: every other column.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--metrics-port", type=int, help="Serve this producer's counters on /metrics at this port.")
@click.pass_context
def produce(ctx: click.Context, source: str, count: int | None, duration: float | None, rate: float | None,
            feedback_delay: str, label_loss: float, label_duplicates: float, drift: str, seed: int,
            entity_column: str, label_column: str, time_column: str | None, id_column: str | None,
            delay_column: str | None, columns: tuple[str, ...], progress: bool, metrics_port: int | None) -> None:
    """Send events to events.raw and, after their delay, their labels to feedback.

    Keys are entity ids; records go through the idempotent producer. Delivery
    failures are counted with their reasons and make the exit code 1.
    SIGINT/SIGTERM stops early: accepted records are flushed, the labels of
    events already sent are delivered, and the summary is printed.
    """
    from producers.files import FileColumns, file_source
    from producers.labels import FeedbackPolicy
    from producers.publisher import EventPublisher, publish
    from producers.sources import open_source
    from weir.contract.serde import open_catalog
    from weir.metrics import CountersCollector, serve_metrics

    settings = _settings(ctx)
    policy = FeedbackPolicy(feedback_delay, label_loss, label_duplicates)
    if Path(source).suffix in (".csv", ".parquet", ".pq"):
        mapping = dict(c.split("=", 1) if "=" in c else (c, c) for c in columns)
        stream = file_source(Path(source), FileColumns(entity_column, label_column, time_column, id_column,
                                                       delay_column, mapping), limit=count)
    else:
        total = count or 10_000
        stream = open_source(source, total, seed=seed, schedule=DriftSchedule.parse(drift, total))
    publisher = EventPublisher(settings, open_catalog(settings))
    serve_metrics(metrics_port, CountersCollector("Records the producer sent, by topic and delivery outcome", lambda: {
        ("weir_produced", (("topic", t), ("outcome", o))): n
        for t, report in (("events.raw", publisher.summary.events), ("feedback", publisher.summary.feedback))
        for o, n in (("delivered", report.delivered), ("failed", report.failed))}))
    summary = publish(publisher, stream, policy=policy, rate=rate, duration_s=duration,
                      stop=_stop_on_signals(), progress=progress, seed=seed)
    click.echo(
        f"events: {summary.events_produced} sent, {summary.events.delivered} delivered, "
        f"{summary.events.failed} failed; feedback: {summary.feedback_sent} sent "
        f"({summary.labels_duplicated} duplicated on purpose, {summary.labels_withheld} withheld), "
        f"{summary.feedback.delivered} delivered, {summary.feedback.failed} failed"
        + (" (interrupted)" if summary.interrupted else "")
    )
    for reason, n in {**summary.events.errors, **summary.feedback.errors}.items():
        click.echo(f"  delivery failure x{n}: {reason}", err=True)
    if summary.failed:
        sys.exit(1)


def _model_option(f: Any) -> Any:
    return click.option("--model", "model_name", help="Model name (env WEIR_MODEL_NAME, default 'default').")(f)


def _instant_ms(value: str | None, default: int) -> int:
    """Epoch milliseconds from epoch ms or an ISO 8601 time (UTC when it names no zone)."""
    if value is None:
        return default
    if re.fullmatch(r"-?[0-9]+", value):  # all digits: epoch milliseconds (write dates with dashes)
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is neither epoch milliseconds nor an ISO 8601 time") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs, VALUE read as JSON when it parses (numbers, booleans), else as a string."""
    import json

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@cli.group()
def models() -> None:
    """The model registry on the models topic: versions, their status, and every routing decision."""


@models.command("register")
@_model_option
@click.option("--factory", help="A river pipeline factory: logistic_regression, hoeffding_tree.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Factory parameter (repeatable).")
@click.option("--pickle", "pickle_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Upload a pickled river model instead (trusted files only: unpickling runs code).")
@click.option("--version", help="Version name; default: the next vN.")
@click.option("--parent", help="The version this one derives from (lineage).")
@click.option("--trained-from", type=int, help="Start of the training data's event time (epoch ms).")
@click.option("--trained-to", type=int, help="End of the training data's event time (epoch ms).")
@click.option("--note", help="Why this version exists.")
@click.pass_context
def models_register(ctx: click.Context, model_name: str | None, factory: str | None, params: tuple[str, ...],
                    pickle_path: Path | None, version: str | None, parent: str | None, trained_from: int | None,
                    trained_to: int | None, note: str | None) -> None:
    """Register a new version. It serves nothing until a `weir deploy` routes traffic to it."""
    from weir.contract.serde import open_catalog
    from weir.registry.decisions import register

    settings = _settings(ctx)
    window = (trained_from, trained_to) if trained_from is not None and trained_to is not None else None
    record = register(settings, open_catalog(settings), model_name or settings.model_name, factory=factory,
                      params=_parse_params(params), pickle_path=pickle_path, version=version, parent=parent,
                      training_window=window, note=note)
    click.echo(f"registered {record['model_name']} {record['version']} ({record['spec']['factory']})")


@models.command("list")
@_model_option
@click.pass_context
def models_list(ctx: click.Context, model_name: str | None) -> None:
    """Every version with its status (champion, challenger, retired, registered) and the routing now."""
    from weir.contract.serde import open_catalog
    from weir.registry.decisions import current

    settings = _settings(ctx)
    registry = current(settings, open_catalog(settings), model_name or settings.model_name)
    if not registry.versions:
        click.echo(f"no versions of {registry.model_name} registered")
        return
    for v in sorted(registry.versions.values(), key=lambda v: v.created_at):
        lineage = f" from {v.parent_version}" if v.parent_version else ""
        click.echo(f"{v.version:8} {registry.status(v.version):11} {v.factory}{lineage}")
    if registry.routing is not None:
        click.echo(f"routing: {registry.routing.describe()}")


@models.command("show")
@_model_option
@click.argument("version")
@click.pass_context
def models_show(ctx: click.Context, model_name: str | None, version: str) -> None:
    """One version: spec, lineage, status, and its latest learned metrics."""
    from weir.contract.serde import open_catalog
    from weir.registry.store import registry_records
    from weir.registry.view import ModelRegistry

    settings = _settings(ctx)
    name = model_name or settings.model_name
    registry, latest = ModelRegistry(name), None
    for _, _, record in registry_records(settings, open_catalog(settings)):
        registry.apply(record)
        if (record["model_name"], record["kind"], record["version"]) == (name, "METRICS", version):
            latest = record
    v = registry.versions.get(version)
    if v is None:
        raise click.ClickException(f"{name} has no version {version}")
    click.echo(f"{name} {version}: {registry.status(version)}")
    click.echo(f"  factory {v.factory} {dict(v.params) or ''}".rstrip())
    click.echo(f"  parent {v.parent_version or '-'}; training window {v.training_window or '-'}; note {v.note or '-'}")
    if latest is not None:
        click.echo(f"  metrics {latest['metrics']}  counters {latest['counters']}")


@models.command("history")
@_model_option
@click.pass_context
def models_history(ctx: click.Context, model_name: str | None) -> None:
    """Every registration and routing decision, oldest first: who served, from when, and why."""
    import datetime as dt

    from weir.contract.serde import open_catalog
    from weir.registry.store import registry_records
    from weir.registry.view import ModelRegistry

    settings = _settings(ctx)
    name = model_name or settings.model_name
    view = ModelRegistry(name)
    for _, _, record in registry_records(settings, open_catalog(settings)):
        if record["model_name"] != name or record["kind"] == "METRICS":
            continue
        view.apply(record)
        when = dt.datetime.fromtimestamp(record["created_at"] / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        what = (f"register {record['version']} ({record['spec']['factory']})" if record["kind"] == "VERSION"
                else view.routing.describe() if view.routing else "")
        click.echo(f"{when}  {what}" + (f"  -- {record['note']}" if record["note"] else ""))


@cli.group()
def deploy() -> None:
    """Route live traffic: basic, shadow, canary, promote, rollback. Takes effect without restarts."""


@deploy.command("basic")
@_model_option
@click.argument("version")
@click.option("--note", help="Why.")
@click.pass_context
def deploy_basic(ctx: click.Context, model_name: str | None, version: str, note: str | None) -> None:
    """VERSION becomes the champion and serves every event; nothing else scores."""
    _route(ctx, model_name, "basic", champion=version, note=note)


@deploy.command("shadow")
@_model_option
@click.argument("versions", nargs=-1, required=True)
@click.option("--note", help="Why.")
@click.pass_context
def deploy_shadow(ctx: click.Context, model_name: str | None, versions: tuple[str, ...], note: str | None) -> None:
    """VERSIONS score every event beside the champion and are never served."""
    _route(ctx, model_name, "shadow", challengers=list(versions), note=note)


@deploy.command("canary")
@_model_option
@click.argument("version")
@click.option("--percent", type=float, required=True, help="Share of entities the canary serves (0-100).")
@click.option("--note", help="Why.")
@click.pass_context
def deploy_canary(ctx: click.Context, model_name: str | None, version: str, percent: float, note: str | None
                  ) -> None:
    """VERSION serves PERCENT of the entities (sticky by entity), the champion the rest; both score every event."""
    _route(ctx, model_name, "canary", challengers=[version], percent=percent, note=note)


@deploy.command("promote")
@_model_option
@click.argument("version", required=False)
@click.option("--note", help="Why.")
@click.pass_context
def deploy_promote(ctx: click.Context, model_name: str | None, version: str | None, note: str | None) -> None:
    """Make a challenger (default: the canary, or the only challenger) the champion, in basic routing."""
    from weir.contract.serde import open_catalog
    from weir.registry.decisions import promote

    settings = _settings(ctx)
    record = promote(settings, open_catalog(settings), model_name or settings.model_name, version, note)
    click.echo(f"routing of {record['model_name']}: {record['routing']['champion']} is champion (basic)")


@deploy.command("rollback")
@_model_option
@click.option("--note", help="Why.")
@click.pass_context
def deploy_rollback(ctx: click.Context, model_name: str | None, note: str | None) -> None:
    """Stop a running shadow or canary; after a promotion, give the previous champion back its place."""
    from weir.contract.serde import open_catalog
    from weir.registry.decisions import rollback

    settings = _settings(ctx)
    record = rollback(settings, open_catalog(settings), model_name or settings.model_name, note)
    click.echo(f"routing of {record['model_name']}: {record['routing']['champion']} is champion (basic)")


def _route(ctx: click.Context, model_name: str | None, mode: str, **kwargs: Any) -> None:
    from weir.contract.serde import open_catalog
    from weir.registry.decisions import route
    from weir.registry.view import ModelRegistry

    settings = _settings(ctx)
    record = route(settings, open_catalog(settings), model_name or settings.model_name, mode, **kwargs)
    view = ModelRegistry(record["model_name"])
    view.apply(record)
    click.echo(f"routing of {record['model_name']}: {view.routing.describe() if view.routing else mode}")


_DATASET_OPTIONS = [
    click.option("--source", default="churn", show_default=True,
                 help="churn, simple, sea, agrawal, hyperplane, a .csv/.parquet file (see `weir produce --help`), "
                      "or `topics`: what the features (and feedback) topics hold between --since and --until."),
    click.option("--events", "count", type=int, default=10_000, show_default=True, help="Events of a named source."),
    click.option("--since", help="Topics: first event time taken (ISO 8601, UTC if no zone, or epoch ms)."),
    click.option("--until", help="Topics: event time where taking stops, exclusive (default: everything)."),
    click.option("--drift", default="none", show_default=True, help="Drift schedule of a named source."),
    click.option("--seed", default=42, show_default=True),
    click.option("--entity-column", default="entity_id", show_default=True),
    click.option("--label-column", default="label", show_default=True),
    click.option("--time-column", help="File: event-time column; default: row order."),
    click.option("--progress/--no-progress", default=True, show_default=True),
]


def _dataset_options(f: Any) -> Any:
    """The options that name a dataset or a topic range (replay and profile read the same sources)."""
    for option in reversed(_DATASET_OPTIONS):
        f = option(f)
    return f


def _dataset(source: str, count: int, drift: str, seed: int, entity_column: str, label_column: str,
             time_column: str | None) -> list[Any]:
    """The events of a named source or a file, with event times 0, 1, 2... unless the file has a time column."""
    from producers.files import FileColumns, file_source
    from producers.sources import open_source

    if Path(source).suffix in (".csv", ".parquet", ".pq"):
        stream = file_source(Path(source), FileColumns(entity_column, label_column, time_column),
                             event_time=lambda i: i)
    else:
        stream = open_source(source, count, seed=seed, schedule=DriftSchedule.parse(drift, count),
                             event_time=lambda i: i)
    return list(stream.events)


@cli.command("replay")
@_dataset_options
@click.option("--delay", type=int, default=0, show_default=True,
              help="When each label becomes known, after its event: in events for a named source, in ms for a "
                   "file with --time-column. Topics carry their real label times.")
@click.option("--factory", default="logistic_regression", show_default=True, help="Model factory.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Factory parameter (repeatable).")
@click.option("--compare-river", is_flag=True, help="Also run river.evaluate.progressive_val_score and compare.")
@click.pass_context
def replay_command(ctx: click.Context, source: str, count: int, since: str | None, until: str | None, drift: str,
                   seed: int, entity_column: str, label_column: str, time_column: str | None, progress: bool,
                   delay: int, factory: str, params: tuple[str, ...], compare_river: bool) -> None:
    """Replay a dataset or a topic range in event-time order through the serve and learn code, deterministically.

    Each event is scored after every label due by its time was learned. For a
    dataset, with a fixed --delay, that is river's delayed progressive
    validation, so --compare-river reproduces the metric exactly. For
    `--source topics`, it replays the feature vectors the models saw and the
    labels at their real times, in (event time, event id) order, whatever the
    partitions. The same replay gives the same numbers every time.
    """
    from apps.replay import read_topic_range, replay, replay_vectors
    from weir.contract.serde import open_catalog

    parsed = _parse_params(params)
    if source == "topics":
        if compare_river or delay:
            raise click.UsageError("--compare-river and --delay need a dataset; topics carry their real label times")
        settings = _settings(ctx)
        span = read_topic_range(settings, open_catalog(settings), since_ms=_instant_ms(since, 0),
                                until_ms=_instant_ms(until, 2**63 - 1), progress=progress)
        result = replay_vectors(span.vectors, span.labels, factory=factory, params=parsed)
        click.echo(f"replayed {result.events} events, learned {result.labels} labels at their recorded times; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(span.counts.items())))
    else:
        events = _dataset(source, count, drift, seed, entity_column, label_column, time_column)
        result = replay(events, factory=factory, params=parsed, delay=delay)
        click.echo(f"replayed {result.events} events, learned {result.labels} labels (delay {delay})")
    for name, value in sorted(result.metrics.items()):
        click.echo(f"  {name:18} {value:.10f}")
    if compare_river:
        from river import evaluate, metrics

        from weir.contract.features import compute_features
        from weir.registry.factories import build_model, encode_params

        dataset = [(compute_features({"attributes": e.attributes}), e.label) for e in events if e.label is not None]
        for name, metric in (("accuracy", metrics.Accuracy()), ("log_loss", metrics.LogLoss())):
            river_value = evaluate.progressive_val_score(dataset, build_model(factory, encode_params(parsed)), metric,
                                                         delay=delay or None).get()
            ours = result.metrics.get(name, float("nan"))
            click.echo(f"  river {name:12} {river_value:.10f}  difference {abs(river_value - ours):.2e}")


@cli.group()
def monitor() -> None:
    """The monitor's stored drift references (profiles)."""


@monitor.command("profile")
@_dataset_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the profile (JSON); point WEIR_DRIFT_PROFILE at it.")
@click.pass_context
def monitor_profile(ctx: click.Context, source: str, count: int, since: str | None, until: str | None, drift: str,
                    seed: int, entity_column: str, label_column: str, time_column: str | None, progress: bool,
                    out: Path) -> None:
    """Build a data-drift reference from a dataset or a range of the features topic.

    Each feature's distribution over the whole input is binned the way the
    monitor bins its live window (deciles for numbers, the categories seen for
    strings, plus missing). With WEIR_DRIFT_PROFILE pointing at the file, the
    monitor measures drift against it from the first event, for instance
    against the data a model was trained on, instead of against its own first
    WEIR_DRIFT_REFERENCE_EVENTS events.
    """
    from apps.replay import read_topic_range
    from weir.contract.features import compute_features, variables
    from weir.contract.serde import open_catalog
    from weir.stats.profile import build_profile, fingerprint, save_profile

    if source == "topics":
        settings = _settings(ctx)
        span = read_topic_range(settings, open_catalog(settings), since_ms=_instant_ms(since, 0),
                                until_ms=_instant_ms(until, 2**63 - 1), progress=progress, with_labels=False)
        rows = [variables(v["features"]) for v in span.vectors]
        described = f"{settings.topic('features')} from {since or 'the start'} until {until or 'the end'}"
    else:
        events = _dataset(source, count, drift, seed, entity_column, label_column, time_column)
        rows = [variables(compute_features({"attributes": e.attributes})) for e in events]
        described = source
    if not rows:
        raise click.ClickException(f"{described} holds no events: there is nothing to profile")
    features = build_profile(rows)
    save_profile(out, features, origin=f"built from {described}", source=described)
    click.echo(f"profiled {len(features)} features over {len(rows)} events of {described}: {out} "
               f"({fingerprint(out)[:19]})")


@cli.group()
def dlq() -> None:
    """The dead-letter topic: what was rejected, why, and sending it again after a fix."""


@dlq.command("inspect")
@click.option("--examples", default=3, show_default=True, help="Examples shown per reason.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def dlq_inspect(ctx: click.Context, examples: int, as_json: bool) -> None:
    """Dead letters grouped by reason (most frequent first), with their stage, rule, dimension and examples."""
    import json

    from consumers.dlq import inspect

    groups = inspect(_settings(ctx), examples=examples)
    if as_json:
        click.echo(json.dumps([{**g.__dict__, "stages": dict(g.stages), "rules": dict(g.rules)} for g in groups],
                              indent=2))
        return
    if not groups:
        click.echo("the dead-letter topic is empty")
    for g in groups:
        rules = ", ".join(f"{r} x{n}" for r, n in g.rules.most_common(3))
        click.echo(f"{g.count:8d}  {g.reason}  [{g.dimension or '-'}]  stage {', '.join(g.stages)}  rules {rules}")
        for e in g.examples:
            click.echo(f"            dlq {e['dlq']}  key {e['key']!r}  from {e['from']}  {e['bytes']} B: "
                       f"{e['message']}")


@dlq.command("replay")
@click.option("--reason", "reasons", multiple=True, help="Only dead letters with this reason (repeatable).")
@click.option("--stage", "stages", multiple=True, help="Only dead letters from this stage (repeatable).")
@click.option("--rule", "rules", multiple=True, help="Only dead letters that broke this rule (repeatable).")
@click.option("--limit", type=int, help="Replay at most this many.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--log", "log_path", type=click.Path(path_type=Path),
              help="Write one JSON line per replayed dead letter: where it was and where it went.")
@click.pass_context
def dlq_replay(ctx: click.Context, reasons: tuple[str, ...], stages: tuple[str, ...], rules: tuple[str, ...],
               limit: int | None, dry_run: bool, log_path: Path | None) -> None:
    """Send chosen dead letters back to the topic they came from, to be checked again after a fix.

    Each goes with its original key and bytes and a weir.replay.of header
    naming the dead letter. Rules that the replay itself breaks (event-time
    lag, entity order) are not applied to it; every other rule is. Without a
    filter, every dead letter is replayed. Exit code 1 if any send failed.
    """
    import json

    from consumers.dlq import replay, select

    report = replay(_settings(ctx), select(reasons, stages, rules), limit=limit, dry_run=dry_run)
    if log_path is not None:
        log_path.write_text("".join(json.dumps(r) + "\n" for r in report.records))
    by_reason = ", ".join(f"{r} x{n}" for r, n in report.by_reason.most_common()) or "none"
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {report.selected} dead letters ({by_reason}); delivered {report.delivered}, "
               f"failed {report.failed}" + (f"; log: {log_path}" if log_path else ""))
    for error, n in report.errors.items():
        click.echo(f"  failed x{n}: {error}", err=True)
    if report.failed:
        sys.exit(1)


@cli.group()
def alerts() -> None:
    """Alerts from the alerts topic."""


@alerts.command("serve")
@click.option("--port", type=int, default=9095, show_default=True, help="Port of the Alertmanager webhook.")
@click.option("--forward-url", help="POST every alert there as JSON, with retries (env WEIR_ALERT_WEBHOOK_URL).")
@click.option("--group", help="Consumer group on the alerts topic (default <app-id>-alerts-sink).")
@click.option("--metrics-port", type=int, help="Serve the sink's counters on /metrics at this port.")
@click.pass_context
def alerts_serve(ctx: click.Context, port: int, forward_url: str | None, group: str | None,
                 metrics_port: int | None) -> None:
    """Take alerts from the alerts topic and from Alertmanager's webhook; log and forward each one.

    Two independent paths reach on-call: Weir's own detectors (the topic) and
    Prometheus rules (Alertmanager POSTs to http://<host>:PORT/alertmanager).
    """
    import logging

    from consumers.alerts import consume_alerts
    from consumers.webhook import Forwarder, alertmanager_server
    from weir.contract.serde import open_catalog
    from weir.metrics import CountersCollector, serve_metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(ctx)
    forwarder = Forwarder(forward_url or settings.alert_webhook_url)
    serve_metrics(metrics_port, CountersCollector("Alerts the sink forwarded, by outcome", lambda: {
        ("weir_alerts_forwarded", (("outcome", "delivered"),)): forwarder.delivered,
        ("weir_alerts_forwarded", (("outcome", "failed"),)): forwarder.failed}))
    stop = _stop_on_signals()
    topic = threading.Thread(target=consume_alerts, daemon=True, kwargs={
        "settings": settings, "catalog": open_catalog(settings), "group_id": group, "stop": stop,
        "handler": lambda alert: forwarder.send(alert, "alerts-topic")})
    topic.start()
    server = alertmanager_server(port, lambda alert: forwarder.send(alert, "alertmanager"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    click.echo(f"alert sink: alerts topic {settings.topic('alerts')} and http://0.0.0.0:{port}/alertmanager; "
               f"forwarding to {forwarder.url or 'the log only'}")
    stop.wait()
    server.shutdown()
    topic.join(timeout=10)
    click.echo(f"alert sink stopped: {forwarder.delivered} forwarded, {forwarder.failed} failed after retries")


@alerts.command("tail")
@click.option("--group", help="Consumer group (default <app-id>-alerts-sink).")
@click.pass_context
def alerts_tail(ctx: click.Context, group: str | None) -> None:
    """Print every alert as it arrives, until SIGINT/SIGTERM."""
    from consumers.alerts import consume_alerts
    from weir.contract.serde import open_catalog

    settings = _settings(ctx)
    consume_alerts(settings, open_catalog(settings), group_id=group, stop=_stop_on_signals())


@cli.command()
@click.option("--events", "count", default=20_000, show_default=True, help="Events in the bounded demo stream.")
@click.option("--feedback-delay", default=1.0, show_default=True, help="Seconds between an event and its label.")
@click.option("--rate", type=float, default=800.0, show_default=True, help="Events/s the producer sends.")
@click.option("--drift", default=DEFAULT_DRIFT, show_default=True,
              help="Drift schedule of the churn stream (see `weir produce --help`).")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.pass_context
def demo(ctx: click.Context, count: int, feedback_delay: float, rate: float, drift: str, runs_dir: Path) -> None:
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

    stop = _stop_on_signals()
    outcome = run_demo(_settings(ctx), events=count, feedback_delay_s=feedback_delay, rate=rate, drift=drift,
                       runs_dir=runs_dir, stop=stop)
    if outcome.failure is not None and not isinstance(outcome.failure, WeirError | KeyboardInterrupt):
        traceback.print_exception(outcome.failure)
    if outcome.failure is not None:
        click.secho(f"weir demo: the run failed: {outcome.failure}", fg="red", err=True)
    elif not outcome.ok:
        click.secho("weir demo: the run did not reconcile", fg="red", err=True)
    sys.stderr.flush()
    click.echo(f"summary: {outcome.path}")  # always the last line
    if not outcome.ok:
        sys.exit(130 if stop.is_set() else 1)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="weir")
