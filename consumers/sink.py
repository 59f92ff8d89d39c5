"""The alert sink as a process: both alert paths in, every alert logged and forwarded, counters on /metrics.

Weir's own detectors reach it through the ``alerts`` topic, Prometheus rules
through Alertmanager's webhook; the two paths are independent, so on-call
hears of a problem even when one of them is down.
"""

from __future__ import annotations

import ipaddress
import threading

from consumers.alerts import consume_alerts
from consumers.webhook import Forwarder, alertmanager_server
from weir.contract.serde import SchemaCatalog
from weir.errors import UsageError
from weir.metrics import CountersCollector, CounterValues, serve_metrics
from weir.settings import Settings, revealed


def forwarder_collector(forwarder: Forwarder) -> CountersCollector:
    """``weir_alerts_forwarded_total{outcome}``: what the sink delivered, and what it gave up on."""
    def read() -> CounterValues:
        return {("weir_alerts_forwarded", (("outcome", "delivered"),)): forwarder.delivered,
                ("weir_alerts_forwarded", (("outcome", "failed"),)): forwarder.failed}

    return CountersCollector("Alerts the sink forwarded, by outcome", read)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``: a loopback address or ``localhost`` (any other name may
    resolve to anything, and an empty host listens everywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def receiver_token(settings: Settings) -> str | None:
    """The bearer token Alertmanager's POSTs must carry. A receiver others can reach must have one: whoever reached
    its port could otherwise page the people on call."""
    token = revealed(settings.alert_receiver_token)
    if not token and not is_loopback(settings.web_bind):
        raise UsageError(f"the Alertmanager receiver would take unauthenticated alerts on {settings.web_bind}: set "
                         "WEIR_ALERT_RECEIVER_TOKEN (and the same token in Alertmanager's http_config.authorization), "
                         "or WEIR_WEB_BIND=127.0.0.1")
    return token or None


def run_sink(settings: Settings, catalog: SchemaCatalog, forwarder: Forwarder, *, webhook_port: int,
             metrics_port: int | None, group_id: str | None, stop: threading.Event) -> None:
    """Forward alerts from the topic and from Alertmanager until ``stop`` is set; refuses to start (``UsageError``)
    with a receiver others can reach and no token."""
    token = receiver_token(settings)
    serve_metrics(metrics_port, forwarder_collector(forwarder), settings.web_bind)
    topic = threading.Thread(target=consume_alerts, name="alerts-topic", daemon=True, kwargs={
        "settings": settings, "catalog": catalog, "group_id": group_id, "stop": stop,
        "handler": lambda alert: forwarder.send(dict(alert), "alerts-topic")})
    topic.start()
    server = alertmanager_server(webhook_port, lambda alert: forwarder.send(alert, "alertmanager"),
                                 host=settings.web_bind, token=token)
    threading.Thread(target=server.serve_forever, name="alertmanager-webhook", daemon=True).start()
    stop.wait()
    server.shutdown()
    topic.join(timeout=10)
