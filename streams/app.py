"""The faust-streaming app that runs Weir's stages, built from settings in a function.

Each stage becomes one agent (concurrency 1: faust can commit past in-flight
events otherwise, faust-streaming #606). An agent takes a batch, asks the stage
for its output, sends every output record and waits until the broker
acknowledged all of them; only then does the loop ask for the next batch, which
is when faust acks the batch and may commit its offsets. Any failure in between
ends the process at once (``os._exit``) so that nothing is acked whose effects
are unknown: faust would otherwise commit the failing batch (faust-streaming
#315, #527), and the restarted worker re-reads it instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.features import FeaturesStage
from streams.learn import LearnStage
from streams.monitor import MonitorStage
from streams.serve import ServeStage
from streams.stage import InRecord, OutRecord, Stage
from streams.validate import ValidateStage
from weir.metrics import StageMetrics
from weir.registry import ModelRegistry
from weir.registry_store import RegistryFollower, register_default_model
from weir.serde import SchemaCatalog, open_catalog
from weir.settings import Settings

ALL_STAGES: tuple[str, ...] = ("validate", "features", "serve", "learn", "monitor")
EXIT_STAGE_FAILED = 70
EXIT_DELIVERY_FAILED = 71

log = logging.getLogger("weir.worker")


@dataclass
class Pipeline:
    """The stages one worker runs, and the registry view they share."""

    stages: list[Stage]
    follower: RegistryFollower | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def build_pipeline(settings: Settings, names: Sequence[str], catalog: SchemaCatalog) -> Pipeline:
    """Instantiate the named stages; serve and learn share one live registry (one model per version)."""
    unknown = set(names) - set(ALL_STAGES)
    if unknown:
        raise ValueError(f"unknown stages: {', '.join(sorted(unknown))}")
    follower = None
    if {"serve", "learn"} & set(names):
        follower = RegistryFollower(settings, catalog, ModelRegistry(settings.model_name))
        follower.load()
        if register_default_model(settings, catalog, follower):
            log.info("registry was empty: registered %s v1 (%s) as champion",
                     settings.model_name, settings.default_factory)
    makers: dict[str, Callable[[], Stage]] = {
        "validate": lambda: ValidateStage(settings, catalog),
        "features": lambda: FeaturesStage(settings, catalog),
        "serve": lambda: ServeStage(settings, catalog, follower.registry),  # type: ignore[union-attr]
        "learn": lambda: LearnStage(settings, catalog, follower.registry),  # type: ignore[union-attr]
        "monitor": lambda: MonitorStage(settings, catalog),
    }
    pipeline = Pipeline([makers[n]() for n in ALL_STAGES if n in names], follower)
    if follower is not None:
        pipeline.closers.append(follower.close)
    return pipeline


def group_id(settings: Settings, names: Sequence[str]) -> str:
    """One consumer group per set of stages: a worker running all stages is ``<app_id>``."""
    if set(names) == set(ALL_STAGES):
        return settings.app_id
    return f"{settings.app_id}-{'-'.join(n for n in ALL_STAGES if n in names)}"


def build_app(settings: Settings, pipeline: Pipeline, group: str, metrics: CollectorRegistry) -> faust.App:
    app = faust.App(
        group,
        **settings.faust(),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="0.0.0.0",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        broker_max_poll_records=settings.batch_size,
        topic_allow_declare=False,  # topics are `weir topics create`'s job, with the contract's configs
        topic_disable_leader=True,
    )
    stage_metrics = StageMetrics(metrics)
    for stage in pipeline.stages:
        channel = app.topic(*stage.inputs, key_serializer="raw", value_serializer="raw")
        app.agent(channel, name=f"weir.{stage.name}", concurrency=1)(_agent(app, settings, stage, stage_metrics))
        app.timer(settings.commit_interval_s, name=f"weir.{stage.name}.tick")(_ticker(app, stage, stage_metrics))
    if pipeline.follower is not None:
        follower = pipeline.follower

        @app.timer(0.25, name="weir.registry.follow")
        async def follow_registry() -> None:
            follower.poll()

    @app.page("/metrics")
    async def metrics_page(web: Any, _request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
        return web.bytes(generate_latest(metrics), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])

    return app


def _in_record(event: Any) -> InRecord:
    m = event.message
    return InRecord(m.topic, m.partition, m.offset, int(m.timestamp * 1000), m.key, m.value, list(m.headers or []))


def _agent(app: faust.App, settings: Settings, stage: Stage, metrics: StageMetrics) -> Callable[[Any], Any]:
    async def run(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            started = time.perf_counter()
            batch = [_in_record(e) for e in events]
            try:
                out = stage.process(batch)
            except Exception:
                _die(EXIT_STAGE_FAILED, f"stage {stage.name} raised on a batch of {len(batch)}")
            await _deliver(app, out, stage.name)
            metrics.observe_batch(stage.name, batch, out, time.perf_counter() - started)

    run.__name__ = run.__qualname__ = f"weir_{stage.name}"
    return run


def _ticker(app: faust.App, stage: Stage, metrics: StageMetrics) -> Callable[[], Any]:
    async def tick() -> None:
        try:
            out = stage.tick()
        except Exception:
            _die(EXIT_STAGE_FAILED, f"stage {stage.name} raised in its timer")
        await _deliver(app, out, stage.name)
        metrics.observe_output(stage.name, out)

    tick.__name__ = tick.__qualname__ = f"weir_{stage.name}_tick"
    return tick


async def _deliver(app: faust.App, out: list[OutRecord], stage: str) -> None:
    """Send every record and wait for every acknowledgement; a refusal ends the process."""
    try:
        pending = [
            await app.producer.send(o.topic, o.key, o.value, partition=None, timestamp=None, headers=o.headers)
            for o in out
        ]
        await asyncio.gather(*pending)
    except Exception:
        _die(EXIT_DELIVERY_FAILED, f"stage {stage} could not deliver its output")


def _die(code: int, message: str) -> NoReturn:
    log.critical("%s; exiting without acking the batch so it is processed again after restart", message,
                 exc_info=True)
    logging.shutdown()
    os._exit(code)


def run_worker(settings: Settings, names: Sequence[str], *, loglevel: str = "info",
               ready: Callable[[], None] | None = None) -> None:
    """Run the named stages until SIGINT/SIGTERM, then stop cleanly (in-flight batches finish, offsets commit)."""
    catalog = open_catalog(settings)
    pipeline = build_pipeline(settings, names, catalog)
    app = build_app(settings, pipeline, group_id(settings, names), CollectorRegistry())

    async def main() -> None:
        stop = asyncio.Event()
        worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, daemon=False)
        await worker.start()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info("worker %s running stages %s", app.conf.id, ", ".join(s.name for s in pipeline.stages))
        if ready is not None:
            ready()
        await stop.wait()
        await worker.stop()

    try:
        asyncio.run(main())
    finally:
        for close in pipeline.closers:
            close()
