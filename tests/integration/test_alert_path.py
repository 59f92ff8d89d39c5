"""The Prometheus alert path end to end: a real Prometheus and Alertmanager fire a rule at the alert sink's
webhook, which forwards it; an alert on the topic is forwarded too."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.processes import free_port, settings_env, start_worker, stop_process
from tests.conftest import REPO
from weir.clock import poll_until
from weir.contract.records import Alert
from weir.contract.serde import open_catalog, topic_serde
from weir.contract.topics import ALERTS
from weir.kafka.clients import make_producer
from weir.settings import Settings

RULES = REPO / "deploy" / "prometheus" / "rules.yml"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # the JSON bodies POSTed to the hook, as they came

    def do_POST(self) -> None:  # noqa: N802
        Receiver.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_rule_fires_through_prometheus_and_alertmanager_to_the_sink(
    kafka: Settings, tmp_path: Path, receiver: str, system_tool: Callable[[str], str]
) -> None:
    worker_port, prometheus_port, alertmanager_port, sink_port = (free_port() for _ in range(4))
    worker_settings = kafka.with_overrides(web_port=worker_port)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES), str(REPO / "tests" / "prometheus" / "e2e_rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": "weir", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
    }))
    # The receiver wants its token, and Alertmanager sends it as deploy/alertmanager/alertmanager.yml says to.
    [shipped] = [h for r in yaml.safe_load(ALERTMANAGER.read_text())["receivers"] for h in r["webhook_configs"]]
    token = shipped["http_config"]["authorization"]["credentials"]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "sink", "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "sink", "webhook_configs": [{"url": f"http://127.0.0.1:{sink_port}/alertmanager",
                                                            "http_config": shipped["http_config"]}]}],
    }))
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("prometheus", "alertmanager", "sink")}
    processes = [
        start_worker(worker_settings, tmp_path / "worker.log", "validate"),
        subprocess.Popen([system_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                          f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                         stdout=logs["prometheus"], stderr=subprocess.STDOUT),
        subprocess.Popen([system_tool("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
                          f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                          "--cluster.listen-address="], stdout=logs["alertmanager"], stderr=subprocess.STDOUT),
        subprocess.Popen([*_weir(), "alerts", "serve", "--port", str(sink_port), "--forward-url", receiver],
                         env=settings_env(kafka.with_overrides(alert_receiver_token=token)), stdout=logs["sink"],
                         stderr=subprocess.STDOUT),
    ]
    try:
        poll_until(lambda: any(a["alert"].get("labels", {}).get("alertname") == "WeirWorkerScraped"
                               for a in Receiver.received), timeout_s=120, interval_s=0.5,
                   what="the rule's alert forwarded by the sink")
    finally:
        for p in processes:
            stop_process(p)
        for f in logs.values():
            f.close()
    fired = next(a for a in Receiver.received if a["alert"]["labels"]["alertname"] == "WeirWorkerScraped")
    assert fired["origin"] == "alertmanager" and fired["alert"]["status"] == "firing"
    assert fired["alert"]["labels"]["severity"] == "info"


def _weir() -> list[str]:
    return [sys.executable, "-m", "apps"]


def test_an_alert_on_the_topic_is_forwarded_too(kafka: Settings, tmp_path: Path, receiver: str) -> None:
    sink_port, metrics_port = free_port(), free_port()
    with open(tmp_path / "sink.log", "wb") as log:
        sink = subprocess.Popen([*_weir(), "alerts", "serve", "--port", str(sink_port), "--forward-url", receiver,
                                 "--metrics-port", str(metrics_port)],
                                env=settings_env(kafka), stdout=log, stderr=subprocess.STDOUT)
        try:
            serde = topic_serde(open_catalog(kafka), kafka, ALERTS)
            alert: Alert = {
                "alert_id": "a1", "kind": "data_drift", "severity": "warning", "subject": "age", "status": "FIRING",
                "statistic": 0.4, "threshold": 0.1, "evidence": {"psi": "0.4"}, "runbook": "look", "detected_at": 1}
            producer = make_producer(kafka)
            producer.produce(serde.topic, key=b"data_drift:age", value=serde.encode(alert))
            producer.flush(10)
            poll_until(lambda: any(a["origin"] == "alerts-topic" for a in Receiver.received), timeout_s=60,
                       interval_s=0.2, what="the topic's alert forwarded")
            poll_until(lambda: 'weir_alerts_forwarded_total{outcome="delivered"} 1.0' in urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode(), timeout_s=10,
                what="the forwarded alert counted on /metrics")  # what WeirAlertForwardingFailing reads
        finally:
            stop_process(sink)
    forwarded = next(a for a in Receiver.received if a["origin"] == "alerts-topic")["alert"]
    assert (forwarded["kind"], forwarded["subject"], forwarded["status"]) == ("data_drift", "age", "FIRING")
