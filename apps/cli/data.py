"""``weir replay`` and ``weir monitor profile``: what a dataset or a topic range gives the models and the monitor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from apps.cli.common import Duration, Session, given, params_option, pass_session, source_options
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
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def replay(session: Session, source: SourceSpec, since: int | None, until: int | None, delay_rows: int | None,
           delay_ms: int | None, factory: str, params: dict[str, Any], compare_river: bool, progress: bool) -> None:
    """Replay a dataset or a topic range in event-time order through the serve and learn code, deterministically.

    Each event is scored after every label due by its time was learned. For a
    dataset, with a fixed delay, that is river's delayed progressive
    validation, so --compare-river reproduces the metric exactly. The delay
    has one unit per kind of data: --delay-rows for events in row order,
    --delay with a unit for a file's times. For `--source topics`, it replays
    the feature vectors the models saw and the labels at their real times, in
    (event time, event id) order, whatever the partitions. The same replay
    gives the same numbers every time. Options that do not apply to the
    source are refused, not ignored.
    """
    from apps import replay as replaying  # river and pandas take seconds to import
    from weir.kafka.ranges import read_topic_range

    _refuse_what_does_not_apply(source, since, until, delay_rows, delay_ms, compare_river)
    if source.name == "topics":
        span = read_topic_range(session.settings, session.catalog, since_ms=since or 0,
                                 until_ms=until or replaying.END_OF_TIME, progress=progress)
        result = replaying.replay_vectors(span.vectors, span.labels, factory=factory, params=params,
                                          positive=parse_positive(session.settings.positive_label))
        click.echo(f"replayed {result.events} events, learned {result.labels} labels at their recorded times; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(span.counts.items())))
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
