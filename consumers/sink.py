"""The alert sink as a process: both alert paths in, every alert logged and forwarded, counters on /metrics.

Weir's own detectors reach it through the ``alerts`` topic, Prometheus rules
through Alertmanager's webhook; the two paths are independent, so on-call
hears of a problem even when one of them is down.
"""

from __future__ import annotations

import threading

from consumers.alerts import consume_alerts
from consumers.webhook import Forwarder, alertmanager_server
from weir.contract.serde import SchemaCatalog
from weir.metrics import CountersCollector, CounterValues, serve_metrics
from weir.settings import Settings, revealed


def forwarder_collector(forwarder: Forwarder) -> CountersCollector:
    """``weir_alerts_forwarded_total{outcome}``: what the sink delivered, and what it gave up on."""
    def read() -> CounterValues:
        return {("weir_alerts_forwarded", (("outcome", "delivered"),)): forwarder.delivered,
                ("weir_alerts_forwarded", (("outcome", "failed"),)): forwarder.failed}

    return CountersCollector("Alerts the sink forwarded, by outcome", read)


def run_sink(settings: Settings, catalog: SchemaCatalog, forwarder: Forwarder, *, webhook_port: int,
             metrics_port: int | None, group_id: str | None, stop: threading.Event) -> None:
    """Forward alerts from the topic and from Alertmanager until ``stop`` is set."""
    serve_metrics(metrics_port, forwarder_collector(forwarder), settings.web_bind)
    topic = threading.Thread(target=consume_alerts, name="alerts-topic", daemon=True, kwargs={
        "settings": settings, "catalog": catalog, "group_id": group_id, "stop": stop,
        "handler": lambda alert: forwarder.send(dict(alert), "alerts-topic")})
    topic.start()
    token = revealed(settings.alert_receiver_token)
    server = alertmanager_server(webhook_port, lambda alert: forwarder.send(alert, "alertmanager"),
                                 host=settings.web_bind, token=token)
    threading.Thread(target=server.serve_forever, name="alertmanager-webhook", daemon=True).start()
    stop.wait()
    server.shutdown()
    topic.join(timeout=10)
