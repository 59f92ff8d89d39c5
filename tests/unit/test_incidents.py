"""Detections grouped into incidents: one page per change and kind, the members named when it resolves."""

from __future__ import annotations

from typing import Literal

from streams.monitor.incidents import HOLD_EVENTS, JOIN_EVENTS, Incidents
from weir.contract.records import Alert


def alert(kind: str, subject: str, status: Literal["FIRING", "RESOLVED"]) -> Alert:
    return {"alert_id": f"{kind}-{subject}-{status}", "kind": kind, "severity": "warning", "subject": subject,
            "status": status, "statistic": 0.3, "threshold": 0.1, "evidence": {"event_id": "e1"}, "runbook": "",
            "detected_at": 0}


def test_features_that_move_together_page_once_and_resolve_once_with_every_member() -> None:
    incidents = Incidents()
    out = incidents.admit([alert("data_drift", "price", "FIRING")], 100)
    assert [(a["status"], a["subject"]) for a in out] == [("FIRING", "price")]
    assert incidents.admit([alert("data_drift", "charges", "FIRING"), alert("data_drift", "plan", "FIRING")],
                           700) == []
    incidents.admit([alert("data_drift", "price", "RESOLVED"), alert("data_drift", "charges", "RESOLVED")], 2_000)
    assert incidents.due(9_000) == []  # plan is still moving
    incidents.admit([alert("data_drift", "plan", "RESOLVED")], 9_000)
    assert incidents.due(9_000 + HOLD_EVENTS - 1) == []
    [resolved] = incidents.due(9_000 + HOLD_EVENTS)
    assert resolved["status"] == "RESOLVED" and resolved["subject"] == "price"
    assert resolved["evidence"]["members"] == "price, charges, plan"
    assert resolved["evidence"]["incident"] == out[0]["evidence"]["incident"]
    assert resolved["evidence"]["detections_joined"] == "2"
    assert incidents.due(20_000) == []  # once


def test_an_episode_that_fires_again_within_the_hold_stays_one_incident() -> None:
    incidents = Incidents()
    assert len(incidents.admit([alert("performance_drop", "m:v1", "FIRING")], 0)) == 1
    incidents.admit([alert("performance_drop", "m:v1", "RESOLVED")], 500)
    assert incidents.due(500 + HOLD_EVENTS // 2) == []
    assert incidents.admit([alert("performance_drop", "m:v1", "FIRING")], 500 + HOLD_EVENTS // 2) == []
    incidents.admit([alert("performance_drop", "m:v1", "RESOLVED")], 3_000)
    assert [a["status"] for a in incidents.due(3_000 + HOLD_EVENTS)] == ["RESOLVED"]
    assert [a["status"] for a in incidents.admit([alert("performance_drop", "m:v1", "FIRING")], 7_000)] == [
        "FIRING"]  # after the hold: a new incident


def test_kinds_and_the_subjects_of_model_alerts_are_incidents_of_their_own() -> None:
    incidents = Incidents()
    out = incidents.admit([alert("performance_drop", "m:v1", "FIRING"), alert("performance_drop", "m:v2", "FIRING"),
                           alert("prediction_drift", "m:score", "FIRING"), alert("data_drift", "price", "FIRING")], 0)
    assert len(out) == 4 and len({a["evidence"]["incident"] for a in out}) == 4


def test_concept_drift_goes_out_as_detected() -> None:
    """Its episodes already end only after 2,000 quiet labels; held longer, a false detection just before a real
    change would swallow the real one."""
    incidents = Incidents()
    firing = [alert("concept_drift", "m:v1", "FIRING")]
    assert incidents.admit(firing, 0) == firing
    incidents.admit([alert("concept_drift", "m:v1", "RESOLVED")], 2_000)
    assert incidents.admit(firing, 2_100) == firing


def test_a_feature_that_moves_long_after_an_incident_opened_is_a_new_page() -> None:
    """New members join within ``JOIN_EVENTS`` of the opening; a member firing again joins whenever; a feature
    that moves later is a new incident (an open one, even a false alarm, must not swallow the next drift)."""
    incidents = Incidents()
    incidents.admit([alert("data_drift", "price", "FIRING")], 0)
    assert incidents.admit([alert("data_drift", "age", "FIRING")], JOIN_EVENTS - 1) == []
    incidents.admit([alert("data_drift", "price", "RESOLVED")], JOIN_EVENTS)
    assert incidents.admit([alert("data_drift", "price", "FIRING")], JOIN_EVENTS + 10) == []  # a member again
    out = incidents.admit([alert("data_drift", "usage", "FIRING")], JOIN_EVENTS + 20)
    assert [a["subject"] for a in out] == ["usage"]
    for subject in ("price", "age", "usage"):
        incidents.admit([alert("data_drift", subject, "RESOLVED")], JOIN_EVENTS + 30)
    resolved = incidents.due(JOIN_EVENTS + 30 + HOLD_EVENTS)
    assert sorted(a["evidence"]["members"] for a in resolved) == ["price, age", "usage"]
