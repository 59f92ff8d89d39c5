"""Alert sink: consume the ``alerts`` topic and hand each alert to a handler (by default, print it).

The consumer stores an offset only after the handler returned, so an alert
whose handling crashed is delivered again after a restart rather than lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from weir.contract.messages import InRecord
from weir.contract.records import Alert
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS
from weir.kafka.clients import make_consumer
from weir.settings import Settings

AlertHandler = Callable[[Alert], object]


def format_alert(alert: Alert) -> str:
    evidence = ", ".join(f"{k}={v}" for k, v in sorted(alert["evidence"].items()))
    statistic = "" if alert["statistic"] is None else f" statistic={alert['statistic']:.4g}"
    head = f"[{alert['severity'].upper()}] {alert['status']} {alert['kind']} on {alert['subject']}"
    return f"{head}{statistic} ({evidence})"


def print_alert(alert: Alert) -> None:
    print(format_alert(alert), flush=True)


def consume_alerts(
    settings: Settings,
    catalog: SchemaCatalog,
    handler: AlertHandler = print_alert,
    *,
    group_id: str | None = None,
    stop: threading.Event,
    on_error: Callable[[str], None] = lambda message: print(f"alerts: {message}", flush=True),
) -> int:
    """Deliver alerts to ``handler`` until ``stop`` is set; returns how many were handled."""
    topic = settings.topic(ALERTS.name)
    serde = topic_serde(catalog, settings, ALERTS)
    consumer = make_consumer(settings, group_id or f"{settings.app_id}-alerts-sink")
    consumer.subscribe([topic])
    handled = 0
    try:
        while not stop.is_set():
            for msg in consumer.consume(100, timeout=0.5):
                error = msg.error()
                if error is not None:
                    on_error(error.str())
                    continue
                record = InRecord.of(msg)
                try:
                    alert = serde.decode(record.value)
                except Exception as exc:  # a bad alert record must not stop the sink
                    on_error(f"undecodable alert at {record.topic}[{record.partition}]@{record.offset}: {exc}")
                else:
                    handler(alert)
                    handled += 1
                consumer.store_offsets(message=msg)
    finally:
        consumer.close()
    return handled
