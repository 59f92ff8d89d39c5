"""Monitor stage: features + predictions + feedback -> alerts.

The monitor joins predictions with feedback itself, so it depends on no other
stage's process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from streams.monitor.detectors import DriftMonitor
from streams.monitor.metrics import MonitorMetrics
from streams.runtime.stage import Route, dispatch
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, EVENTS_DLQ, FEATURES, FEEDBACK, PREDICTIONS
from weir.settings import Settings
from weir.state.join import PendingJoin
from weir.stats.profile import FIRST_EVENTS, save_profile, starting_reference

log = logging.getLogger("weir.monitor")


class MonitorStage:
    """features + predictions + feedback -> alerts."""

    name = "monitor"

    def __init__(self, settings: Settings, catalog: SchemaCatalog, metrics: CollectorRegistry | None = None,
                 kept_reference: Path | None = None) -> None:
        """``kept_reference``: where the data-drift reference is kept across restarts (none: not kept)."""
        reference = starting_reference(settings.drift_profile, kept_reference)
        origin = reference.origin if reference is not None else FIRST_EVENTS
        if reference is not None:
            log.info("data drift measured against %d features of %s", len(reference.features), origin)
        self.monitor = DriftMonitor(
            settings,
            PendingJoin(window_ms=settings.join_window_ms, needs_features=False,
                        hot_events=settings.join_hot_events),
            data_reference=reference.features if reference is not None else None,
            on_data_reference=None if kept_reference is None else (
                lambda features: save_profile(kept_reference, features, origin=origin, source="monitor")),
        )
        self.prometheus = MonitorMetrics(metrics or CollectorRegistry())
        vectors = topic_serde(catalog, settings, FEATURES)
        predictions = topic_serde(catalog, settings, PREDICTIONS)
        feedback = topic_serde(catalog, settings, FEEDBACK)
        self.alerts = topic_serde(catalog, settings, ALERTS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.inputs = (vectors.topic, predictions.topic, feedback.topic)
        self.outputs = (self.alerts.topic, self.dlq_topic)
        self.routes: dict[str, Route[Any]] = {
            vectors.topic: Route(vectors, lambda _r, v: self._emit(self.monitor.on_features(v))),
            predictions.topic: Route(predictions, lambda _r, v: self._emit(self.monitor.on_prediction(v))),
            feedback.topic: Route(feedback, lambda _r, v: self._emit(self.monitor.on_feedback(v))),
        }

    def _emit(self, alerts: list[Alert]) -> list[OutRecord]:
        return [OutRecord(self.alerts.topic, f"{a['kind']}:{a['subject']}".encode(), self.alerts.encode(a))
                for a in alerts]

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)

    def tick(self) -> list[OutRecord]:
        self.prometheus.publish(self.monitor)
        return []
