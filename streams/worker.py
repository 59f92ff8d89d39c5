"""The faust-streaming app that runs Weir's stages, built from settings in a function.

The app is the process: lifecycle and signals, timers, the /metrics page, and
one agent that follows the ``models`` topic so routing and version changes
reach the stages within a second. Each stage runs as a ``BatchLoop`` service
of the app (``streams.runtime.loop``): a confluent-kafka batch consumer in its own
consumer group ``<app_id>-<stage>``, because faust's per-message path is two
orders of magnitude slower than a batch loop on the same broker.

The registry agent needs every ``models`` partition in every process, so the
app's own consumer group is unique to the process; it commits nothing anyone
reads, and the stage groups carry all the offsets that matter.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

from streams.features import FeaturesStage
from streams.learn.stage import LearnStage
from streams.monitor.stage import MonitorStage
from streams.runtime.loop import BatchLoop, OutputProducer
from streams.runtime.metrics import StageMetrics
from streams.runtime.stage import Stage
from streams.serve.stage import ServeStage
from streams.validate.stage import ValidateStage
from weir.contract.serde import SchemaCatalog, open_catalog, topic_serde
from weir.contract.topics import MODELS
from weir.kafka.clients import make_producer
from weir.registry.store import apply_bytes, load_registry, register_default_model
from weir.registry.view import ModelRegistry
from weir.settings import Settings

ALL_STAGES: tuple[str, ...] = ("validate", "features", "serve", "learn", "monitor")


GROUPED_STAGES: tuple[str, ...] = ("validate", "features", "serve", "monitor")  # learn reads every partition


log = logging.getLogger("weir.worker")


@dataclass
class Pipeline:
    """The stages one worker runs, the registry view they share, and where the registry agent follows from."""

    stages: list[Stage]
    registry: ModelRegistry
    follow_from: dict[int, int]


def build_pipeline(settings: Settings, names: Sequence[str], catalog: SchemaCatalog,
                   metrics: CollectorRegistry) -> Pipeline:
    """Instantiate the named stages; serve and learn share one live registry (one model per version)."""
    unknown = set(names) - set(ALL_STAGES)
    if unknown:
        raise ValueError(f"unknown stages: {', '.join(sorted(unknown))}")
    # A serve worker without a learner beside it follows the learner's snapshots; with one, it serves the
    # learner's live models directly.
    registry = ModelRegistry(settings.model_name, follows_snapshots="learn" not in names)
    follow_from = load_registry(settings, catalog, registry)
    if {"serve", "learn"} & set(names) and register_default_model(settings, catalog, registry):
        log.info("registry was empty: registered %s v1 (%s) as champion", settings.model_name,
                 settings.default_factory)
    makers: dict[str, Callable[[], Stage]] = {
        "validate": lambda: ValidateStage(settings, catalog, metrics),
        "features": lambda: FeaturesStage(settings, catalog),
        "serve": lambda: ServeStage(settings, catalog, registry, metrics),
        "learn": lambda: LearnStage(settings, catalog, registry, metrics),
        "monitor": lambda: MonitorStage(settings, catalog, metrics,
                                        kept_reference=settings.state_dir / settings.app_id / "monitor.reference.json"),
    }
    return Pipeline([makers[n]() for n in ALL_STAGES if n in names], registry, follow_from)


def build_app(settings: Settings, pipeline: Pipeline, catalog: SchemaCatalog, metrics: CollectorRegistry) -> faust.App:
    datadir = settings.state_dir / settings.app_id / "faust"  # not <app name>-data in the working directory
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.app_id}-registry-{uuid.uuid4().hex[:8]}",
        **settings.faust(),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="0.0.0.0",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        topic_allow_declare=False,  # topics are `weir topics create`'s job, with the contract's configs
        datadir=str(datadir),
        topic_disable_leader=True,
    )
    # Delivery reports for failures only: a Python callback per acknowledged record costs the stages
    # the GIL while they wait (see OutputProducer).
    producer = OutputProducer(make_producer(settings, **{"delivery.report.only.error": True}))
    stage_metrics = StageMetrics(metrics)
    for stage in pipeline.stages:
        loop = BatchLoop(settings, stage, f"{settings.app_id}-{stage.name}", producer, stage_metrics, loop=None)
        app.service(loop)  # type: ignore[arg-type]  # annotated for a class; faust starts instances too
        app.timer(settings.commit_interval_s, name=f"weir.{stage.name}.tick")(_ticker(loop))

    models = topic_serde(catalog, settings, MODELS)

    @app.agent(app.topic(models.topic, key_serializer="raw", value_serializer="raw"), name="weir.registry")
    async def follow_registry(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            if m.value is not None and m.offset >= pipeline.follow_from.get(m.partition, 0):
                apply_bytes(pipeline.registry, models, m.partition, m.offset, m.value)

    @app.page("/metrics")
    async def metrics_page(web: Any, _request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
        return web.bytes(generate_latest(metrics), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])

    return app


def _ticker(loop: BatchLoop) -> Callable[[], Any]:
    async def tick() -> None:
        await loop.tick()

    tick.__name__ = tick.__qualname__ = f"weir_{loop.stage.name}_tick"
    return tick


def run_worker(settings: Settings, names: Sequence[str], *, loglevel: str = "info") -> None:
    """Run the named stages until SIGINT/SIGTERM, then stop cleanly (in-flight batches finish, offsets commit)."""
    catalog = open_catalog(settings)
    metrics = CollectorRegistry()
    ProcessCollector(registry=metrics)  # CPU, memory, open files of this worker
    pipeline = build_pipeline(settings, names, catalog, metrics)
    app = build_app(settings, pipeline, catalog, metrics)

    async def main() -> None:
        stop = asyncio.Event()
        worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, daemon=False)
        await worker.start()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info("worker running stages %s", ", ".join(s.name for s in pipeline.stages))
        await stop.wait()
        await worker.stop()

    asyncio.run(main())
