"""The label join: feedback meets the features and predictions of its event, once.

Three streams carry the parts of one event's story, all keyed by entity and
so co-partitioned: ``features`` (what the models saw, point in time),
``predictions`` (what each version said) and ``feedback`` (what was true).
They arrive in any order. A ``PendingJoin`` holds the parts by event id until
the event is complete, hands it out exactly once, and accounts for every label:

* joined: features, the served prediction and the label met;
* duplicate: a label for an event that already has one;
* late: a label for an event whose parts expired unlabelled (the window passed);
* unmatched: a label that never met its event within the window;

so that ``received = joined + duplicate + late + unmatched + labels still
pending``. Windows are measured in stream time (the largest event or label
time seen), so a replay expires exactly as the original run did.
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
    label_source: Any = None  # the feedback record as read (key, bytes, headers), to route it on if it goes astray
    complete: bool = False  # joined: it can be learned
    gone: bool = False  # expired without joining: it never will be


@dataclass
class JoinCounters:
    received: int = 0
    joined: int = 0
    duplicate: int = 0
    late: int = 0
    unmatched: int = 0
    unlabelled: int = 0  # events whose label never came within the window


@dataclass(frozen=True)
class Stray:
    """A label that will not be learned: ``late`` or ``unmatched``, with the record it came in."""

    kind: str
    event_id: str
    source: Any


class PendingJoin:
    """Joins label + served prediction (+ features when ``needs_features``) per event id."""

    def __init__(self, *, window_ms: int, needs_features: bool, remember: int = 500_000) -> None:
        self.window_ms = window_ms
        self.needs_features = needs_features
        self.remember = remember
        self.counters = JoinCounters()
        self.stream_time_ms = 0
        self._pending: OrderedDict[str, PendingEvent] = OrderedDict()
        self._completed: OrderedDict[str, None] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()  # unlabelled events that left the window
        self.strays: list[Stray] = []  # drained by the caller

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

    def add_feedback(self, feedback: Record, source: Any = None) -> PendingEvent | None:
        """The event, if this label was taken (``complete`` says whether it joined already); ``None`` for a
        duplicate or a late label."""
        self.counters.received += 1
        event_id, label_time = feedback["event_id"], feedback["label_time"]
        if self._already_done(event_id, label_time):
            self.counters.duplicate += 1
            return None
        if event_id in self._expired:
            self.counters.late += 1
            self.strays.append(Stray("late", event_id, source))
            return None
        pending = self._slot(event_id, label_time)
        if pending.has_label:
            self.counters.duplicate += 1
            return None
        if label_time - pending.first_seen_ms > self.window_ms:  # its event left the window, swept or not
            del self._pending[event_id]
            self._remember(self._expired, event_id)
            self.counters.late += 1
            self.strays.append(Stray("late", event_id, source))
            return None
        pending.label, pending.has_label, pending.label_time_ms = feedback["label"], True, label_time
        pending.label_source = source
        self._complete_if_ready(pending)
        return pending

    def expire(self) -> list[PendingEvent]:
        """Let go of parts older than the window.

        Returns the labelled events that have their features but never saw a
        served prediction (the serve stage dead-lettered them): the models can
        still learn from those. Labels without features become unmatched
        strays; features without a label are remembered as expired, so their
        label, if it ever comes, is recognised as late.
        """
        horizon = self.stream_time_ms - self.window_ms
        learnable = []
        while self._pending:
            event_id, oldest = next(iter(self._pending.items()))
            if oldest.first_seen_ms >= horizon:
                break
            del self._pending[event_id]
            if oldest.has_label and oldest.features is not None:
                self._mark_completed(event_id)
                self.counters.joined += 1
                oldest.complete = True
                learnable.append(oldest)
            elif oldest.has_label:
                self.counters.unmatched += 1
                oldest.gone = True
                self.strays.append(Stray("unmatched", event_id, oldest.label_source))
            else:
                self.counters.unlabelled += 1
                self._remember(self._expired, event_id)
        return learnable

    def take_strays(self) -> list[Stray]:
        strays, self.strays = self.strays, []
        return strays

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
        self._mark_completed(pending.event_id)
        self.counters.joined += 1
        pending.complete = True
        return pending

    def _mark_completed(self, event_id: str) -> None:
        self._remember(self._completed, event_id)

    def _remember(self, ids: OrderedDict[str, None], event_id: str) -> None:
        ids[event_id] = None
        if len(ids) > self.remember:
            ids.popitem(last=False)
