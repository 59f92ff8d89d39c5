"""The alert sink's HTTP doors: only who holds the token pages on-call, and no request can hang a thread."""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.sink import is_loopback, receiver_token
from consumers.webhook import Forwarder, alertmanager_server
from weir.errors import UsageError
from weir.settings import Settings

PAYLOAD = json.dumps({"alerts": [{"labels": {"alertname": "WeirNoData"}, "status": "firing"}]}).encode()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []
    server = alertmanager_server(0, got.append, host="127.0.0.1", token="t0k3n")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}/alertmanager", got
    server.shutdown()
    server.server_close()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_receiver_listens_on_loopback_and_wants_its_token(
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, got = receiver
    assert url.startswith("http://127.0.0.1:")
    assert post(url, PAYLOAD, {}) == 401
    assert post(url, PAYLOAD, {"Authorization": "Bearer wrong"}) == 401
    assert got == []  # a forged alert reaches nobody
    assert post(url, PAYLOAD, {"Authorization": "Bearer t0k3n"}) == 200
    assert [a["labels"]["alertname"] for a in got] == ["WeirNoData"]


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "", "10.1.2.3", "alerts.example"])
@pytest.mark.parametrize("token", [None, ""])
def test_a_receiver_others_can_reach_is_refused_without_its_token(bind: str, token: str | None) -> None:
    with pytest.raises(UsageError, match="set WEIR_ALERT_RECEIVER_TOKEN") as refused:
        receiver_token(Settings(web_bind=bind, alert_receiver_token=None if token is None else SecretStr(token)))
    assert refused.value.exit_code == 2


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_a_receiver_on_loopback_needs_no_token(bind: str) -> None:
    assert is_loopback(bind) and receiver_token(Settings(web_bind=bind, alert_receiver_token=None)) is None


def test_a_receiver_others_can_reach_takes_its_token() -> None:
    assert receiver_token(Settings(web_bind="0.0.0.0", alert_receiver_token=SecretStr("t0k3n"))) == "t0k3n"


@pytest.mark.parametrize("length,status", [("-1", 411), ("abc", 411), (str(2 << 20), 413)])
def test_a_content_length_that_cannot_be_read_is_refused_at_once(
        receiver: tuple[str, list[dict[str, Any]]], length: str, status: int) -> None:
    url, _ = receiver
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:  # a request urllib would not send
        conn.sendall(f"POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k3n\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        answer = conn.recv(200).decode()  # the socket timeout fails the test if the thread hangs instead
    assert answer.startswith(f"HTTP/1.0 {status}") or answer.startswith(f"HTTP/1.1 {status}")


def test_the_forwarder_authenticates_and_never_logs_the_url_path_or_token(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str | None] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500 if len(seen) == 1 else 200)  # the first try fails: the retry is logged
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/services/T000/secret-path?key=k3y"
    try:
        with caplog.at_level(logging.INFO, logger="weir.alerts"):
            assert Forwarder(url, token="out-t0k3n", backoff_s=0.01).send({"kind": "x"}, "test")
    finally:
        hook.shutdown()
        hook.server_close()
    assert seen == ["Bearer out-t0k3n", "Bearer out-t0k3n"]
    assert "secret-path" not in caplog.text and "k3y" not in caplog.text and "out-t0k3n" not in caplog.text
    assert "failed (attempt 1/5)" in caplog.text
