"""The real broker: local provisioning, idempotent topics, and keys that land where the join expects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]  # aiokafka ships no type information
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # the package re-exports it without declaring it public
from pydantic import SecretStr

from weir.contract.serde import SchemaCatalog
from weir.contract.topics import CONTRACT
from weir.kafka import local as local_kafka
from weir.kafka.admin import create_topics
from weir.kafka.clients import make_producer
from weir.kafka.reading import read_topic
from weir.registry.decisions import current, register, sign_model_file
from weir.registry.factories import build_model
from weir.settings import Settings
from weir.state import pickling


def test_up_on_a_running_broker_starts_nothing(broker: Settings) -> None:
    state = local_kafka.up(broker)
    assert state.running and not state.started_here
    assert local_kafka.status(broker).running


def test_topics_create_is_idempotent_and_compacts_models(kafka: Settings) -> None:
    second = create_topics(kafka)  # the fixture already ran the first
    assert [o.action for o in second] == ["exists"] * len(CONTRACT)
    admin = AdminClient(kafka.librdkafka())
    resource = ConfigResource(ConfigResource.Type.TOPIC, kafka.topic("models"))
    assert admin.describe_configs([resource])[resource].result()["cleanup.policy"].value == "compact"
    metadata = admin.list_topics(timeout=10).topics
    assert all(len(metadata[kafka.topic(t.name)].partitions) == t.partition_count(kafka) for t in CONTRACT)
    assert len(metadata[kafka.topic("models")].partitions) == 1  # registry decisions in one total order


def test_a_topic_that_differs_from_the_contract_is_reported_not_altered(kafka: Settings) -> None:
    wider = kafka.with_overrides(partitions=kafka.partitions + 2)
    outcomes = {o.topic: o for o in create_topics(wider)}
    raw = outcomes[kafka.topic("events.raw")]
    assert raw.action == "differs" and "3 partitions, the contract says 5" in raw.detail


def test_a_models_topic_too_small_for_a_model_copy_is_reported(kafka: Settings) -> None:
    """A ``models`` topic made before it took large copies (Kafka's default 1 MB) is named, with the fix."""
    larger = kafka.with_overrides(max_snapshot_bytes=20_000_000)
    outcomes = {o.topic: o for o in create_topics(larger)}
    models = outcomes[kafka.topic("models")]
    assert models.action == "differs" and "max.message.bytes=8065536, below 20065536" in models.detail, outcomes


def test_a_model_larger_than_kafkas_default_message_is_registered_and_read_back(
        kafka: Settings, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """Model copies outgrow 1 MB (the demo's Hoeffding tree passes 2 MB in 20,000 events): the ``models`` topic
    and every producer take them, and a registry read back holds the model."""
    settings = kafka.with_overrides(model_key=SecretStr("k" * 32))
    model = build_model("logistic_regression", {})
    model.learn_one({f"f{i}": 1.0 for i in range(60_000)}, True)  # a weight per feature
    path = tmp_path / "wide.pkl"
    path.write_bytes(pickling.dumps(model))
    assert path.stat().st_size > 1_500_000
    sign_model_file(settings, path)
    register(settings, catalog, "wide", pickle_path=path)
    loaded: Any = current(settings, catalog, "wide").versions["v1"].model
    probe = {f"f{i}": float(i % 3) for i in range(60_000)}
    assert loaded.predict_proba_one(probe) == model.predict_proba_one(probe)  # type: ignore[attr-defined]


def test_confluent_and_aiokafka_producers_agree_on_the_partition_of_a_key(kafka: Settings) -> None:
    """Producers (confluent-kafka) and stream stages (aiokafka) must co-partition by entity id."""
    topic = kafka.topic("feedback")
    keys = [f"c{i:04d}".encode() for i in range(60)]
    producer = make_producer(kafka)
    for key in keys:
        producer.produce(topic, key=key, value=b"confluent")
    producer.flush(10)

    async def send_with_aiokafka() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await p.start()
        try:
            for key in keys:
                await p.send_and_wait(topic, key=key, value=b"aiokafka")
        finally:
            await p.stop()

    asyncio.run(send_with_aiokafka())
    placed: dict[bytes, dict[bytes, int]] = {}
    for msg in read_topic(kafka, topic):
        assert msg.key is not None and msg.value is not None
        placed.setdefault(msg.key, {})[msg.value] = msg.partition
    assert len(placed) == len(keys)
    assert all(p[b"confluent"] == p[b"aiokafka"] for p in placed.values())
    assert len({p[b"confluent"] for p in placed.values()}) == kafka.partitions  # keys really spread
