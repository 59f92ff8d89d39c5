"""The alert sink's two doors and one way out.

In: the ``alerts`` topic (Weir's own detectors) and Alertmanager's webhook
(Prometheus rules), so an alert reaches a person by two independent paths.
Out: every alert is logged, and POSTed as JSON to the configured webhook URL
(a chat hook, a pager) with retries and backoff. A delivery that still fails
is logged with the alert, never dropped silently.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("weir.alerts")


@dataclass
class Forwarder:
    """POSTs alerts as JSON to ``url`` with retries; counts what it delivered and what it could not."""

    url: str | None
    attempts: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 5.0
    delivered: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, alert: dict[str, Any], origin: str) -> bool:
        body = json.dumps({"origin": origin, "alert": alert}, sort_keys=True, default=str).encode()
        log.warning("alert from %s: %s", origin, body.decode())
        if self.url is None:
            return True
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                request = urllib.request.Request(self.url, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        with self._lock:
                            self.delivered += 1
                        return True
            except (urllib.error.URLError, OSError) as exc:
                log.warning("forwarding to %s failed (attempt %d/%d): %s", self.url, attempt, self.attempts, exc)
            if attempt < self.attempts:
                time.sleep(delay)  # backoff between delivery attempts
                delay *= 2
        with self._lock:
            self.failed += 1
        log.error("gave up forwarding an alert to %s after %d attempts: %s", self.url, self.attempts, body.decode())
        return False


def alertmanager_server(port: int, on_alert: Callable[[dict[str, Any]], object], host: str = "0.0.0.0"
                        ) -> ThreadingHTTPServer:
    """An HTTP server taking Alertmanager's webhook POSTs at /alertmanager (call ``serve_forever``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path != "/alertmanager":
                self.send_error(404, "POST Alertmanager webhooks to /alertmanager")
                return
            try:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                alerts = payload["alerts"]
            except (ValueError, KeyError) as exc:
                self.send_error(400, f"not an Alertmanager webhook payload: {exc}")
                return
            for alert in alerts:
                on_alert(alert)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)
