"""The closed loop's decisions: the always-valid test, the policy file, and the controller's moves and holds."""

from __future__ import annotations

import random
from typing import Literal

import pytest

from streams.control.controller import Controller, Decision
from tests import support
from weir.contract.records import Alert
from weir.errors import ConfigError
from weir.registry.policy import Policy, parse_policy
from weir.registry.routing import canary_bucket
from weir.state.join import PendingEvent
from weir.stats.sequential import ConfidenceSequence, LongRunVariance

# --- the confidence sequence ---------------------------------------------------------------------------------------


def _ever_crosses(seed: int, looks: int, alpha: float) -> tuple[bool, bool]:
    """Whether the lower bound ever went above zero, and whether the upper bound ever went below it, looking
    after every pair from the 300th on (the policy's fewest labels: the sequence is asymptotic, and its plug-in
    variance is poor on the first few pairs)."""
    draw = random.Random(seed)
    sequence = ConfidenceSequence(alpha, tuned_for=500)
    above = below = False
    for i in range(looks):
        champion, challenger = draw.random() < 0.2, draw.random() < 0.2  # equal models
        sequence.update(float(champion) - float(challenger))
        if i >= 300:
            interval = sequence.interval()
            above, below = above or interval.lower > 0, below or interval.upper < 0
    return above, below


def test_looking_after_every_pair_keeps_the_error_rate_of_each_side() -> None:
    """Equal models, 2,000 pairs each, 200 runs: a fixed-sample one-sided 90% bound checked at every look would
    cross zero in most runs; each bound of the sequence does so in at most about 10% (with room for chance)."""
    runs = [_ever_crosses(seed, 2_000, alpha=0.1) for seed in range(200)]
    above, below = sum(a for a, _ in runs), sum(b for _, b in runs)
    assert above / 200 <= 0.15 and below / 200 <= 0.15, (above, below)
    assert above + below >= 2  # and it is not so wide that it never errs


def test_a_real_difference_is_found_and_bounded() -> None:
    draw = random.Random(3)
    sequence = ConfidenceSequence(0.05)
    for _ in range(5_000):
        sequence.update(float(draw.random() < 0.3) - float(draw.random() < 0.2))  # the challenger errs 10 pts less
    interval = sequence.interval()
    assert 0 < interval.lower < 0.1 < interval.upper and interval.n == 5_000


def test_the_long_run_variance_sees_runs_that_the_plain_variance_misses() -> None:
    """Paired differences better and worse in runs of 200: their running mean wanders about 200 times further
    than independent ones with the same variance would; batch means see that, the plain variance does not."""
    draw = random.Random(4)
    correlated, independent = LongRunVariance(), LongRunVariance()
    sign = 1
    for i in range(20_000):
        if i % 200 == 0:
            sign = draw.choice((-1, 1))
        correlated.update(sign * 0.5 + draw.gauss(0, 0.1))
        independent.update(draw.choice((-1, 1)) * 0.5 + draw.gauss(0, 0.1))
    plain = float(correlated.moments.get())
    assert 0.2 < plain < 0.3 and correlated.get() > 20 * plain  # truth: about 100 times (0.25 * 200 / 0.26)
    assert independent.get() < 1.5 * float(independent.moments.get())


def _drive_in_runs(controller: Controller, runs: int, swing: float, labels: int, seed: int) -> list[Decision]:
    """An equal challenger that is better, then worse, by ``swing`` in turns of ``runs`` labels."""
    draw = random.Random(seed)
    percent, out = 0.0, []
    for i in range(labels):
        gain = swing if (i // runs) % 2 == 0 else -swing
        champion = draw.random() < 0.8  # the challenger answers alike but for the gain, as related models do
        challenger = draw.random() < gain / 0.2 if not champion and gain > 0 else (
            champion and not (gain < 0 and draw.random() < -gain / 0.8))
        controller.on_served()
        for decision in controller.on_labelled(_event(i, champion, challenger, percent)):
            out.append(decision)
            percent = decision.percent if decision.action == "canary" else 0.0
    return out


def test_a_challenger_better_in_one_stretch_and_worse_in_the_next_is_not_promoted() -> None:
    """Runs of 1,000 labels at 3 points either way: deciding from 300 pairs with no margin, the first run makes it
    a canary (the issue measured 36% promoted); the defaults (3,000 pairs, half a point) never step it up."""
    def stepped_up(policy: Policy) -> int:
        count = 0
        for seed in range(5):
            controller = Controller(policy, "v1")
            controller.start("v2", at_ms=0)
            actions = [d.action for d in _drive_in_runs(controller, 1_000, 0.03, 20_000, seed)]
            count += "canary" in actions or "promote" in actions
        return count

    assert stepped_up(Policy(model="churn")) == 0
    assert stepped_up(parse_policy("model: churn\npromotion: {min_labels: 300, min_gain: 0}\n")) == 5


def test_a_challenger_better_by_two_points_is_still_promoted_by_the_defaults() -> None:
    controller = Controller(Policy(model="churn"), "v1")
    controller.start("v2", at_ms=0)
    decisions = _drive(controller, 0.80, 0.82, 20_000)
    assert [d.action for d in decisions] == ["canary", "canary", "promote"], [d.describe() for d in decisions]


# --- the policy file -----------------------------------------------------------------------------------------------


def test_a_policy_takes_defaults_and_round_trips() -> None:
    policy = parse_policy("model: churn\nversion: 2\nmode: propose\npromotion: {canary_steps: [5, 25]}\n")
    assert (policy.model, policy.version, policy.mode, policy.promotion.canary_steps) == ("churn", 2, "propose",
                                                                                          (5.0, 25.0))
    assert policy.retrain.method == "incremental" and policy.rollback.false_rollback == 0.01
    assert parse_policy(policy.to_yaml()) == policy


@pytest.mark.parametrize(("text", "named"), [
    ("model: churn\npromotion: {min_lables: 10}\n", "promotion.min_lables"),
    ("model: churn\npromotion: {canary_steps: [50, 10]}\n", "canary_steps must rise"),
    ("model: churn\npromotion: {canary_steps: [10, 80]}\n", "max_canary_percent"),
    ("model: churn\nretrain: {method: magic}\n", "retrain.method"),
    ("model: churn\nretrain: {method: full, factory: magic}\n", "unknown model factory 'magic'"),
    ("model: churn\nretrain: {method: full, factory: hoeffding_tree, params: {grace: 5}}\n", "bad parameters"),
    ("model: churn\nretrain: {method: incremental, factory: hoeffding_tree}\n", "continues the champion"),
    ("model: churn\nretrain: {params: {l2: 0.1}}\n", "needs retrain.factory"),
    ("model: churn\nretrain: {candidates: [{factory: hoeffding_tree}]}\n", "a full retraining's experiment"),
    ("model: churn\nretrain: {method: full, candidates: [{factory: hoeffding_tree, params: {grace: [1, 2]}}]}\n",
     "bad parameters for hoeffding_tree"),
    ("model: churn\nretrain: {method: full, candidates: [{factory: hoeffding_tree}, {factory: hoeffding_tree}]}\n",
     "listed twice"),
    ("- not a mapping\n", "YAML mapping"),
])
def test_a_bad_policy_is_refused_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_policy(text)


# --- the controller ------------------------------------------------------------------------------------------------


SMALL = "promotion: {min_labels: 300}\nrollback: {min_labels: 300}\n"  # decisions from 300 pairs: the holds tested


def _event(i: int, champion_right: bool, challenger_right: bool, percent: float) -> PendingEvent:
    entity = f"c{i % 997}"
    served = "v2" if percent and canary_bucket("churn", entity) < percent else "v1"
    predictions = {v: support.prediction(f"e{i}", version=v, entity_id=entity, model_name="churn",
                                         predicted_label=right)
                   for v, right in (("v1", champion_right), ("v2", challenger_right))}
    return PendingEvent(f"e{i}", i, predictions=predictions, served_version=served, label=True, has_label=True,
                        complete=True)


def _drive(controller: Controller, champion: float, challenger: float, labels: int, seed: int = 1) -> list[Decision]:
    """Labelled events where the champion and challenger are right with the given rates; every decision."""
    draw = random.Random(seed)
    percent, out = 0.0, []
    if controller.trial is not None and controller.trial.step >= 0:
        percent = controller.trial.steps[controller.trial.step]
    for i in range(labels):
        controller.on_served()
        for decision in controller.on_labelled(_event(i, draw.random() < champion, draw.random() < challenger,
                                                      percent)):
            out.append(decision)
            percent = decision.percent if decision.action == "canary" else 0.0
    return out


def test_a_better_challenger_goes_shadow_canary_champion_with_its_evidence() -> None:
    controller = Controller(Policy(model="churn"), "v1")
    controller.start("v2", at_ms=0, trigger="alert-1")
    decisions = _drive(controller, 0.70, 0.85, 6_000)
    assert [(d.action, d.percent) for d in decisions] == [("canary", 20.0), ("canary", 50.0), ("promote", 0.0)]
    first = decisions[0]
    assert int(first.evidence["labels"]) >= 300 and first.trigger == "alert-1" and first.policy_version == 1
    effect = first.evidence["effect"]  # "+0.1500 [+0.0400, +0.2600] over 412"
    assert float(effect.split("[")[1].split(",")[0]) > 0 and "valid at every look" in first.evidence["test"]
    assert controller.champion == "v2" and controller.trial is None


def test_a_worse_canary_is_rolled_back() -> None:
    controller = Controller(Policy(model="churn"), "v1")
    controller.start("v2", at_ms=0, canary=True)
    decisions = _drive(controller, 0.85, 0.70, 6_000)
    assert [d.action for d in decisions] == ["rollback"] and "worse on" in decisions[0].evidence["why"]
    assert controller.champion == "v1"


def _scored_by_the_champion_only(controller: Controller, labels: int, *, at_ms: int) -> list[Decision]:
    """Labelled events that only the champion scored, at ``at_ms``."""
    out = []
    for i in range(labels):
        predictions = {"v1": support.prediction(f"b{i}", version="v1", model_name="churn", predicted_at=at_ms)}
        controller.on_served()
        out += controller.on_labelled(PendingEvent(f"b{i}", i, predictions=predictions, served_version="v1",
                                                   label=True, has_label=True, complete=True))
    return out


def test_labels_of_events_scored_before_the_trial_do_not_use_up_its_budget() -> None:
    """The demo's defect: a back catching up on a backlog learned 8,000 labels of events served before its
    retrained challenger existed, and retired it "not proven better in 8000 labels" on 200 pairs."""
    controller = Controller(parse_policy("model: churn\nlimits: {give_up_labels: 1000}\n" + SMALL), "v1")
    controller.start("v2", at_ms=5_000)
    assert _scored_by_the_champion_only(controller, 3_000, at_ms=4_999) == [] and controller.trial is not None
    assert controller.trial.judged == 0
    assert [d.action for d in _drive(controller, 0.70, 0.85, 3_000)][:1] == ["canary"]  # judged on its pairs


def test_a_challenger_that_never_scores_is_retired_after_the_budget() -> None:
    controller = Controller(parse_policy("model: churn\nlimits: {give_up_labels: 1000}\n"), "v1")
    controller.start("v2", at_ms=5_000)
    decisions = _scored_by_the_champion_only(controller, 1_000, at_ms=5_000)  # scored after the start, but never by v2
    assert [d.action for d in decisions] == ["retire"] and decisions[0].at_label == 1_000
    assert "1000 labels it could be judged on (0 with both" in decisions[0].evidence["why"]


def test_nothing_is_decided_on_too_few_labels_or_while_labels_have_stopped() -> None:
    controller = Controller(parse_policy("model: churn\n" + SMALL), "v1")
    controller.start("v2", at_ms=0)
    assert _drive(controller, 0.0, 1.0, 299) == []  # a perfect challenger, yet fewer than min_labels pairs
    for _ in range(5_000):  # labels stop while events are served
        controller.on_served()
    assert _drive(controller, 0.0, 1.0, 99) == []  # the first labels back are not enough
    assert _drive(controller, 0.0, 1.0, 1)[0].action == "canary"  # 100 of them are: it acts


def test_propose_mode_waits_for_approval() -> None:
    controller = Controller(Policy(model="churn", mode="propose"), "v1")
    controller.start("v2", at_ms=0)
    decisions = _drive(controller, 0.6, 0.9, 3_000)
    assert [(d.action, d.proposed) for d in decisions] == [("canary", True)]  # one proposal, then it waits
    approved = controller.approve()
    assert approved is decisions[0] and controller.trial is not None and controller.trial.step == 0


def _alert(kind: str, subject: str, severity: str = "warning",
           status: Literal["FIRING", "RESOLVED"] = "FIRING") -> Alert:
    return {"alert_id": f"{kind}-{subject}", "kind": kind, "severity": severity, "subject": subject,
            "status": status, "statistic": None, "threshold": None, "evidence": {}, "runbook": "", "detected_at": 0}


def test_retraining_starts_on_the_alerts_the_policy_names_once_and_after_the_cooldown() -> None:
    controller = Controller(parse_policy("model: churn\nretrain: {on_alerts: [concept_drift]}\n" + SMALL), "v1")
    assert controller.on_alert(_alert("performance_drop", "churn:v1")) == []  # not a trigger in this policy
    assert controller.on_alert(_alert("concept_drift", "other:v1")) == []  # another model's
    assert controller.on_alert(_alert("concept_drift", "churn:v1", status="RESOLVED")) == []
    retrain = controller.on_alert(_alert("concept_drift", "churn:v1"))
    assert [(d.action, d.trigger) for d in retrain] == [("retrain", "concept_drift-churn:v1")]
    assert controller.on_alert(_alert("concept_drift", "churn:v1")) == []  # one retraining at a time
    controller.start("v2", at_ms=0)
    _drive(controller, 0.85, 0.50, 700)  # v2 is much worse: retired soon after min_labels
    assert controller.trial is None
    assert controller.on_alert(_alert("concept_drift", "churn:v1")) == []  # cooling down


def test_a_persons_routing_pauses_automation_until_resumed() -> None:
    controller = Controller(Policy(model="churn"), "v1")
    controller.start("v2", at_ms=0)
    controller.pause()
    assert _drive(controller, 0.5, 0.9, 2_000) == [] and controller.trial is None
    assert controller.on_alert(_alert("concept_drift", "churn:v1")) == []
    controller.resume("v3")
    assert controller.champion == "v3" and controller.on_alert(_alert("concept_drift", "churn:v3")) == []  # cooldown
    _drive(controller, 0.8, 0.8, 2_000)
    assert [d.action for d in controller.on_alert(_alert("concept_drift", "churn:v3"))] == ["retrain"]


def test_a_schedule_retrains_every_n_labels_when_nothing_else_runs() -> None:
    controller = Controller(parse_policy("model: churn\nretrain: {every_labels: 500}\nlimits: {cooldown_labels: 0}\n"),
                            "v1")
    decisions = _drive(controller, 0.8, 0.8, 1_200)
    assert [(d.action, d.at_label, d.trigger) for d in decisions] == [("retrain", 500, "schedule")]  # then waits



def test_a_data_quality_incident_on_the_labels_holds_every_decision_until_it_passes() -> None:
    controller = Controller(parse_policy("model: churn\n" + SMALL), "v1")
    controller.start("v2", at_ms=0)
    _drive(controller, 0.5, 0.5, 250)
    for _ in range(50):  # 50 refused among 300 recent labels: 17%, above the 5% the policy allows
        controller.on_label_refused()
    assert controller.incident
    assert _drive(controller, 0.0, 1.0, 100) == []  # a clear winner, yet nothing is decided
    assert controller.on_alert(_alert("concept_drift", "churn:v1")) == []
    assert [d.action for d in _drive(controller, 0.0, 1.0, 900)][:1] == ["canary"]  # the refused share fell
    assert not controller.incident


def test_events_dead_lettered_at_the_door_hold_every_decision_at_once() -> None:
    """The front refuses 1 event in 10: the controller holds from the first ones, long before their labels
    would come back unmatched; when the front accepts again and the share falls under 5%, it decides."""
    controller = Controller(parse_policy("model: churn\n" + SMALL), "v1")
    controller.start("v2", at_ms=0)
    _drive(controller, 0.5, 0.5, 250)
    for _ in range(30):  # 30 refused among 280 recent events: 11%
        controller.on_event_refused()
    assert controller.incident and controller.labels_refused.refused == 0
    assert _drive(controller, 0.0, 1.0, 100) == []  # a clear winner, yet nothing is decided
    decisions = _drive(controller, 0.0, 1.0, 900)
    assert [d.action for d in decisions][:1] == ["canary"]
    assert not controller.events_refused.above(controller.policy.limits.max_refused_events)
    # held until the 30 refusals are 5% of the outcomes: 600 of them, 220 labelled events after the 100
    assert decisions[0].at_label == 250 + 100 + 220
