"""Prometheus metrics of the HTTP service (per version, the serve stage's own: ``streams.serve.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A request's own time, from its arrival to its answer: 0.25 ms to 10 s, resolved finely below 10 ms (the goal).
REQUEST_BUCKETS = (0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# Requests that ended on the client's side: its body did not come in time (408), or it left first (499, as nginx
# counts them). Counted, not timed: their time is the client's, and WeirHttpSlow watches ours.
CLIENT_ENDED = (408, 499)


class HttpMetrics:
    """Requests by route and status, their latency by route, and those in flight."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("weir_http_requests", "HTTP requests answered", ["route", "status"],
                                registry=registry)
        self.latency = Histogram("weir_http_request_seconds", "From a request's arrival to its answer", ["route"],
                                 registry=registry, buckets=REQUEST_BUCKETS)
        self.in_flight = Gauge("weir_http_in_flight", "Requests being answered now", registry=registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        if status not in CLIENT_ENDED:
            self.latency.labels(route).observe(seconds)
