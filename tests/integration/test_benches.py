"""Every benchmark in bench/ runs its smoke (``--smoke``: seconds, tiny sizes, the same code paths, the real broker)
and prints its figures: a bench that can no longer run fails here, not on the day someone needs its figures.

The smokes run as the user runs them (``python -m bench.NAME --smoke``), all started at once: most of each is
waiting on worker processes and the broker, so together they take little longer than the longest alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.processes import settings_env
from bench.e2e import PARTS
from bench.harness import CommittedReader
from tests.conftest import REPO
from weir.clock import poll_until
from weir.contract.topics import PREDICTIONS
from weir.kafka.clients import make_producer, make_transactional_producer, produce
from weir.settings import Settings

# Each smoke: its command line after ``python -m``, and the figures it prints (the names before ": "); a bench that
# printed nothing, or lost a figure, fails. bench.e2e runs as three processes, its parts apart, to take a third as
# long as one would.
SMOKES: dict[str, tuple[list[str], list[str]]] = {
    "throughput": (["bench.throughput"], ["confluent-kafka consume(1000) loop", "faust agent, async for",
                                          "skeleton end to end (served and learned)"]),
    "e2e loop": (["bench.e2e", "--only", "plain,loop"], [
        "plain loop", "whole loop, exactly-once on", "whole loop, exactly-once off", "cost of exactly-once"]),
    "e2e latency, serve": (["bench.e2e", "--only", "latency,serve"], [
        "latency, event sent to served prediction readable (read_committed)",
        "latency, old measure (event time to predicted_at, before the commit)",
        "serve alone, plain confluent-kafka transactional loop", "serve alone, Weir serve stage"]),
    "e2e scale": (["bench.e2e", "--only", "scale"], ["fused front, 1 worker process",
                                                     "fused front, 2 worker processes"]),
    "serve": (["bench.serve"], ["1 active version", "3 active versions",
                                "routing change to first prediction under it readable (read_committed)",
                                "Avro per event"]),
    "learn": (["bench.learn"], ["1 active version", "3 active versions"]),
    "soak": (["bench.soak"], ["capacity", "live", "served twice", "largest lag", "exactly once"]),
    "front_state": (["bench.front_state"], [
        "front CPU per event, remembering served ids (µs)", "front CPU per event, memory holding nothing (µs)",
        "front cost of the memory (ratio)", "restore of a partition of 5000 ids (ids/s)", "state file after it (MB)"]),
    "drift": (["bench.drift"], [f"{g} {m} {measure}" for g in ("churn", "simple", "sea", "agrawal", "hyperplane",
                                                                "sine", "rbf", "friedman", "mv")
                                for m in (("linear",) if g in ("friedman", "mv") else ("linear", "tree"))
                                for measure in ("false alerts per 100k", "data drift", "concept drift")]
              + ["worst row, false alerts per 100k"]),
    "calibrate": (["bench.calibrate"], ["delta 0.00032", "delta 0.1", "table", "table in use"]),
    "retrain": (["bench.retrain"], ["run 1", "front latency p99 during a retraining / before it",
                                    "retraining time"]),
    "policy": (["bench.policy"], [f"{g} {m} {scenario}" for g in ("churn", "simple", "agrawal", "hyperplane")
                                  for m in ("linear", "tree")
                                  for scenario in ("better", "equal", "worse canary", "equal canary", "better canary",
                                                   "runs of 1000, 3 points", "seasonal 4 points, period 4000, canary",
                                                   "twins", "twins, canary")]
               + ["all streams, better", "all streams, runs of 20, 3 points, canary", "false promotion",
                  "false rollback"]),
    "http_service": (["bench.http_service"], [
        "minimal, concurrency 16 (wrk, 2 s)", "weir, concurrency 16 (wrk, 2 s)", "throughput ratio weir/minimal",
        "minimal, 100 requests/s offered (open loop, 2 s)", "weir, 100 requests/s offered (open loop, 2 s)",
        "weir p99 at 100 requests/s", "routing change to the first answer under it"]),
}
HELPERS = {"broker", "harness", "minimal_http", "quix_serve"}  # modules of bench/ that are no benchmark
SMOKE_DEADLINE_S = 420.0  # from the start of all smokes together; a smoke alone takes seconds to two minutes


@dataclass
class Smoke:
    """One bench's smoke, running as its own process group (so that a hung one is killed with its workers)."""

    name: str
    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float

    @property
    def command(self) -> str:
        return f"python -m {' '.join(SMOKES[self.name][0])} --smoke"

    @classmethod
    def start(cls, name: str, settings: Settings) -> Smoke:
        out, err = (Path(tempfile.mkstemp(prefix=f"weir-smoke-{name.replace(' ', '')}-", suffix=suffix)[1])
                    for suffix in (".out", ".err"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen([sys.executable, "-m", *SMOKES[name][0], "--smoke"], cwd=REPO,
                                       env=settings_env(settings), stdout=stdout, stderr=stderr,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        return cls(name, process, out, err, time.monotonic())

    def finish(self) -> tuple[int, str, str]:
        """Its exit code, standard output and error; killed, with its children, past the deadline."""
        try:
            code = self.process.wait(max(1.0, self.started + SMOKE_DEADLINE_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
            with self.err.open("a") as err:
                err.write(f"\nkilled: still running {SMOKE_DEADLINE_S:.0f} s after the smokes started\n")
        return code, self.out.read_text(errors="replace"), self.err.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def smokes(broker: Settings, request: pytest.FixtureRequest) -> Iterator[dict[str, Smoke]]:
    """The smokes of the benches this session tests, all started at once."""
    wanted = {str(item.callspec.params["name"]) for item in request.session.items
              if isinstance(item, pytest.Function) and item.module is request.module and hasattr(item, "callspec")}
    started = {name: Smoke.start(name, broker) for name in sorted(wanted)}
    try:
        yield started
    finally:
        for smoke in started.values():
            smoke.kill()


def test_every_bench_and_part_is_smoke_tested() -> None:
    benches = {p.stem for p in (REPO / "bench").glob("*.py")} - {"__init__"} - HELPERS
    assert benches == {argv[0].removeprefix("bench.") for argv, _ in SMOKES.values()}, \
        "a bench in bench/ needs a --smoke mode and its figures listed here"
    e2e_parts = [part for argv, _ in SMOKES.values() if argv[0] == "bench.e2e" for part in argv[2].split(",")]
    assert sorted(e2e_parts) == sorted(PARTS)


@pytest.mark.parametrize("name", sorted(SMOKES))
def test_bench_smoke_runs_and_prints_its_figures(name: str, smokes: dict[str, Smoke]) -> None:
    smoke = smokes[name]
    code, out, err = smoke.finish()
    assert code == 0, f"{smoke.command} exited with {code}:\n{err[-4000:]}"
    printed = [line.split(": ", 1)[0] for line in out.splitlines() if ": " in line]
    missing = [f for f in SMOKES[name][1] if f not in printed]
    assert not missing, f"{smoke.command} did not print {missing}; it printed:\n{out}"


def test_committed_reader_receives_a_record_once_its_transaction_commits(kafka: Settings) -> None:
    """The bench's latencies end when this reader gets a record: never before the transaction that wrote it
    committed, as a reader of predictions would see it."""
    topic = kafka.topic(PREDICTIONS.name)  # the reader reads bytes: these need not be predictions
    transactional = make_transactional_producer(kafka, f"{kafka.app_id}-reader-test")
    transactional.init_transactions(30)
    plain = make_producer(kafka)
    reader = CommittedReader(kafka, topic)
    try:
        transactional.begin_transaction()
        produce(transactional, topic, b"in the transaction", b"k", partition=0)
        transactional.flush(30)
        produce(plain, topic, b"outside it", b"k", partition=1)
        plain.flush(30)
        poll_until(lambda: any(value == b"outside it" for _, value in reader.received), timeout_s=60,
                   what="the record outside the transaction")
        assert [value for _, value in reader.received] == [b"outside it"]
        committing = time.time() * 1000
        transactional.commit_transaction(30)
        poll_until(lambda: len(reader.received) == 2, timeout_s=60, what="the committed record")
        received_at, value = reader.received[1]
        assert value == b"in the transaction" and received_at >= committing
    finally:
        reader.stop()
