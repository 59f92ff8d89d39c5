"""``weir alerts``: the alert sink that brings both alert paths to on-call, and a tail of the alerts topic."""

from __future__ import annotations

import logging

import click

from apps.cli.common import PORT, Session, pass_session, stop_on_signals
from consumers.alerts import consume_alerts
from consumers.sink import receiver_token, run_sink
from consumers.webhook import Forwarder, shown
from weir.kafka.admin import ensure_reachable
from weir.settings import revealed


@click.group()
def alerts() -> None:
    """Alerts from the alerts topic."""


@alerts.command("serve")
@click.option("--port", type=PORT, default=9095, show_default=True, help="Port of the Alertmanager webhook.")
@click.option("--forward-url", help="POST every alert there as JSON, with retries (env WEIR_ALERT_WEBHOOK_URL).")
@click.option("--group", help="Consumer group on the alerts topic (default <app-id>-alerts-sink).")
@click.option("--metrics-port", type=PORT, help="Serve the sink's counters on /metrics at this port.")
@pass_session
def alerts_serve(session: Session, port: int, forward_url: str | None, group: str | None,
                 metrics_port: int | None) -> None:
    """Take alerts from the alerts topic and from Alertmanager's webhook; log and forward each one.

    Two independent paths reach on-call: Weir's own detectors (the topic) and
    Prometheus rules (Alertmanager POSTs to http://<host>:PORT/alertmanager).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = session.settings
    guarded = " (bearer token required)" if receiver_token(settings) else ""  # refused without one off loopback
    forwarder = Forwarder(forward_url or settings.alert_webhook_url, token=revealed(settings.alert_webhook_token))
    click.echo(f"alert sink: alerts topic {settings.topic('alerts')} and http://{settings.web_bind}:{port}/alertmanager"
               f"{guarded}; forwarding to {shown(forwarder.url)}")
    run_sink(session.settings, session.catalog, forwarder, webhook_port=port, metrics_port=metrics_port,
             group_id=group, stop=stop_on_signals())
    click.echo(f"alert sink stopped: {forwarder.delivered} forwarded, {forwarder.failed} failed after retries")


@alerts.command("tail")
@click.option("--group", help="Consumer group (default <app-id>-alerts-sink).")
@pass_session
def alerts_tail(session: Session, group: str | None) -> None:
    """Print every alert as it arrives, until SIGINT/SIGTERM."""
    ensure_reachable(session.settings)  # a wrong bootstrap says so, not librdkafka's retries for ever
    consume_alerts(session.settings, session.catalog, group_id=group, stop=stop_on_signals())
