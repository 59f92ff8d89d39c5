"""The learn stage on the real broker: crash-proof state, labels learned once, every label accounted for.

These tests feed the learn stage's three inputs directly (features, served
predictions, feedback), so the learner is the only process under test.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections import Counter
from pathlib import Path

import pandas as pd

from apps.processes import free_port, start_worker, stop_process
from producers.churn import ChurnDomain
from producers.files import FileColumns
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, publish
from producers.sources import SourceSpec
from streams.features import feature_vector
from tests import support
from tests.support import classifier, http_status
from weir.clock import poll_until
from weir.contract.deadletter import read_headers
from weir.contract.records import Feedback, Label
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK, MODELS, PREDICTIONS
from weir.kafka.clients import make_producer, produce
from weir.kafka.reading import holds_at_least, read_topic
from weir.registry.decisions import register, route
from weir.registry.factories import build_model
from weir.settings import Settings
from weir.state import pickling
from weir.state.store import StateStore


class Inputs:
    """Writes what the learn stage reads: feature vectors, served predictions, labels."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, n: int, seed: int = 5) -> None:
        self.settings = settings
        self.producer = make_producer(settings)
        self.features = topic_serde(catalog, settings, FEATURES)
        self.predictions = topic_serde(catalog, settings, PREDICTIONS)
        self.feedback = topic_serde(catalog, settings, FEEDBACK)
        events = list(ChurnDomain(seed=seed).events(n, event_time=lambda i: 1_700_000_000_000 + i))
        self.vectors = [feature_vector(e.raw("churn")) for e in events]
        self.labels: dict[str, Label] = {e.event_id: support.label_of(e) for e in events}
        self.label_sent: dict[str, int] = {}  # event id -> label time of its first label

    def send(self, topic: str, entity: str, value: bytes) -> None:
        produce(self.producer, topic, value, entity.encode())

    def event(self, i: int) -> None:
        v = self.vectors[i]
        self.send(self.features.topic, v["entity_id"], self.features.encode(v))
        self.send(self.predictions.topic, v["entity_id"], self.predictions.encode(support.prediction(
            v["event_id"], entity_id=v["entity_id"], event_time=v["event_time"], model_name="default", version="v1",
            role="champion", served=True, score=0.3, predicted_label=False, latency_ms=0.01,
            predicted_at=v["event_time"], error=None)))

    def label(self, event_id: str, entity: str, label_time: int, label: Label | None = None) -> None:
        self.label_sent.setdefault(event_id, label_time)
        feedback: Feedback = {"event_id": event_id, "entity_id": entity,
                              "label": self.labels.get(event_id, True) if label is None else label,
                              "label_time": label_time}
        self.send(self.feedback.topic, entity, self.feedback.encode(feedback))

    def flush(self) -> None:
        assert self.producer.flush(60) == 0


def champion(settings: Settings, catalog: SchemaCatalog) -> None:
    register(settings, catalog, "default", factory="logistic_regression")
    route(settings, catalog, "default", "basic", champion="v1")


def learner_reports(settings: Settings, catalog: SchemaCatalog) -> list[dict[str, int]]:
    """The counters of every METRICS record the learner published, oldest first."""
    serde = topic_serde(catalog, settings, MODELS)
    return [r["counters"] for r in (serde.decode(m.value) for m in read_topic(settings, serde.topic))
            if r["kind"] == "METRICS"]


def learner_counters(settings: Settings, catalog: SchemaCatalog) -> dict[str, int]:
    reports = learner_reports(settings, catalog)
    return reports[-1] if reports else {}


def settled(settings: Settings, catalog: SchemaCatalog, received: int) -> bool:
    c = learner_counters(settings, catalog)
    return c.get("feedback_received", 0) >= received and c.get("feedback_held", 1) == 0 and \
        c.get("feedback_pending", 1) == 0


def test_kill_9_ten_times_while_100000_labels_stream(kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    n = 100_000
    learner = kafka.with_overrides(state_dir=tmp_path / "state", snapshot_every_labels=2_000, snapshot_every_s=1.0)
    champion(learner, catalog)
    inputs = Inputs(learner, catalog, n)
    rng = random.Random(9)
    kill_at = sorted(rng.sample(range(5_000, n - 5_000), 10))  # labels learned when each kill happens

    def stream() -> None:  # each label follows its event by one chunk, like a real delay
        chunk = 1_000
        for start in range(0, n + chunk, chunk):
            for i in range(start, min(start + chunk, n)):
                inputs.event(i)
            for i in range(max(0, start - chunk), min(start, n)):
                v = inputs.vectors[i]
                inputs.label(v["event_id"], v["entity_id"], 1_700_000_100_000 + i)
            inputs.flush()

    producer = threading.Thread(target=stream)
    log = tmp_path / "learn.log"
    worker = start_worker(learner, log, "learn", loglevel="info")
    producer.start()
    kills, reported = 0, 0
    try:
        for threshold in kill_at:
            def learning(t: int = threshold, before: int = reported) -> bool:
                """This worker, not an earlier one, reported learning past ``t``: it is killed mid-stream."""
                reports = learner_reports(learner, catalog)
                return len(reports) > before and reports[-1]["labels_learned"] >= t

            poll_until(learning, timeout_s=300, interval_s=0.2, what=f"{threshold} labels learned")
            assert worker.poll() is None, log.read_text()[-3000:]
            reported = len(learner_reports(learner, catalog))
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = start_worker(learner, log, "learn", loglevel="info")
        producer.join()
        poll_until(lambda: settled(learner, catalog, n), timeout_s=600, interval_s=1.0, what="every label settled")
    finally:
        assert stop_process(worker) == 0, log.read_text()[-3000:]
    assert kills == 10
    counters = learner_counters(learner, catalog)
    assert counters["labels_learned"] == counters["learned"] == len(inputs.label_sent) == n
    assert counters["feedback_duplicate"] == counters["feedback_late"] == counters["feedback_unmatched"] == 0

    store = StateStore(learner.state_dir / learner.app_id / "learn.db")
    snapshot = store.load()
    store.close()
    assert snapshot is not None, "the learner never committed a snapshot"
    learned = pickling.loads(snapshot["learner"]["models"]["v1"])  # a snapshot keeps each model pickled
    reference = classifier(build_model("logistic_regression", {}))
    by_id = {v["event_id"]: v for v in inputs.vectors}
    for event_id, _ in sorted(inputs.label_sent.items(), key=lambda item: (item[1], item[0])):
        reference.learn_one(by_id[event_id]["features"], inputs.labels[event_id])
    probe = [v["features"] for v in inputs.vectors[::500]]
    gaps = [abs(learned.predict_proba_one(x)[True] - reference.predict_proba_one(x)[True]) for x in probe]
    assert max(gaps) < 1e-9


def test_duplicated_feedback_is_learned_once(kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    n = 5_000
    settings = kafka.with_overrides(state_dir=tmp_path / "state")
    champion(settings, catalog)
    inputs = Inputs(settings, catalog, n)
    rng = random.Random(3)
    for i in range(n):
        inputs.event(i)
    duplicated = set(rng.sample(range(n), n // 10))
    for i in range(n):
        v = inputs.vectors[i]
        inputs.label(v["event_id"], v["entity_id"], 1_700_000_100_000 + i)
    for i in sorted(duplicated):  # the second copy comes well after the first was learned
        v = inputs.vectors[i]
        inputs.label(v["event_id"], v["entity_id"], 1_700_000_200_000 + i)
    inputs.flush()
    worker = start_worker(settings, tmp_path / "learn.log", "learn")
    try:
        poll_until(lambda: settled(settings, catalog, n + len(duplicated)), timeout_s=300, interval_s=1.0,
                   what="every label settled")
    finally:
        stop_process(worker)
    c = learner_counters(settings, catalog)
    assert (c["feedback_received"], c["feedback_duplicate"], c["labels_learned"]) == (n + len(duplicated),
                                                                                     len(duplicated), n)


def test_shuffled_late_and_unmatched_feedback_reconcile(kafka: Settings, catalog: SchemaCatalog,
                                                         tmp_path: Path) -> None:
    n, window = 3_000, 60_000
    settings = kafka.with_overrides(state_dir=tmp_path / "state", join_window_ms=window)
    champion(settings, catalog)
    inputs = Inputs(settings, catalog, n)
    rng = random.Random(4)
    for i in range(n):
        inputs.event(i)
    base = inputs.vectors[-1]["event_time"]
    on_time = [i for i in range(n) if i % 10]  # every tenth event's label comes only after the window
    rng.shuffle(on_time)
    for i in on_time:
        v = inputs.vectors[i]
        inputs.label(v["event_id"], v["entity_id"], base + rng.randrange(1, window // 2))
    for k in range(50):  # labels of events nobody ever saw
        inputs.label(f"ghost-{k}", f"cust-{k:06d}", base + 1_000 + k, label=True)
    inputs.flush()
    worker = start_worker(settings, tmp_path / "learn.log", "learn")
    late = [i for i in range(n) if i % 10 == 0]
    try:
        poll_until(lambda: learner_counters(settings, catalog).get("feedback_joined", 0) >= len(on_time),
                   timeout_s=300, interval_s=1.0, what="the on-time labels joined")
        for i in late:  # now the rest, long after their events' window
            v = inputs.vectors[i]
            inputs.label(v["event_id"], v["entity_id"], base + 3 * window + i)
        inputs.flush()
        received = len(on_time) + 50 + len(late)
        poll_until(lambda: settled(settings, catalog, received) and
                   holds_at_least(settings, settings.topic("feedback.late"), len(late)), timeout_s=300,
                   interval_s=1.0, what="every label settled")
    finally:
        stop_process(worker)
    c = learner_counters(settings, catalog)
    assert (c["feedback_joined"], c["feedback_late"], c["feedback_unmatched"], c["feedback_duplicate"]) == (
        len(on_time), len(late), 50, 0)
    assert c["feedback_received"] == c["feedback_joined"] + c["feedback_late"] + c["feedback_unmatched"] + \
        c["feedback_duplicate"] == received
    late_reasons = Counter(read_headers(m.headers)["reason"] for m in read_topic(settings,
                                                                                  settings.topic("feedback.late")))
    assert late_reasons == {"late-feedback": len(late)}
    dead = [read_headers(m.headers) for m in read_topic(settings, settings.topic("events.dlq"))]
    assert Counter(h["reason"] for h in dead) == {"unmatched-feedback": 50}


def test_string_classes_go_round_the_live_loop(kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """A file with string labels, produced as `weir produce` does, served and learned by a worker running the front
    and the back with WEIR_LABEL_KIND=multiclass: every label learned, none dead-lettered, metrics about the
    declared positive class."""
    n = 1_500
    rules = tmp_path / "rules.yaml"  # a file's events carry the source file:<name>, which needs its rules
    rules.write_text('sources:\n  "file:classes.csv":\n    fields:\n      a: {type: number, required: true}\n'
                     '      b: {type: number, required: true}\n')
    settings = kafka.with_overrides(state_dir=tmp_path / "state", label_kind="multiclass", positive_label="churned",
                                    rules_file=rules, web_port=free_port())
    rng = random.Random(4)
    rows = []
    for i in range(n):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append({"entity_id": f"c{i % 200}", "a": a, "b": b,
                     "label": "churned" if a > 0.3 else "stayed" if b > 0 else "paused"})
    path = tmp_path / "classes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    register(settings, catalog, "default", factory="hoeffding_tree", params={"grace_period": 50})
    route(settings, catalog, "default", "basic", champion="v1")
    worker = start_worker(settings, tmp_path / "worker.log", "front", "back")
    try:  # the stream comes live, not as a backlog the front serves before the back has learned a label
        poll_until(lambda: http_status(settings.web_port, "/readyz") == 200, timeout_s=120, what="the worker ready")
        summary = publish(EventPublisher(settings, catalog), SourceSpec(str(path), columns=FileColumns(
            "entity_id", "label")).open(), policy=FeedbackPolicy("fixed:0"), rate=300, progress=False)
        assert summary.feedback.delivered == n and not summary.failed
        poll_until(lambda: learner_counters(settings, catalog).get("labels_learned", 0) >= n, timeout_s=180,
                   interval_s=1.0, what=f"{n} string labels learned")
    finally:
        assert stop_process(worker) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    serde = topic_serde(catalog, settings, MODELS)
    [latest] = [r for r in (serde.decode(m.value) for m in read_topic(settings, serde.topic))
                if r["kind"] == "METRICS"][-1:]
    # A fresh tree predicts nothing until it has learned: the events served while the first labels were on
    # their way are scored by nothing, so accuracy counts the rest.
    assert latest["counters"]["learned"] == n and latest["metrics"]["accuracy"] > 0.6
    assert {"roc_auc", "log_loss", "served_accuracy"} <= set(latest["metrics"])
    assert list(read_topic(settings, settings.topic("events.dlq"))) == []
