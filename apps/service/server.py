"""`weir serve-http` as a process: load the registry, build the app, and run it on uvicorn until SIGTERM.

uvicorn owns the signals: on SIGINT or SIGTERM it stops taking connections,
lets the requests in flight finish (up to ``WEIR_HTTP_SHUTDOWN_GRACE_S``), and
then ends the app's lifespan, which stops following the registry and flushes
the producer. Its HTTP protocol is httptools', with a deadline and a size
limit on headers (``apps.service.protocol``).
"""

from __future__ import annotations

import signal

import uvicorn
from prometheus_client import CollectorRegistry, ProcessCollector

from apps.service.app import build_app
from apps.service.metrics import HttpMetrics
from apps.service.protocol import PROTOCOL_ROUTE, guarded_protocol
from streams.follower import load_live_registry
from weir.contract.serde import open_catalog
from weir.settings import Settings


def run_service(settings: Settings, *, loglevel: str = "info") -> None:
    """Serve ``settings.model_name`` on ``settings.web_bind``:``settings.http_port`` until SIGINT/SIGTERM."""
    catalog = open_catalog(settings)
    metrics = CollectorRegistry()
    ProcessCollector(registry=metrics)
    # No learner in this process: it serves the learner's copies as the models topic carries them.
    registry, intake, follow_from = load_live_registry(settings, catalog, metrics, follows_snapshots=True,
                                                       register_default=True)
    http = HttpMetrics(metrics)
    app = build_app(settings, catalog, registry, intake, follow_from, metrics, http)
    protocol = guarded_protocol(settings.http_header_timeout_s,
                                lambda status: http.requests.labels(PROTOCOL_ROUTE, str(status)).inc())
    config = uvicorn.Config(app, host=settings.web_bind, port=settings.http_port, loop="uvloop", http=protocol,
                            lifespan="on", access_log=False, log_level=loglevel,
                            timeout_graceful_shutdown=int(settings.http_shutdown_grace_s) or 1)
    # uvicorn raises the signal again once it has shut down, to die of it; taken here, a graceful stop exits 0, as
    # a worker's does, and the supervisor tells it from a crash.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run()
