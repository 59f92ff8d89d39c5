"""The controller inside the back: decisions as signed registry records and decision alerts; the registry as truth."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from river.tree import HoeffdingTreeClassifier

from streams.back import BackStage
from streams.control.part import ControlPart
from streams.features import feature_vector
from tests import support
from weir.clock import now_ms
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert, AttributeValue, ModelRecord
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, EVENTS_DLQ, EVENTS_RAW, FEEDBACK, MODELS
from weir.registry.policy import parse_policy
from weir.registry.records import routing_record, version_record
from weir.registry.retraining import Retrained, RetrainJob, RetrainOutcome
from weir.registry.signing import model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent

POLICY = ("model: m\nretrain: {method: online, factory: hoeffding_tree, params: {grace_period: 50}}\n"
          "promotion: {min_labels: 100, step_labels: 100}\n")


class Back:
    """A registry view and a control part, as the back holds them; records it writes are applied, as the
    registry follower would once they commit."""

    def __init__(self, tmp_path: Path, catalog: SchemaCatalog, policy: str = POLICY) -> None:
        self.settings = Settings(home=tmp_path / "home", model_key=SecretStr("k" * 32))
        self.registry = ModelRegistry("m")
        self.registry.apply(version_record("m", "v1", "logistic_regression", {}, actor="person"))
        self.registry.apply(routing_record("m", "basic", "v1", actor="person"))
        self.retraining = support.HeldRetraining(at_once=True)
        self.part = ControlPart(self.settings, catalog, self.registry, parse_policy(policy), self.retraining)
        self.models = topic_serde(catalog, self.settings, MODELS)
        self.alerts = topic_serde(catalog, self.settings, ALERTS)
        self.written: list[ModelRecord] = []
        self.decisions: list[Alert] = []
        self.draw = random.Random(5)
        self.i = 0

    def deliver(self, out: list[OutRecord]) -> None:
        for record in out:
            if record.topic == self.models.topic:
                model_record = self.models.decode(record.value)
                self.written.append(model_record)
                assert model_signer(self.settings).refusal(model_record) is None  # signed like the learner's copies
                self.registry.apply(model_record)
            else:
                self.decisions.append(self.alerts.decode(record.value))

    def labelled(self, n: int, right: dict[str, float]) -> None:
        """``n`` labelled events; each version present is right with its rate; served by the routing."""
        for _ in range(n):
            self.i += 1
            x: dict[str, AttributeValue] = {"a": self.draw.random()}
            entity = f"c{self.i % 500}"
            served = self.registry.serving(entity) or "v1"
            predictions = {v: support.prediction(f"e{self.i}", version=v, entity_id=entity, model_name="m",
                                                 predicted_label=self.draw.random() < p)
                           for v, p in right.items() if v in self.registry.versions}
            vector = feature_vector({"event_id": f"e{self.i}", "entity_id": entity, "event_time": self.i,
                                     "source": "t", "attributes": x})
            self.part.on_served(predictions["v1"])
            self.part.on_learned(PendingEvent(f"e{self.i}", self.i, features=vector, predictions=predictions,
                                              served_version=served, label=True, has_label=True,
                                              label_time_ms=self.i, complete=True))
            self.deliver(self.part.take())


def _alert(kind: str, subject: str) -> Alert:
    return {"alert_id": "a-1", "kind": kind, "severity": "warning", "subject": subject, "status": "FIRING",
            "statistic": None, "threshold": None, "evidence": {"event_id": "e7"}, "runbook": "", "detected_at": 0}


def test_a_drift_alert_retrains_shadows_canaries_and_promotes_with_lineage_and_evidence(
        tmp_path: Path, catalog: SchemaCatalog) -> None:
    back = Back(tmp_path, catalog)
    back.labelled(600, {"v1": 0.7})
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    back.deliver(back.part.take())
    version, shadow = back.written
    assert (version["kind"], version["version"], version["parent_version"], version["actor"]) == (
        "VERSION", "v2", "v1", "controller")
    evidence = version["evidence"]
    assert evidence["method"] == "online" and evidence["trigger"] == "a-1" and evidence["factory"] == "hoeffding_tree"
    assert evidence["params"] == '{"grace_period": 50}' and evidence["window"].startswith("0 labels (online")
    assert {"weir", "river", "offsets", "policy_version"} <= set(back.decisions[0]["evidence"])
    assert shadow["routing"] == {"mode": "shadow", "champion": "v1", "challengers": ["v2"], "canary_percent": 0.0}
    challenger: Any = back.registry.versions["v2"].model  # the pickled challenger loads from its signed record
    assert isinstance(challenger, HoeffdingTreeClassifier) and challenger.grace_period == 50

    back.labelled(4_000, {"v1": 0.7, "v2": 0.9})
    actions = [(a["evidence"]["action"], a["evidence"]["percent"]) for a in back.decisions]
    assert actions == [("retrain", "0"), ("canary", "20"), ("canary", "50"), ("promote", "0")], actions
    assert back.registry.routing is not None and back.registry.routing.champion == "v2"
    assert all(r["actor"] == "controller" for r in back.written)
    promote = back.decisions[-1]["evidence"]
    assert "valid at every look" in promote["test"] and float(promote["effect"].split("[")[1].split(",")[0]) > 0
    shown = [entry.describe() for entry in back.registry.history()]  # what `weir models history` prints
    assert "[controller]  basic: v2 serves  -- policy v1: promote" in shown[-1] and "    effect: +" in shown[-1]
    assert "[person]  register v1" in shown[0]


def test_a_retraining_that_cannot_read_its_window_says_so_and_waits_out_the_cool_down(
        tmp_path: Path, catalog: SchemaCatalog) -> None:
    """A back just started holds no window to read back: no version, a warning, and the next alert is heard
    only after the cool-down."""
    back = Back(tmp_path, catalog, "model: m\nretrain: {method: full}\nlimits: {cooldown_labels: 500}\n")
    back.labelled(10, {"v1": 0.7})  # events with no position on the topics: nothing to read back
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    back.deliver(back.part.take())
    assert back.written == [] and len(back.decisions) == 1
    failed = back.decisions[0]
    assert failed["severity"] == "warning" and failed["evidence"]["outcome"].startswith("failed: 0 joined events")
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    assert back.part.take() == []  # in the cool-down
    back.labelled(500, {"v1": 0.7})
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    back.deliver(back.part.take())
    assert [a["severity"] for a in back.decisions] == ["warning", "warning"]  # tried again, failed again


def _handed_over(back: Back) -> RetrainJob:
    """The job a drift alert hands over, 300 labelled events in, the retraining service holding it."""
    back.retraining.at_once = False
    back.labelled(300, {"v1": 0.7})
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    back.deliver(back.part.take())
    [job] = back.retraining.jobs
    return job


def _done(back: Back, job: RetrainJob, seconds: float) -> None:
    """The service hands back the job's challenger (its starting model, as if fit) and the part takes it."""
    assert job.start is not None
    back.retraining.outcomes.append(RetrainOutcome(job.job_id, Retrained(
        job.start, "the champion's", 300, (1, 300), "features[0] 0-299", "sha256:ab", None, seconds)))
    back.retraining.jobs = []
    back.deliver(back.part.take())


def test_a_retraining_is_handed_over_and_its_challenger_registered_at_the_first_batch_after_it_is_done(
        tmp_path: Path, catalog: SchemaCatalog) -> None:
    """The part reads nothing and fits nothing itself: it hands the job over (the window's positions, a copy of
    the champion to continue) and goes on; events keep coming and no second retraining starts; the challenger
    the job returns is registered and shadowed at the next ``take``. A job whose result comes after a person
    took over is dropped, not registered."""
    back = Back(tmp_path, catalog, "model: m\nretrain: {method: incremental}\npromotion: {min_labels: 100}\n")
    job = _handed_over(back)
    champion = back.registry.versions["v1"].model
    assert job.start is not None and job.start is not champion and type(job.start) is type(champion)  # a copy
    assert back.written == [] and back.decisions == []  # nothing until the job is done
    back.labelled(200, {"v1": 0.7})
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    assert len(back.retraining.jobs) == 1  # one retraining at a time

    _done(back, job, 12.5)
    version, shadow = back.written
    assert (version["version"], version["parent_version"]) == ("v2", "v1") and shadow["routing"] is not None
    assert shadow["routing"]["challengers"] == ["v2"]
    assert version["evidence"]["retrain_seconds"] == "12.5" and version["evidence"]["offsets"] == "features[0] 0-299"
    assert [a["evidence"]["action"] for a in back.decisions] == ["retrain"]
    trial = back.part.controller.trial if back.part.controller else None
    assert trial is not None and trial.challenger == "v2"

    late = Back(tmp_path, catalog, "model: m\nretrain: {method: incremental}\n")
    job = _handed_over(late)
    late.registry.apply(routing_record("m", "basic", "v1", actor="person"))  # a person takes over meanwhile
    late.labelled(1, {"v1": 0.7})
    _done(late, job, 1.0)
    assert late.written == [] and "v2" not in late.registry.versions


def test_a_persons_routing_pauses_the_controller_and_resume_hands_it_back(tmp_path: Path,
                                                                           catalog: SchemaCatalog) -> None:
    back = Back(tmp_path, catalog)
    back.labelled(10, {"v1": 0.7})
    back.registry.apply(routing_record("m", "basic", "v1", actor="person"))  # someone typed `weir deploy basic v1`
    back.labelled(10, {"v1": 0.7})
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    assert back.part.take() == [] and back.part.controller is not None and back.part.controller.paused
    back.registry.apply(routing_record("m", "basic", "v1", actor="resume"))
    back.labelled(3_000, {"v1": 0.7})  # the cool-down after a resume
    back.part.on_alerts([_alert("concept_drift", "m:v1")])
    back.deliver(back.part.take())
    assert [a["evidence"]["action"] for a in back.decisions] == ["retrain"]


def test_a_restarted_back_picks_up_the_trial_the_routing_shows(tmp_path: Path, catalog: SchemaCatalog) -> None:
    back = Back(tmp_path, catalog)
    back.registry.apply(version_record("m", "v2", "logistic_regression", {}, actor="controller"))
    back.registry.apply(routing_record("m", "canary", "v1", ["v2"], 50.0, actor="controller"))
    back.labelled(1, {"v1": 0.7, "v2": 0.7})
    trial = back.part.controller.trial if back.part.controller else None
    assert trial is not None and trial.challenger == "v2" and trial.steps[trial.step] == 50.0


def test_the_back_hears_the_raw_events_the_front_dead_lettered_since_it_started(
        tmp_path: Path, catalog: SchemaCatalog) -> None:
    """The back reads ``events.dlq``; with a policy, of its records, the dead letters of raw events written
    since the back started count as refused events. Its own (labels) and older ones do not."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("model: m\n")
    settings = Settings(home=tmp_path / "home", model_key=SecretStr("k" * 32), policy_file=policy, model_name="m")
    registry = ModelRegistry("m")
    registry.apply(version_record("m", "v1", "logistic_regression", {}, actor="person"))
    registry.apply(routing_record("m", "basic", "v1", actor="person"))
    back = BackStage(settings, catalog, registry, retraining=support.HeldRetraining())
    dlq, raw, feedback = (settings.topic(t.name) for t in (EVENTS_DLQ, EVENTS_RAW, FEEDBACK))
    assert dlq in back.inputs
    back.restore()
    now = now_ms()

    def letter(offset: int, origin: str, written_ms: int) -> InRecord:
        return InRecord(dlq, 0, offset, written_ms, b"c1", b"{not json",
                        [("weir.reason", b"invalid"), ("weir.original.topic", origin.encode())])

    try:
        assert back.process([letter(0, raw, now), letter(1, raw, now + 5), letter(2, feedback, now),
                             letter(3, raw, back.started_ms - 60_000)]) == []
        assert back.control is not None and back.control.controller is not None
        assert back.control.controller.events_refused.refused == 2
    finally:
        back.close()
    without = BackStage(Settings(home=tmp_path / "home", model_name="m"), catalog, registry)
    assert dlq in without.inputs  # read without a policy too: the learner settles the labels of refused events


def test_a_restored_back_lets_go_of_the_monitor_before_it(tmp_path: Path, catalog: SchemaCatalog) -> None:
    """Each restore (a failed session) builds a fresh monitor: the old one's state file is closed, not leaked."""
    registry = ModelRegistry("m")
    registry.apply(version_record("m", "v1", "logistic_regression", {}, actor="person"))
    back = BackStage(Settings(home=tmp_path / "home", state_dir=tmp_path / "state", model_name="m"), catalog,
                     registry)
    back.restore()
    before = back.watch.monitor
    back.restore()
    try:
        with pytest.raises(sqlite3.ProgrammingError):
            before.join.store.db.execute("SELECT 1")
        back.watch.monitor.join.store.db.execute("SELECT 1")
    finally:
        back.close()
