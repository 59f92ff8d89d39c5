"""One prediction per event id: events resent under their id are served once, counted from the topics, while the front
is killed with kill -9 and comes back, half the time on a machine without its state file (its memory of served ids
then comes from the changelog alone)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from apps.processes import settings_env, start_worker, stop_process
from tests.integration.test_exactly_once import _labels_learned, _two_versions
from weir.clock import poll_until
from weir.contract.deadletter import read_headers
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, PREDICTIONS
from weir.kafka.reading import end_offsets, read_topic
from weir.settings import Settings

EVENTS = 12_000


def test_resent_events_are_served_once_across_kill_9_of_the_front(kafka: Settings, catalog: SchemaCatalog,
                                                                   tmp_path: Path) -> None:
    settings = kafka.with_overrides(state_dir=tmp_path / "state-0", snapshot_every_s=1.0)
    _two_versions(settings, catalog)
    producer = subprocess.Popen(
        [sys.executable, "-m", "apps", "produce", "--source", "churn", "--events", str(EVENTS), "--rate", "500",
         "--drift", "none", "--feedback-delay", "fixed:0.5", "--resend", "0.2", "--no-progress"],
        env=settings_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = tmp_path / "front.log"
    predictions = settings.topic(PREDICTIONS.name)
    back = start_worker(settings, tmp_path / "back.log", "back")
    front = start_worker(settings, log, "front", loglevel="info")
    try:
        for kill in range(1, 5):
            written = end_offsets(settings, predictions)

            def serving(before: int = written) -> bool:
                return end_offsets(settings, predictions) > before + 1_000

            poll_until(serving, timeout_s=120, interval_s=0.2, what=f"the front serving before kill {kill}")
            assert front.poll() is None, f"the front exited by itself; see {log}"
            front.send_signal(signal.SIGKILL)
            front.wait()
            moved = settings.with_overrides(state_dir=tmp_path / f"state-{kill}")  # a new machine, no state file
            front = start_worker(moved if kill % 2 else settings, log, "front", loglevel="info")
        out, _ = producer.communicate(timeout=300)
        assert producer.returncode == 0, out.decode()
        resent = int(re.search(rb"\((\d+) resent on purpose\)", out).group(1))  # type: ignore[union-attr]
        poll_until(lambda: _labels_learned(settings, catalog) >= EVENTS, timeout_s=300, interval_s=1.0,
                   what=f"all {EVENTS} labels learned")
    finally:
        producer.kill()
        assert stop_process(front) == 0, log.read_text()[-3000:]
        assert stop_process(back) == 0

    serde = topic_serde(catalog, settings, PREDICTIONS)
    served: Counter[str] = Counter()
    for r in read_topic(settings, predictions, timeout_s=120):
        p = serde.decode(r.value)
        served[p["event_id"]] += p["served"]
    reasons = Counter(read_headers(r.headers)["reason"] for r in read_topic(settings, settings.topic(EVENTS_DLQ.name)))
    assert len(served) == EVENTS and set(served.values()) == {1}, \
        f"served twice: {sum(n > 1 for n in served.values())}; never: {EVENTS - len(served)}"
    assert resent > EVENTS // 10 and reasons == {"duplicate-event": resent}
    assert "restored partition" in log.read_text()  # the fronts on new machines rebuilt their memory
