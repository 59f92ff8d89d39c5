"""A full retraining reads its window back from the real topics, at offsets its lineage names, in replay's order,
in the worker's retrainer: a process of its own, its result handed back to the back's part."""

from __future__ import annotations

import asyncio
import random

import pytest
from pydantic import SecretStr

from streams.control.part import ControlPart
from streams.features import feature_vector
from streams.retrainer import Retrainer
from tests import support
from tests.support import events, label_of
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import Alert, FeatureVector, Feedback
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK, MODELS
from weir.kafka.clients import flush_or_raise, make_producer, produce
from weir.kafka.reading import read_topic
from weir.registry.factories import build_model, encode_params
from weir.registry.policy import parse_policy
from weir.registry.records import routing_record, version_record
from weir.registry.signing import model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent

BASE_MS = 1_767_225_600_000
WINDOW = 1_000


CANDIDATES = ("candidates: [{factory: logistic_regression, params: {lr: [0.01, 0.3]}}, "
              "{factory: hoeffding_tree, params: {grace_period: 50}}]")


@pytest.mark.parametrize("experiment", [False, True], ids=["champion's factory", "an experiment of 3 candidates"])
def test_a_full_retraining_learns_exactly_the_window_it_names(kafka: Settings, catalog: SchemaCatalog,
                                                              experiment: bool) -> None:
    """SEA events 0..1499 and their labels (30 events later, some labels sent twice, the later copy flipped) on
    three partitions; the back has joined all of them. The challenger a concept-drift alert starts is a fresh
    model fit on the last 1,000 joined events, read back from the topics at offsets the lineage names, learned in
    (label time, event id) order: the same model a person gets training on those records. With candidates, it is
    the one whose test-then-train loss on the window is lowest."""
    settings = kafka.with_overrides(model_key=SecretStr("k" * 32))
    stream = events("sea", 1_500)
    rng = random.Random(3)
    vectors: list[FeatureVector] = [
        feature_vector({"event_id": e.event_id, "entity_id": e.entity_id, "event_time": BASE_MS + i * 10,
                        "source": "sea", "attributes": e.attributes}) for i, e in enumerate(stream)]
    labels: list[Feedback] = [{"event_id": e.event_id, "entity_id": e.entity_id, "label": label_of(e),
                               "label_time": BASE_MS + (i + 30) * 10} for i, e in enumerate(stream)]
    twice = {labels[i]["event_id"] for i in rng.sample(range(1_500), 100)}
    features, feedback = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, FEEDBACK)
    producer = make_producer(settings)
    for vector in vectors:
        produce(producer, features.topic, features.encode(vector), key=vector["entity_id"].encode())
    for label in labels:
        produce(producer, feedback.topic, feedback.encode(label), key=label["entity_id"].encode())
        if label["event_id"] in twice:  # a second, later, contrary label: the first counts
            later: Feedback = {**label, "label": not label["label"], "label_time": label["label_time"] + 5}
            produce(producer, feedback.topic, feedback.encode(later), key=label["entity_id"].encode())
    flush_or_raise(producer, settings)
    at = {features.decode(r.value)["event_id"]: (r.partition, r.offset) for r in read_topic(settings, features.topic)}
    first_label: dict[str, InRecord] = {}
    for record in read_topic(settings, feedback.topic):
        first_label.setdefault(feedback.decode(record.value)["event_id"], record)

    registry = ModelRegistry("m")
    registry.apply(version_record("m", "v1", "logistic_regression", {}, actor="person"))
    registry.apply(routing_record("m", "basic", "v1", actor="person"))
    policy = parse_policy(f"model: m\nretrain: {{method: full, window_labels: {WINDOW}"
                          + (f", {CANDIDATES}" if experiment else "") + "}\n")
    retrainer = Retrainer()
    part = ControlPart(settings, catalog, registry, policy, retrainer)
    for vector, label in zip(vectors, labels, strict=True):  # the learner's order: by label time
        prediction = support.prediction(vector["event_id"], version="v1", entity_id=vector["entity_id"],
                                        model_name="m", predicted_label=True)
        part.on_learned(PendingEvent(vector["event_id"], 0, features=vector, predictions={"v1": prediction},
                                     served_version="v1", label=label["label"], has_label=True,
                                     label_time_ms=label["label_time"], label_source=first_label[vector["event_id"]],
                                     features_at=at[vector["event_id"]], complete=True))
    models = topic_serde(catalog, settings, MODELS)
    written = [models.decode(r.value) for r in asyncio.run(_retrained(part, retrainer)) if r.topic == models.topic]
    version = next(r for r in written if r["kind"] == "VERSION")
    assert model_signer(settings).refusal(version) is None
    registry.apply(version)

    window = stream[-WINDOW:]
    expected_spans = []
    for topic, where in ((features.topic, [at[e.event_id] for e in window]),
                         (feedback.topic, [(first_label[e.event_id].partition, first_label[e.event_id].offset)
                                           for e in window])):
        for p in sorted({p for p, _ in where}):
            offsets = [o for q, o in where if q == p]
            expected_spans.append(f"{topic}[{p}] {min(offsets)}-{max(offsets)}")
    evidence = version["evidence"]
    assert evidence["method"] == "full" and evidence["window"].startswith(f"{WINDOW} labels")
    assert evidence["offsets"] == "; ".join(expected_spans)
    assert evidence["data_version"].startswith("sha256:") and len(evidence["data_version"]) == 71

    # label times rise with the events here, so their order is the events' order
    rows = [(dict(feature_vector({"event_id": e.event_id, "entity_id": e.entity_id, "event_time": 0,
                                  "source": "sea", "attributes": e.attributes})["features"]), label_of(e))
            for e in window]
    options: list[tuple[str, dict[str, float]]] = [
        ("logistic_regression", {"lr": 0.01}), ("logistic_regression", {"lr": 0.3}),
        ("hoeffding_tree", {"grace_period": 50})] if experiment else [("logistic_regression", {})]
    losses = []
    for factory, params in options:  # test, then train, by hand
        by_hand = build_model(factory, encode_params(params))
        misses = 0
        for x, y in rows:
            misses += by_hand.predict_one(x) != y
            by_hand.learn_one(x, y)
        losses.append((misses / len(rows), factory, by_hand))
    loss, factory, by_hand = min(losses, key=lambda t: t[0])
    if experiment:
        tried = evidence["candidates"].split("; ")
        assert len(tried) == 3 and tried[0].endswith(f"loss {loss:.4f} (chosen)") and factory in tried[0], tried
        assert evidence["factory"] == tried[0].split(" loss ")[0]  # the chosen candidate made it
    else:
        assert "candidates" not in evidence
    challenger = registry.versions["v2"].model
    for probe in stream[:50]:
        x = dict(feature_vector({"event_id": "p", "entity_id": "p", "event_time": 0, "source": "sea",
                                 "attributes": probe.attributes})["features"])
        assert challenger.predict_proba_one(x) == by_hand.predict_proba_one(x)  # type: ignore[attr-defined]


async def _retrained(part: ControlPart, retrainer: Retrainer) -> list[OutRecord]:
    """What the part writes once the retrainer's child process is done with the job a drift alert starts."""
    part.on_alerts([_drift()])
    out = part.take()
    assert not any(r.topic.endswith("models") for r in out)  # handed over: nothing registered yet
    try:
        # the job's own task ends when its outcome is in: waited for with a deadline, not slept on
        await asyncio.wait_for(asyncio.gather(*(task for _, task in retrainer.running.values())), timeout=180)
        return out + part.take()
    finally:
        await retrainer.on_stop()


def _drift() -> Alert:
    return {"alert_id": "a-9", "kind": "concept_drift", "severity": "warning", "subject": "m:v1",
            "status": "FIRING", "statistic": None, "threshold": None, "evidence": {}, "runbook": "",
            "detected_at": 0}
