"""``weir replay``, ``weir data snapshot`` and ``weir monitor profile``: what a dataset, a topic range or a data
version gives the models and the monitor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from apps.cli.common import Duration, Instant, Session, given, params_option, pass_session, source_options
from producers.sources import SourceSpec
from weir.contract.feedback import parse_positive


@click.command("replay")
@source_options(default_events=10_000, default_drift="none", topics=True)
@click.option("--delay-rows", type=click.IntRange(min=0), default=None,
              help="Events without times (a named source, a file without --time-column): each label becomes known "
                   "this many events after its own. Default 0.")
@click.option("--delay", "delay_ms", type=Duration(), default=None,
              help="Events with times (a file with --time-column): each label becomes known this long after its "
                   "event, e.g. 50s, 250ms, 2h. Default 0.")
@click.option("--factory", default="logistic_regression", show_default=True, help="Model factory.")
@params_option
@click.option("--compare-river", is_flag=True, help="Also run river.evaluate.progressive_val_score on the same "
                                                    "events and delay, and print the difference (0 expected).")
@click.option("--snapshot", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Replay a data version: a folder `weir data snapshot` wrote (instead of --source).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def replay(session: Session, source: SourceSpec, since: int | None, until: int | None, delay_rows: int | None,
           delay_ms: int | None, factory: str, params: dict[str, Any], compare_river: bool, snapshot: Path | None,
           progress: bool) -> None:
    """Replay a dataset or a topic range in event-time order through the serve and learn code, deterministically.

    Each event is scored after every label due by its time was learned. For a
    dataset, with a fixed delay, that is river's delayed progressive
    validation, so --compare-river reproduces the metric exactly. The delay
    has one unit per kind of data: --delay-rows for events in row order,
    --delay with a unit for a file's times. For `--source topics`, it replays
    the feature vectors the models saw and the labels at their real times, in
    (event time, event id) order, whatever the partitions. The same replay
    gives the same numbers every time; a snapshot of a topic range (--snapshot)
    replays exactly as the range did, and both print the data version. Options
    that do not apply to the source are refused, not ignored.
    """
    from apps import replay as replaying  # river and pandas take seconds to import
    from apps.snapshots import read_snapshot
    from weir.kafka.ranges import read_topic_range

    if snapshot is not None:
        _refuse_with_a_snapshot(since, until, delay_rows, delay_ms, compare_river)
        span, _ = read_snapshot(snapshot, session.settings, session.catalog)
    else:
        _refuse_what_does_not_apply(source, since, until, delay_rows, delay_ms, compare_river)
    if snapshot is None and source.name == "topics":
        span = read_topic_range(session.settings, session.catalog, since_ms=since or 0,
                                 until_ms=until or replaying.END_OF_TIME, progress=progress)
    if snapshot is not None or source.name == "topics":
        result = replaying.replay_vectors(span.vectors, span.labels, factory=factory, params=params,
                                          positive=parse_positive(session.settings.positive_label))
        click.echo(f"replayed {result.events} events, learned {result.labels} labels at their recorded times; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(span.counts.items())))
        click.echo(f"data version {span.content_hash()}")
        _print_metrics(result.metrics)
        return
    timed = source.columns is not None and source.columns.event_time is not None
    if source.columns is not None and not given("entity_column"):  # replay routes nothing by entity: none needed
        source = dataclasses.replace(source, columns=dataclasses.replace(source.columns, entity=None))
    delay = (delay_ms if timed else delay_rows) or 0
    events = list(source.open(event_time=replaying.index_time).events)
    result = replaying.replay(events, factory=factory, params=params, delay=delay,
                              positive=parse_positive(session.settings.positive_label))
    click.echo(f"replayed {result.events} events, learned {result.labels} labels (delay "
               + (f"{delay} ms" if timed else f"{delay} events") + ")")
    _print_metrics(result.metrics)
    if compare_river:
        river = replaying.river_progressive_scores(events, factory, params, delay, timed=timed)
        for name, river_value in river.items():
            ours = result.metrics.get(name, float("nan"))
            click.echo(f"  river {name:12} {river_value:.10f}  difference {abs(river_value - ours):.2e}")


def _refuse_what_does_not_apply(source: SourceSpec, since: int | None, until: int | None, delay_rows: int | None,
                                delay_ms: int | None, compare_river: bool) -> None:
    """A replay answers the question asked: an option that cannot shape it is an error, never silently ignored."""
    is_file = source.columns is not None
    timed = is_file and source.columns is not None and source.columns.event_time is not None
    refused = []
    if source.name == "topics":
        refused += [f"{o} (topics carry their real label times)" for o, on in
                    (("--delay-rows", delay_rows is not None), ("--delay", delay_ms is not None),
                     ("--compare-river", compare_river)) if on]
        refused += [f"{o} (topics hold what they hold)" for o, name in
                    (("--events", "count"), ("--seed", "seed"), ("--drift", "drift")) if given(name)]
    else:
        refused += [f"{o} (it bounds a topic range: use --source topics)" for o, v in
                    (("--since", since), ("--until", until)) if v is not None]
        if is_file:
            refused += [f"{o} (a file is what it is)" for o in ("--seed", "--drift") if given(o[2:])]
        if timed and delay_rows is not None:
            refused.append("--delay-rows (the events have times, from --time-column: give --delay with a unit)")
        if not timed and delay_ms is not None:
            refused.append("--delay (the events have no times, only an order: give --delay-rows)")
    if not is_file or source.name == "topics":
        refused += [f"{o} (it names a file's column)" for o, name in FILE_OPTIONS.items() if given(name)]
    if refused:
        raise click.UsageError("not for this source: " + "; ".join(refused))


def _refuse_with_a_snapshot(since: int | None, until: int | None, delay_rows: int | None, delay_ms: int | None,
                            compare_river: bool) -> None:
    refused = [o for o, on in (("--since", since is not None), ("--until", until is not None),
                               ("--delay-rows", delay_rows is not None), ("--delay", delay_ms is not None),
                               ("--compare-river", compare_river)) if on]
    refused += [f"--{name.replace('_', '-')}" for name in ("source", "events", "seed", "drift", *FILE_OPTIONS.values())
                if given(name)]
    if refused:
        raise click.UsageError("not with --snapshot (a data version holds its records and their label times): "
                               + ", ".join(refused))


FILE_OPTIONS = {"--entity-column": "entity_column", "--label-column": "label_column", "--time-column": "time_column",
                "--id-column": "id_column", "--delay-column": "delay_column", "--column": "columns"}


def _print_metrics(metrics: dict[str, float]) -> None:
    for name, value in sorted(metrics.items()):
        click.echo(f"  {name:18} {value:.10f}")


@click.group()
def monitor() -> None:
    """The monitor's stored drift references (profiles)."""


@monitor.command("profile")
@source_options(default_events=10_000, default_drift="none", topics=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the profile (JSON); point WEIR_DRIFT_PROFILE at it.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def monitor_profile(session: Session, source: SourceSpec, since: int | None, until: int | None, out: Path,
                    progress: bool) -> None:
    """Build a data-drift reference from a dataset or a range of the features topic.

    Each feature's distribution over the whole input is binned the way the
    monitor bins its live window (deciles for numbers, the categories seen for
    strings, plus missing). With WEIR_DRIFT_PROFILE pointing at the file, the
    monitor measures drift against it from the first event, for instance
    against the data a model was trained on, instead of against its own first
    WEIR_DRIFT_REFERENCE_EVENTS events.
    """
    from apps import profiling  # pandas and river take seconds to import

    if source.name == "topics":
        rows, described = profiling.topic_rows(session.settings, session.catalog, since, until, progress=progress)
    else:
        rows, described = profiling.dataset_rows(source), source.name
    if not rows:
        raise click.ClickException(f"{described} holds no events: there is nothing to profile")
    features, fingerprint = profiling.write_profile(rows, out, described)
    click.echo(f"profiled {len(features)} features over {len(rows)} events of {described}: {out} "
               f"({fingerprint[:19]})")


@click.group()
def data() -> None:
    """Data versions: snapshots of a topic range that replays and experiments can name and reproduce."""


@data.command("snapshot")
@click.option("--since", type=Instant(), default=None, help="First event time taken (ISO 8601 or epoch ms); "
                                                           "default: the beginning.")
@click.option("--until", type=Instant(), default=None, help="Event time where taking stops, exclusive; default: "
                                                           "the end.")
@click.option("--topics", "which", type=click.Choice(["features,feedback", "features"]), default="features,feedback",
              show_default=True, help="The feature vectors with their labels, or the vectors alone.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A new folder for data.parquet and manifest.json.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def data_snapshot(session: Session, since: int | None, until: int | None, which: str, out: Path,
                  progress: bool) -> None:
    """Write the joined records of a topic range to Parquet, with a manifest.

    The records are the feature vectors with event time in [--since, --until)
    and their labels, read and joined as `weir replay --source topics` does (a
    vector sent twice counts once, an event's earliest label counts). The
    manifest names the topics and each partition's offset range, the schema
    ids, the record counts and the content hash: the data version, which
    `weir replay --snapshot` prints again when it replays the folder, bit for
    bit. A folder that already holds a snapshot is refused.
    """
    from apps.replay import END_OF_TIME
    from apps.snapshots import write_snapshot
    from weir.kafka.ranges import read_topic_range

    first, end = since or 0, until or END_OF_TIME
    span = read_topic_range(session.settings, session.catalog, since_ms=first, until_ms=end, progress=progress,
                            with_labels=which == "features,feedback")
    if not span.vectors:
        raise click.ClickException("the range holds no feature vectors: there is nothing to snapshot")
    manifest = write_snapshot(span, out, since_ms=first, until_ms=end)
    click.echo(f"snapshot {out}: {manifest.events} events, {manifest.labels} labels, schema ids "
               f"{', '.join(map(str, manifest.schema_ids))}; {span.describe_spans()}")
    click.echo(f"data version {manifest.data_version}")
