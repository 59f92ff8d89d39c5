"""The controller inside the back: its decisions become registry records and ``decision`` alerts.

The back shows it what it shows the monitor (served predictions, each
labelled event in the learning order) and the monitor's alerts. A decision
goes out in the back's own transaction, with the input offsets it came from:

* retrain: a new version with its lineage, and a shadow routing for it. Its
  data is the recent window of joined events, read back from ``features`` and
  ``feedback`` at the offsets those records sit at, with the rules of
  `weir replay` (``weir.kafka.ranges``); the offsets go into the lineage, so
  the same data can be read again;
* canary, promote, retire, rollback: a routing record;
* every decision, proposed or taken: an alert of kind ``decision`` with its
  evidence, for the sinks and the people on call.

The registry stays the truth. Each labelled event, the part compares the
routing it sees with what it expects: a person's routing (actor ``person``)
pauses automation, a ``resume`` record hands the model back, an ``approved``
one carries out the pending proposal, and a trial whose challenger no longer
routes ends. So a restarted back, which starts with a fresh controller, picks
up a running trial from the routing and counts its evidence again.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from importlib.metadata import version as installed
from typing import Any

from confluent_kafka import KafkaException

import weir
from streams.control.controller import Controller, Decision
from weir.clock import now_ms
from weir.contract.messages import OutRecord
from weir.contract.records import Alert, Label, ModelRecord, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, FEEDBACK, MODELS
from weir.errors import WeirError
from weir.kafka.ranges import Spans, TopicRange, read_offset_range, widen
from weir.registry.candidates import expand, prequential_loss
from weir.registry.decisions import next_version
from weir.registry.factories import Model, build_model, encode_params
from weir.registry.policy import Policy, Retrain
from weir.registry.records import PICKLE_FACTORY, record_key, routing_record, version_record
from weir.registry.routing import Routing
from weir.registry.signing import model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state import pickling
from weir.state.join import PendingEvent

log = logging.getLogger("weir.control")

CONTROLLER = "controller"


class ControlPart:
    """One model's controller, fed by the back, writing its decisions as records."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry, policy: Policy) -> None:
        self.policy = policy
        self.registry = registry
        self.models = topic_serde(catalog, settings, MODELS)
        self.alerts = topic_serde(catalog, settings, ALERTS)
        self.signer = model_signer(settings)
        self.controller: Controller | None = None
        self.seen: Routing | None = None  # the routing last accounted for
        self.settings, self.catalog = settings, catalog
        self.feedback_topic = topic_serde(catalog, settings, FEEDBACK).topic
        self.window: deque[Joined] = deque(maxlen=policy.retrain.window_labels)  # the recent joined events
        self.out: list[OutRecord] = []

    # --- what the back shows it ---------------------------------------------------------------------------------

    def on_served(self, prediction: Prediction) -> None:
        if self._reconciled() and prediction["served"] and prediction["model_name"] == self.policy.model:
            assert self.controller is not None
            self.controller.on_served()

    def on_learned(self, event: PendingEvent) -> None:
        source = event.label_source
        if event.features_at is not None and source is not None and source.topic == self.feedback_topic:
            self.window.append(Joined(event.features_at, (source.partition, source.offset)))
        if self._reconciled():
            assert self.controller is not None
            self._act(self.controller.on_labelled(event), event.event_id)

    def on_label_refused(self) -> None:
        if self._reconciled():
            assert self.controller is not None
            self.controller.on_label_refused()

    def on_event_refused(self) -> None:
        if self._reconciled():
            assert self.controller is not None
            self.controller.on_event_refused()

    def on_alerts(self, alerts: list[Alert]) -> None:
        if self._reconciled():
            assert self.controller is not None
            for alert in alerts:
                self._act(self.controller.on_alert(alert), alert["evidence"].get("event_id", "-"))

    def take(self) -> list[OutRecord]:
        out, self.out = self.out, []
        return out

    # --- the registry is the truth ------------------------------------------------------------------------------

    def _reconciled(self) -> bool:
        """Bring the controller in line with the routing now; False while the model has none."""
        routing = self.registry.routing
        if routing is None:
            return False
        if self.controller is None:
            self.controller = Controller(self.policy, routing.champion)
            self._adopt(routing)
        elif routing is not self.seen:
            self._follow(routing)
        self.seen = routing
        return True

    def _follow(self, routing: Routing) -> None:
        controller = self.controller
        assert controller is not None
        if routing.actor == "person":
            if not controller.paused:
                log.warning("a person routed %s (%s): automation paused until `weir policy resume`",
                            self.policy.model, routing.describe())
            controller.pause()
        elif routing.actor == "resume":
            controller.resume(routing.champion)
            self._adopt(routing)
        elif routing.actor == "approved":
            decision = controller.approve()
            if decision is None:
                log.warning("an approval for %s came, but no proposal waits (proposals do not outlive a restart of "
                            "the back; the controller proposes again when the evidence holds)", self.policy.model)
            else:
                self._carry_out(decision)
        elif routing.actor == CONTROLLER:
            controller.champion = routing.champion
        trial = controller.trial
        if trial is not None and trial.challenger in self.registry.versions and \
                trial.challenger not in routing.challengers and routing.champion != trial.challenger:
            controller.trial = None  # its challenger no longer routes: the trial is over

    def _adopt(self, routing: Routing) -> None:
        """A controller's trial the routing shows (after a restart, or a resume) goes on from its step."""
        controller = self.controller
        assert controller is not None
        if routing.actor not in (CONTROLLER, "approved", "resume") or not routing.challengers:
            return
        challenger = routing.challengers[0]
        controller.start(challenger, at_ms=now_ms(), canary=routing.canary is not None)
        if routing.canary is not None and controller.trial is not None:  # the last step the share has reached
            controller.trial.step = max(0, sum(s <= routing.percent for s in controller.trial.steps) - 1)

    # --- decisions into records -----------------------------------------------------------------------------------

    def _act(self, decisions: list[Decision], event_id: str) -> None:
        """Carry out (or propose) each decision; ``event_id``: the event it was decided on, for a timeline."""
        for decision in decisions:
            if decision.proposed:
                self._announce(decision, {**decision.evidence, "event_id": event_id})
            else:
                self._carry_out(decision, event_id)

    def _carry_out(self, decision: Decision, event_id: str = "-") -> None:
        """The decision's registry records, and its alert."""
        evidence = {**decision.evidence, "event_id": event_id}
        try:
            records = self._records(decision, evidence)
        except WeirError as exc:  # a retraining that could not be done: said, and tried again later
            assert self.controller is not None
            self.controller.retrain_failed()
            log.error("%s: %s failed, tried again after the cool-down: %s", self.policy.model, decision.action, exc)
            self._announce(decision, {**evidence, "outcome": f"failed: {exc}"}, proposed=False, severity="warning")
            return
        self.out += [OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(self.signer.sign(r)))
                     for r in records]
        self._announce(decision, evidence, proposed=False)

    def _announce(self, decision: Decision, evidence: dict[str, str], proposed: bool | None = None,
                  severity: str = "info") -> None:
        alert = decision_alert(decision, evidence, decision.proposed if proposed is None else proposed, severity)
        self.out.append(OutRecord(self.alerts.topic, f"decision:{alert['subject']}".encode(),
                                  self.alerts.encode(alert)))
        log.info("%s %s: %s", "proposed" if alert["evidence"]["proposed"] == "true" else "decided",
                 self.policy.model, decision.describe())

    def _records(self, decision: Decision, evidence: dict[str, str]) -> list[ModelRecord]:
        name, note = self.policy.model, f"policy v{decision.policy_version}: {decision.action}"
        if decision.action == "retrain":
            return self._retrain(decision, evidence)
        assert decision.challenger is not None
        if decision.action == "canary":
            return [routing_record(name, "canary", decision.champion, [decision.challenger], decision.percent,
                                   note=note, actor=CONTROLLER, evidence=evidence)]
        champion = decision.challenger if decision.action == "promote" else decision.champion
        return [routing_record(name, "basic", champion, note=note, actor=CONTROLLER, evidence=evidence)]

    def _retrain(self, decision: Decision, evidence: dict[str, str]) -> list[ModelRecord]:
        champion = self.registry.champion
        controller = self.controller
        assert champion is not None and controller is not None
        rule = self.policy.retrain
        try:
            data = self._read_window() if rule.method != "online" else None
        except KafkaException as exc:
            raise WeirError(f"reading the window back failed: {exc}") from exc
        window = data.learning_order() if data is not None else []
        made_by = rule.factory or "the champion's"
        if rule.candidates:
            model, made_by, evidence["candidates"] = best_of(rule, window)
        else:
            model = retrained(champion.model, rule, window)
        version = next_version(self.registry)
        times = [label_time for label_time, _ in data.labels.values()] if data is not None else []
        span = (min(times), max(times)) if times else None
        evidence.update({
            "parent": champion.version, "window": f"{len(times)} labels" + (
                f", label times {span[0]}-{span[1]}" if span else " (online: learns from now on)"),
            "offsets": data.describe_spans() if data is not None else "-",
            "data_version": data.content_hash() if data is not None else "-", "trigger": decision.trigger or "-",
            "factory": made_by, "params": json.dumps(rule.params, sort_keys=True),
            "weir": weir.__version__, "river": installed("river")})
        note = f"policy v{decision.policy_version}: {rule.method} retrain of {champion.version}"
        records = [version_record(self.policy.model, version, PICKLE_FACTORY, {}, parent_version=champion.version,
                                  training_window=span, pickled=pickling.dumps(model), note=note,
                                  actor=CONTROLLER, evidence=evidence),
                   routing_record(self.policy.model, "shadow", champion.version, [version], note=note,
                                  actor=CONTROLLER, evidence={"action": "shadow", "trigger": decision.trigger or "-"})]
        controller.start(version, at_ms=now_ms(), trigger=decision.trigger)
        return records

    def _read_window(self) -> TopicRange:
        """The window's joined events, read back from the topics at their offsets."""
        if len(self.window) < MIN_WINDOW:
            raise WeirError(f"{len(self.window)} joined events seen since the back started; a retraining needs "
                            f"{MIN_WINDOW}")
        features: Spans = {}
        feedback: Spans = {}
        for joined in self.window:
            widen(features, joined.features_at)
            widen(feedback, joined.label_at)
        data = read_offset_range(self.settings, self.catalog, features, feedback)
        if not data.labels:
            raise WeirError(f"no labelled event at {data.describe_spans()} (gone with the topics' retention?)")
        log.info("%s: retraining on %d labels read back from %s", self.policy.model, len(data.labels),
                 data.describe_spans())
        return data


@dataclass(frozen=True)
class Joined:
    """Where one joined event's records sit: (partition, offset) of its features and of its label."""

    features_at: tuple[int, int]
    label_at: tuple[int, int]


MIN_WINDOW = 100  # joined events a full or incremental retraining needs


def best_of(rule: Retrain, window: list[tuple[dict[str, Any], Label]]) -> tuple[Model, str, str]:
    """The policy's experiment on the window: each candidate tested, then trained, on every labelled event in
    order; the one with the lowest mean loss trained on the whole window, its name, and what each scored."""
    scored = [(*prequential_loss(candidate, window), candidate) for candidate in expand(rule.candidates)]
    scored.sort(key=lambda s: (s[0], s[2].name))
    tried = "; ".join(f"{c.name} loss {loss:.4f}" + (" (chosen)" if i == 0 else "")
                      for i, (loss, _, c) in enumerate(scored))
    return scored[0][1], scored[0][2].name, tried


def retrained(champion: Model, rule: Retrain, window: list[tuple[dict[str, Any], Label]]) -> Model:
    """A challenger: ``full`` a fresh estimator (the policy's factory, or a copy of the champion's) fit on the
    window; ``incremental`` the champion as it is now, trained on the window again; ``online`` a fresh estimator
    that learns from now on."""
    model: Model
    if rule.method == "incremental":
        model = copy.deepcopy(champion)
    elif rule.factory is not None:
        model = build_model(rule.factory, encode_params(rule.params))
    else:
        model = champion.clone()  # type: ignore[attr-defined]
    if rule.method != "online":
        for x, y in window:
            model.learn_one(x, y)
    return model


def decision_alert(decision: Decision, evidence: dict[str, str], proposed: bool, severity: str = "info") -> Alert:
    """The ``decision`` alert: what the controller did (or proposes), and why; a warning if it could not be done."""
    subject = f"{decision.model}:{decision.challenger or decision.champion}"
    return {
        "alert_id": str(uuid.uuid4()), "kind": "decision", "severity": severity, "subject": subject,
        "status": "FIRING", "statistic": None, "threshold": None,
        "evidence": {**evidence, "action": decision.action, "proposed": str(proposed).lower(),
                     "champion": decision.champion, "challenger": decision.challenger or "-",
                     "percent": f"{decision.percent:g}", "at_label": str(decision.at_label),
                     "policy_version": str(decision.policy_version), "trigger": decision.trigger or "-"},
        "runbook": "The policy acted on this model (or proposes to: approve with `weir policy approve`). Undo with "
                   "`weir deploy rollback`, which also pauses automation until `weir policy resume`.",
        "detected_at": now_ms(),
    }
