"""One settings object: WEIR_* environment, CLI overrides, and both Kafka client dialects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from apps.processes import settings_env
from tests.conftest import REPO
from weir.kafka.reading import reader_config
from weir.settings import Settings


def test_environment_is_read_with_the_weir_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIR_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("WEIR_PARTITIONS", "6")
    s = Settings()
    assert (s.bootstrap, s.partitions, s.uses_local_broker) == ("k1:9092,k2:9092", 6, False)


def test_overrides_win_and_none_means_flag_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIR_TOPIC_PREFIX", "env.")
    s = Settings().with_overrides(topic_prefix=None, app_id="cli")
    assert (s.topic_prefix, s.app_id) == ("env.", "cli")
    assert s.topic("features") == "env.features"


def test_without_a_cluster_the_local_broker_is_used() -> None:
    s = Settings(local_kafka_port=29092)
    assert s.uses_local_broker and s.bootstrap == "127.0.0.1:29092"


def test_both_client_dialects_name_the_same_cluster_and_credentials() -> None:
    s = Settings(kafka_bootstrap="a:1,b:2", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                 sasl_username="u", sasl_password=SecretStr("p"))
    rd = s.librdkafka()
    assert rd["bootstrap.servers"] == "a:1,b:2"
    assert (rd["security.protocol"], rd["sasl.mechanism"], rd["sasl.username"], rd["sasl.password"]) == (
        "SASL_PLAINTEXT", "PLAIN", "u", "p")
    fa = s.faust()
    assert fa["broker"] == "kafka://a:1,kafka://b:2"
    creds = fa["broker_credentials"]
    assert (creds.username, creds.password, str(creds.mechanism.value)) == ("u", "p", "PLAIN")


def test_secrets_never_show_in_settings_printed_or_dumped_but_reach_a_child_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIR_SASL_PASSWORD", "pw-7f3a9c")
    monkeypatch.setenv("WEIR_ALERT_WEBHOOK_TOKEN", "tok-51e2b8")
    s = Settings()
    assert "pw-7f3a9c" not in repr(s) + str(s) + s.model_dump_json()
    assert "tok-51e2b8" not in repr(s) + str(s) + s.model_dump_json()
    env = settings_env(s)
    assert env["WEIR_SASL_PASSWORD"] == "pw-7f3a9c" and env["WEIR_ALERT_WEBHOOK_TOKEN"] == "tok-51e2b8"


def test_unknown_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    unknown: dict[str, Any] = {"no_such_setting": 1}  # mypy refuses it statically; this is the run-time refusal
    with pytest.raises(Exception, match="extra"):
        Settings(**unknown)


def test_every_setting_is_documented() -> None:
    doc = (REPO / "docs" / "settings.md").read_text()
    missing = [name for name in Settings.model_fields if f"`WEIR_{name.upper()}`" not in doc]
    assert missing == [], f"document these in docs/settings.md: {missing}"
    assert all(field.description for field in Settings.model_fields.values())


def test_every_reader_group_id_starts_with_the_app_id() -> None:
    """ACLs scoped to a deployment grant groups by prefix: a fixed id like `weir-reader` would be refused."""
    settings = Settings(app_id="team-a")
    for purpose in ("reader", "watermarks", "registry-follower", "tally"):
        assert reader_config(settings, purpose)["group.id"] == f"team-a-{purpose}"
