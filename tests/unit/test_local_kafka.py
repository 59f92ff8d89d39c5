"""The local broker's provisioning says in one sentence what is missing, without starting anything."""

from __future__ import annotations

import shutil

import pytest

from weir.kafka import local as local_kafka


def test_missing_java_is_said_in_one_sentence_with_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    def which(name: str) -> str | None:
        return None if name == "java" else "/usr/bin/" + name

    monkeypatch.setattr(shutil, "which", which)  # weir.kafka.local finds java and mvn with shutil.which
    with pytest.raises(local_kafka.LocalKafkaError) as err:
        local_kafka.require_tools()
    message = str(err.value)
    assert "Java 17+ not found" in message and "WEIR_KAFKA_BOOTSTRAP" in message and "docker compose" in message
    assert "\n" not in message
