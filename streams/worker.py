"""The faust-streaming app that runs Weir's stages, built from settings in a function.

The app is the process: lifecycle and signals, the /metrics page, and the
supervision of its services. One service follows the ``models`` topic so
routing and version changes reach the stages within a second
(``streams.follower``); with a back and a policy, one runs its retrainings in
processes of their own (``streams.retrainer``); each stage runs as a ``StageLoop`` service
(``streams.runtime.loop``): a confluent-kafka batch loop that commits each
batch's outputs with its input offsets, because faust's per-message path is
two orders of magnitude slower than a batch loop on the same broker.

By default the worker runs the front (validate, features and serve fused,
``streams.front``) and the back (learn and monitor fused, ``streams.back``);
``WEIR_FUSED=false`` runs the five stages apart. Several workers with the same app id share the
partitions of the grouped stages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import mode
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]  # aiokafka ships no types
from confluent_kafka import KafkaException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

from streams.back import BackStage
from streams.features import FeaturesStage
from streams.follower import RegistryFollower, load_live_registry
from streams.front import FrontStage
from streams.learn.stage import LearnStage
from streams.monitor.stage import MonitorStage
from streams.retrainer import Retrainer
from streams.runtime.loop import StageLoop
from streams.runtime.metrics import StageMetrics
from streams.runtime.stage import Stage
from streams.serve.stage import ServeStage
from streams.validate.stage import ValidateStage
from weir.contract.serde import SchemaCatalog, open_catalog
from weir.errors import KafkaUnreachable, WeirError
from weir.registry.store import RegistryIntake
from weir.registry.view import ModelRegistry
from weir.settings import Settings

FUSED_STAGES: tuple[str, ...] = ("front", "back")  # front = validate + features + serve; back = learn + monitor
SPLIT_STAGES: tuple[str, ...] = ("validate", "features", "serve", "learn", "monitor")
STAGE_NAMES: tuple[str, ...] = (*FUSED_STAGES, *SPLIT_STAGES)
STATEFUL_STAGES: frozenset[str] = frozenset({"back", "learn"})  # they read every partition, in every replica
FUSES = {"front": {"validate", "features", "serve"}, "back": {"learn", "monitor"}}

log = logging.getLogger("weir.worker")


def default_stages(settings: Settings) -> tuple[str, ...]:
    """Every stage, fused or apart as ``WEIR_FUSED`` says."""
    return FUSED_STAGES if settings.fused else SPLIT_STAGES


@dataclass
class Pipeline:
    """The stages one worker runs, the registry view they share, where the registry follower starts, and the
    retrainer the back hands its retrainings to (a worker with a back and a policy)."""

    stages: list[Stage]
    registry: ModelRegistry
    intake: RegistryIntake
    follow_from: dict[int, int]
    retrainer: Retrainer | None = None


def build_pipeline(settings: Settings, names: Sequence[str], catalog: SchemaCatalog,
                   metrics: CollectorRegistry) -> Pipeline:
    """Instantiate the named stages; serve and learn share one live registry (one model per version)."""
    unknown = set(names) - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stages: {', '.join(sorted(unknown))}")
    for fused, parts in FUSES.items():
        if fused in names and parts & set(names):
            raise ValueError(f"the {fused} stage is {' and '.join(sorted(parts))} fused: run it or them, not both")
    # A serve worker without a learner beside it follows the learner's snapshots; with one, it serves the
    # learner's live models directly.
    registry, intake, follow_from = load_live_registry(
        settings, catalog, metrics, follows_snapshots=not STATEFUL_STAGES & set(names),
        register_default=bool({"front", "serve", "back", "learn"} & set(names)))
    kept_reference = settings.state_dir / settings.app_id / "monitor.reference.json"
    retrainer = Retrainer() if "back" in names and settings.policy_file is not None else None
    makers: dict[str, Callable[[], Stage]] = {
        "front": lambda: FrontStage(settings, catalog, registry, metrics),
        "back": lambda: BackStage(settings, catalog, registry, metrics, kept_reference, retrainer),
        "validate": lambda: ValidateStage(settings, catalog, metrics),
        "features": lambda: FeaturesStage(settings, catalog),
        "serve": lambda: ServeStage(settings, catalog, registry, metrics),
        "learn": lambda: LearnStage(settings, catalog, registry, metrics),
        "monitor": lambda: MonitorStage(settings, catalog, metrics, kept_reference),
    }
    return Pipeline([makers[n]() for n in STAGE_NAMES if n in names], registry, intake, follow_from, retrainer)


EXIT_GAVE_UP = 70  # EX_SOFTWARE: a stage failed on its own too often in a row; its supervisor restarts the worker


def build_app(settings: Settings, pipeline: Pipeline, metrics: CollectorRegistry,
              on_give_up: Callable[[StageLoop], None] | None = None) -> faust.App:
    """The faust app running the registry follower and one loop per stage, with /metrics, /livez and /readyz."""
    datadir = settings.state_dir / settings.app_id / "faust"  # not <app name>-data in the working directory
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.app_id}-worker",
        **settings.faust(),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_bind,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        topic_allow_declare=False,  # topics are `weir topics create`'s job, with the contract's configs
        datadir=str(datadir),
        topic_disable_leader=True,
    )
    # No faust consumer: the stage loops and the registry follower read with confluent-kafka, committed records
    # only. faust runs the services, the web server and the signals.
    app.producer_only = True
    stage_metrics = StageMetrics(metrics)
    follower = RegistryFollower(settings, pipeline.intake, pipeline.registry, pipeline.follow_from)
    services: list[mode.Service] = [follower]
    if pipeline.retrainer is not None:
        services.append(pipeline.retrainer)
    loops = [StageLoop(settings, stage, stage_metrics, on_give_up) for stage in pipeline.stages]
    services += loops
    for service in services:
        app.service(service)  # type: ignore[arg-type]  # annotated for a class; faust starts instances too

    @app.page("/metrics")
    async def metrics_page(web: Any, _request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
        return web.bytes(generate_latest(metrics), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])

    @app.page("/livez")
    async def livez(web: Any, _request: Any) -> Any:
        """200 while every stage loop shows signs of life; 503 names the ones that do not (restart the worker)."""
        now = time.monotonic()
        # A loop may wait for its deliveries as long as its producer retries them: not silence.
        silent = [loop.stage.name for loop in loops if loop.gave_up is not None
                  or now - loop.heartbeat > max(settings.liveness_timeout_s, 2 * loop.delivery_wait_s)]
        return _health(web, silent, "silent or given up")

    @app.page("/readyz")
    async def readyz(web: Any, _request: Any) -> Any:
        """200 once every stage runs a session that got a batch through; 503 names the ones starting or failing."""
        return _health(web, [loop.stage.name for loop in loops if not loop.ready], "not running")

    return app


def _health(web: Any, failing: list[str], what: str) -> Any:
    if failing:
        return web.text(f"{what}: {', '.join(failing)}\n", status=503)
    return web.text("ok\n")


def run_worker(settings: Settings, names: Sequence[str], *, loglevel: str = "info") -> None:
    """Run the named stages until SIGINT/SIGTERM, then stop cleanly (in-flight batches finish, offsets commit)."""
    catalog = open_catalog(settings)
    metrics = CollectorRegistry()
    ProcessCollector(registry=metrics)  # CPU, memory, open files of this worker
    try:
        pipeline = build_pipeline(settings, names, catalog, metrics)
    except (KafkaUnreachable, KafkaException) as exc:  # the cluster went away after the registry load waited
        raise _went_away(exc) from exc
    stop = asyncio.Event()
    given_up: list[StageLoop] = []

    def give_up(loop: StageLoop) -> None:
        given_up.append(loop)
        stop.set()

    app = build_app(settings, pipeline, metrics, give_up)

    async def main() -> None:
        worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, daemon=False)
        try:
            await worker.start()
        except KafkaConnectionError as exc:  # the cluster went away between loading the registry and now
            raise _went_away(exc) from exc
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info("worker running stages %s", ", ".join(s.name for s in pipeline.stages))
        await stop.wait()
        await worker.stop()  # the other stages finish their batch and commit

    asyncio.run(main())
    reason = "; ".join(loop.gave_up or "" for loop in given_up)
    if any(loop.hung for loop in given_up):
        # The hung librdkafka call holds a thread the interpreter would wait for at exit, for ever: say why, and
        # leave now.
        log.critical("worker exits: %s", reason)
        print(f"weir: {reason}", file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(EXIT_GAVE_UP)
    if given_up:
        raise WorkerGaveUp(reason)


class WorkerGaveUp(WeirError):
    """A stage failed too often in a row: the worker stopped, for its supervisor to start it again."""

    exit_code = EXIT_GAVE_UP


def _went_away(exc: Exception) -> WorkerGaveUp:
    """A start the cluster broke off: exit 70, so the supervisor starts a fresh process, which waits for it."""
    return WorkerGaveUp(f"the Kafka cluster went away while the worker started ({exc}); its supervisor starts it "
                        "again, and it waits for the cluster")
