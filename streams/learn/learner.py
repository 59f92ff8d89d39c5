"""The learner: joined labels, in one order, teach the registry's live models; metrics per version.

The join (``weir.state.join``) meets each label with the point-in-time
features and the predictions of its event; the sequencer
(``streams.learn.sequencer``) releases completed events in (label time, event
id) order, so the models end in the same state whether the stage ran without a
break or was killed and replayed. Metrics score each version's served-time
prediction (``streams.learn.evaluation``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from streams.learn.evaluation import VersionMetrics
from streams.learn.sequencer import Sequencer
from weir.contract.messages import InRecord
from weir.contract.records import FeatureVector, Feedback, Label, ModelRecord, Prediction
from weir.registry.records import STAGE_COUNTERS, metrics_record
from weir.registry.view import ModelRegistry, ModelVersion
from weir.state import pickling
from weir.state.join import PendingEvent, PendingJoin, Stray

log = logging.getLogger("weir.learn")


class Learner:
    """Feeds joined labels, in sequence, to the registry's live models and keeps per-version metrics."""

    def __init__(self, registry: ModelRegistry, join: PendingJoin, sequencer: Sequencer,
                 on_learned: Callable[[PendingEvent], object] | None = None, *, skew_ms: int | None = None,
                 positive: Label | None = None) -> None:
        """``on_learned`` hears each event right after it was learned, in the learning order; a label stamped
        more than ``skew_ms`` before its event's time is not learned (None: no such check, as in a replay whose
        times were made up)."""
        self.registry = registry
        self.skew_ms = skew_ms
        self.positive = positive  # the class log loss and ROC AUC are about (WEIR_POSITIVE_LABEL)
        self.on_learned = on_learned
        self.join = join
        self.sequencer = sequencer
        self.metrics: dict[str, VersionMetrics] = {}
        self.served: dict[str, VersionMetrics] = {}  # per version: the events it served
        self.learned: Counter[str] = Counter()
        self.labels_learned = 0
        self.unlearnable: Counter[str] = Counter()  # per version: labels its model raised on
        self._failed: list[Stray] = []  # labels some version could not learn, for the DLQ
        self._reported: set[tuple[str, str]] = set()  # (version, error class) already logged

    def on_features(self, vector: FeatureVector, at: tuple[int, int] | None = None) -> None:
        self._joined(self.join.add_features(vector, at))

    def on_prediction(self, prediction: Prediction) -> None:
        self._joined(self.join.add_prediction(prediction))

    def on_feedback(self, feedback: Feedback, *, partition: int = 0, source: InRecord | None = None,
                    wall_ms: int = 0) -> None:
        """A label: held in sequence from now on, learned once its event has joined and its turn has come."""
        self.sequencer.observe(partition, feedback["label_time"], wall_ms)
        event = self.join.add_feedback(feedback, source)
        if event is not None:
            self.sequencer.hold(event.label_time_ms, event.event_id)
            self._joined(event if event.complete else None)

    def on_refused(self, event_id: str) -> None:
        """The front refused the event: its label, held or to come, is settled now instead of holding learning
        back until its wait runs out."""
        stray = self.join.refuse(event_id)
        if stray is not None:
            self.sequencer.drop(stray.label_time_ms, event_id)

    def _joined(self, event: PendingEvent | None) -> None:
        if event is not None:
            self.sequencer.joined(event.label_time_ms, event.event_id, event)

    def advance(self, wall_ms: int) -> list[Stray]:
        """Expire what left the window, learn what the sequencer releases; the strays to route on."""
        for event in self.join.expire():
            self._joined(event)
        strays = self.join.take_strays()
        for stray in strays:
            if stray.kind == "unmatched":  # a held label whose event never came
                self.sequencer.drop(stray.label_time_ms, stray.event_id)
        for event in self.sequencer.release(wall_ms):
            self._learn(event)
        return strays + self._take_failed()

    def blocked_by(self, wall_ms: int) -> tuple[PendingEvent, int] | None:
        """The label holding learning back because its event's features have not come, and for how long (wall
        ms); None if learning is not held back by such a label."""
        blocked = self.sequencer.blocked(wall_ms)
        if blocked is None:
            return None
        (_, event_id), waited = blocked
        pending = self.join.waiting(event_id)
        if pending is None or not pending.has_label or pending.features is not None:
            return None
        return pending, waited

    def give_up(self, event: PendingEvent, wall_ms: int) -> list[Stray] | None:
        """Stop waiting for ``event``: its label goes out as unmatched, and what it held back is learned (None if
        the join no longer holds such a label)."""
        if not self.join.give_up(event.event_id):
            return None
        return self.advance(wall_ms)

    def finish(self) -> list[Stray]:
        """Learn everything still held (the end of a bounded replay)."""
        for event in self.sequencer.flush():
            self._learn(event)
        return self.join.take_strays() + self._take_failed()

    def _take_failed(self) -> list[Stray]:
        failed, self._failed = self._failed, []
        return failed

    def _learn(self, event: PendingEvent) -> None:
        assert event.features is not None and event.label is not None, "a joined event has features and a label"
        early = event.features["event_time"] - event.label_time_ms
        if self.skew_ms is not None and early > self.skew_ms:  # a label cannot be known before its event happened
            self._failed.append(Stray("before-event", event.event_id, event.label_source, event.label_time_ms,
                                      f"label time is {early} ms before the event's time"))
            return
        x, y = event.features["features"], event.label
        if event.served_version is not None:
            served = self.served.setdefault(event.served_version, VersionMetrics(self.positive))
            served.update(y, event.predictions[event.served_version])
        for version_name, prediction in event.predictions.items():
            self.metrics.setdefault(version_name, VersionMetrics(self.positive)).update(y, prediction)
        failed: list[str] = []
        for version in self._learners_of(event):
            try:
                version.model.learn_one(x, y)
            except Exception as exc:  # a label this model cannot take (a string for a binary classifier, say)
                failed.append(self._unlearnable(version, exc))
                continue
            self.learned[version.version] += 1
        if failed:
            self._failed.append(Stray("unlearnable", event.event_id, event.label_source, event.label_time_ms,
                                      "; ".join(failed)))
        self.labels_learned += 1
        if self.on_learned is not None:
            self.on_learned(event)

    def _unlearnable(self, version: ModelVersion, exc: Exception) -> str:
        """Count a label ``version`` refused; say so in the log once per version and kind of error."""
        self.unlearnable[version.version] += 1
        why = f"{version.version}: {type(exc).__name__}: {exc}"[:300]
        if (version.version, type(exc).__name__) not in self._reported:
            self._reported.add((version.version, type(exc).__name__))
            log.error("%s %s cannot learn a label (%s); such labels go to the DLQ as unlearnable-label",
                      self.registry.model_name, version.version, why)
        return why

    def _learners_of(self, event: PendingEvent) -> list[ModelVersion]:
        """The versions that scored the event: a fact of the data, not of when the label was processed, so a
        restore and replay teaches exactly the versions an uninterrupted run taught, across routing changes.
        An event the serve stage dead-lettered has no predictions: the versions active now learn it."""
        if not event.predictions:
            return self.registry.active()
        return [self.registry.versions[v] for v in sorted(event.predictions) if v in self.registry.versions]

    def metrics_records(self) -> list[ModelRecord]:
        """One METRICS record per version that learned: its own metrics, those of the events it served, and its
        counts; plus the learner's label accounting, the same in every record (``STAGE_COUNTERS``)."""
        c = self.join.counters
        counts = (self.labels_learned, c.received, c.joined, c.duplicate, c.late, c.unmatched,
                  self.join.labels_pending, len(self.sequencer))
        stage = dict(zip(STAGE_COUNTERS, counts, strict=True))
        return [
            metrics_record(self.registry.model_name, version, self._metrics_of(version),
                           {"learned": learned, "served": self.served[version].scored if version in self.served else 0,
                            **stage})
            for version, learned in sorted(self.learned.items())
        ]

    def _metrics_of(self, version: str) -> dict[str, float]:
        own = self.metrics[version].values() if version in self.metrics else {}
        served = self.served[version].values() if version in self.served else {}
        return {**own, **{f"served_{k}": v for k, v in served.items()}}

    def state(self) -> dict[str, Any]:
        """Everything a restart needs to continue exactly where this left off, as plain data and river objects."""
        return {
            "models": {v.version: pickling.dumps(v.model) for v in self.registry.versions.values()
                       if v.version in self.learned},
            "metrics": {version: m.plain() for version, m in self.metrics.items()},
            "served_by": {version: m.plain() for version, m in self.served.items()},
            "learned": dict(self.learned), "labels_learned": self.labels_learned, "join": self.join.state(),
            "sequencer": self.sequencer.state(),
        }

    def load_state(self, state: dict[str, Any], wall_ms: int) -> None:
        for version, pickled in state["models"].items():
            if version in self.registry.versions:
                self.registry.versions[version].model = pickling.loads(pickled)
            else:
                log.error("snapshot has a model for %s, which the registry does not know; dropped", version)
        self.metrics = {version: VersionMetrics.from_plain(m, self.positive) for version, m in state["metrics"].items()}
        # A snapshot from before served metrics were kept per version (key "served") starts them afresh.
        self.served = {version: VersionMetrics.from_plain(m, self.positive)
                       for version, m in state.get("served_by", {}).items()}
        self.learned = Counter(state["learned"])
        self.labels_learned = state["labels_learned"]
        self.join.load_state(state["join"])
        self.sequencer.load_state(state["sequencer"], wall_ms)
