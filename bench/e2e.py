"""The whole loop on the real broker, exactly once, against the same computation in a plain Python loop.

    python -m bench.e2e [--events 200000] [--skip-quix] [--latency-rate 2000] [--latency-seconds 40]
                        [--only plain,loop,latency,scale,serve] [--smoke]

One run measures, on the same churn events (``--only`` picks some of these parts):

* **plain loop**: in this process, no Kafka and no Avro: validation rules,
  features, v1 (logistic regression) and v2 (Hoeffding tree) scoring and
  routing, both learning every label with their metrics, and the monitor on
  the 19 features, the served scores and the error streams;
* **whole loop** (``loop``): a worker process (the front and the back) over events and
  labels produced beforehand, with exactly-once on, then the same with it off:
  events/s (served, over the span of the predictions' own timestamps), labels/s
  (until the learner reports every label), CPU µs per event, resident memory;
* **latency**: events offered live at 2,000 events/s for 40 s: from each
  event's send (its ``events.raw`` record's timestamp, stamped by the
  producer) to the moment a ``read_committed`` consumer receives its served
  prediction, that is once its transaction committed; p50 and p99 (beside it
  the old measure, which ended at the prediction's ``predicted_at``, before the
  commit);
* **scale-out** (``scale``): the fused front in one worker process, then in two;
* **serve alone** (``serve``): pre-produced feature vectors scored by v1 and v2 (trained,
  uploaded as pickles), by a plain confluent-kafka transactional loop in this
  process, by Weir's serve stage, and by a Quix Streams application (in a
  virtual environment this benchmark makes for it, outside Weir's dependencies).

Every rate comes from counts over a span of tens of seconds; nothing here is
asserted. The broker, the producer and the workers share this machine's cores.
Each figure is printed as soon as it is measured. ``--smoke`` runs every part
but Quix on a few hundred events in about a minute (CI runs it).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import TopicPartition

from apps.processes import settings_env
from bench.broker import running_broker
from bench.harness import (
    Child,
    CommittedReader,
    LoopThread,
    Running,
    arguments,
    figure,
    new_log,
    run_to_end,
    wait_for,
    worker,
)
from producers.event import LabelledEvent
from producers.publisher import EventPublisher
from producers.sources import open_source
from streams.features import feature_vector
from streams.monitor.detectors import DriftMonitor
from streams.serve.scorer import Scorer
from streams.validate.rules import RuleSet
from streams.validate.validator import EventValidator
from weir.clock import now_ms
from weir.contract.deadletter import Rejection
from weir.contract.messages import InRecord
from weir.contract.records import FeatureVector, Prediction
from weir.contract.serde import SchemaCatalog, open_catalog, topic_serde
from weir.contract.topics import EVENTS_RAW, FEATURES, FEEDBACK, MODELS, PREDICTIONS
from weir.kafka.admin import create_topics, delete_topics
from weir.kafka.clients import make_consumer, make_producer, make_transactional_producer, produce
from weir.kafka.reading import assigned_members, holds_at_least, read_topic
from weir.registry.decisions import register, route, sign_model_file
from weir.registry.factories import Model, build_model
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin

QUIX = "quixstreams==3.28.1"
HERE = Path(__file__).resolve().parent


@dataclass
class Run:
    """What one measured run did."""

    name: str
    events: int
    seconds: float
    served_per_s: float | None = None
    labels_per_s: float | None = None
    cpu_us_per_event: float | None = None
    rss_mb: float | None = None
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


NOMINAL_RATE = 2_000  # events/s the backlog's event times are spaced at
LABEL_DELAY_MS = 1_000  # each label's time, after its event's


def churn(n: int, seed: int = 42) -> list[LabelledEvent]:
    """``n`` churn events whose times are spaced as if they had come at ``NOMINAL_RATE``, ending now."""
    base = now_ms() - n * 1000 // NOMINAL_RATE
    return list(open_source("churn", n, seed=seed, event_time=lambda i: base + i * 1000 // NOMINAL_RATE).events)


# --- the plain loop ----------------------------------------------------------------------------------------------


def plain_loop(settings: Settings, catalog: SchemaCatalog, events: list[LabelledEvent]) -> Run:
    """The same computation as the whole loop, in one Python loop: no Kafka, no Avro, no join, no state store."""
    validator = EventValidator(topic_serde(catalog, settings, EVENTS_RAW), RuleSet.load(settings.rules_path))
    registry = ModelRegistry("plain")
    register_in(registry)
    scorer = Scorer(registry, timeout_ms=settings.predict_timeout_ms)
    from streams.learn.evaluation import VersionMetrics

    metrics = {"v1": VersionMetrics(), "v2": VersionMetrics()}
    served_metrics = VersionMetrics()
    monitor = DriftMonitor(settings, PendingJoin(window_ms=2**62, needs_features=False))
    started = time.perf_counter()
    for e in events:
        event = validator.check(e.raw("churn"))
        assert isinstance(event, dict)
        vector = feature_vector(event)
        predictions = prediction_of(scorer.score(vector))
        monitor.on_features(vector)
        served = predictions[-1]
        monitor.on_served(served)
        assert e.label is not None
        served_metrics.update(e.label, served)
        for p in predictions:
            metrics[p["model_version"]].update(e.label, p)
            registry.versions[p["model_version"]].model.learn_one(vector["features"], e.label)
        monitor.on_joined(PendingEvent(e.event_id, 0, vector, {p["model_version"]: p for p in predictions},
                                       served["model_version"], e.label, True, 0, None, True))
    scorer.metrics.flush()
    return Run("plain Python loop, same computation", len(events), time.perf_counter() - started)


def register_in(registry: ModelRegistry) -> None:
    from weir.registry.records import routing_record, version_record

    registry.apply(version_record(registry.model_name, "v1", "logistic_regression", {}))
    registry.apply(version_record(registry.model_name, "v2", "hoeffding_tree", {"grace_period": 200}))
    registry.apply(routing_record(registry.model_name, "shadow", "v1", ["v2"]))


# --- runs on the broker ------------------------------------------------------------------------------------------


@contextmanager
def fresh(settings: Settings, name: str, **overrides: object) -> Iterator[Settings]:
    tag = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    run = settings.with_overrides(topic_prefix=f"{tag}.", app_id=tag, web_port=0,
                                  state_dir=Path(tempfile.mkdtemp(prefix="weir-bench-")), **overrides)
    create_topics(run)
    try:
        yield run
    finally:
        delete_topics(run)


def two_versions(settings: Settings, catalog: SchemaCatalog) -> None:
    register(settings, catalog, settings.model_name, factory="logistic_regression")
    register(settings, catalog, settings.model_name, factory="hoeffding_tree", params={"grace_period": 200})
    route(settings, catalog, settings.model_name, "shadow", champion="v1", challengers=["v2"])


def produce_backlog(settings: Settings, catalog: SchemaCatalog, events: list[LabelledEvent], *,
                    labels: bool = True) -> None:
    """The events, and each label a second after its event in event time, as a backlog of both topics."""
    publisher = EventPublisher(settings, catalog)
    for e in events:
        publisher.send_event(e, "churn")
    if labels:
        feedback = topic_serde(catalog, settings, FEEDBACK)
        for e in events:
            publisher.send_bytes(feedback.topic, e.entity_id, feedback.encode(e.feedback(e.event_time_ms +
                                 LABEL_DELAY_MS)), publisher.summary.feedback)
    publisher.flush()
    assert publisher.summary.failed == 0


def served_span(settings: Settings, catalog: SchemaCatalog) -> tuple[int, int, int]:
    """(served events, first and last served ``predicted_at``), from the committed predictions; the last at least
    a millisecond after the first, so that a smoke run's handful of events still gives a rate."""
    serde = topic_serde(catalog, settings, PREDICTIONS)
    stamps = [p["predicted_at"] for p in (serde.decode(r.value) for r in read_topic(settings, serde.topic,
                                                                                    timeout_s=600)) if p["served"]]
    return len(stamps), min(stamps), max(max(stamps), min(stamps) + 1)


def labels_learned(settings: Settings, catalog: SchemaCatalog) -> int:
    serde = topic_serde(catalog, settings, MODELS)
    return max((serde.decode(r.value)["counters"].get("labels_learned", 0)
                for r in read_topic(settings, serde.topic)), default=0)


def served_count(settings: Settings) -> int:
    """Offsets used in the predictions topic: an upper bound of its committed records (transaction markers)."""
    consumer = make_consumer(settings, f"bench-count-{uuid.uuid4().hex[:6]}")
    try:
        topic = settings.topic(PREDICTIONS.name)
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def all_scored(settings: Settings, expected: int) -> bool:
    """Every event's two predictions committed: offsets first, then a count of the committed records."""
    return served_count(settings) >= expected and holds_at_least(settings, settings.topic(PREDICTIONS.name), expected)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MB of a process."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def whole_loop(base: Settings, catalog: SchemaCatalog, events: list[LabelledEvent], *, exactly_once: bool) -> Run:
    with fresh(base, "loop", exactly_once=exactly_once, instance_id="b1") as run:
        two_versions(run, catalog)
        produce_backlog(run, catalog, events)
        loop = worker(run, "loop")
        try:
            wait_for(lambda: served_count(run) > 0, watching=[loop], timeout_s=120, interval_s=0.1,
                     what="the first prediction")
            cpu_at_start = cpu_seconds(loop.process.pid)
            wait_for(lambda: all_scored(run, 2 * len(events)), watching=[loop], timeout_s=3_600, interval_s=0.5,
                     what="every event served")
            wait_for(lambda: labels_learned(run, catalog) >= len(events), watching=[loop], timeout_s=3_600,
                     interval_s=1.0, what="every label learned")
            labels_done = now_ms()
            cpu = cpu_seconds(loop.process.pid) - cpu_at_start
            rss, peak = memory_mb(loop.process.pid)
        finally:
            loop.stop()
        served, first, last = served_span(run, catalog)
        # The loop is done with an event once it is served and its label learned: the rate is over all of it.
        return Run(f"whole loop, exactly-once {'on' if exactly_once else 'off'}", served,
                   (labels_done - first) / 1000, served_per_s=served / ((last - first) / 1000),
                   labels_per_s=len(events) / ((labels_done - first) / 1000),
                   cpu_us_per_event=cpu / len(events) * 1e6, rss_mb=rss, peak_rss_mb=peak)


@dataclass(frozen=True)
class Latency:
    """Percentiles (ms) of the served predictions' latency, measured two ways."""

    p50_ms: float
    p99_ms: float
    old_p50_ms: float  # event time to the prediction's predicted_at: how the figures up to 2026-12-06 were taken
    old_p99_ms: float


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


def latency(base: Settings, catalog: SchemaCatalog, *, rate: int, seconds: int) -> Latency:
    """From each event's send to its served prediction readable by a ``read_committed`` consumer, at a fixed offered
    rate, the first eighth of the events left out.

    The send time is the ``events.raw`` record's timestamp, which the producer's client stamps when the record is
    handed to it; the receive time is the wall clock when the reader here got the prediction, which it can only
    once the stage's transaction committed. One machine, one clock.
    """
    with fresh(base, "latency", instance_id="b1") as run:
        two_versions(run, catalog)
        loop = worker(run, "latency")
        reader = CommittedReader(run, run.topic(PREDICTIONS.name))
        try:
            wait_for(lambda: assigned_members(run, f"{run.app_id}-front") > 0, watching=[loop, reader],
                     timeout_s=120, what="the worker holding the front's partitions")
            produce_at_rate(run, "latency", rate=rate, seconds=seconds, watching=[loop, reader])
            wait_for(lambda: len(reader.received) >= 2 * rate * seconds, watching=[loop, reader], timeout_s=600,
                     interval_s=0.5, what="every event's two predictions readable")
        finally:
            reader.stop()
            loop.stop()
        sent = send_times(run, catalog)
    serde = topic_serde(catalog, run, PREDICTIONS)
    served = [(at, p) for at, p in ((at, serde.decode(value)) for at, value in reader.received) if p["served"]]
    start = min(sent.values()) + seconds * 1000 / 8
    counted = [(at, p) for at, p in served if sent[p["event_id"]] >= start]
    p50, p99 = percentiles([at - sent[p["event_id"]] for at, p in counted])
    old_p50, old_p99 = percentiles([p["predicted_at"] - p["event_time"] for _, p in counted])
    return Latency(p50, p99, old_p50, old_p99)


def produce_at_rate(run: Settings, name: str, *, rate: int, seconds: int, watching: list[Running]) -> None:
    """``weir produce`` of stationary churn events at a fixed offered rate for ``seconds``, each label a second
    after its event, run to its end (failing at once if one of ``watching`` dies)."""
    log = new_log(f"{name}-producer")
    with log.open("ab") as out:
        producer = Child("weir produce", subprocess.Popen(
            [sys.executable, "-m", "apps", "produce", "--events", str(rate * seconds), "--rate", str(rate),
             "--drift", "none", "--feedback-delay", "fixed:1", "--no-progress"],
            env=settings_env(run), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log)
    try:
        run_to_end(producer, watching=watching, timeout_s=seconds * 3 + 60)
    finally:
        producer.stop()


def send_times(run: Settings, catalog: SchemaCatalog) -> dict[str, int]:
    """Each event's send time: its ``events.raw`` record's timestamp, stamped by the producer's client."""
    raw = topic_serde(catalog, run, EVENTS_RAW)
    return {raw.decode(r.value)["event_id"]: r.timestamp_ms for r in read_topic(run, raw.topic)}


def scale_out(base: Settings, catalog: SchemaCatalog, events: list[LabelledEvent], workers: int) -> Run:
    with fresh(base, f"scale{workers}") as run:
        two_versions(run, catalog)
        produce_backlog(run, catalog, events, labels=False)
        started = [worker(run.with_overrides(instance_id=f"s{i}"), f"scale-{i}", "front") for i in range(workers)]
        try:
            wait_for(lambda: all_scored(run, 2 * len(events)), watching=started, timeout_s=3_600, interval_s=0.5,
                     what="every event served")
        finally:
            for w in started:
                w.stop()
        served, first, last = served_span(run, catalog)
        return Run(f"fused front, {workers} worker process{'es' if workers > 1 else ''}", served, (last - first) / 1000)


# --- the serve stage alone ---------------------------------------------------------------------------------------


def trained_models(events: list[LabelledEvent]) -> dict[str, Model]:
    models = {"v1": build_model("logistic_regression", {}),
              "v2": build_model("hoeffding_tree", {"grace_period": "200"})}
    for e in events:
        x = feature_vector(e.raw("churn"))["features"]
        assert e.label is not None
        for model in models.values():
            model.learn_one(x, e.label)
    return models


def upload(settings: Settings, catalog: SchemaCatalog, models: dict[str, Model]) -> None:
    for version, model in models.items():
        path = Path(tempfile.mkstemp(prefix=f"weir-bench-{version}-", suffix=".pkl")[1])
        path.write_bytes(pickle.dumps(model))
        sign_model_file(settings, path)
        register(settings, catalog, settings.model_name, pickle_path=path, version=version)
    route(settings, catalog, settings.model_name, "shadow", champion="v1", challengers=["v2"])


def produce_vectors(settings: Settings, catalog: SchemaCatalog, vectors: list[FeatureVector]) -> None:
    serde = topic_serde(catalog, settings, FEATURES)
    producer = make_producer(settings)
    for v in vectors:
        produce(producer, serde.topic, serde.encode(v), v["entity_id"].encode())
    assert producer.flush(120) == 0


def serve_runs(base: Settings, catalog: SchemaCatalog, events: list[LabelledEvent], models: dict[str, Model],
               quix: bool) -> None:
    """Each serve-alone run, its figure printed as it ends: events/s, and the ratio to the first (the plain
    transactional loop)."""
    vectors = [feature_vector(e.raw("churn")) for e in events]
    kinds: list[tuple[str, Callable[[Settings], Running]]] = [
        ("plain confluent-kafka transactional loop", lambda run: plain_serve(run, catalog)),
        ("Weir serve stage", lambda run: worker(run, "serve", "serve")),
    ]
    if quix:
        kinds.append((f"Quix Streams {QUIX.split('==')[1]}, exactly-once", start_quix))
    baseline = None
    for name, start in kinds:
        with fresh(base, "serve", fused=False, instance_id="b1") as run:
            upload(run, catalog, models)
            produce_vectors(run, catalog, vectors)
            scoring = start(run)
            try:
                wait_for(lambda: all_scored(run, 2 * len(vectors)), watching=[scoring], timeout_s=3_600,
                         interval_s=0.5, what=f"{name}: every vector scored")
            finally:
                scoring.stop()
            served, first, last = served_span(run, catalog)
            rate = served / ((last - first) / 1000)
            baseline = baseline or rate
            figure(f"serve alone, {name}", f"{rate:,.0f} events/s ({rate / baseline:.2f} of the plain "
                   "transactional loop)")


def prediction_of(result: list[Prediction] | Rejection) -> list[Prediction]:
    assert not isinstance(result, Rejection), result
    return result


def plain_serve(settings: Settings, catalog: SchemaCatalog) -> LoopThread:
    """Consume, score with the same versions, produce, and commit each batch in one transaction: a thread here."""
    import threading

    from weir.registry.store import load_registry

    registry = ModelRegistry(settings.model_name)
    load_registry(settings, catalog, registry)
    scorer = Scorer(registry, timeout_ms=settings.predict_timeout_ms)
    features, predictions = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, PREDICTIONS)
    consumer = make_consumer(settings, f"{settings.app_id}-plain", **{"enable.auto.commit": False})
    producer = make_transactional_producer(settings, f"{settings.app_id}-plain")
    producer.init_transactions(30)
    consumer.subscribe([features.topic])

    def loop(stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                messages = consumer.consume(2_000, timeout=0.2)
                batch = [InRecord.of(m) for m in messages if m.error() is None]
                if not batch:
                    continue
                producer.begin_transaction()
                for record in batch:
                    for p in prediction_of(scorer.score(features.decode(record.value))):
                        produce(producer, predictions.topic, predictions.encode(p), record.key)
                last = {(r.topic, r.partition): r.offset for r in batch}
                producer.send_offsets_to_transaction([TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                                                     consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(60)
        finally:
            consumer.close()

    return LoopThread("the plain transactional loop", loop)


def quix_python() -> Path:
    """A virtual environment of its own for Quix Streams (made once, kept in the Weir cache), seeing Weir too."""
    venv = Settings().home / "bench" / "quix-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.read_text() != QUIX:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", QUIX], check=True)
        site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        weir_site = subprocess.run([sys.executable, "-c", "import site; print(site.getsitepackages()[0])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
        # After Quix's own packages: Weir's code and its dependencies (river, fastavro...) for the same scorer.
        (Path(site) / "weir-bench.pth").write_text(f"{weir_site}\n{HERE.parent}\n")
        stamp.write_text(QUIX)
    return python


def start_quix(settings: Settings) -> Child:
    """The Quix Streams application, run as a module from the repository's root: run as a script, its folder
    (bench/) would come first on its path, ahead of the standard library."""
    log = new_log("quix")
    with log.open("ab") as out:
        return Child("the Quix Streams application", subprocess.Popen(
            [str(quix_python()), "-m", "bench.quix_serve"], cwd=HERE.parent, env=settings_env(settings),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log)


# --- the figures --------------------------------------------------------------------------------------------------


PARTS = ("plain", "loop", "latency", "scale", "serve")
SMOKE = {"events": 300, "skip_quix": True, "latency_rate": 200, "latency_seconds": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events (and labels) of the backlog runs")
    parser.add_argument("--skip-quix", action="store_true", help="leave the Quix Streams run out")
    parser.add_argument("--latency-rate", type=int, default=NOMINAL_RATE, help="events/s offered in the latency run")
    parser.add_argument("--latency-seconds", type=int, default=40, help="length of the latency run")
    parser.add_argument("--only", default=",".join(PARTS), help=f"the parts to run, of {','.join(PARTS)}")
    args = arguments(parser, SMOKE)
    parts = args.only.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"no part {', '.join(sorted(unknown))}: the parts are {', '.join(PARTS)}")
    events = churn(args.events)
    with running_broker() as settings:
        catalog = open_catalog(settings)
        print(f"bench.e2e: {args.events} churn events; v1 logistic regression champion, v2 Hoeffding tree shadow",
              flush=True)
        plain = None
        if "plain" in parts:
            plain = plain_loop(settings, catalog, events)
            figure("plain loop", f"{plain.rate:,.0f} events/s")
        if "loop" in parts:
            loops = []
            for exactly_once in (True, False):
                r = whole_loop(settings, catalog, events, exactly_once=exactly_once)
                loops.append(r)
                against = f"{r.rate / plain.rate:.2f} of the plain loop; " if plain else ""
                figure(r.name, f"{r.rate:,.0f} events/s ({against}{r.served_per_s or 0:,.0f} served/s, "
                       f"{r.labels_per_s or 0:,.0f} labels/s), CPU {r.cpu_us_per_event or 0:,.0f} µs/event, "
                       f"RSS {r.rss_mb or 0:,.0f} MB, peak {r.peak_rss_mb or 0:,.0f} MB")
            eos, alo = loops
            figure("cost of exactly-once", f"{1 - eos.rate / alo.rate:.1%} of the at-least-once rate")
        if "latency" in parts:
            lat = latency(settings, catalog, rate=args.latency_rate, seconds=args.latency_seconds)
            figure("latency, event sent to served prediction readable (read_committed)",
                   f"p50 {lat.p50_ms:,.0f} ms, p99 {lat.p99_ms:,.0f} ms at {args.latency_rate:,} events/s offered")
            figure("latency, old measure (event time to predicted_at, before the commit)",
                   f"p50 {lat.old_p50_ms:,.0f} ms, p99 {lat.old_p99_ms:,.0f} ms")
        if "scale" in parts:
            one = scale_out(settings, catalog, events, 1)
            figure(one.name, f"{one.rate:,.0f} events/s")
            two = scale_out(settings, catalog, events, 2)
            figure(two.name, f"{two.rate:,.0f} events/s ({two.rate / one.rate:.2f}x)")
        if "serve" in parts:
            models = trained_models(churn(5_000, seed=7))  # a registry record holds a model of up to 900 kB
            serve_runs(settings, catalog, events, models, quix=not args.skip_quix)


if __name__ == "__main__":
    random.seed(0)
    main()
