"""The controller inside the back: its decisions become registry records and ``decision`` alerts.

The back shows it what it shows the monitor (served predictions, each
labelled event in the learning order) and the monitor's alerts. A decision
goes out in the back's own transaction, with the input offsets it came from:

* retrain: a new version with its lineage, and a shadow routing for it. Its
  data is the recent window of joined events, read back from ``features`` and
  ``feedback`` at the offsets those records sit at, with the rules of
  `weir replay`; the offsets go into the lineage, so the same data can be read
  again. Reading and fitting are a job for the ``Retraining`` service the
  back is given (``weir.registry.retraining``): the part hands it over and
  goes on, and registers the challenger at the first batch after it is done
  (an ``online`` retraining reads nothing and registers at once);
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

import json
import logging
import uuid
from collections import deque
from importlib.metadata import version as installed

import weir
from streams.control.controller import Controller, Decision
from weir.clock import now_ms
from weir.contract.messages import OutRecord
from weir.contract.records import Alert, ModelRecord, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, FEEDBACK, MODELS
from weir.registry.policy import Policy
from weir.registry.records import PICKLE_FACTORY, record_key, routing_record, version_record
from weir.registry.retraining import Position, Retrained, Retraining, RetrainJob, RetrainOutcome, starting_model
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

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry, policy: Policy,
                 retraining: Retraining) -> None:
        self.policy = policy
        self.registry = registry
        self.retraining = retraining
        self.models = topic_serde(catalog, settings, MODELS)
        self.alerts = topic_serde(catalog, settings, ALERTS)
        self.signer = model_signer(settings)
        self.controller: Controller | None = None
        self.seen: Routing | None = None  # the routing last accounted for
        self.settings = settings
        self.feedback_topic = topic_serde(catalog, settings, FEEDBACK).topic
        # the recent joined events: where each one's features and label records sit
        self.window: deque[tuple[Position, Position]] = deque(maxlen=policy.retrain.window_labels)
        self.awaited: tuple[str, Decision, dict[str, str]] | None = None  # the retrain job under way
        self.out: list[OutRecord] = []

    # --- what the back shows it ---------------------------------------------------------------------------------

    def on_served(self, prediction: Prediction) -> None:
        if self._reconciled() and prediction["served"] and prediction["model_name"] == self.policy.model:
            assert self.controller is not None
            self.controller.on_served()

    def on_learned(self, event: PendingEvent) -> None:
        source = event.label_source
        if event.features_at is not None and source is not None and source.topic == self.feedback_topic:
            self.window.append((event.features_at, (source.partition, source.offset)))
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
        """The records to write with this batch: its decisions, and the challenger of a retraining just done."""
        for outcome in self.retraining.finished():
            self._register(outcome)
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
        if decision.action == "retrain" and self.policy.retrain.method != "online":
            self._hand_over(decision, evidence)
            return
        self._write(self._records(decision, evidence))
        self._announce(decision, evidence, proposed=False)

    def _write(self, records: list[ModelRecord]) -> None:
        self.out += [OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(self.signer.sign(r)))
                     for r in records]

    def _announce(self, decision: Decision, evidence: dict[str, str], proposed: bool | None = None,
                  severity: str = "info") -> None:
        alert = decision_alert(decision, evidence, decision.proposed if proposed is None else proposed, severity)
        self.out.append(OutRecord(self.alerts.topic, f"decision:{alert['subject']}".encode(),
                                  self.alerts.encode(alert)))
        log.info("%s %s: %s", "proposed" if alert["evidence"]["proposed"] == "true" else "decided",
                 self.policy.model, decision.describe())

    def _records(self, decision: Decision, evidence: dict[str, str]) -> list[ModelRecord]:
        name, note = self.policy.model, f"policy v{decision.policy_version}: {decision.action}"
        if decision.action == "retrain":  # online: a fresh estimator that learns from now on
            current = self.registry.champion
            assert current is not None
            model = starting_model(current.model, self.policy.retrain)
            assert model is not None
            return self._challenger(decision, evidence, Retrained(
                model, self.policy.retrain.factory or "the champion's", 0, None, "-", "-", None, 0.0))
        assert decision.challenger is not None
        if decision.action == "canary":
            return [routing_record(name, "canary", decision.champion, [decision.challenger], decision.percent,
                                   note=note, actor=CONTROLLER, evidence=evidence)]
        champion = decision.challenger if decision.action == "promote" else decision.champion
        return [routing_record(name, "basic", champion, note=note, actor=CONTROLLER, evidence=evidence)]

    def _hand_over(self, decision: Decision, evidence: dict[str, str]) -> None:
        """A full or incremental retraining, as a job for the retraining service; registered when it is done."""
        champion = self.registry.champion
        assert champion is not None
        job_id = str(uuid.uuid4())  # unique across restores of the stage, which build a new part
        self.retraining.submit(RetrainJob(job_id, self.policy.model, self.settings, tuple(self.window),
                                          starting_model(champion.model, self.policy.retrain), self.policy.retrain))
        self.awaited = (job_id, decision, {**evidence, "parent": champion.version, "handed_over_ms": str(now_ms())})
        log.info("%s: retraining %s on its last %d joined events", self.policy.model, champion.version,
                 len(self.window))

    def _register(self, outcome: RetrainOutcome) -> None:
        """A finished job: its challenger registered and shadowed, or its failure said, and the cool-down run."""
        controller = self.controller
        if self.awaited is None or self.awaited[0] != outcome.job_id or controller is None \
                or not controller.retraining:
            log.warning("%s: a retraining finished that nothing waits for any more (automation paused, or the "
                        "champion changed): its result is dropped", self.policy.model)
            return
        _, decision, evidence = self.awaited
        self.awaited = None
        if outcome.retrained is None or self.registry.champion is None \
                or self.registry.champion.version != evidence["parent"]:
            why = outcome.error or f"the champion is no longer {evidence['parent']}"
            controller.retrain_failed()
            log.error("%s: retrain failed, tried again after the cool-down: %s", self.policy.model, why)
            self._announce(decision, {**evidence, "outcome": f"failed: {why}"}, proposed=False, severity="warning")
            return
        self._write(self._challenger(decision, evidence, outcome.retrained))
        self._announce(decision, evidence, proposed=False)

    def _challenger(self, decision: Decision, evidence: dict[str, str], retrained: Retrained) -> list[ModelRecord]:
        """The retrained challenger's version record with its lineage, and the shadow routing that starts its
        trial."""
        champion = self.registry.champion
        controller = self.controller
        assert champion is not None and controller is not None
        rule = self.policy.retrain
        version = self.registry.next_version()
        span = retrained.label_times
        evidence.update({
            "parent": champion.version, "window": f"{retrained.labels} labels" + (
                f", label times {span[0]}-{span[1]}" if span else " (online: learns from now on)"),
            "offsets": retrained.offsets, "data_version": retrained.data_version,
            "trigger": decision.trigger or "-", "factory": retrained.made_by,
            "params": json.dumps(rule.params, sort_keys=True), "retrain_seconds": f"{retrained.seconds:.1f}",
            "weir": weir.__version__, "river": installed("river")})
        if retrained.candidates is not None:
            evidence["candidates"] = retrained.candidates
        note = f"policy v{decision.policy_version}: {rule.method} retrain of {champion.version}"
        records = [version_record(self.policy.model, version, PICKLE_FACTORY, {}, parent_version=champion.version,
                                  training_window=span, pickled=pickling.dumps(retrained.challenger), note=note,
                                  actor=CONTROLLER, evidence=evidence),
                   routing_record(self.policy.model, "shadow", champion.version, [version], note=note,
                                  actor=CONTROLLER, evidence={"action": "shadow", "trigger": decision.trigger or "-"})]
        controller.start(version, at_ms=now_ms(), trigger=decision.trigger)
        return records


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
