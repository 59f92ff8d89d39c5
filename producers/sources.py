"""Named sources of labelled events: what ``weir produce --source`` can generate.

* ``churn``: the demo domain (``producers.churn``), with a drift schedule;
* ``simple``: the walking skeleton's four-feature logistic stream;
* ``sea``, ``agrawal``, ``hyperplane``: river's synthetic streams, wrapped in
  ``ConceptDriftStream`` so that the concept changes at the schedule's first
  ``concept`` point.

A CSV or Parquet file is a source too (``producers.files``); a ``SourceSpec``
names either kind, as the command line does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producers.churn import ChurnDomain
from producers.event import EventTime, LabelledEvent, Source, live, plain_value
from producers.files import FileColumns, file_source
from producers.schedule import DriftSchedule
from producers.synthetic import synthetic_events
from weir.contract.feedback import LabelKind
from weir.errors import ConfigError


def river_stream(name: str, count: int, *, seed: int, schedule: DriftSchedule, entities: int = 1_000,
                 event_time: EventTime = live) -> Iterator[LabelledEvent]:
    """A river synthetic stream whose concept changes at the schedule's first ``concept`` point."""
    from river.datasets import synth

    makers: dict[str, Callable[[int, int], Any]] = {
        "sea": lambda variant, s: synth.SEA(variant=variant, seed=s),
        "agrawal": lambda variant, s: synth.Agrawal(classification_function=variant, seed=s),
        "hyperplane": lambda variant, s: synth.Hyperplane(seed=s + variant, n_features=10),
    }
    make = makers[name]
    concept = next((p for p in schedule.points if p.kind == "concept"), None)
    stream = make(0, seed)
    if concept is not None:
        # river's sigmoid overflows when (t - position) / width passes ~170: an abrupt
        # concept drift is as sharp as it can be, 1% of the stream wide.
        stream = synth.ConceptDriftStream(stream=stream, drift_stream=make(2, seed), position=concept.at,
                                          width=max(concept.width, count // 100 + 1), seed=seed)
    rng = random.Random(seed)
    for i, (x, y) in enumerate(stream.take(count)):
        yield LabelledEvent(
            event_id=f"{name}-{seed}-{i:09d}",
            entity_id=f"e{rng.randrange(entities):05d}",
            event_time_ms=event_time(i),
            attributes={_name(k): plain_value(v) for k, v in x.items()},
            label=plain_value(y),
        )


def _name(key: Any) -> str:
    return key if isinstance(key, str) else f"x{key}"


NAMED = ("churn", "simple", "sea", "agrawal", "hyperplane")


def open_source(name: str, count: int, *, seed: int = 42, schedule: DriftSchedule = DriftSchedule(),
                event_time: EventTime = live) -> Source:
    """The named source for ``count`` events."""
    if name == "churn":
        events = ChurnDomain(seed=seed, schedule=schedule).events(count, event_time)
    elif name == "simple":
        flip = next((p.at for p in schedule.points if p.kind == "concept"), count)
        events = synthetic_events(count, seed=seed, drift_at=flip, event_time=event_time)
    elif name in ("sea", "agrawal", "hyperplane"):
        events = river_stream(name, count, seed=seed, schedule=schedule, event_time=event_time)
    else:
        raise ConfigError(f"unknown source {name!r}; named sources: {', '.join(NAMED)}, or a .csv/.parquet file")
    return Source(name, events, count, schedule)


DEFAULT_EVENTS = 10_000


@dataclass(frozen=True)
class SourceSpec:
    """Which events to produce or replay: a named source, or a CSV/Parquet file with its columns."""

    name: str  # a named source, or the path of a file
    count: int | None = None  # events of a named source (None: DEFAULT_EVENTS); a file: at most this many rows
    seed: int = 42
    drift: str = "none"  # the drift schedule of a named source
    columns: FileColumns | None = None  # set for a file

    def open(self, event_time: EventTime = live, *, rebase_to_ms: int | None = None,
             label_kind: LabelKind | None = None) -> Source:
        """The events; ``event_time`` stamps those of a named source, and of a file without a time column;
        ``rebase_to_ms`` moves a file's times so its newest event is then; ``label_kind``: a file's labels must
        be of this kind (they are sent to the learners)."""
        if self.columns is not None:
            return file_source(Path(self.name), self.columns, limit=self.count, event_time=event_time,
                               rebase_to_ms=rebase_to_ms, label_kind=label_kind)
        total = self.count or DEFAULT_EVENTS
        return open_source(self.name, total, seed=self.seed, schedule=DriftSchedule.parse(self.drift, total),
                           event_time=event_time)
