"""The README's main command as a newcomer meets it: no broker running, an empty Weir home, ports of its own.

Every other integration test shares the session's broker, so the demo under
test finds one running and never starts or stops its own. This test is the
one that sees what a first-time user sees: `make demo` provisions and starts
a broker, runs the loop, writes a reconciled summary, stops the broker and
leaves no process behind.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from apps.processes import free_port
from tests.conftest import REPO
from weir.kafka import local as local_kafka
from weir.settings import Settings


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """A process that runs (a zombie waiting to be reaped has finished running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _processes_mentioning(text: str) -> list[str]:
    """Running processes whose command line or environment contains ``text`` (our temporary folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or not _alive(int(proc.name)):
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if text.encode() in seen:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {command[:200]}")
    return found


@pytest.mark.integration
def test_make_demo_on_a_fresh_machine_starts_and_stops_its_own_broker(tmp_path: Path) -> None:
    home, runs = tmp_path / "weir-home", tmp_path / "runs"
    kafka_port, controller_port = free_port(), free_port()
    assert not _listening(kafka_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEIR_", "MAKE", "MFLAGS"))}
    env.update(WEIR_HOME=str(home), WEIR_STATE_DIR=str(home / "state"), WEIR_LOCAL_KAFKA_PORT=str(kafka_port),
               WEIR_LOCAL_CONTROLLER_PORT=str(controller_port))
    done = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "demo", "EVENTS=1500", f"RUNS={runs}"],
                          env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    started = re.search(rf"Kafka started at 127\.0\.0\.1:{kafka_port} \(pid (\d+)", done.stdout)
    assert started, "the demo did not start a broker of its own:\n" + done.stdout[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: "), last
    path = Path(last.removeprefix("summary: "))
    summary = json.loads(path.read_text())
    assert summary["reconciled"] is True and summary["drained"] is True, summary
    assert summary["served"] == 1500 and summary["events_produced"] == 1500 + summary["events_resent"]
    assert summary["events_produced"] == summary["served"] + summary["events_dead_lettered"]
    assert summary["served_twice"] == 0
    # v1, trained on history, serves from the first event (1,500 events are too few for the policy to act)
    assert summary["versions"]["v1"]["served"] == summary["served"] and summary["accuracy"] is not None
    assert (path.parent / "policy.yaml").exists() and isinstance(summary["decisions"], list)
    assert summary["problems"] == []

    assert not _alive(int(started.group(1))), "the broker the demo started is still running"
    assert not _listening(kafka_port) and not _listening(controller_port)
    assert _processes_mentioning(str(tmp_path)) == []
    assert not (home / "kafka.pid").exists()


def _own_broker_env(home: Path) -> tuple[dict[str, str], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_")}
    env.update(WEIR_HOME=str(home), WEIR_LOCAL_KAFKA_PORT=str(port), WEIR_LOCAL_CONTROLLER_PORT=str(free_port()))
    return env, port


@pytest.mark.integration
def test_kafka_run_stops_the_broker_it_started(tmp_path: Path) -> None:
    env, port = _own_broker_env(tmp_path / "weir-home")
    inside = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).close()"
    done = subprocess.run([sys.executable, "-m", "apps", "kafka", "run", "--", sys.executable, "-c", inside],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # the command found the broker up
    assert "broker started" in done.stderr and "stopped the broker it started" in done.stderr
    assert not _listening(port)
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.integration
def test_kafka_run_leaves_a_running_broker_running_and_passes_on_the_exit_code(broker: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_")}
    env.update({f"WEIR_{k.upper()}": str(v) for k, v in broker.model_dump().items() if v is not None})
    done = subprocess.run([sys.executable, "-m", "apps", "kafka", "run", "--", "sh", "-c", "exit 3"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "already running" in done.stderr and "stopped" not in done.stderr
    assert local_kafka.status(broker).running
