"""A real, single-node KRaft Apache Kafka broker on loopback, provisioned from Maven Central.

Our machines run no Docker and reach no download site but Maven Central, so the
broker's jars are resolved by Maven from ``kafka/pom.xml`` into a cache outside
the repository, the storage is formatted once, and ``kafka.Kafka`` runs as a
detached Java process whose pid and log live under ``Settings.home``.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from weir.errors import WeirError
from weir.settings import LOCAL_BROKER_HOST, REPO_ROOT, Settings

POM = REPO_ROOT / "kafka" / "pom.xml"


LOG4J_CONFIG = REPO_ROOT / "kafka" / "log4j2.properties"


DOCKER_HINT = "or run Weir under Docker instead: `docker compose up` (see README, 'Docker')"


class LocalKafkaError(WeirError):
    """The local broker could not be provisioned, started or stopped."""


@dataclass(frozen=True)
class BrokerPaths:
    """Where the local broker keeps its jars, data, log and pid."""

    root: Path

    @property
    def libs(self) -> Path:
        return self.root / "kafka-libs"

    @property
    def libs_stamp(self) -> Path:
        return self.libs / ".resolved"

    @property
    def data(self) -> Path:
        return self.root / "kafka-data"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid(self) -> Path:
        return self.root / "kafka.pid"


def paths(settings: Settings) -> BrokerPaths:
    return BrokerPaths(settings.home)


def require_tools() -> tuple[str, str]:
    """Return (java, mvn) or say in one sentence what is missing."""
    java, mvn = shutil.which("java"), shutil.which("mvn")
    missing = [name for name, found in (("Java 17+", java), ("Maven", mvn)) if not found]
    if missing:
        raise LocalKafkaError(
            f"{' and '.join(missing)} not found on PATH: install them to let Weir run its own Kafka broker, "
            f"set WEIR_KAFKA_BOOTSTRAP to use an existing cluster, {DOCKER_HINT}."
        )
    assert java and mvn
    return java, mvn


def provision(settings: Settings) -> Path:
    """Resolve the broker jars from Maven Central into the cache (once per pom version)."""
    _, mvn = require_tools()
    p = paths(settings)
    pom_text = POM.read_text()
    if p.libs_stamp.exists() and p.libs_stamp.read_text() == pom_text:
        return p.libs
    shutil.rmtree(p.libs, ignore_errors=True)
    p.libs.mkdir(parents=True)
    cmd = [mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={p.libs}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise LocalKafkaError(f"Maven could not resolve Kafka from {POM}:\n{tail}")
    p.libs_stamp.write_text(pom_text)
    return p.libs


def _server_properties(settings: Settings, data_dir: Path) -> str:
    host = LOCAL_BROKER_HOST
    client, controller = settings.local_kafka_port, settings.local_controller_port
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={host}:{controller}",
            f"listeners=PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}",
            f"advertised.listeners=PLAINTEXT://{host}:{client}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir}",
            f"num.partitions={settings.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def _java_classpath(libs: Path) -> str:
    return str(libs / "*")


def _format_storage(java: str, libs: Path, p: BrokerPaths) -> None:
    if (p.data / "meta.properties").exists():
        return
    p.data.mkdir(parents=True, exist_ok=True)
    cluster_id = kafka_uuid()
    cmd = [
        java, "-cp", _java_classpath(libs), f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(p.config),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise LocalKafkaError(f"formatting the KRaft store in {p.data} failed:\n{done.stdout}{done.stderr}")


def kafka_uuid() -> str:
    """A cluster id in Kafka's own form (URL-safe base64 of 16 random bytes), without a JVM round trip.

    Like Kafka's own ``Uuid.randomUuid``, never one that starts with "-": the
    storage tool would read it as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _running_pid(p: BrokerPaths) -> int | None:
    try:
        pid = int(p.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return None
    # A zombie (exited, not yet reaped) or a recycled pid is not our broker.
    if state == "Z" or b"kafka.Kafka" not in cmdline:
        return None
    return pid


def broker_answers(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when the cluster answers a metadata request within ``timeout_s``."""
    # log_level 0: a broker that is not up yet is the expected answer here, not an error to print.
    admin = AdminClient(settings.librdkafka(**{"socket.connection.setup.timeout.ms": 1000, "log_level": 0}))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception:  # KafkaException on timeout: the broker is not (yet) there
        return False
    return bool(metadata.brokers)


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    log: Path | None
    started_here: bool


def up(settings: Settings, *, ready_timeout_s: float = 90.0) -> BrokerStatus:
    """Start the local broker (provisioning it first) unless a cluster is configured or it already runs."""
    if not settings.uses_local_broker:
        return BrokerStatus(broker_answers(settings), None, settings.bootstrap, None, started_here=False)
    p = paths(settings)
    pid = _running_pid(p)
    if pid is not None and broker_answers(settings):
        return BrokerStatus(True, pid, settings.bootstrap, p.log, started_here=False)
    if pid is None and broker_answers(settings):
        raise LocalKafkaError(
            f"something that is not Weir's broker already answers at {settings.bootstrap}: use it with "
            f"WEIR_KAFKA_BOOTSTRAP={settings.bootstrap}, or move Weir's broker with WEIR_LOCAL_KAFKA_PORT"
        )
    java, _ = require_tools()
    libs = provision(settings)
    p.root.mkdir(parents=True, exist_ok=True)
    p.config.write_text(_server_properties(settings, p.data))
    _format_storage(java, libs, p)
    with open(p.log, "ab") as log:
        process = subprocess.Popen(
            [
                java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", _java_classpath(libs),
                "kafka.Kafka", str(p.config),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    p.pid.write_text(str(process.pid))
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalKafkaError(f"the broker exited with code {process.returncode}; see its log: {p.log}")
        if broker_answers(settings, timeout_s=1.0):
            return BrokerStatus(True, process.pid, settings.bootstrap, p.log, started_here=True)
    process.kill()
    raise LocalKafkaError(f"the broker did not answer within {ready_timeout_s:.0f} s; see its log: {p.log}")


def down(settings: Settings, *, timeout_s: float = 30.0) -> bool:
    """Stop the local broker; True if one was running. Never touches a configured cluster."""
    if not settings.uses_local_broker:
        return False
    p = paths(settings)
    pid = _running_pid(p)
    if pid is None:
        p.pid.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _running_pid(p) is not None:
        time.sleep(0.1)
    if _running_pid(p) is not None:
        os.kill(pid, signal.SIGKILL)
    p.pid.unlink(missing_ok=True)
    return True


def status(settings: Settings) -> BrokerStatus:
    if not settings.uses_local_broker:
        return BrokerStatus(broker_answers(settings), None, settings.bootstrap, None, started_here=False)
    p = paths(settings)
    pid = _running_pid(p)
    return BrokerStatus(pid is not None and broker_answers(settings), pid, settings.bootstrap, p.log, False)
