"""The HTTP service's ASGI app: the Open Inference Protocol's REST endpoints, a simple JSON one, labels, health
and metrics, on one live registry view.

The registry view is loaded before the app starts and follows the ``models``
topic while it runs (``streams.follower``), applying each record on the event
loop between requests: a routing change reaches the next request within the
follower's poll (0.2 s). Requests run on the loop too, so a request never sees
the routing change halfway through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apps.service.inference import Inference, Refusal, Served, source_rules
from apps.service.metrics import HttpMetrics
from apps.service.payloads import Answer, PayloadError, labels_of, oip_events, oip_response, parse_json, simple_event
from apps.service.writer import RecordsNotWritten, RecordWriter
from streams.follower import RegistryFollower
from weir import __version__
from weir.clock import now_ms
from weir.contract.messages import OutRecord
from weir.contract.serde import SchemaCatalog
from weir.contract.topics import EVENTS_RAW, FEEDBACK
from weir.registry.store import RegistryIntake
from weir.registry.view import ModelRegistry
from weir.settings import Settings

log = logging.getLogger("weir.http")

DATATYPES = {"number": "FP64", "integer": "INT64", "string": "BYTES", "boolean": "BOOL"}  # rule type -> tensor type
# The event's own fields, beside the attributes the rules declare: entity_id is required, the rest have defaults
# (event_id a new UUID, event_time now, source WEIR_HTTP_SOURCE); a request of one event may give them as parameters.
EVENT_INPUTS = [{"name": "entity_id", "datatype": "BYTES", "shape": [-1]},
                {"name": "event_id", "datatype": "BYTES", "shape": [-1], "parameters": {"optional": True}},
                {"name": "event_time", "datatype": "INT64", "shape": [-1], "parameters": {"optional": True}},
                {"name": "source", "datatype": "BYTES", "shape": [-1], "parameters": {"optional": True}}]
OUTPUTS = [{"name": "predicted_label", "datatype": "BYTES", "shape": [-1]},
           {"name": "score", "datatype": "FP64", "shape": [-1]},
           {"name": "model_version", "datatype": "BYTES", "shape": [-1]},
           {"name": "event_id", "datatype": "BYTES", "shape": [-1]}]

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")
CLIENT_LEFT = 499  # nginx's status for a client that closed the connection before its answer


class BodyTooSlow(Exception):
    """A request's body did not arrive within WEIR_HTTP_BODY_TIMEOUT_S: the client's delay, answered 408."""


EXTENSIONS = ["weir-simple-json", "weir-feedback"]  # the endpoints beyond the protocol's, in the server metadata


@dataclass
class Running:
    """What the app starts with its lifespan and stops at its end."""

    writer: RecordWriter | None = None
    follower: RegistryFollower | None = None


def build_app(settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry, intake: RegistryIntake,
              follow_from: dict[int, int], metrics: CollectorRegistry, http: HttpMetrics) -> Starlette:
    """The service over ``registry`` (loaded), following the topic from ``follow_from``; ``http`` on
    ``metrics``."""
    inference = Inference(settings, catalog, registry, metrics)
    running = Running()
    name = registry.model_name
    rules = source_rules(settings)
    inputs = EVENT_INPUTS + [{"name": n, "datatype": DATATYPES.get(rule.type or "", "BYTES"), "shape": [-1]}
                             for n, rule in rules.fields.items()]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        running.writer = RecordWriter(settings)
        running.follower = RegistryFollower(settings, intake, registry, follow_from)
        await running.follower.start()
        log.info("serving %s over HTTP: %s", name, registry.routing.describe() if registry.routing else "no routing")
        try:
            yield
        finally:  # uvicorn has let the requests in flight finish
            await running.follower.stop()
            left = await asyncio.get_running_loop().run_in_executor(None, running.writer.close,
                                                                     settings.http_shutdown_grace_s)
            if left:
                log.error("%d records were still undelivered at shutdown (their requests got no answer)", left)

    def writer() -> RecordWriter:
        assert running.writer is not None, "the app's lifespan starts the writer"
        return running.writer

    async def written(records: list[OutRecord], unless: str) -> Response | None:
        """None once the broker has every record (nothing is answered unrecorded); else the 503 saying so."""
        try:
            await writer().write(records)
        except RecordsNotWritten as exc:
            return JSONResponse({"error": f"{unless}: {exc}; send it again"}, 503, headers={"Retry-After": "1"})
        return None

    async def refuse(refusal: Refusal) -> Response:
        """The refusal, once its dead letters are written."""
        return await written(refusal.letters, "not answered") or JSONResponse(refusal.as_json(), refusal.status)

    async def answer(served: Served, render: Callable[[list[Answer]], Any]) -> Response:
        done = False
        try:
            failed = await written(served.records, "not answered")
            done = failed is None
        finally:  # whatever happened, its events are no longer in flight
            inference.settle(served, written=done)
        return failed or JSONResponse(render(served.answers))

    async def read(request: Request, topic: str, parse: Callable[[Any], T]) -> T | Refusal:
        """The body (within the size limit) parsed by ``parse``, or the refusal whose dead letter keeps it as it
        came, bound for ``topic``. ``BodyTooSlow`` if it does not come in time (a body shorter than its
        Content-Length would otherwise be waited for as long as the client keeps the connection open), and
        starlette's ``ClientDisconnect`` if the client leaves first."""
        path, chunks, size = request.scope["path"], [], 0
        try:
            async with asyncio.timeout(settings.http_body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > settings.http_max_body_bytes:
                        return inference.refuse_body(413, f"the body is over {settings.http_max_body_bytes} bytes "
                                                     "(WEIR_HTTP_MAX_BODY_BYTES)", b"", topic=topic, path=path,
                                                     reason="oversized-request")
                    chunks.append(chunk)
        except TimeoutError:
            declared = request.headers.get("content-length")
            raise BodyTooSlow(f"the body did not arrive within {settings.http_body_timeout_s:g} s "
                              f"(WEIR_HTTP_BODY_TIMEOUT_S): {size} bytes came"
                              + ("" if declared is None else f" of the {declared} its Content-Length says")) from None
        body = b"".join(chunks)
        try:
            return parse(parse_json(body))
        except PayloadError as exc:
            return inference.refuse_body(422, str(exc), body, topic=topic, path=path)

    def unknown(request: Request) -> Response | None:
        """The 404 of a path naming another model, or a version this one does not have."""
        model, version = request.path_params["name"], request.path_params.get("version")
        if model != name:
            return _not_found(f"no model {model!r} here; this service serves {name!r}")
        if version is not None and version not in registry.versions:
            return _not_found(f"model {name!r} has no version {version!r}")
        return None

    # --- inference ---------------------------------------------------------------------------------------------

    async def infer(request: Request) -> Response:
        """POST /v2/models/{name}[/versions/{version}]/infer: the Open Inference Protocol's inference."""
        missing = unknown(request)
        if missing is not None:
            return missing
        parsed = await read(request, EVENTS_RAW.name, lambda body: oip_events(body, now_ms=now_ms(),
                                                                             default_source=settings.http_source))
        if isinstance(parsed, Refusal):
            return await refuse(parsed)
        request_id, events = parsed
        outcome = inference.serve(events, path=request.scope["path"], version=request.path_params.get("version"))
        if isinstance(outcome, Refusal):
            return await refuse(outcome)
        return await answer(outcome, lambda answers: oip_response(name, request_id, answers))

    async def predict(request: Request) -> Response:
        """POST /predict: one raw event as JSON, the served prediction as JSON."""
        event = await read(request, EVENTS_RAW.name, lambda body: simple_event(body, now_ms=now_ms(),
                                                                              default_source=settings.http_source))
        if isinstance(event, Refusal):
            return await refuse(event)
        outcome = inference.serve([event], path=request.scope["path"])
        if isinstance(outcome, Refusal):
            return await refuse(outcome)
        return await answer(outcome, lambda answers: answers[0].as_json())

    async def feedback(request: Request) -> Response:
        """POST /v2/feedback: labels of events served here or on the stream, for the learner."""
        labels = await read(request, FEEDBACK.name, lambda body: labels_of(body, now_ms=now_ms()))
        if isinstance(labels, Refusal):
            return await refuse(labels)
        outcome = inference.label(labels, path=request.scope["path"])
        if isinstance(outcome, Refusal):
            return await refuse(outcome)
        return await written(outcome, "not taken") or JSONResponse({"accepted": len(outcome)})

    # --- metadata and health -----------------------------------------------------------------------------------

    async def server_metadata(_request: Request) -> Response:
        return JSONResponse({"name": "weir", "version": __version__, "extensions": EXTENSIONS})

    # The protocol's health answers: 200 for true, a 4xx for false.
    async def live(_request: Request) -> Response:
        """False once the producer can write no more: a restart is the cure."""
        broken = running.writer is not None and not running.writer.healthy
        return JSONResponse({"live": not broken}, 400 if broken else 200)

    def following() -> bool:
        """The registry follower still runs: without it, routing changes would no longer reach this process."""
        task = running.follower.running if running.follower is not None else None
        return task is not None and not task.done()

    def ready() -> bool:
        return (running.writer is not None and running.writer.healthy and following()
                and registry.routing is not None and bool(registry.active()))

    async def server_ready(_request: Request) -> Response:
        return JSONResponse({"ready": ready()}, 200 if ready() else 400)

    async def model_metadata(request: Request) -> Response:
        missing = unknown(request)
        if missing is not None:
            return missing
        version = request.path_params.get("version")
        routing = registry.routing
        body: dict[str, Any] = {"name": name, "platform": "river", "inputs": inputs, "outputs": OUTPUTS,
                                "versions": [v.version for v in registry.active()],
                                "parameters": {"routing": routing.describe() if routing else "none",
                                               "source": settings.http_source}}
        if version is not None:
            v = registry.versions[version]
            body.update(versions=[version], parameters={
                "role": routing.router.role_of(version) if routing and version in routing.router.scoring()
                else "inactive",
                "factory": v.factory, "labels_learned": v.learned, "labels_in_served_copy": v.snapshot_learned})
        return JSONResponse(body)

    async def model_ready(request: Request) -> Response:
        """Ready: the model has a champion to serve; a version, when it may serve on request (champion, canary)."""
        missing = unknown(request)
        if missing is not None:
            return missing
        version = request.path_params.get("version")
        ok = ready() and (version is None or inference.unservable(version) is None)
        return JSONResponse({"name": name, "ready": ok}, 200 if ok else 400)

    async def metrics_page(_request: Request) -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    def measured(route: str, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            http.in_flight.inc()
            try:
                response = await handler(request)
            except BodyTooSlow as exc:  # the rest of the body may still come: close rather than read it as a request
                response = JSONResponse({"error": str(exc)}, 408, headers={"Connection": "close"})
            except ClientDisconnect:  # the client's doing, not a server error: counted, and no one to answer
                log.debug("%s: the client left before its body arrived", route)
                response = Response(status_code=CLIENT_LEFT)
            except Exception as exc:  # an answer, and the cause in the log, rather than a dropped connection
                log.exception("%s failed", route)
                response = JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)
            finally:
                http.in_flight.dec()
            http.observe(route, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    routes = [
        ("/v2", server_metadata, "GET"),
        ("/v2/health/live", live, "GET"),
        ("/v2/health/ready", server_ready, "GET"),
        ("/v2/models/{name}", model_metadata, "GET"),
        ("/v2/models/{name}/ready", model_ready, "GET"),
        ("/v2/models/{name}/versions/{version}", model_metadata, "GET"),
        ("/v2/models/{name}/versions/{version}/ready", model_ready, "GET"),
        ("/v2/models/{name}/infer", infer, "POST"),
        ("/v2/models/{name}/versions/{version}/infer", infer, "POST"),
        ("/predict", predict, "POST"),
        ("/v2/feedback", feedback, "POST"),
        ("/metrics", metrics_page, "GET"),
    ]
    return Starlette(routes=[Route(path, measured(path, handler), methods=[method])
                             for path, handler, method in routes], lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error})


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, a wrong method) in the protocol's error body, like every other."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)


def _not_found(message: str) -> Response:
    return JSONResponse({"error": message}, 404)
