"""Prometheus exposition for processes that are not faust workers (producers, the alert sink).

Metrics are built on a registry the caller owns, never the global one, so
tests stay independent and several components can live in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# {(metric name, ((label, value), ...)): count}
CounterValues = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def serve_metrics(port: int | None, collector: Collector, host: str) -> None:
    """Expose one collector on its own /metrics at ``host`` (for processes that are not faust workers); no port,
    no server."""
    if not port:
        return
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    start_http_server(port, addr=host, registry=registry)


class CountersCollector(Collector):
    """Counters read from a live object at scrape time: ``read`` returns {(name, labels): value}."""

    def __init__(self, help_text: str, read: Callable[[], CounterValues]) -> None:
        self.help_text = help_text
        self.read = read

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for (name, labels), value in sorted(self.read().items()):
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(name, self.help_text, labels=[k for k, _ in labels])
            family.add_metric([v for _, v in labels], value)
        yield from families.values()
