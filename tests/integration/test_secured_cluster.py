"""Weir against a secured broker: SASL_SSL with SCRAM-SHA-512, and mutual TLS, under ACLs per principal.

The test starts a broker of its own (the jars `weir kafka up` provisions)
with a certificate authority made here, two listeners (SASL_SSL and SSL with
client certificates required), the standard authorizer, and ACLs that grant
Weir's principals only prefixed resources: its topics, its consumer groups
and its transactional ids. The whole front of the loop runs through it.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType  # typed where they are defined
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from pydantic import SecretStr

from apps.cli import cli
from apps.processes import free_port, settings_env, start_worker, stop_process
from consumers.alerts import consume_alerts
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, publish
from producers.sources import SourceSpec
from weir.clock import poll_until
from weir.contract.records import Alert
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, CONTRACT, EVENTS_RAW, MODELS, PREDICTIONS
from weir.errors import WeirError
from weir.kafka import local
from weir.kafka.admin import create_topics
from weir.kafka.clients import make_producer
from weir.kafka.reading import holds_at_least, read_topic
from weir.settings import Settings

ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
WEIR, WEIR_PASSWORD = "weir", "weir-secret-7c1d"
NOBODY, NOBODY_PASSWORD = "nobody", "nobody-secret-2b9e"  # authenticated, and granted nothing
CLIENT_DN = "CN=weir-client"


@dataclass(frozen=True)
class SecuredBroker:
    sasl_port: int
    mtls_port: int
    ca: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(d: Path) -> None:
    """A CA, the broker's certificate for 127.0.0.1, and a client certificate, all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=weir-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, ext in (("broker", "/CN=127.0.0.1", ["-extfile", "san.ext"]), ("client", f"/{CLIENT_DN}", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *ext, cwd=d)
    (d / "broker-keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())


def _server_properties(d: Path, sasl: int, mtls: int, controller: int) -> str:
    scram = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" ' \
            f'password="{ADMIN_PASSWORD}";'
    return "\n".join([
        "process.roles=broker,controller", "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
        f"listeners=SASL_SSL://127.0.0.1:{sasl},SSL://127.0.0.1:{mtls},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{sasl},SSL://127.0.0.1:{mtls}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
        "inter.broker.listener.name=SASL_SSL",
        "sasl.enabled.mechanisms=SCRAM-SHA-512", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
        "ssl.keystore.type=PEM", f"ssl.keystore.location={d / 'broker-keystore.pem'}",
        "ssl.truststore.type=PEM", f"ssl.truststore.location={d / 'ca.pem'}",
        "listener.name.ssl.ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN};User:ANONYMOUS",  # ANONYMOUS: the controller listener, loopback only
        f"log.dirs={d / 'data'}", "num.partitions=3",
        "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=3",
        "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1", "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=false", "",
    ])


def _admin(broker: SecuredBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": f"127.0.0.1:{broker.sasl_port}", "security.protocol": "SASL_SSL",
                        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": ADMIN, "sasl.password": ADMIN_PASSWORD,
                        "ssl.ca.location": str(broker.ca)})


def _grant(admin: AdminClient, principal: str, prefix: str) -> None:
    """Everything on the resources that start with ``prefix``, and nothing else."""
    bindings = [AclBinding(kind, prefix, ResourcePatternType.PREFIXED, principal, "*", AclOperation.ALL,
                           AclPermissionType.ALLOW)
                for kind in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def secured(broker: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """A broker of the test's own, secured; ``broker`` first provisions the jars (and runs the plain one)."""
    d = tmp_path_factory.mktemp("secured")
    _certificates(d)
    sasl, mtls, controller = free_port(), free_port(), free_port()
    config = d / "server.properties"
    config.write_text(_server_properties(d, sasl, mtls, controller))
    java, _ = local.require_tools()
    libs = local.provision(broker)
    classpath = str(libs / "*")
    log4j = f"-Dlog4j2.configurationFile={local.LOG4J_CONFIG}"
    subprocess.run([java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
                    "-t", local.kafka_uuid(), "-c", str(config),
                    "--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={ADMIN_PASSWORD}]",
                    "--add-scram", f"SCRAM-SHA-512=[name={WEIR},password={WEIR_PASSWORD}]",
                    "--add-scram", f"SCRAM-SHA-512=[name={NOBODY},password={NOBODY_PASSWORD}]"],
                   check=True, capture_output=True)
    with open(d / "kafka.log", "wb") as log:
        process = subprocess.Popen([java, log4j, "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT)
    secured = SecuredBroker(sasl, mtls, d / "ca.pem", d / "client.pem", d / "client.key")
    try:
        admin = _admin(secured)

        def answers() -> bool:
            assert process.poll() is None, (d / "kafka.log").read_text()[-3000:]
            try:
                admin.list_topics(timeout=2)
            except KafkaException:
                return False
            return True

        poll_until(answers, timeout_s=90, interval_s=0.5, what="the secured broker answering")
        _grant(admin, f"User:{WEIR}", "sec")
        _grant(admin, f"User:{CLIENT_DN}", "mtls")
        yield secured
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _sasl_settings(broker: Settings, secured: SecuredBroker, tmp_path: Path, password: str) -> Settings:
    return broker.with_overrides(
        kafka_bootstrap=f"127.0.0.1:{secured.sasl_port}", security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_username=WEIR, sasl_password=SecretStr(password),
        ssl_cafile=str(secured.ca), topic_prefix="sec.", app_id="sec", web_port=0, state_dir=tmp_path / "state",
        connect_timeout_s=5.0)


def _topics_and_events(settings: Settings, catalog: SchemaCatalog, n: int) -> None:
    """The contract's topics, created as the principal ``settings`` names, and ``n`` churn events and their labels
    sent through the producer Weir's `produce` command uses."""
    assert {o.action for o in create_topics(settings)} == {"created"}
    publisher = EventPublisher(settings, catalog)
    summary = publish(publisher, SourceSpec("churn", count=n, seed=n).open(), policy=FeedbackPolicy("fixed:0"),
                      progress=False)
    assert summary.events.delivered == summary.feedback.delivered == n and not summary.failed


def test_the_whole_loop_runs_over_sasl_ssl_with_only_prefixed_acls(
        broker: Settings, secured: SecuredBroker, catalog: SchemaCatalog, tmp_path: Path) -> None:
    """Topics, the producer, a transactional worker with the front and the learner (confluent-kafka and faust's
    aiokafka), the registry and its commands, as User:weir."""
    settings = _sasl_settings(broker, secured, tmp_path, WEIR_PASSWORD)
    _topics_and_events(settings, catalog, 300)
    worker = start_worker(settings, tmp_path / "worker.log", "front", "back")
    try:
        predictions = topic_serde(catalog, settings, PREDICTIONS).topic
        poll_until(lambda: holds_at_least(settings, predictions, 300), timeout_s=120, interval_s=0.5,
                   what="300 predictions served through the secured broker")
        poll_until(lambda: _labels_learned(settings, catalog) >= 300, timeout_s=120, interval_s=0.5,
                   what="300 labels learned through the secured broker")
    finally:
        code = stop_process(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    env = {name: value for name, value in settings_env(settings).items() if name.startswith("WEIR_")}
    for command in (["models", "register", "--factory", "hoeffding_tree"], ["deploy", "shadow", "v2"]):
        done = CliRunner().invoke(cli, command, env=env)
        assert done.exit_code == 0, done.output
    listed = CliRunner().invoke(cli, ["models", "list"], env=env)
    assert listed.exit_code == 0 and "challenger" in listed.output and "v2" in listed.output, listed.output
    _the_alert_sink_delivers(settings, catalog)


def _the_alert_sink_delivers(settings: Settings, catalog: SchemaCatalog) -> None:
    """The sink reads alerts in its group <app_id>-alerts-sink, under the same prefixed ACLs."""
    alerts = topic_serde(catalog, settings, ALERTS)
    alert: Alert = {"alert_id": "a1", "kind": "data_drift", "severity": "warning", "subject": "tenure",
                    "status": "FIRING", "statistic": 0.4, "threshold": 0.1, "evidence": {}, "runbook": None,
                    "detected_at": 1}
    producer = make_producer(settings)
    producer.produce(alerts.topic, key=b"data_drift:tenure", value=alerts.encode(alert))
    assert producer.flush(30) == 0
    received: list[Alert] = []
    stop = threading.Event()
    errors: list[str] = []

    def handle(a: Alert) -> None:
        received.append(a)
        stop.set()

    sink = threading.Thread(target=consume_alerts, args=(settings, catalog, handle),
                            kwargs={"stop": stop, "on_error": errors.append})
    sink.start()
    try:
        poll_until(stop.is_set, timeout_s=60, what="the alert reaching the sink")
    finally:
        stop.set()
        sink.join(timeout=30)
    assert [a["alert_id"] for a in received] == ["a1"] and errors == []


def _labels_learned(settings: Settings, catalog: SchemaCatalog) -> int:
    serde = topic_serde(catalog, settings, MODELS)
    reports = [r["counters"] for r in (serde.decode(m.value) for m in read_topic(settings, serde.topic))
               if r["kind"] == "METRICS"]
    return reports[-1].get("labels_learned", 0) if reports else 0


def test_a_principal_without_acls_is_denied_every_topic(
        broker: Settings, secured: SecuredBroker, catalog: SchemaCatalog, tmp_path: Path) -> None:
    nobody = _sasl_settings(broker, secured, tmp_path, NOBODY_PASSWORD).with_overrides(
        sasl_username=NOBODY, topic_prefix="sec.", app_id="nobody")
    producer = make_producer(nobody)
    denied: list[str] = []
    for topic in CONTRACT:
        producer.produce(nobody.topic(topic.name), b"x", on_delivery=lambda err, _m: denied.append(err.str())
                         if err is not None else None)
    producer.flush(30)
    assert len(denied) == len(CONTRACT) and all("uthoriz" in e for e in denied), denied
    with pytest.raises(WeirError):  # not even the topics are visible to it, so reading one is refused
        list(read_topic(nobody, nobody.topic(EVENTS_RAW.name), timeout_s=5))


def test_a_wrong_password_is_one_line_naming_the_cause(
        broker: Settings, secured: SecuredBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _sasl_settings(broker, secured, tmp_path, "not-the-password")
    for name, value in settings_env(settings).items():
        if name.startswith("WEIR_"):
            monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["topics", "create"])
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"weir: the Kafka cluster at 127.0.0.1:{secured.sasl_port} refused Weir: ")
    assert "uthentication" in line and "not-the-password" not in line


def test_mutual_tls_authenticates_weir_by_its_certificate(
        broker: Settings, secured: SecuredBroker, catalog: SchemaCatalog, tmp_path: Path) -> None:
    settings = broker.with_overrides(
        kafka_bootstrap=f"127.0.0.1:{secured.mtls_port}", security_protocol="SSL", ssl_cafile=str(secured.ca),
        ssl_certfile=str(secured.client_cert), ssl_keyfile=str(secured.client_key), topic_prefix="mtls.",
        app_id="mtls", web_port=0)
    _topics_and_events(settings, catalog, 50)
    assert holds_at_least(settings, settings.topic(EVENTS_RAW.name), 50)
    anonymous = Settings(**{**settings.model_dump(), "ssl_certfile": None, "ssl_keyfile": None})
    with pytest.raises(KafkaException):  # the listener requires a client certificate
        AdminClient(anonymous.librdkafka()).list_topics(timeout=5)
