"""Serve-stage throughput on the real broker against the same river models in a plain loop.

    python -m bench.serve [--events 30000] [--smoke]

For 1 and 3 active versions (logistic-regression variants, so both sides pay
the same per-model cost), the serve stage runs in a real worker process
(``weir worker --stage serve``) over pre-produced churn feature vectors; its
rate is events over the span of the predictions' timestamps, so start-up is
excluded. The baseline calls ``predict_proba_one`` of the same fresh models on
the same feature dicts in a plain Python loop, in this process, in the same
run. The last figures are how long a routing change takes to reach predictions
a ``read_committed`` consumer can read, and the Avro costs that bound the
stage. Each figure is printed as soon as it is measured; ``--smoke`` runs them
all on a few hundred events.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
import uuid

from bench.broker import running_broker
from bench.harness import CommittedReader, arguments, figure, wait_for, worker
from producers.sources import open_source
from streams.features import feature_vector
from weir.contract.records import FeatureVector, Prediction
from weir.contract.serde import SchemaCatalog, open_catalog
from weir.kafka.admin import create_topics, delete_topics
from weir.kafka.clients import make_producer, produce
from weir.kafka.reading import end_offsets, read_topic
from weir.registry.decisions import register, route
from weir.registry.factories import as_classifier, build_model
from weir.settings import Settings

VERSIONS = [("logistic_regression", {}), ("logistic_regression", {"lr": 0.1}), ("logistic_regression", {"l2": 0.01})]


def vectors(n: int) -> list[FeatureVector]:
    return [feature_vector(e.raw("churn")) for e in open_source("churn", n).events]


def plain_loop(data: list[FeatureVector], k: int) -> float:
    models = [as_classifier(build_model(f, {key: str(v) for key, v in p.items()})) for f, p in VERSIONS[:k]]
    started = time.perf_counter()
    for v in data:
        for m in models:
            assert m is not None, "the benchmark's versions are classifiers"
            m.predict_proba_one(v["features"])
    return len(data) / (time.perf_counter() - started)


def codec_costs(catalog: SchemaCatalog, data: list[FeatureVector]) -> tuple[float, float]:
    """Microseconds per features decode and per prediction encode, measured here: the stage's floor."""
    features = catalog.serde("feature_vector", "bench.features")
    predictions = catalog.serde("prediction", "bench.predictions")
    prediction: Prediction
    encoded = [features.encode(v) for v in data]
    started = time.perf_counter()
    for value in encoded:
        features.decode(value)
    decode_us = (time.perf_counter() - started) / len(encoded) * 1e6
    prediction = {"event_id": "e", "entity_id": "c", "event_time": 0, "model_name": "default", "model_version": "v1",
                  "role": "champion", "served": True, "score": 0.2, "predicted_label": False, "latency_ms": 0.01,
                  "predicted_at": 0, "error": None, "confidence": 0.8}
    started = time.perf_counter()
    for _ in data:
        predictions.encode(prediction)
    return decode_us, (time.perf_counter() - started) / len(data) * 1e6


def deploy_versions(settings: Settings, catalog: SchemaCatalog, k: int) -> None:
    """The first ``k`` benchmark versions, v1 champion, the rest in shadow."""
    for factory, params in VERSIONS[:k]:
        register(settings, catalog, "default", factory=factory, params=params)
    route(settings, catalog, "default", "shadow" if k > 1 else "basic", champion="v1",
          challengers=[f"v{i}" for i in range(2, k + 1)])


def serve_stage(settings: Settings, catalog: SchemaCatalog, data: list[FeatureVector], k: int) -> float:
    run = settings.with_overrides(topic_prefix=f"bench-serve-{uuid.uuid4().hex[:6]}.",
                                  app_id=f"bench-serve-{uuid.uuid4().hex[:6]}", web_port=0)
    create_topics(run)
    try:
        deploy_versions(run, catalog, k)
        send(run, catalog, data)
        serving = worker(run, "serve", "serve")
        try:
            wait_for(lambda: count(run) >= k * len(data), watching=[serving], timeout_s=600, interval_s=1.0,
                     what="all served")
        finally:
            serving.stop()
        serde = catalog.serde("prediction", run.topic("predictions"))
        stamps = [serde.decode(m.value)["predicted_at"] for m in read_topic(run, run.topic("predictions"),
                                                                             timeout_s=120)]
        return float(len(data) / (max(max(stamps) - min(stamps), 1) / 1000))  # a smoke run's few may take 0 ms
    finally:
        delete_topics(run)


def send(settings: Settings, catalog: SchemaCatalog, data: list[FeatureVector]) -> None:
    serde = catalog.serde("feature_vector", settings.topic("features"))
    producer = make_producer(settings)
    for v in data:
        produce(producer, settings.topic("features"), serde.encode(v), v["entity_id"].encode())
    producer.flush(60)


def count(settings: Settings) -> int:
    return end_offsets(settings, settings.topic("predictions"))


def routing_latency(settings: Settings, catalog: SchemaCatalog, data: list[FeatureVector]) -> float:
    """Milliseconds from a routing record's creation to the first prediction that follows it being readable by a
    ``read_committed`` consumer (its ``predicted_at`` is stamped before the stage's transaction commits)."""
    run = settings.with_overrides(topic_prefix=f"bench-route-{uuid.uuid4().hex[:6]}.",
                                  app_id=f"bench-route-{uuid.uuid4().hex[:6]}", web_port=0)
    create_topics(run)
    stop = threading.Event()
    try:
        register(run, catalog, "default", factory="logistic_regression")
        register(run, catalog, "default", factory="logistic_regression")
        route(run, catalog, "default", "basic", champion="v1")
        serving = worker(run, "route", "serve")
        reader = CommittedReader(run, run.topic("predictions"))

        def feed() -> None:
            """2,000 vectors/s, round the data again until the shadow answers (a smoke run's few would run out)."""
            for i in itertools.cycle(range(0, len(data), 100)):
                if stop.wait(0.05):
                    return
                send(run, catalog, data[i:i + 100])

        feeder = threading.Thread(target=feed, daemon=True)
        try:
            feeder.start()
            wait_for(lambda: bool(reader.received), watching=[serving, reader], timeout_s=120,
                     what="first prediction")
            change = route(run, catalog, "default", "shadow", challengers=["v2"])
            serde = catalog.serde("prediction", run.topic("predictions"))

            read = 0
            shadow: list[float] = []  # when each of the shadow's predictions was received

            def shadowed() -> bool:
                nonlocal read
                received = reader.received[read:]
                read += len(received)
                shadow.extend(at for at, value in received if serde.decode(value)["model_version"] == "v2")
                return bool(shadow)

            wait_for(shadowed, watching=[serving, reader], timeout_s=60, what="the shadow's first prediction")
            return shadow[0] - change["created_at"]
        finally:
            stop.set()
            reader.stop()
            serving.stop()
    finally:
        delete_topics(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    args = arguments(parser, {"events": 300})
    data = vectors(args.events)
    with running_broker() as settings:
        catalog = open_catalog(settings)
        baselines = {}
        for k in (1, 3):
            stage = serve_stage(settings, catalog, data, k)
            baseline = baselines[k] = plain_loop(data, k)
            figure(f"{k} active version{'s' if k > 1 else ''}", f"serve stage {stage:,.0f} events/s, plain loop "
                   f"{baseline:,.0f} events/s, ratio {stage / baseline:.3f}")
        latency = routing_latency(settings, catalog, data)
        figure("routing change to first prediction under it readable (read_committed)", f"{latency:.0f} ms")
    decode_us, encode_us = codec_costs(catalog, data)
    figure("Avro per event", f"features decode {decode_us:.1f} µs, prediction encode {encode_us:.1f} µs per "
           f"version; a plain-loop prediction costs {1e6 / baselines[1]:.1f} µs")


if __name__ == "__main__":
    main()
