"""`weir replay` reproduces river's delayed progressive validation exactly, and is deterministic."""

from __future__ import annotations

import itertools
import pickle
import random
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from river import evaluate, metrics

from apps.cli import cli
from apps.replay import replay
from producers.files import FileColumns, file_source
from tests.support import classifier, events, river_dataset
from weir.contract.features import compute_features
from weir.registry.factories import build_model
from weir.registry.records import snapshot_record, version_record
from weir.registry.view import ModelRegistry


@pytest.mark.parametrize("source", ["churn", "sea", "agrawal"])
@pytest.mark.parametrize("delay", [0, 25])
@pytest.mark.parametrize("factory", ["logistic_regression", "hoeffding_tree"])
def test_replay_equals_progressive_val_score(source: str, delay: int, factory: str) -> None:
    stream = events(source)
    ours = replay(stream, factory=factory, params={}, delay=delay).metrics
    dataset = river_dataset(stream)
    for name, metric in (("accuracy", metrics.Accuracy()), ("log_loss", metrics.LogLoss())):
        river = evaluate.progressive_val_score(dataset, build_model(factory, {}), metric, delay=delay or None)
        assert abs(ours[name] - river.get()) < 1e-9, (name, ours[name], river.get())


def test_the_same_replay_gives_the_same_numbers_and_models() -> None:
    stream = events("churn", 1_000)
    a, b = (replay(stream, factory="logistic_regression", params={}, delay=10) for _ in range(2))
    assert a.metrics == b.metrics and a.labels == b.labels == 1_000
    x = compute_features(stream[0].attributes)
    assert classifier(a.registry.versions["v1"].model).predict_proba_one(x) == \
        classifier(b.registry.versions["v1"].model).predict_proba_one(x)


def test_the_replay_command_compares_with_river() -> None:
    result = CliRunner().invoke(cli, ["replay", "--source", "sea", "--events", "1000", "--delay-rows", "20",
                                      "--compare-river"], prog_name="weir")
    assert result.exit_code == 0, result.output
    assert "river accuracy" in result.output and "difference 0.00e+00" in result.output


def test_a_serve_worker_without_a_learner_takes_newer_snapshots_only() -> None:
    model = build_model("logistic_regression", {})
    model.learn_one({"x": 1.0}, True)
    follower, learner = ModelRegistry("m", follows_snapshots=True), ModelRegistry("m")
    for registry in (follower, learner):
        registry.apply(version_record("m", "v1", "logistic_regression", {}))
        registry.apply(snapshot_record("m", "v1", pickle.dumps(model), learned=10))
    assert follower.versions["v1"].snapshot_learned == 10
    assert classifier(follower.versions["v1"].model).predict_proba_one({"x": 1.0}) == \
        classifier(model).predict_proba_one({"x": 1.0})
    assert learner.versions["v1"].snapshot_learned == 0  # the learner's own live model is never replaced
    older = build_model("logistic_regression", {})
    follower.apply(snapshot_record("m", "v1", pickle.dumps(older), learned=5))
    assert follower.versions["v1"].snapshot_learned == 10  # an older snapshot does not roll the copy back


def test_replaying_topics_refuses_a_fixed_delay_and_a_time_it_cannot_read() -> None:
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--delay", "5s"], prog_name="weir")
    assert result.exit_code == 2 and "real label times" in result.output
    result = CliRunner().invoke(cli, ["replay", "--source", "topics", "--since", "\u00b2"], prog_name="weir")
    assert result.exit_code == 2 and "neither epoch milliseconds nor an ISO 8601 time" in result.output


def _timed_file(tmp_path: Path, rows: int = 1_500, *, entities: bool = False) -> Path:
    """A CSV of sea events with irregular times in ms (gaps of 1 to 2,000 ms); no entity column unless asked (a
    replay needs none)."""
    stream = events("sea", rows)
    rng = random.Random(7)
    times = list(itertools.accumulate(rng.randint(1, 2_000) for _ in stream))
    frame = pd.DataFrame([{**e.attributes, "label": e.label, "t": 1_700_000_000_000 + t,
                           **({"entity_id": e.entity_id} if entities else {})} for e, t in
                          zip(stream, times, strict=True)])
    path = tmp_path / "timed.csv"
    frame.to_csv(path, index=False)
    return path


def _replay(*args: str) -> Result:
    return CliRunner().invoke(cli, ["replay", "--no-progress", *args], prog_name="weir")


def test_a_delay_in_time_is_compared_with_river_in_the_same_time(tmp_path: Path) -> None:
    """With --time-column, the delay is a duration: river is given the same moment and delay, and agrees."""
    path = str(_timed_file(tmp_path))
    timed = _replay("--source", path, "--time-column", "t", "--delay", "30s", "--compare-river")
    assert timed.exit_code == 0, timed.output
    assert "(delay 30000 ms)" in timed.output
    assert timed.output.count("difference 0.00e+00") == 2, timed.output
    rows = _replay("--source", path, "--time-column", "t")
    assert rows.exit_code == 0 and _accuracy(rows.output) != _accuracy(timed.output)  # the delay changed something


def _accuracy(output: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith("accuracy "))


@pytest.mark.parametrize("args,refusal", [
    (["--source", "sea", "--delay", "30s"], "--delay (the events have no times"),
    (["--source", "{timed}", "--time-column", "t", "--delay-rows", "5"], "--delay-rows (the events have times"),
    (["--source", "{timed}", "--time-column", "t", "--drift", "abrupt@0.5"], "--drift (a file is what it is)"),
    (["--source", "{timed}", "--time-column", "t", "--seed", "3"], "--seed (a file is what it is)"),
    (["--source", "sea", "--since", "0"], "--since (it bounds a topic range"),
    (["--source", "sea", "--time-column", "t"], "--time-column (it names a file's column)"),
    (["--source", "topics", "--events", "10"], "--events (topics hold what they hold)"),
    (["--source", "topics", "--compare-river"], "--compare-river (topics carry their real label times)"),
])
def test_an_option_that_does_not_apply_is_refused(tmp_path: Path, args: list[str], refusal: str) -> None:
    timed = str(_timed_file(tmp_path, rows=50))
    result = _replay(*[a.replace("{timed}", timed) for a in args])
    assert result.exit_code == 2 and refusal in result.output, result.output


def test_a_delay_without_a_unit_is_refused() -> None:
    result = _replay("--source", "sea", "--delay", "20")
    assert result.exit_code == 2 and "not a duration with a unit" in result.output


def test_a_time_column_never_silently_becomes_a_feature(tmp_path: Path) -> None:
    path = str(_timed_file(tmp_path, rows=50))
    frame = pd.read_csv(path).rename(columns={"t": "timestamp"})
    frame.to_csv(path, index=False)
    result = _replay("--source", path)
    assert result.exit_code == 1 and "column 'timestamp' looks like a time" in result.output, result.output
    assert _replay("--source", path, "--time-column", "timestamp").exit_code == 0


def test_history_can_be_rebased_to_now_with_its_spacing_kept(tmp_path: Path) -> None:
    path = _timed_file(tmp_path, rows=50)
    columns = FileColumns(None, "label", "t")
    old = list(file_source(path, columns).events)
    source = file_source(path, columns, rebase_to_ms=2_000_000_000_000)
    rebased = list(source.events)
    assert source.newest_time_ms == rebased[-1].event_time_ms == 2_000_000_000_000
    assert [b.event_time_ms - a.event_time_ms for a, b in itertools.pairwise(rebased)] == \
        [b.event_time_ms - a.event_time_ms for a, b in itertools.pairwise(old)]


def test_produce_warns_before_sending_history_that_would_all_be_late(tmp_path: Path) -> None:
    path = str(_timed_file(tmp_path, rows=5, entities=True))
    result = CliRunner().invoke(cli, ["--bootstrap", "127.0.0.1:1", "produce", "--source", path, "--time-column", "t",
                                      "--no-progress"], prog_name="weir", env={"WEIR_CONNECT_TIMEOUT_S": "1"})
    assert "every event would be dead-lettered as late-event" in result.output and "--rebase-time" in result.output
    assert result.exit_code == 1  # then no broker answers
    rebased = CliRunner().invoke(cli, ["--bootstrap", "127.0.0.1:1", "produce", "--source", path, "--time-column",
                                       "t", "--rebase-time", "--no-progress"], prog_name="weir",
                                 env={"WEIR_CONNECT_TIMEOUT_S": "1"})
    assert "dead-lettered as late-event" not in rebased.output and rebased.exit_code == 1
    refused = CliRunner().invoke(cli, ["produce", "--source", "sea", "--rebase-time"], prog_name="weir")
    assert refused.exit_code == 2 and "give a file with --time-column" in refused.output


def test_produce_warns_before_sending_a_file_whose_source_the_rules_do_not_declare(tmp_path: Path) -> None:
    """A file's events carry the source file:<name>: without rules of that name the front refuses every one."""
    path = str(_timed_file(tmp_path, rows=5, entities=True))

    def produce(**env: str) -> Result:
        return CliRunner().invoke(cli, ["--bootstrap", "127.0.0.1:1", "produce", "--source", path, "--time-column",
                                        "t", "--rebase-time", "--no-progress"], prog_name="weir",
                                  env={"WEIR_CONNECT_TIMEOUT_S": "1", **env})

    warned = produce()
    assert "source 'file:timed.csv' has no validation rules" in warned.output
    assert "every event would be dead-lettered as unknown-source" in warned.output and warned.exit_code == 1
    rules = tmp_path / "rules.yaml"
    rules.write_text('sources:\n  "file:timed.csv":\n    fields:\n      x0: {type: number, required: true}\n')
    declared = produce(WEIR_RULES_FILE=str(rules))
    assert "no validation rules" not in declared.output and declared.exit_code == 1  # then no broker answers
