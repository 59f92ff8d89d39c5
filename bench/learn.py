"""Learn-stage throughput on the real broker against river's learn_one in a plain loop, same run.

    python -m bench.learn [--labels 30000] [--smoke]

The learn stage runs alone in a worker process (``weir worker --stage learn``)
over pre-produced features, served predictions and labels, with 1 and with 3
active versions (logistic-regression variants). Its rate is labels over the
time from its first to its last learned label, read from its /metrics. The
baseline calls ``learn_one`` of the same fresh models on the same (features,
label) pairs in a plain Python loop in this process. Each figure is printed as
soon as it is measured; ``--smoke`` runs them all on a few hundred labels.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from apps.processes import free_port, scrape
from bench.broker import running_broker
from bench.harness import arguments, figure, wait_for, worker
from bench.serve import VERSIONS, deploy_versions, send, vectors
from weir.contract.records import FeatureVector
from weir.contract.serde import SchemaCatalog, open_catalog
from weir.kafka.admin import create_topics, delete_topics
from weir.kafka.clients import make_producer, produce
from weir.registry.factories import build_model
from weir.settings import Settings

LABEL_DELAY_MS = 1_000  # each label's time after its event's: a label older than its event is never joined


def plain_loop(data: list[FeatureVector], labels: list[bool], k: int) -> float:
    models = [build_model(f, {key: str(v) for key, v in p.items()}) for f, p in VERSIONS[:k]]
    started = time.perf_counter()
    for v, y in zip(data, labels, strict=True):
        for m in models:
            m.learn_one(v["features"], y)
    return len(data) / (time.perf_counter() - started)


def learned(settings: Settings) -> float:
    for family in text_string_to_metric_families(scrape(settings)):
        if family.name == "weir_learn_labels":
            for s in family.samples:
                if s.labels.get("outcome") == "learned" and s.name.endswith("_total"):
                    return float(s.value)
    return 0.0


def learn_stage(settings: Settings, catalog: SchemaCatalog, data: list[FeatureVector], labels: list[bool],
                k: int) -> float | None:
    """Labels/s of the learn stage, or None if it learned them all between two samples (a smoke run's few)."""
    run = settings.with_overrides(topic_prefix=f"bench-learn-{uuid.uuid4().hex[:6]}.",
                                  app_id=f"bench-learn-{uuid.uuid4().hex[:6]}", web_port=free_port(),
                                  commit_interval_s=0.2,  # the learned-labels counter refreshes that often
                                  state_dir=Path(tempfile.mkdtemp(prefix="weir-bench-state-")))
    create_topics(run)
    try:
        deploy_versions(run, catalog, k)
        send(run, catalog, data)
        send_predictions_and_labels(run, catalog, data, labels)
        learning = worker(run, "learn", "learn")
        first: tuple[float, float] | None = None  # when the counter first moved, and where to
        last = 0.0

        def sample() -> bool:
            nonlocal first, last
            try:
                n = learned(run)
            except OSError:  # the worker's web server is not up yet
                n = 0
            last = time.perf_counter()
            if n > 0 and first is None:
                first = (last, n)
            return n >= len(data)

        try:
            wait_for(sample, watching=[learning], timeout_s=600, interval_s=0.1, what="every label learned")
        finally:
            learning.stop()
        assert first is not None, "sample() saw every label learned"
        if first[1] >= len(data):
            return None
        return (len(data) - first[1]) / (last - first[0])
    finally:
        delete_topics(run)


def send_predictions_and_labels(settings: Settings, catalog: SchemaCatalog, data: list[FeatureVector],
                                labels: list[bool]) -> None:
    predictions = catalog.serde("prediction", settings.topic("predictions"))
    feedback = catalog.serde("feedback", settings.topic("feedback"))
    producer = make_producer(settings)
    for v, y in zip(data, labels, strict=True):
        for topic, value in (
            (settings.topic("predictions"), predictions.encode({
                "event_id": v["event_id"], "entity_id": v["entity_id"], "event_time": v["event_time"],
                "model_name": "default", "model_version": "v1", "role": "champion", "served": True, "score": 0.5,
                "predicted_label": False, "latency_ms": 0.01, "predicted_at": 0, "error": None,
                "confidence": 0.5})),
            (settings.topic("feedback"), feedback.encode({"event_id": v["event_id"], "entity_id": v["entity_id"],
                                                          "label": y, "label_time": v["event_time"] + LABEL_DELAY_MS})),
        ):
            produce(producer, topic, value, v["entity_id"].encode())
    producer.flush(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=30_000)
    args = arguments(parser, {"labels": 600})
    data = vectors(args.labels)
    labels = [bool(i % 4 == 0) for i in range(len(data))]
    with running_broker() as settings:
        catalog = open_catalog(settings)
        for k in (1, 3):
            stage, baseline = learn_stage(settings, catalog, data, labels, k), plain_loop(data, labels, k)
            measured = f"{stage:,.0f} labels/s, ratio {stage / baseline:.3f}" if stage else "too fast to time"
            figure(f"{k} active version{'s' if k > 1 else ''}", f"plain learn_one {baseline:,.0f} labels/s, "
                   f"learn stage {measured}")


if __name__ == "__main__":
    main()
