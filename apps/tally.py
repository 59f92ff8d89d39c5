"""Count what the pipeline has produced, by reading its output topics like any consumer would.

The demo and the end-to-end tests reconcile from here: served predictions are
counted by distinct event id (a replay may repeat a record, never an event),
dead letters by reason and by what they were (events, or labels the learner
could not use: each side reconciles on its own), and the learner's own counters come from the latest
METRICS records on ``models``. Partitions are assigned, not subscribed: the
tally joins no group and commits nothing. A record that does not decode is
skipped and counted by topic, as the workers skip it: one bad record must not
end the count.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from weir.clock import poll_until
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord
from weir.contract.records import Alert, Label, ModelRecord, Prediction
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, EVENTS_DLQ, FEEDBACK, MODELS, PREDICTIONS
from weir.errors import SerdeError
from weir.kafka.reading import reader, watermarks
from weir.settings import Settings

log = logging.getLogger("weir.tally")


@dataclass
class Tally:
    predictions: int = 0
    served_answers: dict[str, tuple[str, Label | None]] = field(default_factory=dict)  # event -> version, answer
    # every version's answer per event (served or not), its score, and the served prediction's timing
    answers: dict[str, dict[str, tuple[Label | None, float | None]]] = field(default_factory=dict)
    served_timing: dict[str, tuple[float, int]] = field(default_factory=dict)  # event -> latency ms, predicted at
    served_twice: int = 0
    served_by_version: Counter[str] = field(default_factory=Counter)
    predictions_by_version: Counter[str] = field(default_factory=Counter)
    errors_by_version: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0  # events: what was refused instead of served
    label_dead_letters: int = 0  # labels the learner could not use (unmatched, refused events', unlearnable...)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)  # of both
    alerts: list[Alert] = field(default_factory=list)
    metrics: dict[str, ModelRecord] = field(default_factory=dict)  # latest METRICS record per version
    undecodable: Counter[str] = field(default_factory=Counter)  # records skipped, by topic (predictions, models...)

    @property
    def served(self) -> int:
        return len(self.served_answers)

    def learner_counter(self, name: str) -> int:
        """A join counter of the learn stage (the same on every version's record; the newest wins)."""
        newest = max(self.metrics.values(), key=lambda r: (r["created_at"], r["counters"].get(name, 0)),
                     default=None)
        return int(newest["counters"].get(name, 0)) if newest else 0


class TopicTally:
    """Tails predictions, events.dlq, alerts and models, and keeps a running ``Tally``."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        self.predictions = topic_serde(catalog, settings, PREDICTIONS)
        self.alerts = topic_serde(catalog, settings, ALERTS)
        self.models = topic_serde(catalog, settings, MODELS)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.feedback_topic = settings.topic(FEEDBACK.name)
        self.topic_names = {serde.topic: topic.name for serde, topic in
                            ((self.predictions, PREDICTIONS), (self.alerts, ALERTS), (self.models, MODELS))}
        self.tally = Tally()
        self.consumer = reader(settings, "tally")
        self.at_end: dict[tuple[str, int], int] = {}  # partitions read to their committed end: that end
        assignment = []
        for topic in (self.predictions.topic, self.alerts.topic, self.models.topic, self.dlq_topic):
            partitions = self.consumer.list_topics(topic, timeout=15).topics[topic].partitions
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        self.consumer.assign(assignment)

    def poll(self, timeout_s: float = 0.2, max_records: int = 5000) -> int:
        """Fold in what arrived; returns how many records were read."""
        messages = self.consumer.consume(max_records, timeout=timeout_s)
        for msg in messages:
            error, topic, partition = msg.error(), msg.topic(), msg.partition()
            if error is None:
                record = InRecord.of(msg)
                self.at_end.pop((record.topic, record.partition), None)
                self._fold(record)
            elif error.code() == KafkaError._PARTITION_EOF and topic is not None and partition is not None:
                self.at_end[(topic, partition)] = msg.offset() or 0
        return len(messages)

    def _fold(self, record: InRecord) -> None:
        t = self.tally
        if record.topic == self.dlq_topic:
            headers = read_headers(record.headers)
            if headers.get("original.topic") == self.feedback_topic:
                t.label_dead_letters += 1
            else:
                t.dead_letters += 1
            t.dead_letter_reasons[headers.get("reason", "?")] += 1
            return
        if record.topic == self.models.topic and record.value is None:
            return  # a tombstone: compaction's delete, which the workers pass by too
        try:
            if record.topic == self.predictions.topic:
                self._fold_prediction(self.predictions.decode(record.value))
            elif record.topic == self.alerts.topic:
                t.alerts.append(self.alerts.decode(record.value))
            else:
                model_record = self.models.decode(record.value)
                if model_record["kind"] == "METRICS" and model_record["version"] is not None:
                    t.metrics[model_record["version"]] = model_record
        except SerdeError as exc:
            t.undecodable[self.topic_names[record.topic]] += 1
            log.warning("the tally skipped %s/%d/%d, which does not decode: %s", record.topic, record.partition,
                        record.offset, exc)

    def _fold_prediction(self, prediction: Prediction) -> None:
        t, version = self.tally, prediction["model_version"]
        t.predictions += 1
        t.predictions_by_version[version] += 1
        if prediction["error"] is not None:
            t.errors_by_version[version] += 1
        t.answers.setdefault(version, {})[prediction["event_id"]] = (prediction["predicted_label"], prediction["score"])
        if prediction["served"]:
            if prediction["event_id"] in t.served_answers:
                t.served_twice += 1
            else:
                t.served_by_version[version] += 1
                t.served_answers[prediction["event_id"]] = (version, prediction["predicted_label"])
                t.served_timing[prediction["event_id"]] = (prediction["latency_ms"], prediction["predicted_at"])

    def poll_to_end(self, timeout_s: float = 30.0) -> None:
        """Fold in everything written so far: poll until every partition is read up to its end as of now."""
        ends = {(tp.topic, tp.partition): watermarks(self.consumer, tp)[1] for tp in self.consumer.assignment()}

        def caught_up() -> bool:
            self.poll(timeout_s=0.1)
            positions = self.consumer.position([TopicPartition(t, p) for t, p in ends])
            # Transaction markers take offsets no reader sees: the committed end is where the reader last hit it.
            return all(max(tp.offset, self.at_end.get((tp.topic, tp.partition), -1)) >= ends[(tp.topic, tp.partition)]
                       for tp in positions)

        poll_until(caught_up, timeout_s=timeout_s, interval_s=0.0, what="the tally reading its topics to the end")

    def close(self) -> None:
        self.consumer.close()
