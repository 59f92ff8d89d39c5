"""What every source yields: labelled events, the stream they form, and their plain values."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from producers.schedule import DriftSchedule
from weir.clock import now_ms
from weir.contract.records import AttributeValue, Feedback, Label, RawEvent


@dataclass(frozen=True)
class LabelledEvent:
    """An event as a producer publishes it, with the label its feedback will carry."""

    event_id: str
    entity_id: str
    event_time_ms: int
    attributes: dict[str, AttributeValue]
    label: Label | None  # None: this event's label never comes
    label_delay_s: float | None = None  # from the data itself (a replayed file's column), if it says

    def raw(self, source: str) -> RawEvent:
        """The ``events.raw`` record of this event."""
        return {"event_id": self.event_id, "entity_id": self.entity_id, "event_time": self.event_time_ms,
                "source": source, "attributes": self.attributes}

    def feedback(self, label_time_ms: int) -> Feedback:
        """The ``feedback`` record of this event's label, known at ``label_time_ms``."""
        assert self.label is not None, f"event {self.event_id} has no label to send"
        return {"event_id": self.event_id, "entity_id": self.entity_id, "label": self.label,
                "label_time": label_time_ms}


@dataclass
class Source:
    """A stream of labelled events and what a run should record about it."""

    name: str
    events: Iterator[LabelledEvent]
    total: int | None
    schedule: DriftSchedule = field(default_factory=DriftSchedule)
    newest_time_ms: int | None = None  # a file's latest event time, when its rows carry times

    def metadata(self) -> dict[str, Any]:
        return {"source": self.name, "events": self.total, "drift_schedule": self.schedule.to_dict()}


EventTime = Callable[[int], int]


def live(_index: int) -> int:
    """Events stamped with the wall clock when generated: a live stream."""
    return now_ms()


def plain_value(value: Any) -> Any:
    """numpy scalars and the like as the Avro union's plain types."""
    if isinstance(value, bool | str | None):
        return value
    if isinstance(value, int):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
