"""Monitor stage: features + predictions + feedback -> alerts.

The monitor joins predictions with feedback itself, so it depends on no other
stage's process. It writes no dead letters: the learn stage reads the same
three topics and dead-letters each bad record once; the monitor counts them.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from streams.monitor.detectors import DriftMonitor
from streams.monitor.metrics import MonitorMetrics
from streams.monitor.scores import Rescore
from streams.runtime.stage import Pacer, Partition, Route, dispatch
from weir.clock import now_ms
from weir.contract.feedback import feedback_rejection
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert, FeatureVector, Feedback, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, FEATURES, FEEDBACK, PREDICTIONS
from weir.settings import Settings
from weir.state.join import PendingJoin
from weir.stats.profile import FIRST_EVENTS, save_profile, starting_reference

log = logging.getLogger("weir.monitor")


def build_monitor(settings: Settings, kept_reference: Path | None, rescore: Rescore | None = None) -> DriftMonitor:
    """A drift monitor starting from the stored or kept data-drift reference, keeping its reference there;
    ``rescore``: the models' scores, where the monitor runs beside them (the back)."""
    reference = starting_reference(settings.drift_profile, kept_reference)
    origin = reference.origin if reference is not None else FIRST_EVENTS
    if reference is not None:
        log.info("data drift measured against %d features of %s", len(reference.features), origin)
    return DriftMonitor(
        settings,
        PendingJoin(window_ms=settings.join_window_ms, needs_features=False, hot_events=settings.join_hot_events),
        data_reference=reference.features if reference is not None else None,
        on_data_reference=None if kept_reference is None else (
            lambda features: save_profile(kept_reference, features, origin=origin, source="monitor")),
        rescore=rescore,
    )


class MonitorStage:
    """features + predictions + feedback -> alerts."""

    name = "monitor"

    def __init__(self, settings: Settings, catalog: SchemaCatalog, metrics: CollectorRegistry | None = None,
                 kept_reference: Path | None = None, monitor: DriftMonitor | None = None) -> None:
        """``kept_reference``: where the data-drift reference is kept across restarts (none: not kept);
        ``monitor``: the drift monitor to use, built here when not given."""
        self.monitor = monitor or build_monitor(settings, kept_reference)
        self.prometheus = MonitorMetrics(metrics or CollectorRegistry())
        self.label_future_skew_ms = settings.label_future_skew_ms
        self.label_kind = settings.label_kind
        vectors = topic_serde(catalog, settings, FEATURES)
        predictions = topic_serde(catalog, settings, PREDICTIONS)
        feedback = topic_serde(catalog, settings, FEEDBACK)
        self.alerts = topic_serde(catalog, settings, ALERTS)
        self.rejected: Counter[str] = Counter()  # bad input records, by reason: the learn stage dead-letters them
        self._reported: set[str] = set()
        self.inputs = (vectors.topic, predictions.topic, feedback.topic)
        self.pacer = Pacer((vectors.topic, predictions.topic), feedback.topic, settings.sequencer_idle_ms)
        self.outputs = (self.alerts.topic,)
        self.routes: dict[str, Route[Any]] = {
            vectors.topic: Route(vectors, self._features),
            predictions.topic: Route(predictions, self._prediction),
            feedback.topic: Route(feedback, self._feedback),
        }

    def _features(self, record: InRecord, vector: FeatureVector) -> list[OutRecord]:
        self.pacer.event(record.partition, vector["event_time"])
        return self.emit(self.monitor.on_features(vector))

    def _prediction(self, record: InRecord, prediction: Prediction) -> list[OutRecord]:
        self.pacer.event(record.partition, prediction["event_time"])
        return self.emit(self.monitor.on_prediction(prediction))

    def _feedback(self, record: InRecord, feedback: Feedback) -> list[OutRecord]:
        if feedback_rejection(feedback, now_ms=now_ms(), max_future_ms=self.label_future_skew_ms,
                              stage=self.name, kind=self.label_kind) is not None:
            return []  # the learn stage reads the same record and dead-letters it, with the reason
        self.pacer.label(record.partition, feedback["label_time"])
        return self.emit(self.monitor.on_feedback(feedback))

    def emit(self, alerts: list[Alert]) -> list[OutRecord]:
        """The ``alerts`` records of ``alerts``, keyed by kind and subject."""
        return [OutRecord(self.alerts.topic, f"{a['kind']}:{a['subject']}".encode(), self.alerts.encode(a))
                for a in alerts]

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        out = dispatch(batch, self.routes, stage=self.name, dlq_topic=None, rejected=self.rejected)
        for reason in self.rejected.keys() - self._reported:  # said once per reason; learn has the records
            self._reported.add(reason)
            log.warning("monitor skips input records rejected as %s (the learn stage dead-letters them)", reason)
        return out

    def held_back(self, behind: set[Partition]) -> set[Partition]:
        return self.pacer.held_back(behind)

    def tick(self) -> list[OutRecord]:
        self.prometheus.publish(self.monitor)
        return []
