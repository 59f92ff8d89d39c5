"""The back of the loop, fused: learn and monitor as one stage, reading features, predictions and feedback once.

Both stages read the same three topics and join the same labels with the same
predictions. Fused, each record is decoded once, there is one join, and the
monitor sees the joined events in the learner's own order, so its concept and
performance verdicts replay exactly as the models do. Its alerts commit in the
learner's transactions. The monitor's windows live in memory: a restart, or a
session the learner starts again from its snapshot, begins them afresh from
the kept data-drift reference. ``WEIR_FUSED=false`` runs the two apart.

Run one back per deployment: like the learner, it reads every partition, so
each further replica would raise the same alerts again. Scale the front.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from streams.learn.stage import LearnStage
from streams.monitor.detectors import DriftMonitor
from streams.monitor.stage import MonitorStage, build_monitor
from streams.runtime.stage import Partition
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert, FeatureVector, Prediction
from weir.contract.serde import SchemaCatalog
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin


class BackStage:
    """features + predictions + feedback -> learned models and alerts; late labels to feedback.late."""

    name = "back"

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry | None = None, kept_reference: Path | None = None) -> None:
        self.settings = settings
        self.kept_reference = kept_reference
        # Its metrics and its alert records; the monitor itself is built by each restore.
        idle = DriftMonitor(settings, PendingJoin(window_ms=0, needs_features=False, hot_events=1))
        self.watch = MonitorStage(settings, catalog, metrics, monitor=idle)
        self.learn = LearnStage(settings, catalog, registry, metrics, observer=self)
        self.raised: list[Alert] = []
        self.inputs = self.learn.inputs
        self.outputs = (*self.learn.outputs, self.watch.alerts.topic)

    # --- what the learner shows the monitor ------------------------------------------------------------------

    def on_features(self, vector: FeatureVector) -> None:
        self.raised += self.watch.monitor.on_features(vector)

    def on_prediction(self, prediction: Prediction) -> None:
        self.raised += self.watch.monitor.on_served(prediction)

    def on_learned(self, event: PendingEvent) -> None:
        self.raised += self.watch.monitor.on_joined(event)

    # --- the stage -------------------------------------------------------------------------------------------

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return self.learn.process(batch) + self._alerts()

    def tick(self) -> list[OutRecord]:
        return self.learn.tick() + self.watch.tick() + self._alerts()

    def held_back(self, behind: set[Partition]) -> set[Partition]:
        return self.learn.held_back(behind)

    def _alerts(self) -> list[OutRecord]:
        raised, self.raised = self.raised, []
        return self.watch.emit(raised)

    # --- state: the learner's; the monitor starts afresh with each restore -----------------------------------

    def restore(self) -> dict[tuple[str, int], int] | None:
        self.watch.monitor = build_monitor(self.settings, self.kept_reference)
        self.raised = []
        return self.learn.restore()

    def snapshot_due(self, final: bool = False) -> bool:
        return self.learn.snapshot_due(final)

    def snapshot(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        return self.learn.snapshot(offsets)

    def note_partitions(self, assigned: set[tuple[str, int]], caught_up: set[tuple[str, int]]) -> None:
        self.learn.note_partitions(assigned, caught_up)

    def close(self) -> None:
        self.learn.close()
