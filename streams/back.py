"""The back of the loop, fused: learn and monitor as one stage, reading features, predictions and feedback once.

Both stages read the same three topics and join the same labels with the same
predictions. Fused, each record is decoded once, there is one join, and the
monitor sees the joined events in the learner's own order, so its concept and
performance verdicts replay exactly as the models do. Its alerts commit in the
learner's transactions. The monitor's windows live in memory: a restart, or a
session the learner starts again from its snapshot, begins them afresh from
the kept data-drift reference. ``WEIR_FUSED=false`` runs the two apart.

With a policy (``WEIR_POLICY_FILE``), the controller rides along too
(``streams.control.part``): it hears the same events and the monitor's
alerts, and its decisions commit in the same transactions; a retraining's
reading and fitting run in the ``Retraining`` service the worker gives it
(``streams.retrainer``), never in the stage. It also hears of
the events the front refused at the door, which the learner reads on
``events.dlq``: a data-quality incident holds the controller as it happens,
not a join window later when their labels come back unmatched.

Run one back per deployment: like the learner, it reads every partition, so
each further replica would raise the same alerts again. Scale the front.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from streams.control.part import ControlPart
from streams.learn.stage import LearnStage
from streams.monitor.detectors import DriftMonitor
from streams.monitor.stage import MonitorStage, build_monitor
from streams.runtime.stage import Partition
from weir.clock import now_ms
from weir.contract.feedback import parse_positive
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert, FeatureVector, Prediction
from weir.contract.serde import SchemaCatalog
from weir.errors import ConfigError
from weir.registry.factories import score_one
from weir.registry.policy import Policy, load_policy
from weir.registry.retraining import Retraining
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin


class BackStage:
    """features + predictions + feedback -> learned models and alerts; late labels to feedback.late."""

    name = "back"

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry | None = None, kept_reference: Path | None = None,
                 retraining: Retraining | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.registry = registry
        self.kept_reference = kept_reference
        self.policy = _policy_for(settings, registry)
        if self.policy is not None and retraining is None:
            raise ConfigError("a back with a policy needs a retraining service to hand its retrainings to")
        self.retraining = retraining
        self.positive = parse_positive(settings.positive_label)
        self.control: ControlPart | None = None  # built by each restore, as the monitor is
        # Its metrics and its alert records; the monitor itself is built by each restore.
        idle = DriftMonitor(settings, PendingJoin(window_ms=0, needs_features=False, hot_events=1))
        self.watch = MonitorStage(settings, catalog, metrics, monitor=idle)
        self.learn = LearnStage(settings, catalog, registry, metrics, observer=self)
        self.raised: list[Alert] = []
        self.started_ms = now_ms()
        self.inputs = self.learn.inputs
        self.upstream = self.learn.upstream
        self.outputs = (*self.learn.outputs, self.watch.alerts.topic)

    # --- what the learner shows the monitor ------------------------------------------------------------------

    def on_features(self, vector: FeatureVector) -> None:
        self._raise(self.watch.monitor.on_features(vector))

    def on_prediction(self, prediction: Prediction) -> None:
        self._raise(self.watch.monitor.on_served(prediction))
        if self.control is not None:
            self.control.on_served(prediction)

    def on_learned(self, event: PendingEvent) -> None:
        self._raise(self.watch.monitor.on_joined(event))
        if self.control is not None:
            self.control.on_learned(event)

    def on_label_refused(self, reason: str) -> None:
        if self.control is not None:
            self.control.on_label_refused()

    def on_event_refused(self, record: InRecord) -> None:
        """Counted for the controller if written since this back started: older ones (a first read of the topic)
        are no incident now."""
        if self.control is not None and record.timestamp_ms >= self.started_ms:
            self.control.on_event_refused()

    def _raise(self, alerts: list[Alert]) -> None:
        self.raised += alerts
        if self.control is not None and alerts:
            self.control.on_alerts(alerts)

    # --- the stage -------------------------------------------------------------------------------------------

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        return self.learn.process(batch) + self._alerts()

    def tick(self) -> list[OutRecord]:
        return self.learn.tick() + self.watch.tick() + self._alerts()

    def held_back(self, behind: set[Partition]) -> set[Partition]:
        return self.learn.held_back(behind)

    def _alerts(self) -> list[OutRecord]:
        raised, self.raised = self.raised, []
        return self.watch.emit(raised) + (self.control.take() if self.control is not None else [])

    # --- state: the learner's; the monitor starts afresh with each restore -----------------------------------

    def restore(self) -> dict[tuple[str, int], int] | None:
        self.watch.monitor.join.store.close()  # the monitor before: its join's file goes with it
        self.watch.monitor = build_monitor(self.settings, self.kept_reference, rescore=self._rescore)
        self.raised = []
        if self.policy is not None:
            assert self.retraining is not None
            self.control = ControlPart(self.settings, self.catalog, self.registry, self.policy, self.retraining)
        return self.learn.restore()

    def _rescore(self, version: str, features: dict[str, Any]) -> float | None:
        """The score ``version`` gives ``features`` now: the monitor's prediction drift compares served scores
        with reference inputs scored so, which the model's own learning cannot tell apart."""
        known = self.registry.versions.get(version)
        if known is None:
            return None
        try:
            return score_one(known.model, features, self.positive)
        except Exception:  # noqa: BLE001  # a model that cannot score an input gives no pair; serving says why
            return None

    def snapshot_due(self, final: bool = False) -> bool:
        return self.learn.snapshot_due(final)

    def snapshot(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        return self.learn.snapshot(offsets)

    def note_partitions(self, assigned: set[tuple[str, int]], caught_up: set[tuple[str, int]]) -> None:
        self.learn.note_partitions(assigned, caught_up)

    def close(self) -> None:
        self.learn.close()


def _policy_for(settings: Settings, registry: ModelRegistry) -> Policy | None:
    """The automation policy of the back's model, if one is configured."""
    if settings.policy_file is None:
        return None
    policy = load_policy(settings.policy_file)
    if policy.model != registry.model_name:
        raise ConfigError(f"{settings.policy_file} is the policy of {policy.model!r}; this worker's model is "
                          f"{registry.model_name!r} (WEIR_MODEL_NAME)")
    return policy
