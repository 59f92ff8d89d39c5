"""The demo rides out a 90 s broker outage with no one stepping in: every event served once, every label learned.

The demo kills its own broker with kill -9 at 70% of the stream and starts it
again 90 s later. Meanwhile the producer buffers, the stage loops fail their
sessions and retry with back-off, and a learner the demo restarted just before
waits for the cluster at start; the summary then reconciles from the topics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apps.processes import free_port
from tests.conftest import REPO
from weir.kafka import local as local_kafka
from weir.settings import Settings


def test_the_demo_survives_a_90_s_broker_outage(tmp_path: Path) -> None:
    home = tmp_path / "weir-home"
    kafka_port, controller_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_")}
    env.update(WEIR_HOME=str(home), WEIR_STATE_DIR=str(home / "state"), WEIR_LOCAL_KAFKA_PORT=str(kafka_port),
               WEIR_LOCAL_CONTROLLER_PORT=str(controller_port))
    done = subprocess.run([sys.executable, "-m", "apps", "demo", "--events", "4000", "--rate", "400",
                           "--broker-outage", "90", "--runs-dir", str(tmp_path / "runs")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "killed the broker (kill -9)" in output and "the broker is back" in output, output[-4000:]
    summary = json.loads(Path(done.stdout.strip().splitlines()[-1].removeprefix("summary: ")).read_text())
    assert summary["broker_outage_s"] == 90 and summary["learner_restarts"] == 1
    assert summary["reconciled"] is True and summary["served_twice"] == 0 and summary["problems"] == []
    assert summary["served"] == 4000  # each event id once: the demo resends some, which are dead-lettered
    assert summary["events_dead_lettered"] == summary["duplicates_dead_lettered"] == summary["events_resent"] > 0
    assert summary["feedback_learned"] > 0
    settings = Settings(home=home, local_kafka_port=kafka_port, local_controller_port=controller_port)
    assert local_kafka.status(settings).pid is None  # the demo stopped the broker it started
