"""The `weir` command: every subcommand explains itself, and docker-compose only runs commands that exist."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner
from confluent_kafka import KafkaError, KafkaException

from apps.cli import cli
from consumers.sink import receiver_token
from tests.conftest import REPO
from weir.kafka.logs import librdkafka_log
from weir.settings import Settings


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += all_commands(command, prefix + (name,))
        else:
            found.append(prefix + (name,))
    return found


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "weir")
def test_every_command_has_help_that_explains_it(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    summary = result.output.split("\n\n")[1].strip()  # the first paragraph of the docstring
    assert len(summary) > 20, f"`weir {' '.join(path)} --help` says too little: {summary!r}"


def test_a_weir_error_is_one_line_and_exit_code_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setenv("WEIR_LOCAL_KAFKA_PORT", "1")  # nothing answers there
    result = CliRunner().invoke(cli, ["kafka", "up"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("weir: Java 17+ and Maven not found")


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return services


def test_compose_runs_kafka_in_kraft_from_the_official_image() -> None:
    kafka = compose_services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert {"prometheus", "alertmanager", "grafana"} <= set(compose_services())


@pytest.mark.parametrize("service", [n for n, s in compose_services().items() if s.get("image") == "weir:dev"])
def test_every_weir_service_runs_a_command_the_cli_has(service: str) -> None:
    command = compose_services()[service]["command"]
    result = CliRunner().invoke(cli, [*command, "--help"], prog_name="weir")
    assert result.exit_code == 0, f"{service}: `weir {' '.join(command)}` is not a valid command:\n{result.output}"
    assert "Usage: weir " + command[0] in result.output


def test_an_alert_receiver_open_to_others_without_a_token_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIR_WEB_BIND", "0.0.0.0")
    monkeypatch.delenv("WEIR_ALERT_RECEIVER_TOKEN", raising=False)
    started: list[object] = []
    monkeypatch.setattr(sys.modules["apps.cli.alerts"], "run_sink", lambda *args, **kwargs: started.append(args))
    result = CliRunner().invoke(cli, ["alerts", "serve", "--port", "0"])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("weir: the Alertmanager receiver would take unauthenticated alerts on 0.0.0.0: set "
                           "WEIR_ALERT_RECEIVER_TOKEN")
    assert not started


def test_compose_gives_the_alert_receiver_the_token_alertmanager_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """In compose the receiver listens beyond loopback, so it needs a token: the one Alertmanager's config sends."""
    [(name, sink)] = [(n, s) for n, s in compose_services().items() if s.get("command", [])[:2] == ["alerts", "serve"]]
    for variable in [v for v in os.environ if v.startswith("WEIR_")]:
        monkeypatch.delenv(variable)
    for variable, value in sink["environment"].items():
        monkeypatch.setenv(variable, str(value))
    settings = Settings()
    token = receiver_token(settings)  # raises without one
    assert settings.web_bind == "0.0.0.0" and token
    port = sink["command"][sink["command"].index("--port") + 1]
    config = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    hooks = [h for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert [h["url"] for h in hooks] == [f"http://{name}:{port}/alertmanager"]
    assert hooks[0]["http_config"]["authorization"] == {"type": "Bearer", "credentials": token}


def exposed_metric_names() -> set[str]:
    """Every metric family a Weir worker can expose, read from the code that declares them."""
    import re

    names = set()
    for package in ("weir", "streams", "producers", "consumers", "apps"):
        for path in (REPO / package).rglob("*.py"):
            names |= set(re.findall(r'"(weir_[a-z0-9_]+)"', path.read_text()))
    return names


def test_the_dashboard_and_the_rules_only_use_metrics_weir_exposes() -> None:
    import json
    import re

    known = exposed_metric_names()
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "weir.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
              for r in g["rules"]]
    used = {re.sub(r"_(total|bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"weir_[a-z0-9_]+", e)}
    assert used and used <= known, f"not exposed by any Weir process: {sorted(used - known)}"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]["volumes"]
    assert any("dashboards" in v for v in compose)


@pytest.mark.parametrize("args", [
    ["produce", "--rate", "0"], ["produce", "--rate", "-5"], ["produce", "--rate", "nan"], ["produce", "--rate", "inf"],
    ["produce", "--events", "-1"], ["produce", "--events", "0"], ["produce", "--label-loss", "1.5"],
    ["produce", "--duration", "nan"], ["demo", "--rate", "nan"], ["demo", "--events", "-1"],
    ["dlq", "resend", "--limit", "0"], ["worker", "--web-port", "70000"],
], ids=" ".join)
def test_a_value_that_makes_no_sense_is_refused_before_anything_runs(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{args[-2]}'" in result.output and "Traceback" not in result.output


def test_a_kafka_error_is_one_line_naming_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable broker, refused credentials or a missing ACL: librdkafka's error, not a traceback."""
    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Broker transport failure"))

    monkeypatch.setattr("apps.cli.contract.create_topics", unreachable)
    monkeypatch.setenv("WEIR_KAFKA_BOOTSTRAP", "nowhere.invalid:9092")
    result = CliRunner().invoke(cli, ["topics", "create"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "weir: Kafka: Failed to get metadata: Broker transport failure (bootstrap nowhere.invalid:9092)"]


def test_librdkafkas_repeat_counts_come_before_the_line_that_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Kafka error ends the command: how often librdkafka said the same thing is told before its last line, not
    printed after it when the process exits."""
    logger = librdkafka_log().logger
    handler = logging.StreamHandler()

    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        handler.setStream(sys.stderr)  # the runner's, as it is while the command runs
        logger.addHandler(handler)
        for ms in (0, 3):  # what confluent-kafka's log callback does with two lines of the same shape
            logger.error("%s [%s] %s", "FAIL", "rdkafka#producer-1", "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/"
                         f"bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {ms}ms)")
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Broker transport failure"))

    monkeypatch.setattr("apps.cli.contract.create_topics", unreachable)
    try:
        result = CliRunner().invoke(cli, ["topics", "create"])
    finally:
        logger.removeHandler(handler)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and lines[-1].startswith("weir: Kafka: Failed to get metadata"), result.output
    assert any("Connection refused (after Nms) repeated 1 more time" in line for line in lines[:-1]), result.output


def test_a_missing_file_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["produce", "--source", "/nowhere/events.csv", "--events", "5"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith("weir: ") and "/nowhere/events.csv" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("rows, code, says", [
    ("", 2, "has no rows, only a header: there are no events in it"),
    ("c1,1,yes\nc2,2,no\n", 1, "2 label(s) in column 'label' would be dead-lettered, not learned (row 1 'yes', "
                                "row 2 'no'): label 'yes' (str) is not a binary label"),
], ids=["header only", "labels of another kind"])
def test_a_file_with_nothing_to_send_or_labels_the_learners_refuse_is_one_line_before_the_broker_is_asked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: str, code: int, says: str) -> None:
    monkeypatch.setenv("WEIR_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # asked, it would say that nothing answers
    monkeypatch.setenv("WEIR_LABEL_KIND", "binary")
    path = tmp_path / "events.csv"
    path.write_text("entity_id,spend,label\n" + rows)
    result = CliRunner().invoke(cli, ["produce", "--source", str(path), "--no-progress"])
    assert result.exit_code == code, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"weir: {path}") and says in line, line


def test_serve_http_refuses_a_source_without_rules_in_one_line_before_asking_the_broker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event of a source without rules would be refused (unknown-source): the service says so at start."""
    monkeypatch.setenv("WEIR_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens: a broker check would say so
    result = CliRunner().invoke(cli, ["serve-http", "--source", "http"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"weir: the HTTP service's source 'http' (--source, WEIR_HTTP_SOURCE) has no validation rules in "
        f"{REPO / 'schemas' / 'raw_event.rules.yaml'}, which declares agrawal, churn, hyperplane, sea, simple and no "
        "default_source: give --source one it declares, or declare the source (or a default_source) there"]


def test_produce_with_no_broker_fails_in_seconds_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a minute of retries ending in every record counted as failed."""
    monkeypatch.setenv("WEIR_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setenv("WEIR_CONNECT_TIMEOUT_S", "1")
    result = CliRunner().invoke(cli, ["produce", "--events", "5", "--no-progress"])
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("weir: no Kafka broker answered at 127.0.0.1:1 within 1 s: ")


def test_debug_shows_the_traceback_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise KafkaException(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))

    monkeypatch.setattr("apps.cli.contract.create_topics", refused)
    result = CliRunner().invoke(cli, ["--debug", "topics", "create"])
    assert isinstance(result.exception, KafkaException) and "weir: " not in result.output


@pytest.mark.parametrize("service", [n for n, s in compose_services().items()
                                     if s.get("image") == "weir:dev" and s["command"][0] != "topics"])
def test_every_long_running_weir_service_restarts_and_the_listening_ones_have_a_health_check(service: str) -> None:
    """The merged service (with the shared block) restarts when it exits; one that listens says if it is alive."""
    spec = compose_services()[service]
    assert spec["restart"] == "unless-stopped"
    if "ports" in spec:
        check = " ".join(spec["healthcheck"]["test"])
        port = spec["ports"][0].split(":")[0]
        assert re.search(r"127\.0\.0\.1:\d+/(livez|metrics|v2/health/live)", check), check
        assert port in check or "--metrics-port" in spec["command"], check
