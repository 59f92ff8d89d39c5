"""The label join: feedback meets the features and predictions of its event, once.

Three streams carry the parts of one event's story, all keyed by entity and
so co-partitioned: ``features`` (what the models saw), ``predictions`` (what
each version said) and ``feedback`` (what was true). They arrive in any order.
A ``PendingJoin`` holds the parts by event id until the event is complete,
hands it out exactly once, counts duplicates, and gives up on parts older than
the join window (measured in stream time, so a replay expires the same way).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from weir.serde import Record


@dataclass
class PendingEvent:
    """What has arrived so far for one event id."""

    event_id: str
    first_seen_ms: int
    features: Record | None = None
    predictions: dict[str, Record] = field(default_factory=dict)
    served_version: str | None = None
    label: Any = None
    has_label: bool = False
    label_time_ms: int = 0


@dataclass
class JoinCounters:
    """received = joined + duplicate + unmatched + (labels still pending)."""

    received: int = 0
    joined: int = 0
    duplicate: int = 0
    unmatched: int = 0
    unlabelled: int = 0  # events whose label never came within the window


class PendingJoin:
    """Joins label + served prediction (+ features when ``needs_features``) per event id."""

    def __init__(self, *, window_ms: int, needs_features: bool, remember_completed: int = 500_000) -> None:
        self.window_ms = window_ms
        self.needs_features = needs_features
        self.remember_completed = remember_completed
        self.counters = JoinCounters()
        self._pending: OrderedDict[str, PendingEvent] = OrderedDict()
        self._completed: OrderedDict[str, None] = OrderedDict()
        self.stream_time_ms = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def labels_pending(self) -> int:
        return sum(1 for p in self._pending.values() if p.has_label)

    def add_features(self, vector: Record) -> PendingEvent | None:
        if self._already_done(vector["event_id"], vector["event_time"]):
            return None
        pending = self._slot(vector["event_id"], vector["event_time"])
        pending.features = vector
        return self._complete_if_ready(pending)

    def add_prediction(self, prediction: Record) -> PendingEvent | None:
        if self._already_done(prediction["event_id"], prediction["event_time"]):
            return None
        pending = self._slot(prediction["event_id"], prediction["event_time"])
        pending.predictions[prediction["model_version"]] = prediction
        if prediction["served"]:
            pending.served_version = prediction["model_version"]
        return self._complete_if_ready(pending)

    def add_feedback(self, feedback: Record) -> PendingEvent | None:
        """The completed event if this label completes it; ``None`` if it waits or is a duplicate."""
        self.counters.received += 1
        event_id, label_time = feedback["event_id"], feedback["label_time"]
        if self._already_done(event_id, label_time):
            self.counters.duplicate += 1
            return None
        pending = self._slot(event_id, label_time)
        if pending.has_label:
            self.counters.duplicate += 1
            return None
        pending.label, pending.has_label, pending.label_time_ms = feedback["label"], True, label_time
        return self._complete_if_ready(pending)

    def expire(self) -> list[PendingEvent]:
        """Drop parts older than the window; returns the labels that found no event (unmatched)."""
        horizon = self.stream_time_ms - self.window_ms
        unmatched = []
        while self._pending:
            event_id, oldest = next(iter(self._pending.items()))
            if oldest.first_seen_ms >= horizon:
                break
            del self._pending[event_id]
            if oldest.has_label:
                self.counters.unmatched += 1
                unmatched.append(oldest)
            else:
                self.counters.unlabelled += 1
        return unmatched

    def _already_done(self, event_id: str, time_ms: int) -> bool:
        """Advance stream time; True if ``event_id`` completed before (a replayed or repeated part)."""
        self.stream_time_ms = max(self.stream_time_ms, time_ms)
        return event_id in self._completed

    def _slot(self, event_id: str, time_ms: int) -> PendingEvent:
        pending = self._pending.get(event_id)
        if pending is None:
            pending = self._pending[event_id] = PendingEvent(event_id, time_ms)
        return pending

    def _complete_if_ready(self, pending: PendingEvent) -> PendingEvent | None:
        ready = pending.has_label and pending.served_version is not None
        if self.needs_features:
            ready = ready and pending.features is not None
        if not ready:
            return None
        del self._pending[pending.event_id]
        self._completed[pending.event_id] = None
        if len(self._completed) > self.remember_completed:
            self._completed.popitem(last=False)
        self.counters.joined += 1
        return pending
