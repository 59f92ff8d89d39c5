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
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps.processes import free_port, scrape, start_worker, stop_process
from apps.tally import Tally, TopicTally
from apps.timelines import (
    alert_brief,
    decision_report,
    drift_report,
    recovery_report,
    served_accuracy_timeline,
    serving_timeline,
    version_timeline,
)
from consumers.alerts import consume_alerts, format_alert
from producers.event import Source
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, ProduceSummary, publish
from producers.schedule import DriftSchedule
from producers.sources import open_source
from streams.features import feature_vector
from streams.validate.quality import summarize_metrics
from streams.worker import EXIT_GAVE_UP, STATEFUL_STAGES, default_stages
from weir.clock import poll_until
from weir.contract.deadletter import DUPLICATE_EVENT
from weir.contract.serde import SchemaCatalog, open_catalog
from weir.errors import ConfigError, WeirError
from weir.kafka import local as local_kafka
from weir.kafka.admin import create_topics
from weir.kafka.reading import assigned_members
from weir.registry.decisions import current, register, route, sign_model_file
from weir.registry.factories import build_model
from weir.registry.policy import parse_policy
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state import pickling

MODEL = "default"
MAX_WORKER_RESTARTS = 3
RESEND = 0.01  # events sent twice under one id, as a retrying application does: the front serves them once
HISTORY_EVENTS, HISTORY_SEED = 2_000, 7  # what the champion was trained on before the demo
# The demo's automation: retrain on a concept drift or a performance drop (a fresh Hoeffding tree on the last 2,000
# labels), then shadow, a 20% and a 50% canary, and promotion, each on sequential evidence. Steps are short so that
# the loop closes within the demo's stream; docs/automation.md explains every key.
DEMO_POLICY = f"""\
model: {MODEL}
version: 1
mode: automatic
retrain:
  on_alerts: [concept_drift, performance_drop]
  method: full
  window_labels: 2000
  factory: logistic_regression
promotion:
  min_labels: 200
  false_promotion: 0.05
  canary_steps: [20, 50]
  step_labels: 150
rollback:
  false_rollback: 0.01
limits:
  cooldown_labels: 3000
  give_up_labels: 8000
business:                 # what an outcome is worth, for the report's business view
  true_positive: 40       # a churner flagged, offered a discount, and kept
  false_positive: -5      # a discount given to a customer who would have stayed
  false_negative: -60     # a churner missed
  currency: EUR
"""


def run_settings(settings: Settings, run_id: str, policy: Path | None = None) -> Settings:
    return settings.with_overrides(
        topic_prefix=f"{settings.topic_prefix}demo-{run_id}.", app_id=f"weir-demo-{run_id}", web_port=free_port(),
        snapshot_every_s=2.0,  # serve workers see the learner's models within seconds
        policy_file=policy,
    )


def wait_for_pipeline(tally: TopicTally, produced: ProduceSummary,
                      workers: Callable[[], dict[Path, subprocess.Popen[bytes]]],
                      revive: Callable[[Path, int], None], *, stop: threading.Event, timeout_s: float) -> bool:
    """Poll the output topics until every event is served or dead-lettered and every label learned; a worker that
    exits is handed to ``revive``, which starts it again or raises."""
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
            for log, worker in workers().items():
                if worker.poll() is not None:
                    revive(log, worker.returncode)
    finally:
        for bar in bars.values():
            bar.close()
    return False


def _advance(bar: tqdm[Any], value: int) -> None:
    bar.update(value - bar.n)


def _settled_feedback(t: Tally) -> int:
    """Labels the learner is done with: learned, duplicates, late and unmatched."""
    return sum(t.learner_counter(c) for c in SETTLED)


SETTLED = ("labels_learned", "feedback_duplicate", "feedback_late", "feedback_unmatched")


def summarize(t: Tally, produced: ProduceSummary, *, run_id: str, settings: Settings, seconds: float,
              drained: bool, interrupted: bool) -> dict[str, Any]:
    accuracy = served_accuracy(t)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "topic_prefix": settings.topic_prefix,
        "events_produced": produced.events_produced,
        "events_dead_lettered": t.dead_letters,
        "labels_dead_lettered": t.label_dead_letters,
        "predictions": t.predictions,
        "served": t.served,
        "served_twice": t.served_twice,
        "events_resent": produced.events_resent,
        "duplicates_dead_lettered": t.dead_letter_reasons[DUPLICATE_EVENT],
        "feedback_sent": produced.feedback_sent,
        "feedback_learned": t.learner_counter("labels_learned"),
        "feedback_duplicate": t.learner_counter("feedback_duplicate"),
        "feedback_late": t.learner_counter("feedback_late"),
        "feedback_unmatched": t.learner_counter("feedback_unmatched"),
        "alerts": len(t.alerts),
        "accuracy": accuracy,
        "dead_letter_reasons": dict(t.dead_letter_reasons),
        "undecodable_records": dict(t.undecodable),
        "served_by_version": dict(t.served_by_version),
        "alert_list": [alert_brief(a) for a in t.alerts],
        "delivery_failures": produced.events.failed + produced.feedback.failed,
        "seconds": round(seconds, 1),
        "drained": drained,
        "interrupted": interrupted,
    }
    summary["reconciled"] = (
        drained
        and summary["served_twice"] == 0
        and summary["events_produced"] == summary["served"] + summary["events_dead_lettered"]
        and summary["feedback_learned"] + summary["feedback_late"] + summary["feedback_unmatched"]
        + summary["feedback_duplicate"] == summary["feedback_sent"]
    )
    return summary


def served_accuracy(t: Tally) -> float | None:
    """The accuracy of what was served, whichever version served it: each version's served accuracy, weighted by
    the labelled events it served (accuracy is a share, so the weighted mean is exact)."""
    served = [(r["metrics"]["served_accuracy"], r["counters"].get("served", 0)) for r in t.metrics.values()
              if "served_accuracy" in r["metrics"]]
    total = sum(n for _, n in served)
    return sum(a * n for a, n in served) / total if total else None


@dataclass
class DemoRun:
    """One demo run: what it started (so it stops exactly that, whatever happens) and what it measured."""

    run_id: str
    run_dir: Path
    settings: Settings
    source: Source
    catalog: SchemaCatalog
    produced: ProduceSummary = field(default_factory=ProduceSummary)
    tally: TopicTally | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    drained: bool = False
    broker_started: bool = False
    worker: subprocess.Popen[bytes] | None = None  # validate, features, serve, monitor
    learner: subprocess.Popen[bytes] | None = None  # learn, in a process of its own: the demo kills it once
    learner_restarts: int = 0
    worker_restarts: int = 0  # workers that exited on their own and were started again, as a restart policy does
    sink: threading.Thread | None = None
    sink_stop: threading.Event = field(default_factory=threading.Event)
    registry: ModelRegistry | None = None  # read before the broker stops
    outage_s: float = 0.0  # kill -9 the broker at 70% of the stream and start it again this much later
    outage: threading.Thread | None = None
    problems: list[str] = field(default_factory=list)  # what the summary could not learn, and why

    def start(self, stop: threading.Event) -> None:
        if self.settings.uses_local_broker:
            say("starting the local Kafka broker (the first run resolves it from Maven Central)...")
        state = local_kafka.up(self.settings)
        self.broker_started = state.started_here
        where = ", ".join(filter(None, (f"pid {state.pid}" if state.pid else None,
                                        f"log: {state.log}" if state.log else None)))
        say(f"Kafka {'started' if state.started_here else 'found running'} at {state.bootstrap}"
            + (f" ({where})" if where else ""))
        created = create_topics(self.settings)
        say(f"topics: {sum(o.action == 'created' for o in created)} created")
        self.tally = TopicTally(self.settings, self.catalog)  # from here on, a failed run still reports counts
        champion = self._train_champion()
        register(self.settings, self.catalog, MODEL, pickle_path=champion,
                 note=f"demo champion: a Hoeffding tree trained on {HISTORY_EVENTS} historical events")
        route(self.settings, self.catalog, MODEL, "basic", champion="v1", note="demo start")
        say(f"registered v1 (a Hoeffding tree trained on {HISTORY_EVENTS:,} historical events) as champion; from "
            f"here on the policy decides ({self.settings.policy_file})")
        grouped = [stage for stage in default_stages(self.settings) if stage not in STATEFUL_STAGES]
        stateful = [stage for stage in default_stages(self.settings) if stage in STATEFUL_STAGES]
        self.worker = start_worker(self.settings, self.run_dir / "worker.log", *grouped)
        self.learner = self._start_learner()

        def ready() -> bool:
            if stop.is_set():
                raise WeirError("interrupted while the workers were starting")
            for log, worker in self.processes().items():
                if worker.poll() is not None:
                    raise WeirError(f"a worker exited with code {worker.returncode}; see {log}")
            return all(assigned_members(self.settings, f"{self.settings.app_id}-{stage}") for stage in grouped)

        poll_until(ready, timeout_s=120, interval_s=0.5, what="the worker's stages holding partitions")
        say(f"workers ready: {', '.join(grouped)} in one process, {', '.join(stateful)} in another")
        self.sink = threading.Thread(target=consume_alerts, name="alert-sink", kwargs={
            "settings": self.settings, "catalog": self.catalog, "stop": self.sink_stop,
            "handler": lambda a: tqdm.write("alert: " + format_alert(a)),
        })
        self.sink.start()

    def produce(self, policy: FeedbackPolicy, rate: float | None, stop: threading.Event) -> None:
        publisher = EventPublisher(self.settings, self.catalog)
        publisher.summary = self.produced
        total = self.source.total or 0
        milestones = {total * 2 // 5: self._kill_learner}
        if self.outage_s > 0:
            milestones[total * 7 // 10] = self._broker_outage
        publish(publisher, self.source, policy=policy, rate=rate, stop=stop, milestones=milestones, resend=RESEND)

    def _train_champion(self) -> Path:
        """v1 as a real deployment has it: trained offline on history (another stretch of the same domain), pickled
        and signed where it was made."""
        model = build_model("hoeffding_tree", {})
        history = open_source("churn", HISTORY_EVENTS, seed=HISTORY_SEED, event_time=lambda i: i)
        for e in history.events:
            assert e.label is not None
            model.learn_one(feature_vector(e.raw("churn"))["features"], e.label)
        path = self.run_dir / "champion.pkl"
        path.write_bytes(pickling.dumps(model))
        sign_model_file(self.settings, path)
        return path

    def processes(self) -> dict[Path, subprocess.Popen[bytes]]:
        running = {self.run_dir / "worker.log": self.worker, self.run_dir / "learner.log": self.learner}
        return {log: p for log, p in running.items() if p is not None}

    def _start_learner(self) -> subprocess.Popen[bytes]:
        learner = self.settings.with_overrides(web_port=free_port())  # its own /metrics
        stateful = [stage for stage in default_stages(self.settings) if stage in STATEFUL_STAGES]
        return start_worker(learner, self.run_dir / "learner.log", *stateful)

    def _revive(self, log: Path, code: int) -> None:
        """What a restart policy does (compose, Kubernetes): a worker that gave up and exited 70 (a stage failing
        again and again, or a Kafka client call that hung) starts again, a few times; any other exit ends the run."""
        if code != EXIT_GAVE_UP or self.worker_restarts >= MAX_WORKER_RESTARTS:
            raise WeirError(f"a worker exited with code {code}; see {log}")
        self.worker_restarts += 1
        if log.name == "learner.log":
            self.learner = self._start_learner()
        else:
            grouped = [stage for stage in default_stages(self.settings) if stage not in STATEFUL_STAGES]
            self.worker = start_worker(self.settings, log, *grouped)
        tqdm.write(f"weir demo: a worker gave up and exited (code {code}, see {log}); started it again")

    def _kill_learner(self) -> None:
        """kill -9 the learner mid-run and start it again: it resumes from its snapshot, losing nothing."""
        assert self.learner is not None
        self.learner.send_signal(signal.SIGKILL)
        self.learner.wait()
        self.learner = self._start_learner()
        self.learner_restarts += 1
        tqdm.write("weir demo: killed the learner (kill -9) and started it again")

    def _broker_outage(self) -> None:
        """kill -9 the broker, and start it again ``outage_s`` later: no process of the run is told or helped."""
        pid = local_kafka.status(self.settings).pid
        if pid is None:
            raise WeirError("no local broker process to take down")
        os.kill(pid, signal.SIGKILL)
        tqdm.write(f"weir demo: killed the broker (kill -9); it comes back in {self.outage_s:.0f} s")

        def come_back() -> None:
            self.sink_stop.wait(self.outage_s)  # the outage; a run that ends meanwhile brings it back at once
            local_kafka.up(self.settings)
            tqdm.write("weir demo: the broker is back")

        self.outage = threading.Thread(target=come_back, name="broker-outage")
        self.outage.start()

    def wait(self, stop: threading.Event, timeout_s: float) -> None:
        assert self.tally is not None
        self.drained = wait_for_pipeline(self.tally, self.produced, self.processes, self._revive, stop=stop,
                                         timeout_s=timeout_s)
        if not self.drained and not stop.is_set():
            say(f"the pipeline did not drain within {timeout_s:.0f} s; the summary says how far it got")

    def finish(self) -> None:
        """Read from the broker everything the summary needs, then stop what this run started, broker last.

        Each step runs whatever happened before it: a run that failed or was
        interrupted still gets a summary of what is known, and still stops
        every process it started. What could not be read is noted in ``problems``.
        """
        if self.outage is not None:
            self.sink_stop.set()  # ends an outage still going on
            self.outage.join()
        worker = self.worker
        if worker is not None and worker.poll() is None:
            self._attempt("scrape the worker's data-quality metrics",
                          lambda: self.quality.update(summarize_metrics(scrape(self.settings))))
        for log, process in self.processes().items():
            say(f"{log.stem} stopped (exit code {stop_process(process)})")
        self.sink_stop.set()
        if self.sink is not None:
            self.sink.join(timeout=10)
        if self.tally is not None:
            tally = self.tally
            self._attempt("read the output topics to their end", tally.poll_to_end)
            self._attempt("read the model registry", self._read_versions)
            tally.close()
        if self.broker_started:
            local_kafka.down(self.settings)
            say("local Kafka broker stopped")

    def _attempt(self, what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as exc:  # the summary is written whatever one step hit; the step is named in it
            self.problems.append(f"could not {what}: {type(exc).__name__}: {exc}")
            say(self.problems[-1])

    def summary(self, seconds: float, interrupted: bool) -> dict[str, Any]:
        t = self.tally.tally if self.tally else Tally()
        summary = summarize(t, self.produced, run_id=self.run_id, settings=self.settings, seconds=seconds,
                            drained=self.drained, interrupted=interrupted)
        summary.update(source=self.source.name, drift_schedule=self.source.schedule.to_dict(), quality=self.quality,
                       versions=self._versions(t), learner_restarts=self.learner_restarts,
                       worker_restarts=self.worker_restarts,
                       broker_outage_s=self.outage_s,
                       drift=drift_report(self.source.schedule.to_dict(), t.alerts),
                       decisions=decision_report(self.source.schedule.to_dict(), t.alerts), problems=self.problems)
        total = self.source.total or 0
        again = open_source(self.source.name, total, schedule=self.source.schedule, event_time=lambda i: i)
        labels = {e.event_id: e.label for e in again.events}  # the source's own, generated again from its seed
        summary.update(served_accuracy_timeline=served_accuracy_timeline(t.served_answers, labels, total),
                       recovery=recovery_report(t.served_answers, labels, summary["decisions"]),
                       version_timeline=version_timeline(t.answers, labels, total),
                       serving_timeline=serving_timeline(t.served_timing, total))
        return summary

    def _read_versions(self) -> None:
        self.registry = current(self.settings, self.catalog, MODEL)

    def _versions(self, t: Tally) -> dict[str, dict[str, Any]]:
        """Per version: how it was built, its status now, what it served and scored, its learned accuracy."""
        registry = self.registry
        if registry is None:
            return {}
        return {
            v.version: {
                "factory": v.factory,
                "parent_version": v.parent_version,
                "note": v.note,
                "status": registry.status(v.version),
                "served": t.served_by_version.get(v.version, 0),
                "predictions": t.predictions_by_version.get(v.version, 0),
                "errors": t.errors_by_version.get(v.version, 0),
                "accuracy": t.metrics[v.version]["metrics"].get("accuracy") if v.version in t.metrics else None,
                "learned": t.metrics[v.version]["counters"].get("learned", 0) if v.version in t.metrics else 0,
            }
            for v in registry.versions.values()
        }


@dataclass(frozen=True)
class DemoOutcome:
    """Where the summary is, what it says, and the failure that ended the run early, if one did."""

    path: Path
    summary: dict[str, Any]
    failure: BaseException | None
    report: Path | None = None  # the run's report.html, unless drawing it failed (said in the summary's problems)

    @property
    def ok(self) -> bool:
        return self.failure is None and bool(self.summary["reconciled"])


def run_demo(settings: Settings, *, events: int, feedback_delay_s: float, rate: float | None, drift: str,
             runs_dir: Path, stop: threading.Event, drain_timeout_s: float = 300.0,
             broker_outage_s: float = 0.0, policy: Path | None = None) -> DemoOutcome:
    """Run the demo; the summary is written in every case (failure and Ctrl-C included) and its outcome returned.
    ``policy``: a policy file for the demo's model instead of ``DEMO_POLICY``; it is checked before anything
    starts, and copied into the run's folder."""
    if broker_outage_s > 0 and not settings.uses_local_broker:
        raise WeirError("--broker-outage takes down the local broker; it cannot with WEIR_KAFKA_BOOTSTRAP set")
    policy_text = DEMO_POLICY if policy is None else policy.read_text()
    if parse_policy(policy_text, str(policy or "the demo's policy")).model != MODEL:
        raise ConfigError(f"{policy} is not a policy of the demo's model: it needs `model: {MODEL}`")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    source = open_source("churn", events, schedule=DriftSchedule.parse(drift, events))
    policy_copy = run_dir / "policy.yaml"
    policy_copy.write_text(policy_text)
    run = DemoRun(run_id, run_dir, run_settings(settings, run_id, policy_copy), source, open_catalog(settings),
                  outage_s=broker_outage_s)
    (run_dir / "metadata.json").write_text(json.dumps(
        {"run_id": run_id, **source.metadata(), "feedback_delay_s": feedback_delay_s, "rate": rate,
         "topic_prefix": run.settings.topic_prefix, "broker_outage_s": broker_outage_s}, indent=2) + "\n")
    say(f"run {run_id}: {events} churn events; drift: {drift}")
    started = time.monotonic()
    failure: BaseException | None = None
    try:
        run.start(stop)
        run.produce(FeedbackPolicy(f"fixed:{feedback_delay_s}", duplicate=0.01), rate, stop)  # some labels twice
        run.wait(stop, drain_timeout_s + broker_outage_s)
    except BaseException as exc:  # also KeyboardInterrupt: stop what was started, then write what we know
        failure = exc
    finally:
        run.finish()
    summary = run.summary(time.monotonic() - started, interrupted=stop.is_set())
    if failure is not None:
        summary["error"] = f"{type(failure).__name__}: {failure}"
    path = run_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _print_summary(summary)
    from apps.report import report_demo_run  # matplotlib: imported when the run is over, not at its start

    try:
        page: Path | None = report_demo_run(run_dir)
    except Exception as exc:  # the summary stands without its pictures; the problem is said, and kept in it
        page = None
        summary["problems"].append(f"could not draw the report: {type(exc).__name__}: {exc}")
        path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        say(summary["problems"][-1])
    return DemoOutcome(path, summary, failure, page)


def _print_summary(s: dict[str, Any]) -> None:
    accuracy = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
    say(f"events {s['events_produced']} ({s['events_resent']} resent under the same id): served {s['served']}, "
        f"dead-lettered {s['events_dead_lettered']} ({s['duplicates_dead_lettered']} as duplicates), served twice "
        f"{s['served_twice']}; "
        f"feedback {s['feedback_sent']}: learned {s['feedback_learned']}; alerts {s['alerts']}; "
        f"served accuracy {accuracy}; reconciled: {'yes' if s['reconciled'] else 'NO'}")
    if s["undecodable_records"]:
        say("skipped records that do not decode, as the workers do: "
            + ", ".join(f"{topic} {n}" for topic, n in sorted(s["undecodable_records"].items())))
    steps = [f"{d['action']} {d['challenger'] if d['challenger'] != '-' else ''}".strip() + f" @{d['event']}"
             for d in s.get("decisions", [])]
    say(f"policy decisions: {', '.join(steps) or 'none'}")
    timeline = " ".join("-" if w["accuracy"] is None else f"{w['accuracy']:.2f}"
                        for w in s.get("served_accuracy_timeline", []))
    say(f"served accuracy, stretch by stretch: {timeline}")
    for r in s.get("recovery", []):
        before, after = r["before_drift"]["accuracy"], r["after_promotion"]["accuracy"]
        say(f"recovery: {r['promoted']} promoted @{r['at']}, {r['at'] - r['drift']['at']} events after the "
            f"{r['drift']['kind']} drift @{r['drift']['at']}: served accuracy {after} over the "
            f"{r['after_promotion']['served']} events after it, {before} over the {r['before_drift']['served']} "
            f"before the drift (gap {r['gap']})")


def say(message: str) -> None:
    tqdm.write(f"weir demo: {message}")
