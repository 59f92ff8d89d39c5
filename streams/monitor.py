"""Monitor stage: concept drift on each version's error stream, raised as alerts.

The monitor joins predictions with feedback itself (the same ``PendingJoin``
the learner uses) so it depends on no other stage's process: one ADWIN per
version watches the 0/1 error of that version's predictions, and a detected
change becomes a FIRING alert on the ``alerts`` topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from river import base, drift

from streams.stage import InRecord, OutRecord, Route, dispatch
from weir.clock import now_ms
from weir.join import PendingEvent, PendingJoin
from weir.serde import Record, SchemaCatalog
from weir.settings import Settings
from weir.topics import ALERTS, EVENTS_DLQ, FEEDBACK, PREDICTIONS, topic_serde

RUNBOOK = (
    "The model's error rate changed. Compare the version's rolling accuracy before and after, "
    "check the data-quality metrics for the same window, and consider retraining."
)


class ConceptDriftMonitor:
    """One drift detector per model version on the stream of its prediction errors."""

    def __init__(self, join: PendingJoin, make_detector: Callable[[], base.DriftDetector] = drift.ADWIN) -> None:
        self.join = join
        self.make_detector = make_detector
        self.detectors: dict[str, base.DriftDetector] = {}
        self.seen: dict[str, int] = {}

    def on_prediction(self, prediction: Record) -> list[Record]:
        return self._check(self.join.add_prediction(prediction))

    def on_feedback(self, feedback: Record) -> list[Record]:
        event = self.join.add_feedback(feedback)
        alerts = self._check(event if event is not None and event.complete else None)
        self.join.expire()
        return alerts

    def _check(self, event: PendingEvent | None) -> list[Record]:
        if event is None:
            return []
        alerts = []
        for version, prediction in sorted(event.predictions.items()):
            if prediction["error"] is not None:
                continue
            detector = self.detectors.get(version)
            if detector is None:
                detector = self.detectors[version] = self.make_detector()
            error = float(prediction["predicted_label"] != event.label)
            detector.update(error)
            self.seen[version] = self.seen.get(version, 0) + 1
            if detector.drift_detected:
                alerts.append(self._alert(prediction, detector, error))
        return alerts

    def _alert(self, prediction: Record, detector: base.DriftDetector, error: float) -> Record:
        subject = f"{prediction['model_name']}:{prediction['model_version']}"
        return {
            "alert_id": str(uuid.uuid4()),
            "kind": "concept_drift",
            "severity": "warning",
            "subject": subject,
            "status": "FIRING",
            "statistic": float(getattr(detector, "estimation", error)),
            "threshold": float(getattr(detector, "delta", 0.0)),
            "evidence": {
                "detector": type(detector).__name__,
                "labels_seen": str(self.seen[prediction["model_version"]]),
                "event_id": prediction["event_id"],
                "event_time": str(prediction["event_time"]),
            },
            "runbook": RUNBOOK,
            "detected_at": now_ms(),
        }


class MonitorStage:
    """predictions + feedback -> alerts."""

    name = "monitor"

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        self.monitor = ConceptDriftMonitor(PendingJoin(window_ms=settings.join_window_ms, needs_features=False))
        predictions = topic_serde(catalog, settings, PREDICTIONS)
        feedback = topic_serde(catalog, settings, FEEDBACK)
        self.alerts = topic_serde(catalog, settings, ALERTS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (predictions.topic, feedback.topic)
        self.outputs = (self.alerts.topic, self.dlq_topic)
        self.routes = {
            predictions.topic: Route(predictions, lambda _r, v: self._emit(self.monitor.on_prediction(v))),
            feedback.topic: Route(feedback, lambda _r, v: self._emit(self.monitor.on_feedback(v))),
        }

    def _emit(self, alerts: list[Record]) -> list[OutRecord]:
        return [
            OutRecord(self.alerts.topic, f"{a['kind']}:{a['subject']}".encode(), self.alerts.encode(a))
            for a in alerts
        ]

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)

    def tick(self) -> list[OutRecord]:
        return []
