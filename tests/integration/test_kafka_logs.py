"""A bootstrap nobody listens on: a few lines on stderr and the one that says why, not librdkafka's stream.

Needs no broker: the port is one nothing listens on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.processes import free_port

COMMANDS = [["produce", "--events", "5"], ["topics", "create"],
            # Those that read what the cluster holds, a tail that would otherwise wait for ever among them.
            ["models", "list"], ["models", "show", "v1"], ["models", "history"], ["deploy", "promote"],
            ["dlq", "inspect"], ["alerts", "tail"], ["data", "snapshot", "--out", "{tmp}/snapshot"],
            ["replay", "--source", "topics"]]


@pytest.mark.integration
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_dead_bootstrap_prints_a_summary_not_librdkafkas_stream(command: list[str], tmp_path: Path) -> None:
    """librdkafka's cause once, how often it said so, and last the line that says why: nothing after it."""
    bootstrap = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_")}
    env.update(WEIR_KAFKA_BOOTSTRAP=bootstrap, WEIR_CONNECT_TIMEOUT_S="3")
    done = subprocess.run([sys.executable, "-m", "apps", *(a.format(tmp=tmp_path) for a in command)], env=env,
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(lines) <= 10, done.stderr[-3000:]
    assert lines[-1] == (f"weir: no Kafka broker answered at {bootstrap} within 3 s: Failed to get metadata: "
                         "Local: Broker transport failure")
    # librdkafka's cause, once, and how often it said so
    assert sum("Connection refused" in line for line in lines) == 2, done.stderr
    assert any(line.startswith("librdkafka: FAIL ") and " more times" in line for line in lines), done.stderr
