"""`weir demo`: the whole loop, end to end, on a bounded stream, with a reconciled summary.

The demo is an orchestrator, not a shortcut: the stages run in a real worker
process, the producer and the alert sink are the same code as their CLI
commands, and the counts come from reading the output topics. Each run gets its
own topic prefix and consumer groups, so runs never see each other's records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from consumers.alerts import consume_alerts, format_alert
from producers.events import EventPublisher, ProduceSummary, publish
from producers.synthetic import synthetic_events
from weir import local_kafka
from weir.errors import WeirError
from weir.serde import Record, open_catalog
from weir.settings import Settings
from weir.tally import Tally, TopicTally
from weir.topics import create_topics


@dataclass
class RunContext:
    """What a demo run started, so that it stops exactly that, whatever happens."""

    run_dir: Path
    settings: Settings
    broker_started: bool = False
    worker: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    sink_stop: threading.Event = field(default_factory=threading.Event)


def run_settings(settings: Settings, run_id: str) -> Settings:
    return settings.with_overrides(
        topic_prefix=f"{settings.topic_prefix}demo-{run_id}.", app_id=f"weir-demo-{run_id}", web_port=0
    )


def start_worker(settings: Settings, log_path: Path, *stages: str, loglevel: str = "warn") -> subprocess.Popen[bytes]:
    """The stream stages in their own process, as in production, logging to ``log_path``."""
    env = {**os.environ, "WEIR_TOPIC_PREFIX": settings.topic_prefix, "WEIR_APP_ID": settings.app_id,
           "WEIR_WEB_PORT": str(settings.web_port)}
    if settings.kafka_bootstrap:
        env["WEIR_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    args = [sys.executable, "-m", "weir", "worker", "--loglevel", loglevel]
    for stage in stages:
        args += ["--stage", stage]
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM, a grace period for the in-flight batch and the final commit, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for_pipeline(tally: TopicTally, produced: ProduceSummary, ctx: RunContext, *, stop: threading.Event,
                      timeout_s: float) -> bool:
    """Poll the output topics until every event is served or dead-lettered and every label learned."""
    t = tally.tally
    bars = {
        "served": tqdm(total=produced.events_produced, desc="served+dlq", unit="ev", dynamic_ncols=True),
        "learned": tqdm(total=produced.feedback_sent, desc="learned", unit="lbl", dynamic_ncols=True),
    }
    deadline = time.monotonic() + timeout_s
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            tally.poll()
            _advance(bars["served"], t.served + t.dead_letters)
            _advance(bars["learned"], _settled_feedback(t))
            if t.served + t.dead_letters >= produced.events_produced and \
                    _settled_feedback(t) >= produced.feedback_sent:
                return True
            if ctx.worker is not None and ctx.worker.poll() is not None:
                raise WeirError(f"the worker exited with code {ctx.worker.returncode}; "
                                f"see {ctx.run_dir / 'worker.log'}")
    finally:
        for bar in bars.values():
            bar.close()
    return False


def _advance(bar: tqdm, value: int) -> None:
    bar.update(value - bar.n)


def _settled_feedback(t: Tally) -> int:
    """Labels the learner is done with: learned, duplicates and unmatched."""
    return sum(t.learner_counter(c) for c in ("feedback_joined", "feedback_duplicate", "feedback_unmatched"))


def summarize(t: Tally, produced: ProduceSummary, *, run_id: str, settings: Settings, seconds: float,
              drained: bool, interrupted: bool) -> dict[str, Any]:
    champion = max(t.served_by_version, key=t.served_by_version.__getitem__, default=None)
    accuracy = t.metrics[champion]["metrics"].get("accuracy") if champion in t.metrics else None
    summary: dict[str, Any] = {
        "run_id": run_id,
        "topic_prefix": settings.topic_prefix,
        "events_produced": produced.events_produced,
        "events_dead_lettered": t.dead_letters,
        "predictions": t.predictions,
        "served": t.served,
        "served_twice": t.served_twice,
        "feedback_sent": produced.feedback_sent,
        "feedback_learned": t.learner_counter("feedback_joined"),
        "feedback_duplicate": t.learner_counter("feedback_duplicate"),
        "feedback_unmatched": t.learner_counter("feedback_unmatched"),
        "alerts": len(t.alerts),
        "accuracy": accuracy,
        "dead_letter_reasons": dict(t.dead_letter_reasons),
        "served_by_version": dict(t.served_by_version),
        "alert_list": [_alert_brief(a) for a in t.alerts],
        "delivery_failures": produced.events.failed + produced.feedback.failed,
        "seconds": round(seconds, 1),
        "drained": drained,
        "interrupted": interrupted,
    }
    summary["reconciled"] = (
        summary["events_produced"] == summary["served"] + summary["events_dead_lettered"]
        and summary["feedback_learned"] == summary["feedback_sent"]
    )
    return summary


def _alert_brief(alert: Record) -> dict[str, Any]:
    return {k: alert[k] for k in ("kind", "subject", "status", "statistic", "evidence", "detected_at")}


def run_demo(settings: Settings, *, events: int, feedback_delay_s: float, rate: float | None, runs_dir: Path,
             stop: threading.Event, drain_timeout_s: float = 300.0) -> Path:
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    ctx = RunContext(run_dir, run_settings(settings, run_id))
    catalog = open_catalog(settings)
    started = time.monotonic()
    produced = ProduceSummary()
    tally: TopicTally | None = None
    drained = False
    failure: BaseException | None = None
    try:
        say(f"run {run_id}: topics prefixed {ctx.settings.topic_prefix!r}")
        if ctx.settings.uses_local_broker:
            say("starting the local Kafka broker (the first run resolves it from Maven Central)...")
        state = local_kafka.up(ctx.settings)
        ctx.broker_started = state.started_here
        say(f"Kafka at {state.bootstrap}" + (f" (log: {state.log})" if state.log else ""))
        created = create_topics(ctx.settings)
        say(f"topics: {sum(o.action == 'created' for o in created)} created")
        ctx.worker = start_worker(ctx.settings, run_dir / "worker.log")
        sink = threading.Thread(target=consume_alerts, name="alert-sink", kwargs={
            "settings": ctx.settings, "catalog": catalog, "stop": ctx.sink_stop,
            "handler": lambda a: tqdm.write("alert: " + format_alert(a)),
        })
        sink.start()
        ctx.threads.append(sink)
        tally = TopicTally(ctx.settings, catalog)
        publisher = EventPublisher(ctx.settings, catalog)
        produced = publish(publisher, synthetic_events(events), total=events, rate=rate,
                           feedback_delay_s=feedback_delay_s, stop=stop)
        drained = wait_for_pipeline(tally, produced, ctx, stop=stop, timeout_s=drain_timeout_s)
        if not drained and not stop.is_set():
            say(f"the pipeline did not drain within {drain_timeout_s:.0f} s; the summary says how far it got")
    except BaseException as exc:
        failure = exc
    finally:
        _stop_everything(ctx)
    summary = summarize(tally.tally if tally else Tally(), produced, run_id=run_id, settings=ctx.settings,
                        seconds=time.monotonic() - started, drained=drained, interrupted=stop.is_set())
    if failure is not None:
        summary["error"] = f"{type(failure).__name__}: {failure}"
    if tally is not None:
        tally.close()
    path = run_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _print_summary(summary)
    if failure is not None:
        say(f"summary of the failed run: {path}")
        raise failure
    return path


def _stop_everything(ctx: RunContext) -> None:
    if ctx.worker is not None:
        code = stop_process(ctx.worker)
        say(f"worker stopped (exit code {code})")
    ctx.sink_stop.set()
    for thread in ctx.threads:
        thread.join(timeout=10)
    if ctx.broker_started:
        local_kafka.down(ctx.settings)
        say("local Kafka broker stopped")


def _print_summary(s: dict[str, Any]) -> None:
    accuracy = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
    say(f"events {s['events_produced']}: served {s['served']}, dead-lettered {s['events_dead_lettered']}; "
        f"feedback {s['feedback_sent']}: learned {s['feedback_learned']}; alerts {s['alerts']}; "
        f"served accuracy {accuracy}; reconciled: {'yes' if s['reconciled'] else 'NO'}")


def say(message: str) -> None:
    tqdm.write(f"weir demo: {message}")
