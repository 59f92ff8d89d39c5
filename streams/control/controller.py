"""The controller: a challenger moves from shadow to canary to champion, or out, on sequential evidence.

It hears every labelled event of one model with all its versions'
predictions (in the learner's order) and the monitor's alerts, and decides.
It has no I/O: the back turns its decisions into registry records and
``decision`` alerts, and ``bench/policy.py`` drives the same code with no
broker.

* **Retrain:** an alert the policy names (kind and severity, about this
  model or its features), or its label schedule, while no challenger runs and
  the cool-down has passed. Whoever builds the challenger calls ``start``.
* **Shadow:** the challenger scores every event beside the champion. Each
  labelled event adds the paired loss difference, champion minus challenger,
  to a confidence sequence valid at every look
  (``weir.stats.sequential``). Once its lower bound passes ``min_gain``, the
  challenger becomes a canary at the first step; once its upper bound is
  below zero, or it has not proved itself by ``give_up_labels``, it retires.
  The give-up budget counts only the labels the challenger could have been
  judged on: those of events scored after the trial started (or that carry
  its prediction). A back that catches up on a backlog learns thousands of
  labels of events served before the challenger existed; they are no
  evidence, and must not use up its trial.
* **Canary:** the same sequence goes on. The canary is rolled back when it is
  worse by more than ``rollback.min_loss``: when the upper bound falls below
  minus that, of a sequence over every paired event, or of one over the
  canary's own entities only (its served quality). Each of the two runs at half the policy's false-rollback rate, so
  together they hold it. Each step lasts ``step_labels`` of the canary's own
  labels; after the last, the canary is promoted if the first sequence still
  excludes ``min_gain``.
* **Holds:** no step up on fewer than ``promotion.min_labels`` pairs, no
  rollback or retirement on fewer than ``rollback.min_labels`` (correlated
  errors fool any test on a short stretch: docs/automation.md), nothing while
  labels have stopped (``label_outage_events`` served events without one,
  and until 100 labels have come back), during a data-quality incident (more
  than ``max_refused_events`` of the last 1,000 events dead-lettered by the
  front, or ``max_refused_labels`` of the last 1,000 labels refused by the
  learner), or while a person's routing change has paused automation (until
  ``resume``). In ``propose`` mode a decision waits
  for approval before the controller moves on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from weir.contract.feedback import prediction_error
from weir.contract.records import Alert, Prediction
from weir.registry.policy import Policy
from weir.state.join import PendingEvent
from weir.stats.sequential import ConfidenceSequence, Interval

Action = Literal["retrain", "canary", "promote", "retire", "rollback"]
RECOVERY_LABELS = 100  # labels after an outage before the controller decides again
QUALITY_WINDOW, QUALITY_MIN_SEEN = 1_000, 200  # the recent labels (or events) a quality hold looks at, the fewest
TEST = "asymptotic confidence sequence on paired loss (champion - challenger), valid at every look"


@dataclass(frozen=True)
class Decision:
    """One step the controller takes (or proposes), with the evidence it rests on."""

    action: Action
    model: str
    champion: str
    challenger: str | None
    percent: float  # the canary's share after the decision (0: none)
    at_label: int  # the controller's count of labelled events when it decided
    policy_version: int
    evidence: dict[str, str]
    trigger: str | None = None  # the alert that started a retraining, or "schedule"
    proposed: bool = False  # propose mode: waiting for `weir policy approve`

    def describe(self) -> str:
        who = f" {self.challenger}" if self.challenger else ""
        share = f" at {self.percent:g}%" if self.action == "canary" else ""
        return f"{self.action}{who}{share} (champion {self.champion}; {self.evidence.get('effect', '-')})"


class RefusedShare:
    """The share refused of the last ``QUALITY_WINDOW`` outcomes, counted as they come and go."""

    def __init__(self) -> None:
        self.outcomes: deque[bool] = deque(maxlen=QUALITY_WINDOW)  # True: refused
        self.refused = 0

    def add(self, *, refused: bool) -> None:
        if len(self.outcomes) == QUALITY_WINDOW and self.outcomes[0]:
            self.refused -= 1  # the oldest outcome, about to leave, was a refusal
        self.outcomes.append(refused)
        self.refused += refused

    def above(self, limit: float) -> bool:
        """More than ``limit`` of them refused, once there are enough to say."""
        seen = len(self.outcomes)
        return seen >= QUALITY_MIN_SEEN and self.refused / seen > limit


@dataclass
class Trial:
    """One challenger's evidence against the champion."""

    challenger: str
    promote: ConfidenceSequence  # every paired event, at the false-promotion rate
    worse: ConfidenceSequence  # every paired event, at half the false-rollback rate
    rollback: ConfidenceSequence  # the canary's own entities, at the other half
    started_at: int  # the controller's label count when the trial began
    started_ms: int  # wall-clock time it began: events scored before it could not carry the challenger
    steps: tuple[float, ...]  # the canary's shares, percent
    step: int = -1  # index into the steps; -1 while in shadow
    step_started: int = 0  # the rollback sequence's count when the step began
    trigger: str | None = None
    judged: int = 0  # labels the challenger could be judged on: the give-up budget's count

    def could_judge(self, event: PendingEvent, champion: Prediction) -> bool:
        """The challenger could have scored this event: it did, or the event was scored after the trial began."""
        return self.challenger in event.predictions or champion["predicted_at"] >= self.started_ms


class Controller:
    """The policy's decisions for one model, from its labelled events and its alerts."""

    def __init__(self, policy: Policy, champion: str) -> None:
        self.policy = policy
        self.champion = champion
        self.labels = 0
        self.trial: Trial | None = None
        self.retraining = False  # a retrain was decided; waiting for ``start``
        self.cooldown_until = 0
        self.paused = False
        self.unlabelled = 0  # served events since the last label
        self.recovering = 0  # labels still to come after an outage before deciding again
        self.labels_refused = RefusedShare()  # of the recent labels, the learner refused
        self.events_refused = RefusedShare()  # of the recent events, the front dead-lettered
        self.pending: Decision | None = None  # propose mode: the decision awaiting approval

    # --- what happens to the model ----------------------------------------------------------------------------

    def on_label_refused(self) -> None:
        """A label the learner could not use (rejected, unmatched, late, unlearnable)."""
        self.labels_refused.add(refused=True)

    def on_event_refused(self) -> None:
        """An event the front dead-lettered (it failed validation): it was never served."""
        self.events_refused.add(refused=True)

    @property
    def incident(self) -> bool:
        """A data-quality incident: too many of the recent events dead-lettered at the door, or of the recent
        labels refused by the learner."""
        limits = self.policy.limits
        return self.events_refused.above(limits.max_refused_events) or self.labels_refused.above(
            limits.max_refused_labels)

    def on_served(self) -> None:
        self.events_refused.add(refused=False)
        self.unlabelled += 1
        if self.unlabelled == self.policy.limits.label_outage_events:  # labels stopped: the first ones back may
            self.recovering = RECOVERY_LABELS  # be a biased few (the fastest to come), so wait for more

    def on_alert(self, alert: Alert) -> list[Decision]:
        """A monitor alert; a retraining if the policy names it and nothing else runs."""
        rule = self.policy.retrain
        if (alert["status"] != "FIRING" or alert["kind"] not in rule.on_alerts
                or alert["severity"] not in rule.on_severities or not self._about_this_model(alert)):
            return []
        return self._retrain(alert["alert_id"], f"{alert['kind']} ({alert['severity']}) on {alert['subject']}")

    def on_labelled(self, event: PendingEvent) -> list[Decision]:
        """One labelled event with its versions' predictions, in the learning order."""
        self.labels += 1
        self.labels_refused.add(refused=False)
        self.unlabelled = 0
        self.recovering = max(0, self.recovering - 1)
        schedule = self.policy.retrain.every_labels
        scheduled = self._retrain("schedule", f"every {schedule} labels") if (
            schedule and self.labels % schedule == 0) else []
        trial = self.trial
        if trial is None:
            return scheduled
        champion = event.predictions.get(self.champion)
        if champion is None:
            return scheduled
        if trial.could_judge(event, champion):
            trial.judged += 1
        challenger = event.predictions.get(trial.challenger)
        if challenger is None or champion["error"] or challenger["error"]:
            return scheduled + self._give_up(trial)
        difference = (prediction_error(champion["predicted_label"], event.label)
                      - prediction_error(challenger["predicted_label"], event.label))
        trial.promote.update(difference)
        trial.worse.update(difference)
        if trial.step >= 0 and event.served_version == trial.challenger:
            trial.rollback.update(difference)
        return scheduled + self._judge(trial)

    def start(self, challenger: str, *, at_ms: int, canary: bool = False, trigger: str | None = None) -> None:
        """A challenger now shadows the champion (or, for a test, is a canary at the first step); ``at_ms``: the
        wall-clock time, in the units of the predictions' ``predicted_at``."""
        policy = self.policy
        self.retraining = False
        self.trial = Trial(challenger, ConfidenceSequence(policy.promotion.false_promotion),
                           ConfidenceSequence(policy.rollback.false_rollback / 2),
                           ConfidenceSequence(policy.rollback.false_rollback / 2), self.labels, at_ms,
                           policy.promotion.canary_steps, trigger=trigger)
        if canary:
            self.trial.step = 0

    def retrain_failed(self) -> None:
        """The retraining decided could not be built: wait out the cool-down, then try again."""
        self.retraining = False
        self.cooldown_until = self.labels + self.policy.limits.cooldown_labels

    def pause(self) -> None:
        """A person routed this model: automation waits until ``resume``, and the running trial ends."""
        self.paused, self.trial, self.pending, self.retraining = True, None, None, False

    def resume(self, champion: str) -> None:
        self.paused, self.champion = False, champion
        self.cooldown_until = self.labels + self.policy.limits.cooldown_labels

    def approve(self) -> Decision | None:
        """Propose mode: the pending decision is approved; it takes effect as if just decided."""
        decision, self.pending = self.pending, None
        if decision is None:
            return None
        self._apply(decision)
        return decision

    # --- deciding -------------------------------------------------------------------------------------------------

    def _judge(self, trial: Trial) -> list[Decision]:
        if self.paused or self.pending is not None or self.recovering or self.incident:
            return []
        promotion, rollback = self.policy.promotion, self.policy.rollback
        evidence = trial.promote.interval()
        may_promote, may_stop = evidence.n >= promotion.min_labels, evidence.n >= rollback.min_labels
        if trial.step < 0:  # shadow
            if may_promote and evidence.lower > promotion.min_gain:
                return self._decide("canary", trial, evidence, percent=trial.steps[0])
            if may_stop and evidence.upper < 0:
                return self._decide("retire", trial, evidence, why="the challenger is worse")
        else:  # canary
            own, overall = trial.rollback.interval(), trial.worse.interval()
            if own.n >= rollback.min_labels and own.upper < -rollback.min_loss:
                return self._decide("rollback", trial, own, why="worse on the canary's own entities")
            if may_stop and overall.upper < -rollback.min_loss:
                return self._decide("rollback", trial, overall, why="worse on every paired event")
            if (may_promote and own.n - trial.step_started >= promotion.step_labels
                    and evidence.lower > promotion.min_gain):
                if trial.step + 1 < len(trial.steps):
                    return self._decide("canary", trial, evidence, percent=trial.steps[trial.step + 1])
                return self._decide("promote", trial, evidence)
        return self._give_up(trial)

    def _give_up(self, trial: Trial) -> list[Decision]:
        """A challenger not proven better in ``give_up_labels`` labels it could be judged on is retired (a canary
        rolled back); one that stops scoring runs into this too."""
        limit = self.policy.limits.give_up_labels
        if trial.judged < limit or self.paused or self.pending is not None or self.recovering or self.incident:
            return []
        action: Action = "rollback" if trial.step >= 0 else "retire"
        return self._decide(action, trial, trial.promote.interval(),
                            why=f"not proven better in {limit} labels it could be judged on "
                                f"({trial.promote.n} with both predictions)")

    def _retrain(self, trigger: str, why: str) -> list[Decision]:
        if (self.paused or self.trial is not None or self.retraining or self.pending is not None or self.incident
                or self.labels < self.cooldown_until):
            return []
        decision = Decision("retrain", self.policy.model, self.champion, None, 0.0, self.labels,
                            self.policy.version, {"why": why, "method": self.policy.retrain.method,
                                                  "window_labels": str(self.policy.retrain.window_labels)},
                            trigger=trigger, proposed=self.policy.mode == "propose")
        return self._emit(decision)

    def _decide(self, action: Action, trial: Trial, interval: Interval, *, percent: float = 0.0,
                why: str | None = None) -> list[Decision]:
        alpha = self.policy.rollback.false_rollback if action == "rollback" else self.policy.promotion.false_promotion
        evidence = {"labels": str(interval.n), "effect": interval.describe(), "test": TEST,
                    "alpha": f"{alpha:g}", "threshold": f"{self.policy.promotion.min_gain:g}",
                    "trial_labels": str(self.labels - trial.started_at), "judged_labels": str(trial.judged)}
        if why:
            evidence["why"] = why
        decision = Decision(action, self.policy.model, self.champion, trial.challenger, percent, self.labels,
                            self.policy.version, evidence, trigger=trial.trigger,
                            proposed=self.policy.mode == "propose")
        return self._emit(decision)

    def _emit(self, decision: Decision) -> list[Decision]:
        if decision.proposed:
            self.pending = decision
        else:
            self._apply(decision)
        return [decision]

    def _apply(self, decision: Decision) -> None:
        trial = self.trial
        if decision.action == "retrain":
            self.retraining = True
            return
        assert trial is not None
        if decision.action == "canary":
            trial.step += 1
            trial.step_started = trial.rollback.n
            return
        if decision.action == "promote":
            self.champion = trial.challenger
        self.trial = None
        self.cooldown_until = self.labels + self.policy.limits.cooldown_labels

    def _about_this_model(self, alert: Alert) -> bool:
        """Alerts about this model's versions or score, or about its features (data drift has no model)."""
        subject = alert["subject"]
        return alert["kind"] == "data_drift" or subject.split(":", 1)[0] == self.policy.model
