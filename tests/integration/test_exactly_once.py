"""Exactly once, counted from the topics: kill -9 the worker twenty times while 100,000 events stream, and kill -9
the broker three times while 20,000 do; afterwards every event has exactly one prediction per version, exactly one
of them served, and every label was learned exactly once. The worker runs under a restart policy, as in production:
an outage can hang a librdkafka call, and the worker then exits 70 to be started afresh.

Every reader here reads committed records only, as every Weir reader does.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.demo import MAX_WORKER_RESTARTS
from apps.processes import free_port, settings_env, start_worker, stop_process
from streams.worker import EXIT_GAVE_UP
from weir.clock import poll_until
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, EVENTS_VALID, FEATURES, MODELS, PREDICTIONS
from weir.kafka import local
from weir.kafka.admin import create_topics
from weir.kafka.reading import read_topic
from weir.registry.decisions import register, route
from weir.settings import Settings


def _produce(settings: Settings, events: int, rate: int) -> subprocess.Popen[bytes]:
    """``weir produce``: churn events at ``rate``, each label half a second after its event."""
    return subprocess.Popen(
        [sys.executable, "-m", "apps", "produce", "--source", "churn", "--events", str(events), "--rate", str(rate),
         "--drift", "none", "--feedback-delay", "fixed:0.5", "--no-progress"],
        env=settings_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _two_versions(settings: Settings, catalog: SchemaCatalog) -> None:
    register(settings, catalog, settings.model_name, factory="logistic_regression")
    register(settings, catalog, settings.model_name, factory="hoeffding_tree", params={"grace_period": 200})
    route(settings, catalog, settings.model_name, "shadow", champion="v1", challengers=["v2"])


def _labels_learned(settings: Settings, catalog: SchemaCatalog) -> int:
    serde = topic_serde(catalog, settings, MODELS)
    learned = [serde.decode(r.value)["counters"].get("labels_learned", 0) for r in read_topic(settings,
               settings.topic("models"))]
    return max(learned, default=0)


def _served_or_dead(settings: Settings) -> int:
    served = sum(1 for _ in read_topic(settings, settings.topic("predictions"), timeout_s=120)) // 2  # two versions
    return served + sum(1 for _ in read_topic(settings, settings.topic("events.dlq")))


def _check_exactly_once(settings: Settings, catalog: SchemaCatalog, events: int) -> None:
    predictions = topic_serde(catalog, settings, PREDICTIONS)
    per_version: Counter[tuple[str, str]] = Counter()
    served: Counter[str] = Counter()
    for r in read_topic(settings, predictions.topic, timeout_s=300):
        p = predictions.decode(r.value)
        per_version[(p["event_id"], p["model_version"])] += 1
        served[p["event_id"]] += p["served"]
    dead = sum(1 for _ in read_topic(settings, settings.topic(EVENTS_DLQ.name)))
    assert dead == 0, f"{dead} churn events were dead-lettered"
    assert len(served) == events, f"{events - len(served)} events were never served"
    assert set(served.values()) == {1}, f"served twice: {sum(1 for n in served.values() if n > 1)} events"
    assert set(per_version.values()) == {1}, f"{sum(n - 1 for n in per_version.values())} duplicate predictions"
    for topic, serde in ((EVENTS_VALID, topic_serde(catalog, settings, EVENTS_VALID)),
                         (FEATURES, topic_serde(catalog, settings, FEATURES))):
        ids = Counter(serde.decode(r.value)["event_id"] for r in read_topic(settings, settings.topic(topic.name),
                                                                            timeout_s=300))
        assert len(ids) == events and set(ids.values()) == {1}, f"{topic.name}: not one record per event"
    assert _labels_learned(settings, catalog) == events  # each label learned once, however often the learner died


@pytest.fixture
def worker_settings(kafka: Settings, tmp_path: Path) -> Settings:
    return kafka.with_overrides(instance_id="w1", state_dir=tmp_path / "state", web_port=0, snapshot_every_s=2.0)


@pytest.mark.timeout(900)  # 320 s alone; make test runs another test file beside it
def test_twenty_kill_9_of_the_worker_while_100000_events_stream(worker_settings: Settings, catalog: SchemaCatalog,
                                                               tmp_path: Path) -> None:
    settings, events = worker_settings, 100_000
    _two_versions(settings, catalog)
    rng = random.Random(20)
    producer = _produce(settings, events, rate=2_500)
    worker = start_worker(settings, tmp_path / "worker.log")
    kills = 0
    try:
        while kills < 20:
            deadline = time.monotonic() + rng.uniform(1.5, 3.5)

            def kill_due(at: float = deadline, running: subprocess.Popen[bytes] = worker) -> bool:
                return time.monotonic() >= at or running.poll() is not None

            poll_until(kill_due, timeout_s=10, interval_s=0.05, what="the next kill")
            assert worker.poll() is None, f"the worker exited by itself; see {tmp_path / 'worker.log'}"
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = start_worker(settings, tmp_path / "worker.log")
        assert producer.wait(timeout=300) == 0, producer.stdout.read().decode() if producer.stdout else ""
        poll_until(lambda: _labels_learned(settings, catalog) >= events, timeout_s=600, interval_s=2.0,
                   what=f"all {events} labels learned after {kills} kills")
    finally:
        producer.kill()
        assert stop_process(worker) == 0
    _check_exactly_once(settings, catalog, events)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Settings]:
    """A broker of this test's own, on ports of its own, to kill: the session's broker serves the other tests."""
    settings = Settings(home=tmp_path / "weir-home", local_kafka_port=free_port(), local_controller_port=free_port(),
                        state_dir=tmp_path / "state", topic_prefix="eos.", app_id="eos", instance_id="w1",
                        web_port=0, snapshot_every_s=2.0)
    local.up(settings)
    yield settings
    local.down(settings)


class Supervised:
    """The worker under a restart policy, as compose and Kubernetes run it: exit 70 (it gave up, or a Kafka client
    call hung: librdkafka #5456, see docs/operations.md) starts it again, as often as `weir demo` does; any other exit
    fails the test."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings, self.log, self.restarts = settings, log, 0
        self.process = start_worker(settings, log)

    def check(self) -> None:
        code = self.process.poll()
        if code is None:
            return
        assert code == EXIT_GAVE_UP and self.restarts < MAX_WORKER_RESTARTS, \
            f"the worker exited with {code} after {self.restarts} restarts; see {self.log}"
        self.restarts += 1
        self.process = start_worker(self.settings, self.log)


def _kill_9_broker(settings: Settings) -> None:
    pid = local.status(settings).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    poll_until(lambda: not local.broker_answers(settings, timeout_s=0.5), timeout_s=30, what="the broker gone")


def test_three_kill_9_of_the_broker_while_20000_events_stream(own_broker: Settings, catalog: SchemaCatalog,
                                                             tmp_path: Path) -> None:
    settings, events = own_broker, 20_000
    create_topics(settings)
    _two_versions(settings, catalog)
    producer = _produce(settings, events, rate=1_000)
    worker = Supervised(settings, tmp_path / "worker.log")
    try:
        for outage in range(3):
            seen = _served_or_dead(settings)

            def progressed(before: int = seen) -> bool:
                worker.check()
                return _served_or_dead(settings) > before + 2_000

            poll_until(progressed, timeout_s=120, interval_s=1.0, what=f"progress before outage {outage + 1}")
            _kill_9_broker(settings)
            local.up(settings)
        assert producer.wait(timeout=300) == 0, producer.stdout.read().decode() if producer.stdout else ""

        def learned_all() -> bool:
            worker.check()
            return _labels_learned(settings, catalog) >= events

        poll_until(learned_all, timeout_s=600, interval_s=2.0, what=f"all {events} labels learned after 3 outages")
        worker.check()
    finally:
        producer.kill()
        assert stop_process(worker.process) == 0
    _check_exactly_once(settings, catalog, events)
