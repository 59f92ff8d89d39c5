"""`weir produce` on the real broker: a clean stop on SIGINT, every accepted record accounted for."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from apps.processes import free_port, settings_env
from weir.clock import poll_until
from weir.kafka.reading import end_offsets
from weir.settings import Settings


def test_produce_stops_cleanly_on_sigint_and_accounts_for_what_it_sent(kafka: Settings, tmp_path: Path) -> None:
    """SIGINT: what was accepted is flushed, labels already due are sent, and the summary adds up."""
    port = free_port()
    with open(tmp_path / "produce.log", "wb") as log:
        producer = subprocess.Popen([sys.executable, "-m", "apps", "produce", "--events", "1000000", "--rate", "400",
                                     "--feedback-delay", "fixed:0.2", "--no-progress", "--metrics-port", str(port)],
                                    env=settings_env(kafka), stdout=log, stderr=subprocess.STDOUT)
        poll_until(lambda: end_offsets(kafka, kafka.topic("events.raw")) >= 200, timeout_s=60, what="events flowing")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'weir_produced_total{outcome="delivered",topic="events.raw"}' in metrics
        producer.send_signal(signal.SIGINT)
        assert producer.wait(timeout=60) == 0
    output = (tmp_path / "produce.log").read_text()
    assert "(interrupted)" in output
    sent = int(output.split("events: ")[1].split(" sent")[0])
    assert f"{sent} sent (0 resent on purpose), {sent} delivered, 0 failed" in output
    assert end_offsets(kafka, kafka.topic("events.raw")) == sent  # nothing accepted was lost
