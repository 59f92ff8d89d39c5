"""The HTTP service as callers meet it: a real server process, a real HTTP client, the real broker.

An entity gets the same arm over HTTP and on the stream, and an event served
over HTTP is served once though the front reads it too; bad input is a 422
and a dead letter; labels posted over HTTP are learned; a canary's share
holds over 10,000 requests and a routing change reaches the service live; a
SIGTERM lets the requests in flight finish and leaves every answer recorded.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.processes import free_port, scrape, start_service, start_worker, stop_process
from producers.churn import ChurnDomain
from producers.event import LabelledEvent
from weir.clock import poll_until
from weir.contract.deadletter import read_headers
from weir.contract.records import Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, PREDICTIONS
from weir.kafka.clients import make_producer, produce
from weir.kafka.reading import holds_at_least, read_topic
from weir.registry.decisions import register, route
from weir.settings import Settings


@dataclass
class Service:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def alive(self) -> None:
        assert self.process.poll() is None, self.log.read_text()[-3000:]


@pytest.fixture
def service_settings(kafka: Settings) -> Settings:
    return kafka.with_overrides(http_port=free_port(), http_source="churn", default_factory="")


def started(settings: Settings, tmp_path: Path) -> Service:
    """The service in its own process, once it says it is ready."""
    service = Service(settings, start_service(settings, tmp_path / "serve-http.log"), tmp_path / "serve-http.log")

    def ready() -> bool:
        service.alive()
        try:
            return service.call("GET", "/v2/health/ready")[0] == 200
        except OSError:
            return False

    poll_until(ready, timeout_s=120, interval_s=0.2, what="the HTTP service ready")
    return service


@contextmanager
def serve(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    service = started(settings, tmp_path)
    try:
        yield service
    finally:
        assert stop_process(service.process) == 0, service.log.read_text()[-3000:]


def churn(n: int, *, seed: int = 5, customers: int = 300) -> list[LabelledEvent]:
    return list(ChurnDomain(seed=seed, customers=customers).events(n))


def simple_body(e: LabelledEvent) -> dict[str, Any]:
    return {"event_id": e.event_id, "entity_id": e.entity_id, "attributes": e.attributes}


def tensor_type(value: Any) -> str:
    return {bool: "BOOL", str: "BYTES", int: "INT64"}.get(type(value), "FP64")


def served_predictions(settings: Settings, catalog: SchemaCatalog) -> dict[str, list[Prediction]]:
    serde = topic_serde(catalog, settings, PREDICTIONS)
    served: dict[str, list[Prediction]] = defaultdict(list)
    for m in read_topic(settings, serde.topic, timeout_s=120):
        p = serde.decode(m.value)
        if p["served"]:
            served[p["event_id"]].append(p)
    return served


def two_versions(settings: Settings, catalog: SchemaCatalog, mode: str, percent: float = 0.0) -> None:
    register(settings, catalog, "default", factory="logistic_regression")
    register(settings, catalog, "default", factory="logistic_regression", params={"lr": 0.1})
    route(settings, catalog, "default", mode, champion="v1", challengers=["v2"], percent=percent)


def test_an_entity_gets_the_same_arm_over_http_and_on_the_stream_and_each_event_is_served_once(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    settings = service_settings.with_overrides(web_port=free_port())
    two_versions(settings, catalog, "canary", 40.0)
    events = churn(600)
    by_http, by_stream = events[0::2], events[1::2]  # each path sees its entities' events in order
    worker = start_worker(settings, tmp_path / "front.log", "front")
    try:
        with serve(settings, tmp_path) as service:
            answers = {}
            for e in by_http:
                status, body = service.call("POST", "/predict", simple_body(e))
                assert status == 200, body
                answers[e.event_id] = body
            raw = topic_serde(catalog, settings, EVENTS_RAW)
            producer = make_producer(settings)
            for e in by_stream:
                produce(producer, raw.topic, raw.encode(e.raw("churn")), e.entity_id.encode())
            assert producer.flush(60) == 0
            poll_until(lambda: worker.poll() is None and len(served_predictions(settings, catalog)) >= 600,
                       timeout_s=180, interval_s=1.0, what="600 events served")
            front_metrics = scrape(settings)
    finally:
        assert stop_process(worker) == 0, (tmp_path / "front.log").read_text()[-3000:]
    served = served_predictions(settings, catalog)
    assert len(served) == 600 and all(len(s) == 1 for s in served.values())  # the front did not serve HTTP's again
    assert 'weir_quality_served_elsewhere_total{served_by="http"} 300.0' in front_metrics
    for event_id, answer in answers.items():
        (p,) = served[event_id]
        assert (answer["model_version"], answer["role"], answer["score"]) == (p["model_version"], p["role"],
                                                                            p["score"])
    arms: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in events:
        path = "http" if e.event_id in answers else "stream"
        arms[e.entity_id].add((path, served[e.event_id][0]["model_version"]))
    both = {entity: a for entity, a in arms.items() if {p for p, _ in a} == {"http", "stream"}}
    assert len(both) >= 50 and all(len({v for _, v in a}) == 1 for a in both.values())
    assert {v for a in both.values() for _, v in a} == {"v1", "v2"}


def test_bad_input_is_answered_422_with_the_reasons_and_dead_lettered(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    register(service_settings, catalog, "default", factory="logistic_regression")
    route(service_settings, catalog, "default", "basic", champion="v1")
    (good,) = churn(1)
    young = simple_body(good) | {"attributes": {**good.attributes, "age": 5}}
    with serve(service_settings, tmp_path) as service:
        status, body = service.call("POST", "/predict", young)
        assert status == 422 and body["problems"][0]["reason"] == "out-of-range", body
        assert body["problems"][0]["rule"] == "range:age"
        status, body = service.call("POST", "/predict", raw=b"{not json")
        assert status == 422 and "not JSON" in body["error"]
        status, body = service.call("POST", "/v2/models/default/infer", {"inputs": [
            {"name": "age", "shape": [1], "datatype": "FP64", "data": ["forty"]}]})
        assert status == 422 and "is not FP64" in body["error"]
        status, body = service.call("POST", "/predict", raw=b"x" * (service_settings.http_max_body_bytes + 1))
        assert status == 413
        status, body = service.call("POST", "/v2/models/other/infer", {"inputs": []})
        assert status == 404 and "no model 'other'" in body["error"]
        assert service.call("GET", "/no/such/path") == (404, {"error": "Not Found"})
        assert service.call("GET", "/v2/models/default/versions/v1/ready") == (200, {"name": "default",
                                                                                  "ready": True})
        assert service.call("POST", "/predict", simple_body(good))[0] == 200
    letters = [(read_headers(m.headers), m.value) for m in
               read_topic(service_settings, service_settings.topic(EVENTS_DLQ.name), timeout_s=60)]
    # a body with no entity has no key, so the letters spread over the partitions: no order across them
    assert Counter(h["reason"] for h, _ in letters) == {"out-of-range": 1, "bad-request": 2, "oversized-request": 1}
    assert all(h["received.by"] == "http" and h["original.topic"] == service_settings.topic(EVENTS_RAW.name)
               for h, _ in letters)
    assert b"{not json" in [value for _, value in letters]
    [(headers, value)] = [(h, v) for h, v in letters if h["reason"] == "out-of-range"]
    raw = topic_serde(catalog, service_settings, EVENTS_RAW)
    assert headers["received.path"] == "/predict" and raw.decode(value)["attributes"]["age"] == 5
    assert [raw.decode(m.value)["event_id"] for m in read_topic(service_settings, raw.topic)] == [good.event_id]


def test_an_event_id_is_served_once_whatever_else_a_request_changes(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """Two requests with one event id and two entities were both answered 200, and predictions held two served
    records for the id. A retry of the same event (without its time, which the server stamps) gets the first
    answer; another event under the id gets 409 naming what differs, on both inference endpoints."""
    register(service_settings, catalog, "default", factory="logistic_regression")
    route(service_settings, catalog, "default", "basic", champion="v1")
    first, second = churn(2)
    body = simple_body(first)
    with serve(service_settings, tmp_path) as service:
        status, answer = service.call("POST", "/predict", body)
        assert status == 200, answer
        assert service.call("POST", "/predict", body) == (200, answer)  # a retry: the server stamps a new time
        status, refusal = service.call("POST", "/predict", body | {"entity_id": "someone-else"})
        assert status == 409 and [(p["field"], p["reason"]) for p in refusal["problems"]] == [
            ("entity_id", "event-id-reused")], refusal
        status, refusal = service.call("POST", "/v2/models/default/infer", {"inputs": [
            {"name": "entity_id", "datatype": "BYTES", "shape": [2], "data": [second.entity_id, first.entity_id]},
            {"name": "event_id", "datatype": "BYTES", "shape": [2], "data": [second.event_id, first.event_id]},
            *({"name": k, "datatype": tensor_type(v), "shape": [2], "data": [second.attributes[k],
                                                                              77 if k == "age" else v]}
              for k, v in first.attributes.items() if v is not None)]})
        assert status == 409 and [(p["event_id"], p["field"]) for p in refusal["problems"]] == [
            (first.event_id, "attributes")], refusal
        assert service.call("POST", "/predict", simple_body(second))[0] == 200  # refused before: served now
    served = served_predictions(service_settings, catalog)
    assert {event_id: len(records) for event_id, records in served.items()} == {first.event_id: 1,
                                                                                 second.event_id: 1}
    assert served[first.event_id][0]["entity_id"] == first.entity_id


def test_labels_posted_over_http_are_learned_and_reach_the_served_copy(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    settings = service_settings.with_overrides(snapshot_every_s=2.0, sequencer_idle_ms=1_000)
    register(settings, catalog, "default", factory="logistic_regression")
    route(settings, catalog, "default", "basic", champion="v1")
    events = churn(400, customers=2_000)
    probe = simple_body(events[0])
    worker = start_worker(settings, tmp_path / "back.log", "back")
    try:
        with serve(settings, tmp_path) as service:
            before = service.call("POST", "/predict", probe)[1]["score"]
            for e in events[1:]:
                assert service.call("POST", "/predict", simple_body(e))[0] == 200
            status, body = service.call("POST", "/v2/feedback", [
                {"event_id": e.event_id, "entity_id": e.entity_id, "label": e.label} for e in events])
            assert (status, body) == (200, {"accepted": 400})
            assert service.call("POST", "/v2/feedback", {"event_id": "e", "entity_id": "c", "label": "maybe"})[0] == 422

            def learned() -> dict[str, Any]:
                assert worker.poll() is None, (tmp_path / "back.log").read_text()[-3000:]
                return dict(service.call("GET", "/v2/models/default/versions/v1")[1]["parameters"])

            # The learner's copy and its metrics are two records on models: either may reach the service first.
            poll_until(lambda: min(learned()["labels_in_served_copy"], learned()["labels_learned"]) >= 400,
                       timeout_s=180, interval_s=1.0, what="the served copy and the metrics to reflect 400 labels")
            after = service.call("POST", "/predict", probe | {"event_id": "probe-again"})[1]["score"]
    finally:
        assert stop_process(worker) == 0, (tmp_path / "back.log").read_text()[-3000:]
    assert before == 0.5 and after != before  # an untrained logistic regression says 0.5; the copy has learned


def send_raw(port: int, data: bytes) -> socket.socket:
    """A connection that has sent ``data`` and nothing more: a client as slow or as broken as a test needs."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    connection.sendall(data)
    return connection


def reply_of(connection: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """The status line, headers and body the server sent before it closed the connection (or reset it, as it
    may when it closes on bytes it did not read)."""
    received = b""
    with connection:
        try:
            while chunk := connection.recv(65_536):
                received += chunk
        except ConnectionResetError:
            pass
    status, _, rest = received.partition(b"\r\n")
    head, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n") if b": " in line)
    return status, headers, body


def http_requests_total(service: Service) -> dict[tuple[str, str], float]:
    metrics = urllib.request.urlopen(service.url + "/metrics", timeout=10).read().decode()
    return {(s.labels["route"], s.labels["status"]): s.value for family in text_string_to_metric_families(metrics)
            if family.name == "weir_http_requests" for s in family.samples if s.name.endswith("_total")}


def test_a_body_that_does_not_come_is_a_408_and_a_client_that_leaves_is_a_499_not_a_server_error(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """A body shorter than its Content-Length was waited for as long as the client held the connection (150 s
    seen), and a client that hung up was logged with a traceback and counted as a 500, which WeirHttpErrors
    counts."""
    settings = service_settings.with_overrides(http_body_timeout_s=1.0)
    register(settings, catalog, "default", factory="logistic_regression")
    route(settings, catalog, "default", "basic", champion="v1")
    (event,) = churn(1)
    body = json.dumps(simple_body(event)).encode()
    head = (b"POST /predict HTTP/1.1\r\nHost: weir\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with serve(settings, tmp_path) as service:
        status, headers, answer = reply_of(send_raw(settings.http_port, head + body[:10]))
        assert status == b"HTTP/1.1 408 Request Timeout" and headers["connection"] == "close", (status, answer)
        assert json.loads(answer) == {"error": f"the body did not arrive within 1 s (WEIR_HTTP_BODY_TIMEOUT_S): 10 "
                                               f"bytes came of the {len(body)} its Content-Length says"}
        send_raw(settings.http_port, head + body[:10]).close()  # the client hangs up halfway through its body
        poll_until(lambda: http_requests_total(service).get(("/predict", "499")) == 1.0, timeout_s=30,
                   interval_s=0.1, what="the client that left to be counted")
        assert service.call("POST", "/predict", simple_body(event))[0] == 200  # the event was never served
        counted = http_requests_total(service)
    assert {k: v for k, v in counted.items() if k[0] == "/predict"} == {
        ("/predict", "408"): 1.0, ("/predict", "499"): 1.0, ("/predict", "200"): 1.0}
    assert "Traceback" not in service.log.read_text() and "ClientDisconnect" not in service.log.read_text()
    served = served_predictions(settings, catalog)
    assert list(served) == [event.event_id] and len(served[event.event_id]) == 1


def test_a_request_that_is_no_http_or_whose_headers_are_too_slow_or_too_big_gets_a_json_refusal(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """uvicorn answered a malformed Content-Length itself, in plain text; it held a connection whose headers never
    ended for as long as the client liked, and took in headers of any size (200 MB seen)."""
    settings = service_settings.with_overrides(http_header_timeout_s=1.0)
    register(settings, catalog, "default", factory="logistic_regression")
    route(settings, catalog, "default", "basic", champion="v1")
    start = b"POST /predict HTTP/1.1\r\nHost: weir\r\nContent-Type: application/json\r\n"
    with serve(settings, tmp_path) as service:
        port = settings.http_port
        for length, says in ((b"abc", "Invalid character in Content-Length"), (b"-1", "Invalid character in "
                             "Content-Length"), (b"2\r\nContent-Length: 3", "Duplicate Content-Length")):
            status, headers, body = reply_of(send_raw(port, start + b"Content-Length: " + length + b"\r\n\r\n{}"))
            assert (status, headers["content-type"], headers["connection"]) == (
                b"HTTP/1.1 400 Bad Request", "application/json", "close"), (status, body)
            assert json.loads(body) == {"error": f"not a valid HTTP request: {says}"}
        status, _, body = reply_of(send_raw(port, start + b"Content-Len"))  # and nothing more
        assert status == b"HTTP/1.1 408 Request Timeout" and json.loads(body) == {
            "error": "the request's headers did not arrive within 1 s (WEIR_HTTP_HEADER_TIMEOUT_S)"}
        assert reply_of(send_raw(port, b"")) == (b"", {}, b"")  # silent: closed, with nothing to answer
        status, _, body = reply_of(send_raw(port, start + b"X-Padding: " + b"a" * 100_000 + b"\r\n\r\n"))
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large", (status, body)
        assert json.loads(body) == {"error": "the request's line and headers are over 65536 bytes"}
        assert service.call("POST", "/predict", simple_body(churn(1)[0]))[0] == 200  # and the service serves on
        counted = http_requests_total(service)
    assert {k: v for k, v in counted.items() if k[0] == "(protocol)"} == {
        ("(protocol)", "400"): 3.0, ("(protocol)", "408"): 1.0, ("(protocol)", "431"): 1.0}


async def predict_all(url: str, bodies: list[dict[str, Any]], concurrency: int = 32) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            while queue:
                async with session.post(url + "/predict", json=queue.pop()) as response:
                    assert response.status == 200, await response.text()
                    answers.append(await response.json())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def test_a_canary_share_holds_over_10000_requests_and_a_routing_change_applies_live(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    two_versions(service_settings, catalog, "canary", 10.0)
    events = churn(10_000, customers=10_000)
    bodies = [simple_body(e) | {"entity_id": f"entity-{i}"} for i, e in enumerate(events)]  # 10,000 entities
    with serve(service_settings, tmp_path) as service:
        answers = asyncio.run(predict_all(service.url, bodies))
        metrics = urllib.request.urlopen(service.url + "/metrics", timeout=10).read().decode()
        route(service_settings, catalog, "default", "basic", champion="v2")
        poll_until(lambda: service.call("POST", "/predict", {"entity_id": "after", "attributes": events[0].attributes}
                                        )[1]["model_version"] == "v2", timeout_s=30, interval_s=0.1,
                   what="the promotion to reach the service")
    share = Counter(a["model_version"] for a in answers)
    assert len(answers) == 10_000 and abs(share["v2"] / 10_000 - 0.10) <= 0.01, share
    assert 'weir_http_requests_total{route="/predict",status="200"} 10000.0' in metrics
    assert f'weir_serve_served_total{{model="default",version="v2"}} {float(share["v2"])}' in metrics
    served = served_predictions(service_settings, catalog)
    assert {a["event_id"]: a["model_version"] for a in answers}.items() <= {
        e: s[0]["model_version"] for e, s in served.items()}.items()


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_sigterm_lets_requests_in_flight_finish_and_every_answer_is_recorded(
        service_settings: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """A request held half-sent across the SIGTERM is answered once the server has stopped taking connections;
    under load, every answer given before or after the signal has its records on the topics."""
    service_settings = service_settings.with_overrides(http_body_timeout_s=600.0)  # the held body waits the load out
    register(service_settings, catalog, "default", factory="logistic_regression")
    route(service_settings, catalog, "default", "basic", champion="v1")
    held_event, *events = churn(4_001, customers=4_001)
    service = started(service_settings, tmp_path)
    answered: list[str] = []
    refused = 0
    signalled = False
    try:
        body = json.dumps(simple_body(held_event)).encode()
        held = socket.create_connection(("127.0.0.1", service_settings.http_port), timeout=30)
        held.sendall(b"POST /predict HTTP/1.1\r\nHost: weir\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])

        async def load() -> None:
            nonlocal refused
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                async def one(e: LabelledEvent) -> None:
                    nonlocal refused, signalled
                    try:
                        async with session.post(service.url + "/predict", json=simple_body(e)) as response:
                            answer = await response.json()
                            assert response.status == 200, answer
                            answered.append(answer["event_id"])
                    except aiohttp.ClientError:
                        refused += 1  # not taken (the listener is closed), or a keep-alive connection it closed
                    if len(answered) >= 1_000 and not signalled:
                        signalled = True
                        service.process.send_signal(signal.SIGTERM)

                await asyncio.gather(*(one(e) for e in events))

        asyncio.run(load())
        poll_until(lambda: refuses_connections(service_settings.http_port), timeout_s=30, interval_s=0.05,
                   what="the server to stop taking connections")
        assert service.process.poll() is None, "the server did not wait for the request in flight"
        held.sendall(body[10:])
        with held, held.makefile("rb") as reply:
            status = reply.readline()
            response = reply.read()  # the server closes the connection after this last answer
        assert status.startswith(b"HTTP/1.1 200"), status + response
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["event_id"] == held_event.event_id
        assert service.process.wait(60) == 0, service.log.read_text()[-3000:]
    finally:
        stop_process(service.process)
    served = served_predictions(service_settings, catalog)
    assert held_event.event_id in served and set(answered) <= set(served), "an answer the topics do not have"
    assert len(answered) + refused == len(events) and len(answered) >= 1_000
    assert holds_at_least(service_settings, service_settings.topic(EVENTS_RAW.name), len(answered) + 1)
