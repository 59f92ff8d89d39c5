"""The demo's tally reads the output topics as any consumer does: a record that does not decode is skipped and
counted, as every worker skips it, and the count goes on."""

from __future__ import annotations

from apps.demo import summarize
from apps.tally import TopicTally
from producers.publisher import ProduceSummary
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import MODELS
from weir.kafka.clients import flush_or_raise, make_producer
from weir.registry.records import metrics_record
from weir.registry.store import publish_records
from weir.settings import Settings


def test_an_undecodable_models_record_is_skipped_counted_and_in_the_summary(
        kafka: Settings, catalog: SchemaCatalog) -> None:
    metrics = metrics_record("default", "v1", {"accuracy": 0.75}, {"labels_learned": 7})
    serde = topic_serde(catalog, kafka, MODELS)
    producer = make_producer(kafka)
    producer.produce(serde.topic, key=b"default:v1", value=serde.encode(metrics)[:-3])  # its schema's, cut short
    producer.produce(serde.topic, key=b"default:v2", value=b"garbage")  # not even the wire format
    producer.produce(serde.topic, key=b"default:gone", value=None)  # a tombstone is a delete, not a bad record
    flush_or_raise(producer, kafka)
    publish_records(kafka, catalog, [metrics])
    tally = TopicTally(kafka, catalog)
    try:
        tally.poll_to_end()
    finally:
        tally.close()
    t = tally.tally
    assert dict(t.undecodable) == {"models": 2}
    assert t.learner_counter("labels_learned") == 7  # the record after them was read
    summary = summarize(t, ProduceSummary(), run_id="r", settings=kafka, seconds=1.0, drained=True,
                        interrupted=False)
    assert summary["undecodable_records"] == {"models": 2}
