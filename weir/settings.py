"""One settings object for every Weir process.

Values come from environment variables with the ``WEIR_`` prefix and can be
overridden by CLI flags (keyword arguments win over the environment). The same
object renders the Kafka client configuration in both dialects Weir speaks:
librdkafka (confluent-kafka producers, consumers, admin) and aiokafka (the
faust-streaming stream processors), so the two can never disagree about where
the cluster is or how to authenticate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

LOCAL_BROKER_HOST = "127.0.0.1"


def revealed(secret: SecretStr | None) -> str | None:
    """The value of a secret setting, where a client needs it; never for printing."""
    return secret.get_secret_value() if secret is not None else None


class Settings(BaseSettings):
    """Everything a Weir process can be told; see ``docs/settings.md``."""

    model_config = SettingsConfigDict(env_prefix="WEIR_", extra="forbid", frozen=True)

    # --- cluster -----------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="bootstrap servers of an existing cluster; unset means the local broker Weir starts",
    )
    local_kafka_port: int = Field(default=19092, description="client port of the local broker")
    local_controller_port: int = Field(default=19093, description="KRaft controller port of the local broker")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how clients talk to the cluster"
    )
    sasl_mechanism: str | None = Field(default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str | None = Field(default=None, description="SASL user")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (never printed or logged)")
    ssl_cafile: str | None = Field(default=None, description="CA bundle that signed the brokers' certificates")
    ssl_certfile: str | None = Field(
        default=None, description="client certificate (PEM) for mutual TLS; the broker maps it to a principal"
    )
    ssl_keyfile: str | None = Field(default=None, description="private key (PEM, unencrypted) of ssl_certfile")
    schema_registry_url: str | None = Field(
        default=None, description="Confluent-compatible Schema Registry; unset means ids from the local catalog"
    )

    # --- topics ------------------------------------------------------------
    topic_prefix: str = Field(
        default="", description="prepended to every topic name so deployments can share a cluster"
    )
    partitions: int = Field(default=3, ge=1, description="partitions of every topic Weir creates")
    replication_factor: int = Field(default=1, ge=1, description="replicas of every topic Weir creates")
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, description="retention of the event topics")

    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="how long a command waits for the cluster to answer before it gives up"
    )

    # --- processes ---------------------------------------------------------
    app_id: str = Field(default="weir", description="faust app id; consumer groups derive from it")
    model_name: str = Field(default="default", description="the registry model the serve and learn stages use")
    web_port: int = Field(default=6066, ge=0, description="port of a worker's /metrics endpoint; 0 turns it off")
    web_bind: str = Field(
        default="127.0.0.1",
        description="address every HTTP endpoint listens on (/metrics, the Alertmanager receiver); 0.0.0.0 to "
        "expose them beyond this host, as in a container",
    )
    commit_interval_s: float = Field(
        default=1.0, gt=0,
        description="how often stages emit their timer outputs (metrics records); offsets commit with every batch "
        "under exactly-once, on this timer under at-least-once"
    )
    batch_size: int = Field(default=2_000, ge=1, description="most records a stage processes in one batch")
    batch_window_s: float = Field(
        default=0.2, gt=0, description="longest wait for the first record of a batch (a batch never waits to fill)"
    )
    exactly_once: bool = Field(
        default=True,
        description="stages commit their outputs and input offsets in one Kafka transaction; off: at-least-once",
    )
    fused: bool = Field(
        default=True,
        description="run validate, features and serve as one loop (the front), and learn and monitor as another "
        "(the back); off: each stage on its own",
    )
    instance_id: str | None = Field(
        default=None,
        description="this worker among those sharing an app id, stable across its restarts (a StatefulSet "
        "ordinal, say): a restarted worker then fences its crashed predecessor and aborts its open transaction at "
        "once; unset, a crashed worker's transaction holds readers back for WEIR_TRANSACTION_TIMEOUT_MS",
    )
    transaction_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="how long a crashed worker's open transaction holds readers back"
    )
    delivery_timeout_ms: int = Field(
        default=300_000, ge=1_000,
        description="how long a stage's producer outside transactions retries a record before the session fails "
        "(librdkafka message.timeout.ms); under exactly-once the transaction timeout bounds it",
    )
    stage_restart_limit: int = Field(
        default=5, ge=1,
        description="times in a row a stage may raise (restarted with back-off each time) before its worker stops "
        "and exits with code 70 for its supervisor to restart; Kafka failures are retried without limit",
    )
    liveness_timeout_s: float = Field(
        default=120.0, gt=0,
        description="a stage loop silent this long makes the worker's /livez answer 503 (at least twice its "
        "delivery wait: a loop waiting for deliveries is not silent)"
    )
    http_port: int = Field(default=8080, ge=0, description="port of `weir serve-http`, the HTTP inference service")
    http_source: str = Field(
        default="churn",
        description="source an HTTP request's event gets when it names none, which picks its validation rules: "
        "one the rules file declares, or any if it names a default_source (`weir serve-http` refuses to start "
        "otherwise)",
    )
    http_max_body_bytes: int = Field(
        default=1_048_576, ge=1_024, description="largest request body the HTTP service reads; larger ones get 413"
    )
    http_write_timeout_ms: int = Field(
        default=5_000, ge=100,
        description="how long a request waits for the broker to acknowledge its records before it is answered 503 "
        "(librdkafka message.timeout.ms of the service's producer)",
    )
    http_header_timeout_s: float = Field(
        default=10.0, gt=0,
        description="how long a request's line and headers may take to arrive, from its first byte (or from the "
        "connection's opening, for its first request); a slower one gets 408, a connection silent that long is closed",
    )
    http_body_timeout_s: float = Field(
        default=10.0, gt=0,
        description="how long a request's body may take to arrive once its headers have; a slower one (a body "
        "shorter than its Content-Length, a client trickling it) gets 408",
    )
    http_shutdown_grace_s: float = Field(
        default=10.0, gt=0, description="how long the HTTP service lets in-flight requests finish on SIGTERM"
    )
    alert_webhook_url: str | None = Field(default=None, description="where the alert sink forwards every alert")
    alert_webhook_token: SecretStr | None = Field(
        default=None, description="bearer token the alert sink sends with every forwarded alert"
    )
    alert_receiver_token: SecretStr | None = Field(
        default=None,
        description="bearer token the Alertmanager receiver requires (Alertmanager's http_config.authorization); "
        "required when WEIR_WEB_BIND is not a loopback address: `weir alerts serve` refuses to start without it",
    )
    predict_timeout_ms: float = Field(
        default=50.0, gt=0, description="a challenger answering later than this counts as failed for that event"
    )
    join_window_ms: int = Field(default=10 * 60 * 1000, description="how long parts of an event wait for its label")
    unmatched_label_wait_ms: int = Field(
        default=60_000, ge=0,
        description="how long a label whose event was never seen may hold learning back: until its partition's "
        "events are this far past its label time, or, once they stop coming, this long on the clock",
    )
    dedupe_horizon_ms: int = Field(
        default=24 * 3600 * 1000, ge=60_000,
        description="how long, in event time, the front remembers the event ids it served: an event sent again "
        "within it (a producer retry, a replayed file) is dead-lettered as duplicate-event, not served twice",
    )
    dedupe_cache_mb: int = Field(
        default=16, ge=1, description="memory the front's file of served event ids may cache (it lives on disk)"
    )
    resend_key: SecretStr | None = Field(
        default=None,
        description="key `weir dlq resend` signs records with; validate exempts only signed ones from the lateness "
        "and entity-order rules (unset: no record is exempt)",
    )
    model_key: SecretStr | None = Field(
        default=None,
        description="key that signs and checks the model bytes on the models topic (uploads, serving copies); "
        "unset: the key in WEIR_MODEL_KEY_FILE",
    )
    model_key_file: Path | None = Field(
        default=None,
        description="file holding the model key; default <WEIR_HOME>/model.key, created with a random key when "
        "missing (enough for one machine; a cluster shares one key through a Secret)",
    )
    label_kind: Literal["binary", "multiclass", "regression"] = Field(
        default="binary",
        description="what the model's labels are: binary (true/false or 1/0), multiclass (classes as booleans, "
        "integers or strings) or regression (numbers); labels of another kind go to the DLQ as unsupported-label",
    )
    positive_label: str | None = Field(
        default=None,
        description="the class a served score is the probability of, and that log loss and ROC AUC are about (JSON "
        "such as true or 1, else a string such as churned); unset: true for binary labels, none for other classes",
    )
    label_future_skew_ms: int = Field(
        default=5 * 60 * 1000, ge=0,
        description="how far ahead of the clock a label time may be; later ones go to the DLQ (future-label-time)",
    )
    join_hot_events: int = Field(
        default=10_000, ge=1, description="events whose parts the join keeps in memory; older ones wait on disk"
    )
    drift_reference_events: int = Field(default=2_000, ge=100, description="values per feature in a drift reference")
    drift_window: int = Field(default=1_000, ge=100, description="values per feature in the live drift window")
    drift_check_every: int = Field(default=250, ge=1, description="values between two drift checks")
    alert_budget: float = Field(
        default=1.0, gt=0, le=1_000,
        description="false alerts allowed per 100,000 stationary events, for each alert kind and model version; "
        "every detector's threshold derives from it",
    )
    drift_min_psi: float = Field(default=0.1, ge=0, description="smallest PSI that counts as a moved feature")
    prediction_drift_min_psi: float = Field(
        default=0.25, ge=0, description="smallest PSI of the served scores that counts as prediction drift"
    )
    policy_file: Path | None = Field(
        default=None, description="the model's automation policy (YAML, see docs/automation.md); unset: no "
        "automatic retraining, promotion or rollback",
    )
    drift_profile: Path | None = Field(
        default=None, description="stored data-drift reference (`weir monitor profile`); default: the first events"
    )
    sequencer_idle_ms: int = Field(
        default=5_000, description="a feedback partition read to its end and silent this long stops holding learning"
    )
    snapshot_every_labels: int = Field(default=50_000, ge=1, description="learner snapshot after this many labels")
    snapshot_every_s: float = Field(
        default=10.0, gt=0, description="learner snapshot after this many seconds, if it read anything"
    )
    state_cache_mb: int = Field(
        default=64, ge=1, description="memory a stateful stage's state file (the join's pending parts) may cache"
    )
    max_snapshot_bytes: int = Field(
        default=8_000_000, ge=1_000, le=100_000_000,
        description="largest model copy put on the models topic for serve workers (the topic is created to take it)"
    )
    session_timeout_s: float = Field(default=10.0, description="consumer group session timeout of stream workers")
    default_factory: str | None = Field(
        default="logistic_regression",
        description="model a worker registers as v1 champion when the registry is empty; empty string: none",
    )
    home: Path = Field(
        default=Path.home() / ".cache" / "weir",
        description="cache for Kafka jars, the local broker's data and logs (outside the repository)",
    )
    state_dir: Path = Field(
        default=Path.home() / ".cache" / "weir" / "state",
        description="where stateful stages keep their state files (`<app_id>/learn.db`)",
    )
    schemas_dir: Path = Field(default=REPO_ROOT / "schemas", description="the Avro schemas of the topic contract")
    rules_file: Path | None = Field(
        default=None, description="validation rules; default: raw_event.rules.yaml next to the schemas"
    )

    # --- derived -------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """Where clients connect: the configured cluster or the local broker."""
        return self.kafka_bootstrap or f"{LOCAL_BROKER_HOST}:{self.local_kafka_port}"

    @property
    def uses_local_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def rules_path(self) -> Path:
        return self.rules_file or self.schemas_dir / "raw_event.rules.yaml"

    def topic(self, name: str) -> str:
        """The physical name of contract topic ``name`` under this deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def librdkafka(self, **extra: Any) -> dict[str, Any]:
        """Client configuration for confluent-kafka (librdkafka property names)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = self.ssl_certfile
        if self.ssl_keyfile:
            conf["ssl.key.location"] = self.ssl_keyfile
        conf.update(extra)
        return conf

    def faust(self) -> dict[str, Any]:
        """Keyword arguments for ``faust.App`` (aiokafka option names)."""
        scheme = "kafka"
        kwargs: dict[str, Any] = {
            "broker": ",".join(f"{scheme}://{host}" for host in self.bootstrap.split(",")),
            "broker_commit_interval": self.commit_interval_s,
            "topic_partitions": self.partitions,
            "topic_replication_factor": self.replication_factor,
            "consumer_auto_offset_reset": "earliest",
        }
        credentials = self._faust_credentials()
        if credentials is not None:
            kwargs["broker_credentials"] = credentials
        return kwargs

    def _faust_credentials(self) -> Any:
        import ssl

        import faust  # local: faust is heavy and only the stream processors need it

        context = None
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=revealed(self.sasl_password),
                mechanism=self.sasl_mechanism or "PLAIN",
                ssl_context=context,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced (``None`` values are ignored: flag not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        return Settings(**{**self.model_dump(), **given})
