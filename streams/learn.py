"""Learn stage: a label that completes its event teaches every active version, once, in one order.

The join (``weir.join``) meets each label with the point-in-time features and
the predictions of its event; the sequencer (``weir.sequencer``) releases
completed events in (label time, event id) order, so the models end in the
same state whether the stage ran without a break or was killed and replayed.
Metrics score each version's served-time prediction (``weir.evaluation``).

The stage's whole state lives in one SQLite file on local disk
(``weir.state_store``): the join's pending parts and dedupe memory in tables,
models, metrics and the sequencer in a snapshot row. A snapshot commits both,
with the input offsets they reflect, every ``snapshot_every_labels`` labels or
``snapshot_every_s`` seconds; on start the runner restores it and resumes
reading exactly there. Each snapshot also puts every active version's model on
the ``models`` topic, for serve workers in other processes to pick up.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from streams.stage import InRecord, OutRecord, Route, dead_letter, dispatch
from weir.clock import now_ms
from weir.dlq import Rejection
from weir.evaluation import VersionMetrics
from weir.join import PendingEvent, PendingJoin, Stray
from weir.registry import ModelRegistry, ModelVersion, metrics_record, record_key, snapshot_record
from weir.sequencer import Sequencer
from weir.serde import Record, SchemaCatalog
from weir.settings import Settings
from weir.state_store import StateStore
from weir.topics import EVENTS_DLQ, FEATURES, FEEDBACK, FEEDBACK_LATE, MODELS, PREDICTIONS, topic_serde

STAGE = "learn"
SNAPSHOT_FORMAT = 1

log = logging.getLogger("weir.learn")


class Learner:
    """Feeds joined labels, in sequence, to the registry's live models and keeps per-version metrics."""

    def __init__(self, registry: ModelRegistry, join: PendingJoin, sequencer: Sequencer) -> None:
        self.registry = registry
        self.join = join
        self.sequencer = sequencer
        self.metrics: dict[str, VersionMetrics] = {}
        self.served = VersionMetrics()  # of what was served, whichever version served it
        self.learned: Counter[str] = Counter()
        self.labels_learned = 0

    def on_features(self, vector: Record) -> None:
        self._joined(self.join.add_features(vector))

    def on_prediction(self, prediction: Record) -> None:
        self._joined(self.join.add_prediction(prediction))

    def on_feedback(self, feedback: Record, *, partition: Any = 0, source: Any = None, wall_ms: int = 0) -> None:
        """A label: held in sequence from now on, learned once its event has joined and its turn has come."""
        self.sequencer.observe(partition, feedback["label_time"], wall_ms)
        event = self.join.add_feedback(feedback, source)
        if event is not None:
            self.sequencer.hold(event.label_time_ms, event.event_id)
            self._joined(event if event.complete else None)

    def _joined(self, event: PendingEvent | None) -> None:
        if event is not None:
            self.sequencer.joined(event.label_time_ms, event.event_id, event)

    def advance(self, wall_ms: int) -> list[Stray]:
        """Expire what left the window, learn what the sequencer releases; the strays to route on."""
        for event in self.join.expire():
            self._joined(event)
        strays = self.join.take_strays()
        for stray in strays:
            if stray.kind == "unmatched":  # a held label whose event never came
                self.sequencer.drop(stray.label_time_ms, stray.event_id)
        for event in self.sequencer.release(wall_ms):
            self._learn(event)
        return strays

    def finish(self) -> list[Stray]:
        """Learn everything still held (the end of a bounded replay)."""
        for event in self.sequencer.flush():
            self._learn(event)
        return self.join.take_strays()

    def _learn(self, event: PendingEvent) -> None:
        assert event.features is not None
        x, y = event.features["features"], event.label
        if event.served_version is not None:
            self.served.update(y, event.predictions[event.served_version])
        for version, prediction in event.predictions.items():
            self.metrics.setdefault(version, VersionMetrics()).update(y, prediction)
        for version in self._learners_of(event):
            version.model.learn_one(x, y)
            self.learned[version.version] += 1
        self.labels_learned += 1

    def _learners_of(self, event: PendingEvent) -> list[ModelVersion]:
        """The versions that scored the event: a fact of the data, not of when the label was processed, so a
        restore and replay teaches exactly the versions an uninterrupted run taught, across routing changes.
        An event the serve stage dead-lettered has no predictions: the versions active now learn it."""
        if not event.predictions:
            return self.registry.active()
        return [self.registry.versions[v] for v in sorted(event.predictions) if v in self.registry.versions]

    def metrics_records(self) -> list[Record]:
        """One METRICS record per version that learned, with the stage's label accounting."""
        c = self.join.counters
        stage = {
            "feedback_received": c.received, "feedback_joined": c.joined, "feedback_duplicate": c.duplicate,
            "feedback_late": c.late, "feedback_unmatched": c.unmatched, "feedback_pending": self.join.labels_pending,
            "feedback_held": len(self.sequencer), "labels_learned": self.labels_learned,
        }
        served = {f"served_{k}": v for k, v in self.served.values().items()}
        return [
            metrics_record(self.registry.model_name, version,
                           {**(self.metrics[version].values() if version in self.metrics else {}), **served},
                           {"learned": learned, **stage})
            for version, learned in sorted(self.learned.items())
        ]

    def state(self) -> dict[str, Any]:
        """Everything a restart needs to continue exactly where this left off."""
        return {
            "models": {v.version: v.model for v in self.registry.versions.values() if v.version in self.learned},
            "metrics": self.metrics, "served": self.served, "learned": self.learned,
            "labels_learned": self.labels_learned, "join": self.join.state(), "sequencer": self.sequencer,
        }

    def load_state(self, state: dict[str, Any], wall_ms: int) -> None:
        for version, model in state["models"].items():
            if version in self.registry.versions:
                self.registry.versions[version].model = model
            else:
                log.error("snapshot has a model for %s, which the registry does not know; dropped", version)
        self.metrics, self.served, self.learned = state["metrics"], state["served"], state["learned"]
        self.labels_learned, self.sequencer = state["labels_learned"], state["sequencer"]
        self.join.load_state(state["join"])
        self.sequencer.resume(wall_ms)


class LearnMetrics:
    """Prometheus view of the learner: label accounting and per-version metric values."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.labels = PromCounter("weir_learn_labels", "Labels by outcome", ["outcome"], registry=registry)
        self.metric = Gauge("weir_learn_metric", "Per-version metric of learned labels",
                            ["model", "version", "metric"], registry=registry)
        self.snapshot_age = Gauge("weir_learn_snapshot_age_seconds", "Time since the last snapshot",
                                  registry=registry)
        self._seen: Counter[str] = Counter()

    def publish(self, learner: Learner, snapshot_at: float) -> None:
        c = learner.join.counters
        for outcome, value in (("received", c.received), ("joined", c.joined), ("duplicate", c.duplicate),
                               ("late", c.late), ("unmatched", c.unmatched), ("learned", learner.labels_learned)):
            self.labels.labels(outcome).inc(value - self._seen[outcome])
            self._seen[outcome] = value
        for version, vm in learner.metrics.items():
            for name, value in vm.values().items():
                self.metric.labels(learner.registry.model_name, version, name).set(value)
        self.snapshot_age.set(time.monotonic() - snapshot_at)


class LearnStage:
    """features + predictions + feedback -> learned models; late labels to feedback.late, unmatched to the DLQ."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.state_path = settings.state_dir / settings.app_id / f"{STAGE}.db"
        self.store = StateStore(None)  # until ``restore`` opens the stage's own file
        self.learner = Learner(registry, self._join(), Sequencer(settings.sequencer_idle_ms))
        vectors = topic_serde(catalog, settings, FEATURES)
        predictions = topic_serde(catalog, settings, PREDICTIONS)
        feedback = topic_serde(catalog, settings, FEEDBACK)
        self.models = topic_serde(catalog, settings, MODELS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.late_topic = settings.topic(FEEDBACK_LATE.name)
        self.feedback_topic = feedback.topic
        self.inputs = (vectors.topic, predictions.topic, feedback.topic)
        self.outputs = (self.models.topic, self.dlq_topic, self.late_topic)
        self.routes = {
            vectors.topic: Route(vectors, lambda _r, v: self.learner.on_features(v) or []),
            predictions.topic: Route(predictions, lambda _r, v: self.learner.on_prediction(v) or []),
            feedback.topic: Route(feedback, self._feedback),
        }
        self.prometheus = LearnMetrics(metrics or CollectorRegistry())
        self._snapshot_at = time.monotonic()
        self._learned_at_snapshot = 0
        self._read_since_snapshot = 0

    def _feedback(self, record: InRecord, feedback: Record) -> list[OutRecord]:
        self.learner.on_feedback(feedback, partition=record.partition, source=record, wall_ms=now_ms())
        return []

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        self._read_since_snapshot += len(batch)
        out = dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic)
        return out + self._route_strays(self.learner.advance(now_ms()))

    def tick(self) -> list[OutRecord]:
        out = self._route_strays(self.learner.advance(now_ms()))
        self.prometheus.publish(self.learner, self._snapshot_at)
        return out + [OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(r))
                      for r in self.learner.metrics_records()]

    def _route_strays(self, strays: list[Stray]) -> list[OutRecord]:
        out = []
        for stray in strays:
            record: InRecord | None = stray.source
            if record is None:
                continue
            if stray.kind == "late":
                why = Rejection("late-feedback", STAGE, f"label for {stray.event_id} came after its event "
                                f"left the {self.settings.join_window_ms} ms join window", dimension="timeliness")
                out.append(dead_letter(self.late_topic, record, why))
            else:
                why = Rejection("unmatched-feedback", STAGE, f"no event {stray.event_id} was seen within "
                                f"{self.settings.join_window_ms} ms of its label", dimension="consistency")
                out.append(dead_letter(self.dlq_topic, record, why))
        return out

    # --- state -------------------------------------------------------------------------

    def _join(self) -> PendingJoin:
        return PendingJoin(window_ms=self.settings.join_window_ms, needs_features=True,
                           hot_events=self.settings.join_hot_events, store=self.store)

    def restore(self) -> dict[tuple[str, int], int] | None:
        """Open the stage's state file and load its last snapshot; the input offsets to resume from, or None
        when there is none."""
        self.store.close()
        self.store = StateStore(self.state_path, cache_mb=self.settings.state_cache_mb)
        self.learner.join = self._join()
        snapshot = self.store.load()
        if snapshot is None:
            older = self.state_path.with_suffix(".snapshot")
            if older.exists():
                log.warning("%s is a snapshot of an earlier Weir this version does not read: rebuilding the learner "
                            "from the beginning of its topics, which gives the same state; delete the file once "
                            "done", older)
            return None
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise RuntimeError(f"{self.state_path} has snapshot format {snapshot.get('format')}, "
                               f"this version reads {SNAPSHOT_FORMAT}")
        self.learner.load_state(snapshot["learner"], now_ms())
        self._learned_at_snapshot = self.learner.labels_learned
        log.info("restored %s: %d labels learned, %d event parts pending, resuming at %s", self.state_path,
                 self.learner.labels_learned, len(self.learner.join), snapshot["offsets"])
        return dict(snapshot["offsets"])

    def close(self) -> None:
        """Release the state file; what the last snapshot did not commit is rolled back with its offsets."""
        self.store.close()

    def snapshot_due(self, final: bool = False) -> bool:
        """Every N labels, or every T seconds (and at a stop) if anything was read: when labels stop coming,
        the parts still arriving are committed too, so the open transaction and a restart's re-read stay short."""
        learned = self.learner.labels_learned - self._learned_at_snapshot
        return learned >= self.settings.snapshot_every_labels or (self._read_since_snapshot > 0 and (
            final or time.monotonic() - self._snapshot_at >= self.settings.snapshot_every_s))

    def note_partitions(self, assigned: set[tuple[str, int]], caught_up: set[tuple[str, int]]) -> None:
        feedback = self.feedback_topic
        self.learner.sequencer.track({p for t, p in assigned if t == feedback},
                                     {p for t, p in caught_up if t == feedback}, now_ms())

    def snapshot(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        """Commit the state with the offsets it reflects (atomically); the serving copies to publish."""
        self.store.commit({"format": SNAPSHOT_FORMAT, "offsets": dict(offsets), "learner": self.learner.state()})
        learned = self.learner.labels_learned > self._learned_at_snapshot
        self._snapshot_at, self._learned_at_snapshot = time.monotonic(), self.learner.labels_learned
        self._read_since_snapshot = 0
        return self._serving_copies() if learned else []  # the models did not change: nothing new to serve

    def _serving_copies(self) -> list[OutRecord]:
        out = []
        for version in self.learner.registry.active():
            data = pickle.dumps(version.model, protocol=pickle.HIGHEST_PROTOCOL)
            if len(data) > self.settings.max_snapshot_bytes:
                log.error("the model of %s is %d bytes, above %d: serve workers keep their older copy",
                          version.version, len(data), self.settings.max_snapshot_bytes)
                continue
            r = snapshot_record(version.name, version.version, data, self.learner.learned[version.version])
            out.append(OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(r)))
        return out

