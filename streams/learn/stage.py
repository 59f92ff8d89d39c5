"""Learn stage: features + predictions + feedback -> learned models; late labels to feedback.late.

It also reads ``events.dlq``: a label whose event the front refused can never
join, and is settled as soon as the refusal is read rather than holding
learning back for ``WEIR_UNMATCHED_LABEL_WAIT_MS``.

The stage's whole state lives in one SQLite file on local disk
(``weir.state.store``): the join's pending parts and dedupe memory in tables,
models, metrics and the sequencer in a snapshot row. A snapshot commits both,
with the input offsets they reflect, every ``snapshot_every_labels`` labels or
``snapshot_every_s`` seconds; on start the runner restores it and resumes
reading exactly there. Each snapshot also puts every active version's model on
the ``models`` topic, for serve workers in other processes to pick up.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from streams.learn.learner import Learner
from streams.learn.metrics import LearnMetrics
from streams.learn.sequencer import Sequencer
from streams.runtime.stage import Pacer, Partition, Route, dead_letter, dispatch
from weir.clock import now_ms
from weir.contract.deadletter import DUPLICATE_EVENT, VALIDATE_STAGE, Rejection, read_headers, refused_unserved
from weir.contract.feedback import feedback_rejection, parse_positive
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import FeatureVector, Feedback, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, FEATURES, FEEDBACK, FEEDBACK_LATE, MODELS, PREDICTIONS
from weir.errors import SerdeError
from weir.registry.records import record_key, snapshot_record
from weir.registry.signing import model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.join import PendingEvent, PendingJoin, Stray
from weir.state.pickling import UnreadableState
from weir.state.store import StateStore

STAGE = "learn"


SNAPSHOT_FORMAT = 2  # 2: plain data and river objects only (1 pickled Weir's classes)


log = logging.getLogger("weir.learn")


class LearnObserver(Protocol):
    """What another stage sharing the learner's loop sees of it: its inputs, decoded once, and what it learned."""

    def on_features(self, vector: FeatureVector) -> None: ...

    def on_prediction(self, prediction: Prediction) -> None: ...

    def on_learned(self, event: PendingEvent) -> None: ...

    def on_label_refused(self, reason: str) -> None:
        """A label the stage could not use: rejected as it came, or a stray (unmatched, late, unlearnable)."""
        ...

    def on_event_refused(self, record: InRecord) -> None:
        """A dead letter of a raw event, as read from ``events.dlq`` (refused by the front or the HTTP service)."""
        ...


class LearnStage:
    """features + predictions + feedback -> learned models; late labels to feedback.late, unmatched to the DLQ."""

    name = STAGE

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry | None = None, observer: LearnObserver | None = None) -> None:
        """``observer`` sees every features record and prediction the stage reads, and every event it learns."""
        self.settings = settings
        self.observer = observer
        self.state_path = settings.state_dir / settings.app_id / f"{STAGE}.db"
        self.store = StateStore(None)  # until ``restore`` opens the stage's own file
        self.learner = self._learner(registry)
        vectors = topic_serde(catalog, settings, FEATURES)
        predictions = topic_serde(catalog, settings, PREDICTIONS)
        feedback = topic_serde(catalog, settings, FEEDBACK)
        self.models = topic_serde(catalog, settings, MODELS)
        self.raw = topic_serde(catalog, settings, EVENTS_RAW)  # the event ids of refused events, from their letters
        # The stage that reads events.raw and writes what this one reads: fused, the front.
        self.upstream = ("front" if settings.fused else VALIDATE_STAGE, self.raw.topic)
        self.signer = model_signer(settings)  # serve workers in other processes load only signed copies
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.late_topic = settings.topic(FEEDBACK_LATE.name)
        self.feedback_topic = feedback.topic
        self.inputs = (vectors.topic, predictions.topic, feedback.topic, self.dlq_topic)
        self.caught_up: set[Partition] = set()  # input partitions read to their end, as last heard
        self.pacer = Pacer((vectors.topic, predictions.topic), feedback.topic, settings.sequencer_idle_ms)
        self.outputs = (self.models.topic, self.dlq_topic, self.late_topic)
        self.routes: dict[str, Route[Any]] = {
            vectors.topic: Route(vectors, self._features),
            predictions.topic: Route(predictions, self._prediction),
            feedback.topic: Route(feedback, self._feedback),
        }
        self.prometheus = LearnMetrics(metrics or CollectorRegistry())
        self._snapshot_at = time.monotonic()
        self._learned_at_snapshot = 0
        self._read_since_snapshot = 0
        self._too_large: set[str] = set()  # versions whose serving copy was refused for its size

    def _learner(self, registry: ModelRegistry) -> Learner:
        return Learner(registry, self._join(), Sequencer(self.settings.sequencer_idle_ms),
                       on_learned=self.observer.on_learned if self.observer is not None else None,
                       skew_ms=self.settings.label_future_skew_ms,
                       positive=parse_positive(self.settings.positive_label))

    def _features(self, record: InRecord, vector: FeatureVector) -> list[OutRecord]:
        self.pacer.event(record.partition, vector["event_time"])
        self.learner.on_features(vector, (record.partition, record.offset))
        if self.observer is not None:
            self.observer.on_features(vector)
        return []

    def _prediction(self, record: InRecord, prediction: Prediction) -> list[OutRecord]:
        self.pacer.event(record.partition, prediction["event_time"])
        self.learner.on_prediction(prediction)
        if self.observer is not None:
            self.observer.on_prediction(prediction)
        return []

    def _feedback(self, record: InRecord, feedback: Feedback) -> list[OutRecord] | Rejection:
        now = now_ms()
        rejection = feedback_rejection(feedback, now_ms=now, max_future_ms=self.settings.label_future_skew_ms,
                                       stage=STAGE, kind=self.settings.label_kind)
        if rejection is not None:
            return rejection
        self.pacer.label(record.partition, feedback["label_time"])
        self.learner.on_feedback(feedback, partition=record.partition, source=record, wall_ms=now)
        return []

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        self._read_since_snapshot += len(batch)
        letters = [r for r in batch if r.topic == self.dlq_topic]
        if letters:
            batch = [r for r in batch if r.topic != self.dlq_topic]
            for letter in letters:
                self._dead_letter(letter)
        out = dispatch(batch, self.routes, stage=self.name, dlq_topic=self.dlq_topic, on_rejected=self._rejected)
        return out + self._route_strays(self._advance(now_ms()))

    def _dead_letter(self, letter: InRecord) -> None:
        """A raw event the front refused: the label of its id, waiting or to come, is settled at once."""
        headers = read_headers(letter.headers)
        if headers.get("original.topic") != self.raw.topic or headers.get("reason") == DUPLICATE_EVENT:
            return  # a label this stage dead-lettered, or a copy of an event served already
        if self.observer is not None:
            self.observer.on_event_refused(letter)
        if not refused_unserved(headers, self.raw.topic):
            return
        try:
            event_id = self.raw.decode(letter.value)["event_id"]
        except SerdeError:
            return  # bytes that are no event: no id to settle (such a label waits out its wait on the clock)
        self.learner.on_refused(event_id)

    def _rejected(self, record: InRecord, rejection: Rejection) -> None:
        if record.topic == self.feedback_topic and self.observer is not None:
            self.observer.on_label_refused(rejection.reason)

    def _advance(self, now: int) -> list[Stray]:
        """Learn what the order allows; a label whose event never came holds it back only so long."""
        strays = self.learner.advance(now)
        while (blocking := self.learner.blocked_by(now)) is not None and self._given_up(*blocking):
            after = self.learner.give_up(blocking[0], now)
            if after is None:
                break
            strays += after
        return strays

    def _given_up(self, event: PendingEvent, waited_ms: int) -> bool:
        """Its event is not coming: the events of its partition are well past its label time, or have stopped, the
        front has read every raw event sent so far, and it has waited as long on the clock (an id nobody sent). A
        front busy with a backlog is no reason: the event may be in it."""
        wait = self.settings.unmatched_label_wait_ms
        if event.label_source is None:
            return waited_ms >= wait
        partition = event.label_source.partition
        if self.pacer.events.get(partition, 0) - event.label_time_ms > wait:
            return True
        return (waited_ms >= wait and self.pacer.events_quiet(partition, self.caught_up)
                and (self.raw.topic, partition) in self.caught_up)

    def held_back(self, behind: set[Partition]) -> set[Partition]:
        return self.pacer.held_back(behind)

    def tick(self) -> list[OutRecord]:
        out = self._route_strays(self._advance(now_ms()))
        self.prometheus.publish(self.learner, self._snapshot_at)
        return out + [OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(r))
                      for r in self.learner.metrics_records()]

    def _route_strays(self, strays: list[Stray]) -> list[OutRecord]:
        out = []
        for stray in strays:
            record: InRecord | None = stray.source
            if record is None:
                continue
            topic = self.dlq_topic
            if stray.kind == "unlearnable":
                why = Rejection("unlearnable-label", STAGE, f"label of {stray.event_id} refused by {stray.why}",
                                dimension="validity")
            elif stray.kind == "before-event":
                why = Rejection("label-before-event", STAGE, f"label of {stray.event_id}: {stray.why}",
                                dimension="timeliness")
            elif stray.kind == "refused":
                why = Rejection("refused-event-feedback", STAGE, f"event {stray.event_id} was refused by the front "
                                "(it is on events.dlq, never served): its label cannot be learned",
                                dimension="consistency")
            elif stray.kind == "late":
                why = Rejection("late-feedback", STAGE, f"label for {stray.event_id} came after its event "
                                f"left the {self.settings.join_window_ms} ms join window", dimension="timeliness")
                topic = self.late_topic
            else:
                why = Rejection("unmatched-feedback", STAGE, f"no event {stray.event_id} was seen within "
                                f"{self.settings.join_window_ms} ms of its label", dimension="consistency")
            out.append(dead_letter(topic, record, why))
            if self.observer is not None:
                self.observer.on_label_refused(why.reason)
        return out

    # --- state -------------------------------------------------------------------------

    def _join(self) -> PendingJoin:
        return PendingJoin(window_ms=self.settings.join_window_ms, needs_features=True,
                           hot_events=self.settings.join_hot_events, store=self.store)

    def restore(self) -> dict[tuple[str, int], int] | None:
        """Open the stage's state file and load its last snapshot; the input offsets to resume from, or None
        to start from the beginning of the topics.

        A snapshot this version cannot load (another format, a class that is
        gone, anything but plain data and river objects) is reported, its file
        is set aside, and the learner is rebuilt from the beginning of its
        topics, which gives the same state as an uninterrupted run.
        """
        self.store.close()
        try:
            snapshot = self._open()
        except UnreadableState as exc:
            aside = self.state_path.with_name(f"{self.state_path.name}.unreadable-{now_ms()}")
            log.error("%s cannot be restored (%s): set aside as %s; the learner is rebuilt from the beginning of "
                      "its topics", self.state_path, exc, aside)
            self.store.close()
            for suffix in ("", "-wal", "-shm"):
                part = self.state_path.with_name(self.state_path.name + suffix)
                if part.exists():
                    part.rename(aside.with_name(aside.name + suffix))
            snapshot = self._open()
        if snapshot is None:
            return None
        self.learner.load_state(snapshot["learner"], now_ms())
        self._learned_at_snapshot = self.learner.labels_learned
        log.info("restored %s: %d labels learned, %d event parts pending, resuming at %s", self.state_path,
                 self.learner.labels_learned, len(self.learner.join), snapshot["offsets"])
        return dict(snapshot["offsets"])

    def _open(self) -> dict[str, Any] | None:
        """Open the state file with a learner as fresh as the file; its last snapshot if it has one this version
        reads. Whatever the models learned since that snapshot is forgotten: it is learned again on re-reading."""
        self.store = StateStore(self.state_path, cache_mb=self.settings.state_cache_mb)
        registry = self.learner.registry
        registry.reset_models()
        self.learner = self._learner(registry)
        snapshot = self.store.load()
        if snapshot is not None and (not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT):
            found = snapshot.get("format") if isinstance(snapshot, dict) else type(snapshot).__name__
            raise UnreadableState(f"snapshot format {found}, this version reads {SNAPSHOT_FORMAT}")
        return snapshot

    def close(self) -> None:
        """Release the state file; what the last snapshot did not commit is rolled back with its offsets."""
        self.store.close()

    def snapshot_due(self, final: bool = False) -> bool:
        """Every N labels, or every T seconds (and at a stop) if anything was read or learned since the last.

        When labels stop coming, the parts still arriving are committed too, so
        the open transaction and a restart's re-read stay short; and the tail a
        timer releases after the last read is learned into a snapshot too.
        """
        learned = self.learner.labels_learned - self._learned_at_snapshot
        changed = learned > 0 or self._read_since_snapshot > 0
        return learned >= self.settings.snapshot_every_labels or (changed and (
            final or time.monotonic() - self._snapshot_at >= self.settings.snapshot_every_s))

    def note_partitions(self, assigned: set[tuple[str, int]], caught_up: set[tuple[str, int]]) -> None:
        feedback = self.feedback_topic
        self.caught_up = caught_up
        self.learner.sequencer.track({p for t, p in assigned if t == feedback},
                                     {p for t, p in caught_up if t == feedback}, now_ms())

    def snapshot(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        """Commit the state with the offsets it reflects (atomically); the serving copies to publish."""
        state = self.learner.state()
        self.store.commit({"format": SNAPSHOT_FORMAT, "offsets": dict(offsets), "learner": state})
        learned = self.learner.labels_learned > self._learned_at_snapshot
        self._snapshot_at, self._learned_at_snapshot = time.monotonic(), self.learner.labels_learned
        self._read_since_snapshot = 0
        # The models did not change: nothing new to serve. Each model is pickled once, for both uses.
        return self._serving_copies(state["models"]) if learned else []

    def _serving_copies(self, pickled: dict[str, bytes]) -> list[OutRecord]:
        out = []
        for version in self.learner.registry.active():
            data = pickled.get(version.version)
            if data is None:
                continue
            if len(data) > self.settings.max_snapshot_bytes:
                if version.version not in self._too_large:  # said once per version, not at every snapshot
                    self._too_large.add(version.version)
                    log.error("the model of %s is %d bytes, above %d: serve workers in other processes keep their "
                              "older copy (this worker serves the live model)", version.version, len(data),
                              self.settings.max_snapshot_bytes)
                continue
            r = self.signer.sign(snapshot_record(version.name, version.version, data,
                                                 self.learner.learned[version.version]))
            out.append(OutRecord(self.models.topic, record_key(r).encode(), self.models.encode(r)))
        return out
