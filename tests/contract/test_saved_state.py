"""Saved learner state is a contract with the versions before and after this one.

A snapshot holds plain data and river objects only, never Weir's own classes,
so moving a class cannot break it. A snapshot this version cannot load (the
previous format, which pickled Weir's classes; or bytes that name anything
else) is reported and set aside, and the learner starts from the beginning of
its topics, which rebuilds the same state. Nothing in a state file runs.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.learn.stage import LearnStage
from tests.conftest import REPO
from tests.support import classifier
from weir.contract.messages import InRecord
from weir.contract.records import FeatureVector, Feedback, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK, PREDICTIONS
from weir.registry.records import PICKLE_FACTORY, routing_record, snapshot_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state import pickling

FORMAT_1 = REPO / "tests" / "fixtures" / "learn-format1.db"  # written by the learner of the previous format


def _stage(state_dir: Path, catalog: SchemaCatalog) -> LearnStage:
    registry = ModelRegistry("default")
    registry.apply(version_record("default", "v1", "logistic_regression", {}))
    registry.apply(routing_record("default", "basic", "v1"))
    settings = Settings(topic_prefix="u.", app_id="fixture", state_dir=state_dir, join_hot_events=2)
    return LearnStage(settings, catalog, registry, CollectorRegistry())


def _batch(catalog: SchemaCatalog, n: int) -> list[InRecord]:
    settings = Settings(topic_prefix="u.")
    features, predictions = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, PREDICTIONS)
    feedback = topic_serde(catalog, settings, FEEDBACK)
    batch = []
    for i in range(n):
        vector: FeatureVector = {"event_id": f"e{i}", "entity_id": "c1", "event_time": 1_000 + i,
                                 "features": {"x": float(i % 5), "plan=pro": 1.0}, "feature_set_version": "fs1"}
        prediction: Prediction = {"event_id": f"e{i}", "entity_id": "c1", "event_time": 1_000 + i,
                                  "model_name": "default", "model_version": "v1", "role": "champion", "served": True,
                                  "score": 0.5, "predicted_label": True, "latency_ms": 0.1, "predicted_at": 1_000 + i,
                                  "error": None, "confidence": 0.5}
        label: Feedback = {"event_id": f"e{i}", "entity_id": "c1", "label": i % 5 > 1, "label_time": 2_000 + i}
        batch += [InRecord(features.topic, 0, i, 0, b"c1", features.encode(vector), []),
                  InRecord(predictions.topic, 0, i, 0, b"c1", predictions.encode(prediction), []),
                  InRecord(feedback.topic, 0, i, 0, b"c1", feedback.encode(label), [])]
    return batch


def test_a_snapshot_of_the_previous_format_is_reported_set_aside_and_rebuilt(
        tmp_path: Path, catalog: SchemaCatalog, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "fixture" / "learn.db"
    state.parent.mkdir()
    shutil.copy(FORMAT_1, state)
    stage = _stage(tmp_path, catalog)
    assert stage.restore() is None  # start from the beginning of the topics
    assert "cannot be restored" in caplog.text and "rebuilt from the beginning" in caplog.text
    [aside] = tmp_path.glob("fixture/learn.db.unreadable-*")
    assert aside.read_bytes() == FORMAT_1.read_bytes()
    stage.note_partitions({("u.feedback", 0)}, {("u.feedback", 0)})
    stage.process(_batch(catalog, 30))
    stage.snapshot({("u.features", 0): 30})
    stage.close()
    again = _stage(tmp_path, catalog)
    assert again.restore() == {("u.features", 0): 30}
    assert again.learner.labels_learned == stage.learner.labels_learned > 0
    again.close()


def test_a_snapshot_round_trips_models_metrics_and_the_join(tmp_path: Path, catalog: SchemaCatalog) -> None:
    stage = _stage(tmp_path, catalog)
    assert stage.restore() is None
    stage.note_partitions({("u.feedback", 0)}, {("u.feedback", 0)})
    batch = _batch(catalog, 40)
    labels_later = [r for r in batch[90:] if r.topic == "u.feedback"]
    stage.process([r for r in batch if r not in labels_later])  # ten events wait, eight spilled beyond the hot tier
    stage.snapshot({("u.features", 0): 30})
    waiting = len(stage.learner.join)
    stage.close()
    restored = _stage(tmp_path, catalog)
    restored.restore()
    assert restored.learner.state().keys() == stage.learner.state().keys()
    assert restored.learner.labels_learned == stage.learner.labels_learned
    assert restored.learner.metrics["v1"].values() == stage.learner.metrics["v1"].values()
    assert len(restored.learner.join) == waiting == 10
    probe = {"x": 3.0, "plan=pro": 1.0}
    model = classifier(restored.learner.registry.versions["v1"].model)
    assert model.predict_proba_one(probe) == \
        classifier(stage.learner.registry.versions["v1"].model).predict_proba_one(probe)
    restored.process(labels_later)  # the labels complete the events that waited across the restart
    assert restored.learner.join.counters.joined == 40
    restored.close()


class RunsCode:
    """Pickles as a call to ``os.system``: what an attacker would put in a state file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_state_that_names_code_is_refused_and_nothing_runs(tmp_path: Path, catalog: SchemaCatalog) -> None:
    marker = tmp_path / "ran"
    hostile = pickle.dumps({"format": 2, "offsets": {}, "learner": RunsCode(marker)})
    with pytest.raises(pickling.UnreadableState, match="system"):
        pickling.loads(hostile)
    state = tmp_path / "fixture" / "learn.db"
    state.parent.mkdir()
    with sqlite3.connect(state) as db:
        db.execute("CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB)")
        db.execute("INSERT INTO snapshot VALUES (1, ?)", (hostile,))
    stage = _stage(tmp_path, catalog)
    assert stage.restore() is None
    stage.close()
    assert not marker.exists()


def _calls(module: str, name: str) -> bytes:
    """A protocol-4 pickle that looks ``name`` up in ``module`` and calls it with no arguments."""
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    return b"\x80\x04" + text(module) + text(name) + b"\x93)R."


@pytest.mark.parametrize("module,name", [
    ("river.stream.cache", "os.getcwd"),  # a dotted path through a module river imports
    ("river.stream.cache", "os"),  # a module river imports, not a class of river's
    ("river.utils.math", "operator"),
    ("river.stream", "iter_csv"),  # a function of river's: it would read any file named in the state
])
def test_a_name_that_only_passes_through_river_is_refused(module: str, name: str) -> None:
    with pytest.raises(pickling.UnreadableState, match="may not hold"):
        pickling.loads(_calls(module, name))


def test_a_hostile_serving_copy_on_the_models_topic_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    """Whoever can write ``models`` must not run code in the serve workers, nor stop them from starting."""
    marker = tmp_path / "ran"
    registry = ModelRegistry("default", follows_snapshots=True)
    registry.apply(version_record("default", "v1", "logistic_regression", {}))
    registry.apply(routing_record("default", "basic", "v1"))
    before = registry.versions["v1"].model
    for payload in (pickle.dumps(RunsCode(marker)), b"not a pickle at all", _calls("river.stream.cache", "os.getcwd")):
        with pytest.raises(pickling.UnreadableState):
            registry.apply(snapshot_record("default", "v1", payload, learned=10))
    assert registry.versions["v1"].model is before and not marker.exists()
    uploaded = version_record("default", "v2", PICKLE_FACTORY, {})
    assert uploaded["spec"] is not None
    uploaded["spec"]["pickle"] = pickle.dumps(RunsCode(marker))
    registry.apply(uploaded)
    with pytest.raises(pickling.UnreadableState):
        _ = registry.versions["v2"].model
    assert not marker.exists()
