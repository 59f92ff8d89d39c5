"""``weir replay`` and ``weir monitor profile``: what a dataset or a topic range gives the models and the monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from apps.cli.common import Session, params_option, pass_session, source_options
from producers.sources import SourceSpec


@click.command("replay")
@source_options(default_events=10_000, default_drift="none", topics=True)
@click.option("--delay", type=int, default=0, show_default=True,
              help="When each label becomes known, after its event: in events for a named source, in ms for a "
                   "file with --time-column. Topics carry their real label times.")
@click.option("--factory", default="logistic_regression", show_default=True, help="Model factory.")
@params_option
@click.option("--compare-river", is_flag=True, help="Also run river.evaluate.progressive_val_score and compare.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@pass_session
def replay(session: Session, source: SourceSpec, since: int | None, until: int | None, delay: int, factory: str,
           params: dict[str, Any], compare_river: bool, progress: bool) -> None:
    """Replay a dataset or a topic range in event-time order through the serve and learn code, deterministically.

    Each event is scored after every label due by its time was learned. For a
    dataset, with a fixed --delay, that is river's delayed progressive
    validation, so --compare-river reproduces the metric exactly. For
    `--source topics`, it replays the feature vectors the models saw and the
    labels at their real times, in (event time, event id) order, whatever the
    partitions. The same replay gives the same numbers every time.
    """
    from apps import replay as replaying  # river and pandas take seconds to import

    if source.name == "topics":
        if compare_river or delay:
            raise click.UsageError("--compare-river and --delay need a dataset; topics carry their real label times")
        span = replaying.read_topic_range(session.settings, session.catalog, since_ms=since or 0,
                                          until_ms=until or replaying.END_OF_TIME, progress=progress)
        result = replaying.replay_vectors(span.vectors, span.labels, factory=factory, params=params)
        click.echo(f"replayed {result.events} events, learned {result.labels} labels at their recorded times; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(span.counts.items())))
    else:
        events = list(source.open(event_time=replaying.index_time).events)
        result = replaying.replay(events, factory=factory, params=params, delay=delay)
        click.echo(f"replayed {result.events} events, learned {result.labels} labels (delay {delay})")
    for name, value in sorted(result.metrics.items()):
        click.echo(f"  {name:18} {value:.10f}")
    if compare_river:
        for name, river_value in replaying.river_progressive_scores(events, factory, params, delay).items():
            ours = result.metrics.get(name, float("nan"))
            click.echo(f"  river {name:12} {river_value:.10f}  difference {abs(river_value - ours):.2e}")


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
