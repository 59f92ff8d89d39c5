"""Replay a CSV or Parquet file as a stream of labelled events (through pandas).

The file says which column is the entity, which the label and, optionally,
which the event time, the event id and each label's delay; every other column
(or the mapped subset) becomes an attribute. Rows are replayed in event-time
order when there is an event-time column. Missing cells become nulls, and a
row without a label is an event whose feedback never comes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from producers.event import EventTime, LabelledEvent, Source, live, plain_value
from weir.contract.feedback import LabelKind, label_problem
from weir.errors import ConfigError, UsageError


@dataclass(frozen=True)
class FileColumns:
    entity: str | None  # None: each event is its own entity (a replay, which routes nothing by entity)
    label: str
    event_time: str | None = None
    event_id: str | None = None
    label_delay_s: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)  # column -> attribute name; empty: all others


def read_frame(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise UsageError(f"{path} is empty, not even a header: there are no events in it") from None
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ConfigError(f"cannot replay {path}: only .csv and .parquet files are supported")


def file_source(path: Path, columns: FileColumns, *, limit: int | None = None, event_time: EventTime = live,
                rebase_to_ms: int | None = None, label_kind: LabelKind | None = None) -> Source:
    """Replay ``path``; with no event-time column, events are stamped by ``event_time`` like a live source.

    ``rebase_to_ms``: shift every event time by the same amount, so that the newest is this time (history
    replayed as if it had just happened, its spacing kept). ``label_kind``: the labels are going to the
    ``feedback`` topic, whose readers learn labels of this kind only (``WEIR_LABEL_KIND``): a file with another
    label is refused before anything is sent, rather than dead-lettered label by label later.

    A file without rows is refused (``UsageError``): there would be nothing to send."""
    frame = read_frame(path)
    if frame.empty:
        raise UsageError(f"{path} has no rows, only a header: there are no events in it")
    reserved = {c for c in (columns.entity, columns.label, columns.event_time, columns.event_id,
                            columns.label_delay_s) if c}
    missing = sorted(reserved - set(frame.columns) | set(columns.attributes) - set(frame.columns))
    if missing:
        raise ConfigError(f"{path} has no column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    mapping = dict(columns.attributes) or {c: str(c) for c in frame.columns if c not in reserved}
    if not columns.attributes and not columns.event_time:
        timelike = [str(c) for c in mapping if _looks_like_time(str(c), frame[c])]
        if timelike:
            raise ConfigError(f"{path}: column {timelike[0]!r} looks like a time and would become a model feature; "
                              f"name it with --time-column {timelike[0]}, or choose the attributes with --column")
    if columns.event_time:
        frame = frame.assign(_weir_ms=_epoch_ms(frame[columns.event_time])).sort_values("_weir_ms", kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    if label_kind is not None:
        _refuse_labels_of_another_kind(path, frame[columns.label], label_kind)
    newest = int(frame["_weir_ms"].max()) if columns.event_time and len(frame) else None
    if newest is not None and rebase_to_ms is not None:
        frame = frame.assign(_weir_ms=frame["_weir_ms"] + (rebase_to_ms - newest))
        newest = rebase_to_ms
    return Source(f"file:{path.name}", _rows(frame, columns, mapping, path.stem, event_time), len(frame),
                  newest_time_ms=newest)


TIME_NAMES = frozenset({"time", "timestamp", "ts", "date", "datetime", "event_time", "created_at", "updated_at"})


def _looks_like_time(name: str, column: pd.Series) -> bool:
    return name.lower() in TIME_NAMES or pd.api.types.is_datetime64_any_dtype(column)


def _refuse_labels_of_another_kind(path: Path, labels: pd.Series, kind: LabelKind) -> None:
    """A ``ConfigError`` naming the first rows whose label no learner takes (an empty cell is a label that never
    comes, not a bad one)."""
    refused: list[tuple[int, Any, str]] = []  # (row in the file, label, why)
    for row, cell in zip(labels.index.tolist(), labels.tolist(), strict=True):  # the index: the row in the file
        label = _cell(cell)
        problem = label_problem(label, kind) if label is not None else None
        if problem is not None:
            refused.append((int(row) + 1, label, problem[1]))
    if refused:
        shown = ", ".join(f"row {row} {label!r}" for row, label, _ in refused[:3])
        raise ConfigError(f"{path}: {len(refused)} label(s) in column {labels.name!r} would be dead-lettered, not "
                          f"learned ({shown}): {refused[0][2]}; fix the file or set WEIR_LABEL_KIND")


def _epoch_ms(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("int64")  # already epoch milliseconds
    parsed = pd.to_datetime(column, utc=True, errors="raise")
    return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _rows(frame: pd.DataFrame, c: FileColumns, mapping: Mapping[str, str], stem: str,
          event_time: EventTime) -> Iterator[LabelledEvent]:
    for i, row in enumerate(frame.to_dict("records")):
        label = _cell(row[c.label])
        yield LabelledEvent(
            event_id=str(row[c.event_id]) if c.event_id else f"{stem}-{i:09d}",
            entity_id=str(row[c.entity]) if c.entity else f"{stem}-{i:09d}",
            event_time_ms=int(row["_weir_ms"]) if c.event_time else event_time(i),
            attributes={name: _cell(row[column]) for column, name in mapping.items()},
            label=label,
            label_delay_s=float(row[c.label_delay_s]) if c.label_delay_s else None,
        )


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return plain_value(value.item() if hasattr(value, "item") else value)
