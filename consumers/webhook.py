"""The alert sink's two doors and one way out.

In: the ``alerts`` topic (Weir's own detectors) and Alertmanager's webhook
(Prometheus rules), so an alert reaches a person by two independent paths.
Out: every alert is logged, and POSTed as JSON to the configured webhook URL
(a chat hook, a pager) with retries and backoff. A delivery that still fails
is logged with the alert, never dropped silently.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("weir.alerts")


MAX_BODY_BYTES = 1 << 20  # an Alertmanager webhook batch is kilobytes; anything near this is not one


def shown(url: str | None) -> str:
    """``url`` as logs may show it: scheme and host only, since paths and queries of chat hooks carry tokens."""
    if url is None:
        return "the log only"
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


@dataclass
class Forwarder:
    """POSTs alerts as JSON to ``url`` with retries; counts what it delivered and what it could not.

    ``token``, when given, goes out as ``Authorization: Bearer``; neither it nor
    the URL's path is ever logged."""

    url: str | None
    token: str | None = None
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
                headers = {"Content-Type": "application/json"}
                if self.token:
                    headers["Authorization"] = f"Bearer {self.token}"
                request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        with self._lock:
                            self.delivered += 1
                        return True
            except (urllib.error.URLError, OSError) as exc:
                log.warning("forwarding to %s failed (attempt %d/%d): %s", shown(self.url), attempt, self.attempts,
                            exc)
            if attempt < self.attempts:
                time.sleep(delay)  # backoff between delivery attempts
                delay *= 2
        with self._lock:
            self.failed += 1
        log.error("gave up forwarding an alert to %s after %d attempts: %s", shown(self.url), self.attempts,
                  body.decode())
        return False


def alertmanager_server(port: int, on_alert: Callable[[dict[str, Any]], object], *, host: str,
                        token: str | None = None) -> ThreadingHTTPServer:
    """An HTTP server taking Alertmanager's webhook POSTs at /alertmanager (call ``serve_forever``).

    With ``token``, a request must carry ``Authorization: Bearer <token>``:
    otherwise anyone who reaches the port could page the people on call.
    """
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a client that stops sending mid-body frees its thread

        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path != "/alertmanager":
                self.send_error(404, "POST Alertmanager webhooks to /alertmanager")
                return
            given = (self.headers.get("Authorization") or "").encode()
            if expected is not None and not hmac.compare_digest(given, expected):
                self.send_error(401, "a bearer token is required")
                return
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():  # absent, negative or not a number: reading would wait for the peer to close
                self.send_error(411, "a Content-Length of 0 or more bytes is required")
                return
            if int(length) > MAX_BODY_BYTES:
                self.send_error(413, f"an Alertmanager webhook is under {MAX_BODY_BYTES} bytes")
                return
            try:
                payload = json.loads(self.rfile.read(int(length)))
                alerts = payload["alerts"]
                if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
                    raise ValueError("'alerts' is not a list of objects")
            except (ValueError, KeyError, TypeError) as exc:
                self.send_error(400, f"not an Alertmanager webhook payload: {exc}")
                return
            for alert in alerts:
                on_alert(alert)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)
