"""Serving on the real broker: canary share and stickiness, shadows never served, failures isolated,
two workers in one group, and live routing changes reaching the predictions stream in order."""

from __future__ import annotations

import os
import pickle
import subprocess
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from river import compose, linear_model

from apps.processes import free_port, scrape, start_worker, stop_process
from weir.clock import poll_until
from weir.contract.records import ModelRecord, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, MODELS, PREDICTIONS
from weir.errors import ConfigError
from weir.kafka.clients import make_producer, produce
from weir.kafka.reading import assigned_members, holds_at_least, read_topic
from weir.registry.decisions import promote, register, rollback, route, sign_model_file
from weir.registry.records import record_key, snapshot_record
from weir.registry.signing import BAD_SIGNATURE, UNSIGNED, ModelSigner
from weir.registry.store import UNLOADABLE, RegistryIntake, load_registry, publish_records
from weir.registry.view import ModelRegistry
from weir.settings import Settings


def send_features(settings: Settings, catalog: SchemaCatalog, events: list[tuple[str, str]]) -> None:
    """Feature vectors straight onto ``features`` (the serve stage's input), keyed by entity."""
    serde = topic_serde(catalog, settings, FEATURES)
    producer = make_producer(settings)
    for i, (event_id, entity) in enumerate(events):
        value = serde.encode({"event_id": event_id, "entity_id": entity, "event_time": 1_700_000_000_000 + i,
                              "features": {"x": float(i % 7), "y": float(i % 3)}, "feature_set_version": "fs1"})
        produce(producer, serde.topic, value, entity.encode())
    assert producer.flush(60) == 0


def read_predictions(settings: Settings, catalog: SchemaCatalog) -> list[Prediction]:
    serde = topic_serde(catalog, settings, PREDICTIONS)
    return [serde.decode(m.value) for m in read_topic(settings, serde.topic, timeout_s=120)]


def wait_for_served(settings: Settings, worker_logs: list[Path], workers: list[subprocess.Popen[bytes]],
                    n: int) -> None:
    def done() -> bool:
        for w, log in zip(workers, worker_logs, strict=True):
            assert w.poll() is None, log.read_text()[-2000:]
        return holds_at_least(settings, settings.topic("predictions"), n)

    poll_until(done, timeout_s=300, interval_s=1.0, what=f"{n} predictions")


def served_by_event(predictions: list[Prediction]) -> dict[str, list[Prediction]]:
    by_event: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        if p["served"]:
            by_event[p["event_id"]].append(p)
    return by_event


def test_a_5_percent_canary_over_100000_events(kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    for factory in ("logistic_regression", "logistic_regression", "hoeffding_tree"):
        register(kafka, catalog, "default", factory=factory)
    route(kafka, catalog, "default", "canary", champion="v1", challengers=["v2", "v3"], percent=5.0)
    events = [(f"e{i}", f"entity-{i % 50_000}") for i in range(100_000)]  # every entity twice
    worker = start_worker(kafka, tmp_path / "w.log", "serve")
    try:
        send_features(kafka, catalog, events)
        wait_for_served(kafka, [tmp_path / "w.log"], [worker], 3 * len(events))
    finally:
        assert stop_process(worker) == 0
    predictions = read_predictions(kafka, catalog)
    served = served_by_event(predictions)
    assert len(served) == len(events) and all(len(s) == 1 for s in served.values())
    share = Counter(s[0]["model_version"] for s in served.values())
    assert share["v3"] == 0  # the shadow is never served
    assert abs(share["v2"] / len(events) - 0.05) <= 0.003, share
    arms: dict[str, set[str]] = defaultdict(set)
    for s in served.values():
        arms[s[0]["entity_id"]].add(s[0]["model_version"])
    assert all(len(a) == 1 for a in arms.values())  # every entity keeps its arm
    assert Counter(p["role"] for p in predictions) == {"champion": 100_000, "canary": 100_000, "shadow": 100_000}


def always_fails() -> bytes:
    """A river model whose every prediction raises (KeyError on a feature no event has)."""
    return pickle.dumps(compose.Select("no_such_feature") | linear_model.LogisticRegression())


def test_a_shadow_that_always_throws_leaves_every_event_served_by_the_champion(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    register(kafka, catalog, "default", factory="logistic_regression")
    (tmp_path / "bad.pkl").write_bytes(always_fails())
    sign_model_file(kafka, tmp_path / "bad.pkl")
    register(kafka, catalog, "default", pickle_path=tmp_path / "bad.pkl", note="fails on purpose")
    route(kafka, catalog, "default", "shadow", champion="v1", challengers=["v2"])
    worker = start_worker(kafka, tmp_path / "w.log", "serve")
    try:
        send_features(kafka, catalog, [(f"e{i}", f"c{i % 300}") for i in range(3_000)])
        wait_for_served(kafka, [tmp_path / "w.log"], [worker], 6_000)
    finally:
        assert stop_process(worker) == 0
    predictions = read_predictions(kafka, catalog)
    served = served_by_event(predictions)
    assert len(served) == 3_000 and {s[0]["model_version"] for s in served.values()} == {"v1"}
    failed = [p for p in predictions if p["model_version"] == "v2"]
    assert len(failed) == 3_000 and all(p["error"] is not None and p["error"].startswith("KeyError")
                                        and not p["served"] for p in failed)


def test_two_serve_workers_in_one_group_serve_each_event_once_and_keep_arms(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    register(kafka, catalog, "default", factory="logistic_regression")
    register(kafka, catalog, "default", factory="logistic_regression", parent="v1")
    route(kafka, catalog, "default", "canary", champion="v1", challengers=["v2"], percent=30.0)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(kafka, log, "serve") for log in logs]
    try:
        poll_until(lambda: assigned_members(kafka, f"{kafka.app_id}-serve") == 2, timeout_s=120,
                   what="both serve workers holding partitions")
        send_features(kafka, catalog, [(f"e{i}", f"c{i % 2_000}") for i in range(20_000)])
        wait_for_served(kafka, logs, workers, 40_000)
    finally:
        codes = [stop_process(w) for w in workers]
    assert codes == [0, 0]
    served = served_by_event(read_predictions(kafka, catalog))
    assert len(served) == 20_000 and all(len(s) == 1 for s in served.values())
    arms: dict[str, set[str]] = defaultdict(set)
    for s in served.values():
        arms[s[0]["entity_id"]].add(s[0]["model_version"])
    assert all(len(a) == 1 for a in arms.values())
    assert {v for a in arms.values() for v in a} == {"v1", "v2"}


Phase = tuple[tuple[str, str, bool], ...]  # (version, role, served) of each prediction of one event


def phase(predictions: list[Prediction]) -> Phase:
    """What an event's predictions say about the routing: (version, role, served) of each."""
    return tuple(sorted((p["model_version"], p["role"], p["served"]) for p in predictions))


def test_a_live_routing_sequence_shows_up_in_the_predictions_in_order(
    kafka: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    register(kafka, catalog, "default", factory="logistic_regression")
    # v2 must answer untrained (no learner runs here): a challenger that predicts no class never serves
    register(kafka, catalog, "default", factory="logistic_regression", params={"lr": 0.1})
    route(kafka, catalog, "default", "basic", champion="v1")
    worker = start_worker(kafka, tmp_path / "w.log", "serve")
    stop = threading.Event()

    def feed() -> None:
        n = 0
        while not stop.is_set():  # 50 events at a time, for as long as the routing sequence takes
            send_features(kafka, catalog, [(f"e{n}-{i}", f"c{i}") for i in range(50)])
            n += 1

    feeder = threading.Thread(target=feed, daemon=True)
    expected: list[Phase] = [
        (("v1", "champion", True),),
        (("v1", "champion", True), ("v2", "shadow", False)),
        (("v1", "champion", False), ("v2", "canary", True)),  # at 99.999% every entity is in the canary
        (("v2", "champion", True),),
        (("v1", "champion", True),),
    ]
    changes: list[Callable[[], object]] = [
        lambda: route(kafka, catalog, "default", "shadow", challengers=["v2"]),
        lambda: route(kafka, catalog, "default", "canary", challengers=["v2"], percent=99.999),
        lambda: promote(kafka, catalog, "default"),
        lambda: rollback(kafka, catalog, "default"),
    ]
    try:
        feeder.start()
        for change, now in zip([lambda: None, *changes], expected, strict=True):
            change()

            def showing(now: Phase = now) -> bool:
                return now in phases(kafka, catalog)

            poll_until(showing, timeout_s=60, interval_s=0.5, what=f"predictions showing {now}")
    finally:
        stop.set()
        feeder.join(timeout=30)
        assert stop_process(worker) == 0
    events = sorted(_by_event(read_predictions(kafka, catalog)).values(),
                    key=lambda ps: max(p["predicted_at"] for p in ps))
    sequence = [phase(ps) for ps in events]
    compressed = [p for i, p in enumerate(sequence) if i == 0 or p != sequence[i - 1]]
    assert compressed == expected


def phases(settings: Settings, catalog: SchemaCatalog) -> set[Phase]:
    return {phase(ps) for ps in _by_event(read_predictions(settings, catalog)).values()}


def _by_event(predictions: list[Prediction]) -> dict[str, list[Prediction]]:
    grouped: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        grouped[p["event_id"]].append(p)
    return grouped


def test_deploy_refuses_what_makes_no_sense(kafka: Settings, catalog: SchemaCatalog) -> None:
    with pytest.raises(ConfigError, match="no champion"):
        route(kafka, catalog, "default", "shadow", challengers=["v1"])
    register(kafka, catalog, "default", factory="logistic_regression")
    with pytest.raises(ConfigError, match="already registered"):
        register(kafka, catalog, "default", factory="logistic_regression", version="v1")
    with pytest.raises(ConfigError, match="bad parameters"):
        register(kafka, catalog, "default", factory="logistic_regression", params={"nope": 1})
    route(kafka, catalog, "default", "basic", champion="v1")
    with pytest.raises(ConfigError, match="no version v7"):
        route(kafka, catalog, "default", "canary", challengers=["v7"], percent=5)
    with pytest.raises(ConfigError, match="nothing to roll back"):
        rollback(kafka, catalog, "default")
    with pytest.raises(ConfigError, match="challengers are none"):
        promote(kafka, catalog, "default")


def test_a_hostile_record_on_the_models_topic_neither_runs_nor_keeps_workers_from_starting(
        kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """A serve-only worker loads the whole registry at start: records it must not load are refused and counted,
    the rest is served; a genuine copy signed with the deployment's key is followed."""
    register(kafka, catalog, "default", factory="logistic_regression")
    route(kafka, catalog, "default", "basic", champion="v1")
    marker = tmp_path / "ran"
    runs_code = pickle.dumps(RunsCode(marker))
    forged = snapshot_record("default", "v1", runs_code, learned=7)
    forged["signature"] = b"\x00" * 32
    other_key = ModelSigner(b"not the deployment's key, 32 b.").sign(snapshot_record("default", "v1", runs_code,
                                                                                       learned=8))
    signed_garbage = snapshot_record("default", "v1", b"garbage, not a pickle", learned=9)
    write_unsigned(kafka, catalog, [snapshot_record("default", "v1", runs_code, learned=5), forged, other_key])
    publish_records(kafka, catalog, [signed_garbage])  # signed, as a broken learner would, yet not loadable
    registry = ModelRegistry("default", follows_snapshots=True)
    intake = RegistryIntake(kafka, catalog)
    load_registry(kafka, catalog, registry, intake)
    champion = registry.champion
    assert champion is not None and champion.version == "v1"
    assert registry.versions["v1"].snapshot_learned == 0 and not marker.exists()
    assert intake.refused == {UNSIGNED: 1, BAD_SIGNATURE: 2, UNLOADABLE: 1}

    genuine = linear_model.LogisticRegression()
    genuine.learn_one({"x": 1.0}, True)
    publish_records(kafka, catalog, [snapshot_record("default", "v1", pickle.dumps(genuine), learned=10)])
    load_registry(kafka, catalog, registry, intake)
    assert registry.versions["v1"].snapshot_learned == 10

    # A live serve-only worker starts in spite of them, follows what comes next, and counts what it refuses.
    settings = kafka.with_overrides(web_port=free_port())
    worker = start_worker(settings, tmp_path / "w.log", "serve")
    try:
        def refused(reason: str, n: int) -> Callable[[], bool]:
            return lambda: f'weir_registry_refused_total{{reason="{reason}"}} {n}.0' in _metrics(settings)

        poll_until(refused(UNSIGNED, 1), timeout_s=60, what="the worker up, having refused the unsigned copy")
        write_unsigned(kafka, catalog, [snapshot_record("default", "v1", runs_code, learned=11)])
        poll_until(refused(UNSIGNED, 2), timeout_s=30, what="the live copy refused too")
        assert worker.poll() is None and not marker.exists()
    finally:
        assert stop_process(worker) == 0


def _metrics(settings: Settings) -> str:
    try:
        return scrape(settings)
    except OSError:
        return ""  # not listening yet


def write_unsigned(settings: Settings, catalog: SchemaCatalog, records: list[ModelRecord]) -> None:
    """What a producer without the model key can write to ``models``: records as they are, signed or not."""
    serde = topic_serde(catalog, settings, MODELS)
    producer = make_producer(settings)
    for record in records:
        produce(producer, serde.topic, serde.encode(record), record_key(record).encode())
    assert producer.flush(30) == 0


class RunsCode:
    """Pickles as a call to ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_who_routed_is_kept_and_the_policy_commands_hand_a_model_back(kafka: Settings, catalog: SchemaCatalog,
                                                                      tmp_path: Path) -> None:
    """A person's deploy is recorded as theirs (it pauses automation); `weir policy resume` restates the routing
    as a resume, and `weir policy show` says which one holds."""
    from click.testing import CliRunner

    from apps.cli import cli

    register(kafka, catalog, "default", factory="logistic_regression")
    route(kafka, catalog, "default", "basic", champion="v1")
    policy = tmp_path / "policy.yaml"
    policy.write_text("model: default\nversion: 4\n")
    runner = CliRunner()
    base = ["--bootstrap", kafka.bootstrap, "--prefix", kafka.topic_prefix]
    shown = runner.invoke(cli, [*base, "policy", "show", "--file", str(policy)])
    assert shown.exit_code == 0 and "version: 4" in shown.output and "(by person)" in shown.output, shown.output
    assert "paused until `weir policy resume`" in shown.output
    resumed = runner.invoke(cli, [*base, "policy", "resume", "--model", "default"])
    assert resumed.exit_code == 0, resumed.output
    registry = ModelRegistry("default")
    load_registry(kafka, catalog, registry)
    assert registry.routing is not None and (registry.routing.actor, registry.routing.champion) == ("resume", "v1")
    assert [e.actor for e in registry.history()] == ["person", "person", "resume"]
    shown = runner.invoke(cli, [*base, "policy", "show", "--file", str(policy)])
    assert "(by resume)" in shown.output and "paused" not in shown.output
