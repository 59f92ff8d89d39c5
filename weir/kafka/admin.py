"""Creating and deleting the contract's topics, idempotently, with the contract's configuration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from weir.clock import poll_until
from weir.contract.topics import CONTRACT, ContractTopic, topic_config
from weir.errors import KafkaRefused, KafkaUnreachable, WeirError
from weir.kafka.logs import flush_librdkafka_log, with_log
from weir.settings import Settings


def ensure_reachable(settings: Settings) -> None:
    """Fail in seconds, saying why, when no broker answers: a producer would otherwise retry for a minute and
    then count every record as failed."""
    seen: list[KafkaError] = []  # what librdkafka reported on the way: the cause, where metadata only says failed
    admin = AdminClient(with_log(settings.librdkafka(error_cb=seen.append)))
    try:
        admin.list_topics(timeout=settings.connect_timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serve the error callbacks and log lines queued meanwhile
        flush_librdkafka_log()  # how often librdkafka said it, before the line that says why
        refused = [e for e in seen if e.code() in _REFUSALS]
        if refused:
            raise KafkaRefused(f"the Kafka cluster at {settings.bootstrap} refused Weir: "
                                   f"{refused[-1].str()}") from exc
        error = exc.args[0] if exc.args else exc
        hint = " (start one with `weir kafka up`)" if settings.uses_local_broker else ""
        raise KafkaUnreachable(f"no Kafka broker answered at {settings.bootstrap} within "
                               f"{settings.connect_timeout_s:g} s{hint}: "
                               f"{error.str() if isinstance(error, KafkaError) else error}") from exc
    admin.poll(0)  # a cluster that answers may still have a broker down: what librdkafka said about it


_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED,
             KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}


@contextmanager
def admin_client(settings: Settings) -> Iterator[AdminClient]:
    """An AdminClient whose librdkafka log is served when the caller is done with it: an AdminClient's log comes
    out of ``poll`` only, and is dropped with the client otherwise."""
    admin = AdminClient(with_log(settings.librdkafka()))
    try:
        yield admin
    finally:
        admin.poll(0)


@dataclass(frozen=True)
class TopicOutcome:
    topic: str
    action: Literal["created", "exists", "differs"]
    detail: str = ""


def create_topics(settings: Settings, topics: tuple[ContractTopic[Any], ...] = CONTRACT) -> list[TopicOutcome]:
    """Create every contract topic that is missing; report, never alter, those that exist.

    An existing topic whose partition count or cleanup policy differs from the
    settings is reported as ``differs``: changing a live topic's partitions
    would re-key every entity, which is a decision for a person.
    """
    ensure_reachable(settings)
    with admin_client(settings) as admin:
        return _create_missing(admin, settings, topics)


def _create_missing(admin: AdminClient, settings: Settings,
                    topics: tuple[ContractTopic[Any], ...]) -> list[TopicOutcome]:
    existing = admin.list_topics(timeout=15).topics
    outcomes: list[TopicOutcome] = []
    wanted: list[NewTopic] = []
    for topic in topics:
        physical = settings.topic(topic.name)
        config = topic_config(topic, settings)
        if physical in existing:
            outcomes.append(_compare(admin, physical, len(existing[physical].partitions), topic, settings))
            continue
        wanted.append(
            NewTopic(physical, num_partitions=topic.partition_count(settings),
                     replication_factor=settings.replication_factor, config=config)
        )
    if wanted:
        raced = []
        for physical, future in admin.create_topics(wanted, request_timeout=30, operation_timeout=30).items():
            try:
                future.result()
                outcomes.append(TopicOutcome(physical, "created"))
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise WeirError(f"could not create topic {physical}: {exc.args[0].str()}") from exc
                raced.append(physical)  # created meanwhile, or so new that the first metadata missed it
        _await_visible(admin, [t.topic for t in wanted])
        for physical in raced:
            spec = next(t for t in topics if settings.topic(t.name) == physical)
            fresh = admin.list_topics(physical, timeout=15).topics[physical]
            outcomes.append(_compare(admin, physical, len(fresh.partitions), spec, settings))
    order = {settings.topic(t.name): i for i, t in enumerate(topics)}
    return sorted(outcomes, key=lambda o: order[o.topic])


def _await_visible(admin: AdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Return once the broker's metadata shows every topic in ``names`` with a leader for each partition.

    A created topic reaches the metadata a moment after CreateTopics answers;
    a client that asks in that moment hears "unknown topic". Whoever calls
    ``create_topics`` can use the topics as soon as it returns.
    """
    def visible() -> bool:
        listed = admin.list_topics(timeout=15).topics
        return all(n in listed and listed[n].error is None and listed[n].partitions
                   and all(p.leader >= 0 for p in listed[n].partitions.values()) for n in names)

    poll_until(visible, timeout_s=timeout_s, interval_s=0.1, what=f"{len(names)} new topics in the metadata")


def _compare(admin: AdminClient, physical: str, partitions: int, topic: ContractTopic[Any],
             settings: Settings) -> TopicOutcome:
    problems = []
    config = topic_config(topic, settings)
    if partitions != topic.partition_count(settings):
        problems.append(f"{partitions} partitions, the contract says {topic.partition_count(settings)}")
    resource = ConfigResource(ConfigResource.Type.TOPIC, physical)
    actual = admin.describe_configs([resource])[resource].result()
    policy = actual["cleanup.policy"].value
    if policy != config["cleanup.policy"]:
        problems.append(f"cleanup.policy={policy}, contract says {config['cleanup.policy']}")
    if "max.message.bytes" in config and int(actual["max.message.bytes"].value) < int(config["max.message.bytes"]):
        problems.append(f"max.message.bytes={actual['max.message.bytes'].value}, below "
                        f"{config['max.message.bytes']}: a model copy above it cannot be published (raise it with "
                        f"kafka-configs --alter, or lower WEIR_MAX_SNAPSHOT_BYTES)")
    if problems:
        return TopicOutcome(physical, "differs", "; ".join(problems))
    return TopicOutcome(physical, "exists")


def delete_topics(settings: Settings, topics: tuple[ContractTopic[Any], ...] = CONTRACT) -> None:
    """Delete this deployment's contract topics (tests and demo runs clean up after themselves)."""
    with admin_client(settings) as admin:
        names = [settings.topic(t.name) for t in topics]
        present = set(admin.list_topics(timeout=15).topics)
        doomed = [n for n in names if n in present]
        if doomed:
            for future in admin.delete_topics(doomed, operation_timeout=30).values():
                future.result()
