"""Prometheus view of the monitor: open drift episodes and their impact, each feature's PSI, alerts raised."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.monitor.detectors import DriftMonitor


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge("weir_drift_active", "1 while a drift episode is open", ["kind", "subject"],
                            registry=registry)
        self.psi = Gauge("weir_drift_psi", "Latest PSI of a feature against its reference", ["feature"],
                         registry=registry)
        self.alerts = Counter("weir_drift_alerts", "Alerts raised", ["kind", "status"], registry=registry)
        self.estimated_accuracy = Gauge("weir_estimated_accuracy", "Accuracy of the last served predictions, "
                                        "estimated from the model's confidence before their labels arrive",
                                        ["model"], registry=registry)
        self.impact = Gauge("weir_alert_impact", "Impact on served quality of an open alert episode (accuracy "
                            "points lost, or a regressor's relative rise of error); rank with topk",
                            ["kind", "subject"], registry=registry)
        self._counted: dict[tuple[str, str], int] = {}
        self._counting: DriftMonitor | None = None

    def publish(self, monitor: DriftMonitor) -> None:
        if monitor is not self._counting:  # a monitor started afresh (a restore) counts its alerts from zero
            self._counting, self._counted = monitor, {}
        for (kind, subject), open_ in monitor.active().items():
            self.active.labels(kind, subject).set(1 if open_ else 0)
            value = monitor.impacts.get((kind, subject)) if open_ else None
            self.impact.labels(kind, subject).set(float("nan") if value is None else value)
        for name, c in monitor.data.comparisons().items():
            self.psi.labels(name).set(c.psi)
        for model, estimate in monitor.estimates.items():
            value = estimate.value()
            if value is not None:
                self.estimated_accuracy.labels(model).set(value)
        for key, n in monitor.alerts_raised.items():
            self.alerts.labels(*key).inc(n - self._counted.get(key, 0))
            self._counted[key] = n
