"""A stage loop supervises its stage on the real broker: a stage that raises is restarted with back-off and loses
nothing; one that keeps failing gives up with its reason, and its worker exits 70; an output too large to write
becomes a dead letter instead of a stall; the worker's /livez and /readyz say how its loops are."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from apps.processes import free_port, settings_env, start_worker, stop_process
from streams.runtime import loop as loop_module
from streams.runtime.loop import StageLoop
from streams.runtime.metrics import StageMetrics
from streams.runtime.stage import MAX_RECORD_BYTES
from tests.support import http_status
from weir.clock import poll_until
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord, OutRecord
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, EVENTS_VALID
from weir.kafka.clients import make_producer, make_transactional_producer, produce
from weir.kafka.reading import read_topic
from weir.settings import Settings


class Echo:
    """Copies each record to ``events.valid``; chokes on ``boom`` the first ``fails`` times it sees it, and
    writes an output too large to commit for ``big``."""

    name = "echo"

    def __init__(self, settings: Settings, fails: int) -> None:
        self.inputs = (settings.topic(EVENTS_RAW.name),)
        self.out = settings.topic(EVENTS_VALID.name)
        self.outputs = (self.out,)
        self.fails = fails

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        out = []
        for r in batch:
            if r.value == b"boom" and self.fails > 0:
                self.fails -= 1
                raise RuntimeError("choked on boom")
            value = b"x" * (MAX_RECORD_BYTES + 1) if r.value == b"big" else r.value
            out.append(OutRecord(self.out, r.key, value))
        return out

    def tick(self) -> list[OutRecord]:
        return []


def _send(settings: Settings, values: list[bytes]) -> None:
    producer = make_producer(settings)
    for i, value in enumerate(values):
        produce(producer, settings.topic(EVENTS_RAW.name), value, f"k{i % 5}".encode())
    assert producer.flush(30) == 0


def _run_loop(settings: Settings, stage: Echo, done: int) -> tuple[StageLoop, CollectorRegistry, list[str]]:
    """Run the stage's loop until ``done`` records are on events.valid or it gives up; then stop it."""
    registry = CollectorRegistry()
    given_up: list[str] = []
    loop = StageLoop(settings, stage, StageMetrics(registry), lambda gave_up: given_up.append(gave_up.gave_up or ""))

    async def run() -> None:
        await loop.start()
        try:
            deadline = asyncio.get_running_loop().time() + 120
            while not given_up and _count(settings, stage.out) < done:
                assert asyncio.get_running_loop().time() < deadline, "the loop neither finished nor gave up"
                await asyncio.sleep(0.5)  # the loop runs on this event loop: poll it, yielding
        finally:
            await loop.stop()

    asyncio.run(run())
    return loop, registry, given_up


def _count(settings: Settings, topic: str) -> int:
    return sum(1 for _ in read_topic(settings, topic))


def _restarts(registry: CollectorRegistry, cause: str) -> float:
    return registry.get_sample_value("weir_stage_restarts_total", {"stage": "echo", "cause": cause}) or 0.0


def test_a_stage_that_raises_is_restarted_and_every_record_is_written_once(kafka: Settings) -> None:
    values = [f"r{i}".encode() for i in range(300)]
    values[150] = b"boom"
    _send(kafka, values)
    loop, registry, given_up = _run_loop(kafka, Echo(kafka, fails=2), done=300)
    assert given_up == [] and loop.gave_up is None
    assert _restarts(registry, "stage") == 2
    written = Counter(r.value or b"" for r in read_topic(kafka, kafka.topic(EVENTS_VALID.name)))
    assert sorted(written) == sorted(values) and set(written.values()) == {1}  # all of them, each once


def test_a_stage_that_keeps_failing_gives_up_with_its_reason(kafka: Settings) -> None:
    settings = kafka.with_overrides(stage_restart_limit=3)
    _send(settings, [b"a", b"b", b"boom", b"c"])
    loop, registry, given_up = _run_loop(settings, Echo(settings, fails=10**6), done=10**6)
    assert len(given_up) == 1 and given_up == [loop.gave_up]
    assert "stage echo failed 3 times in a row" in given_up[0] and "choked on boom" in given_up[0]
    assert _restarts(registry, "stage") == 2  # the third failure is not restarted
    assert registry.get_sample_value("weir_stage_up", {"stage": "echo"}) == 0


def test_an_output_too_large_to_write_is_dead_lettered_and_the_stage_goes_on(kafka: Settings) -> None:
    _send(kafka, [b"a", b"big", b"b"])
    loop, registry, given_up = _run_loop(kafka, Echo(kafka, fails=0), done=2)
    assert given_up == [] and _restarts(registry, "kafka") == 0 and _restarts(registry, "stage") == 0
    assert sorted(r.value or b"" for r in read_topic(kafka, kafka.topic(EVENTS_VALID.name))) == [b"a", b"b"]
    [letter] = read_topic(kafka, kafka.topic(EVENTS_DLQ.name))
    headers = read_headers(letter.headers)
    assert letter.value == b"" and headers["reason"] == "oversized-output" and headers["value.dropped"] == "true"
    assert headers["output.topic"] == kafka.topic(EVENTS_VALID.name)
    assert int(headers["original.bytes"]) == MAX_RECORD_BYTES + 1


def test_a_worker_whose_stage_cannot_run_exits_70_with_the_reason_and_probes_tell(kafka: Settings,
                                                                                   tmp_path: Path) -> None:
    """Two learners on one state file: the second cannot open it, retries, gives up, and says why."""
    first = kafka.with_overrides(web_port=free_port(), state_dir=tmp_path / "state")
    holder = start_worker(first, tmp_path / "holder.log", "back")
    try:
        poll_until(lambda: http_status(first.web_port, "/readyz") == 200, timeout_s=90, what="the first learner ready")
        assert http_status(first.web_port, "/livez") == 200
        second = first.with_overrides(web_port=free_port(), stage_restart_limit=2)
        done = subprocess.run([sys.executable, "-m", "apps", "worker", "--stage", "back"], env=settings_env(second),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 70, done.stderr[-3000:]
        last = done.stderr.strip().splitlines()[-1]
        assert "stage back failed 2 times in a row" in last and "in use by another process" in last, last
        assert holder.poll() is None and http_status(first.web_port, "/livez") == 200
    finally:
        assert stop_process(holder) == 0


class HangsOnSendOffsets:
    """A transactional producer whose send_offsets_to_transaction blocks past any timeout, as librdkafka's does
    when the group coordinator went away (#5456); everything else is the real producer's."""

    def __init__(self, real: Producer, release: threading.Event) -> None:
        self.real, self.release = real, release

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self.release.wait()


def test_a_hung_client_call_makes_the_loop_give_up_at_once_without_waiting_for_it(
        kafka: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(loop_module, "make_transactional_producer",
                        lambda *args, **kwargs: HangsOnSendOffsets(make_transactional_producer(*args, **kwargs),
                                                                   release))
    monkeypatch.setattr(loop_module, "HUNG_AFTER_S", 2.0)
    _send(kafka, [b"a", b"b"])
    try:
        loop, registry, given_up = _run_loop(kafka, Echo(kafka, fails=0), done=10**6)
    finally:
        release.set()  # let the test process's stuck thread end
    assert loop.hung and len(given_up) == 1
    assert "send_offsets_to_transaction did not return within 2 s" in given_up[0] and "#5456" in given_up[0]
    assert _count(kafka, kafka.topic(EVENTS_VALID.name)) == 0  # nothing of the batch was committed
