"""The demo's reports: decisions placed against drift points, served accuracy stretch by stretch, recovery."""

from __future__ import annotations

from apps.timelines import decision_report, recovery_report, served_accuracy_timeline
from weir.contract.records import Alert, Label


def test_served_accuracy_is_counted_per_stretch_with_the_versions_that_served() -> None:
    answers: dict[str, tuple[str, Label | None]] = {
        "churn-42-000000000": ("v1", True), "churn-42-000000001": ("v1", False),  # first stretch: 1 of 2 right
        "churn-42-000000002": ("v2", True), "churn-42-000000003": ("v1", None),  # second: 1 of 1; no answer
    }
    labels: dict[str, Label | None] = {f"churn-42-00000000{i}": True for i in range(4)}
    timeline = served_accuracy_timeline(answers, labels, total=4, stretches=2)
    assert timeline == [
        {"from": 0, "to": 1, "served": 2, "accuracy": 0.5, "by_version": {"v1": 2}},
        {"from": 2, "to": 3, "served": 1, "accuracy": 1.0, "by_version": {"v2": 1}},
    ]


def test_a_decision_is_placed_after_the_drift_point_it_followed() -> None:
    decision: Alert = {"alert_id": "d", "kind": "decision", "severity": "info", "subject": "m:v2", "status": "FIRING",
                       "statistic": None, "threshold": None, "runbook": "", "detected_at": 0,
                       "evidence": {"action": "promote", "challenger": "v2", "champion": "v1", "percent": "0",
                                    "event_id": "churn-42-000000150", "effect": "+0.06"}}
    drift: Alert = {**decision, "kind": "concept_drift", "evidence": {"event_id": "churn-42-000000120"}}
    [report] = decision_report([{"kind": "concept", "at": 100}, {"kind": "recurring", "at": 200}], [drift, decision])
    assert (report["action"], report["event"], report["after_drift"]) == (
        "promote", 150, {"kind": "concept", "at": 100, "delay_events": 50})
    assert report["evidence"]["effect"] == "+0.06" and "event_id" not in report["evidence"]


def test_recovery_compares_the_events_after_a_promotion_with_those_before_the_drift() -> None:
    """Events 0..99 right 9 times in 10, the drift at 100, a retraining at 110; promoted at 150 (after another
    drift point at 140), then 8 in 10 right: the gap, -0.1, is against the drift the retraining followed."""
    answers: dict[str, tuple[str, Label | None]] = {}
    for i in range(300):
        right = i % 10 != 0 if i < 100 else i % 5 != 0
        answers[f"churn-42-{i:09d}"] = ("v2" if i > 150 else "v1", right)
    labels: dict[str, Label | None] = {f"churn-42-{i:09d}": True for i in range(300)}
    retrain = {"action": "retrain", "challenger": "-", "event": 110,
               "after_drift": {"kind": "concept", "at": 100, "delay_events": 10}}
    promote = {**retrain, "action": "promote", "challenger": "v2", "event": 150,
               "after_drift": {"kind": "recurring", "at": 140, "delay_events": 10}}  # a later drift: not its cause
    [report] = recovery_report(answers, labels, [retrain, promote], span=100)
    assert report["drift"]["kind"] == "concept"
    assert report["before_drift"] == {"accuracy": 0.9, "served": 100}
    assert report["after_promotion"] == {"accuracy": 0.8, "served": 100} and report["gap"] == -0.1
