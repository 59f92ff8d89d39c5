"""The Kubernetes manifests in ``deploy/kubernetes``: valid for the API server, and consistent with Weir itself.

Every document is validated offline and strictly (unknown fields rejected): the built-in kinds against the
Kubernetes schemas kubernetes-validate ships, the two custom resources (KEDA's ScaledObject, the Prometheus
Operator's ServiceMonitor) against the schemas of their CRDs in ``crd_schemas/``. Then what no schema can see:
settings the code does not have, commands the CLI refuses, a learner that would run twice, probes on ports
nothing listens on, a credential outside the Secret, a KEDA trigger watching another group or topic.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, get_args

import click
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from apps.cli import cli
from consumers.sink import receiver_token
from streams.front import FrontStage
from streams.runtime.loop import StageLoop
from streams.runtime.metrics import StageMetrics
from tests.conftest import REPO
from weir.contract.serde import SchemaCatalog
from weir.registry.signing import model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings

MANIFESTS = REPO / "deploy" / "kubernetes"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
KUBERNETES_VERSION = "1.33"  # one kubernetes-validate 1.37.0 ships (1.25 to 1.37)
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")
LONG_RUNNING = ("Deployment", "StatefulSet")
NOT_SETTINGS = {"HOME", "PYTHONDONTWRITEBYTECODE"}  # the only variables a container may set that Weir does not read

Doc = dict[str, Any]


# --- reading the manifests ---------------------------------------------------------------------------------------

@cache
def manifest_files() -> tuple[Path, ...]:
    return tuple(sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml"))


def load(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@cache
def _documents() -> tuple[tuple[str, Doc], ...]:
    return tuple((path.name, doc) for path in manifest_files() for doc in load(path))


def documents() -> list[tuple[str, Doc]]:
    """(file name, document) for every document; deep copies, so a test may break one without harm."""
    return [(name, copy.deepcopy(doc)) for name, doc in _documents()]


def doc_id(entry: tuple[str, Doc]) -> str:
    return f"{entry[0]}:{entry[1]['kind']}/{entry[1]['metadata']['name']}"


def of_kind(kind: str) -> list[Doc]:
    return [d for _, d in documents() if d["kind"] == kind]


def one(kind: str, name: str) -> Doc:
    [found] = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return found


def workloads(kinds: tuple[str, ...] = WORKLOADS) -> list[Doc]:
    return [d for _, d in documents() if d["kind"] in kinds]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(kinds: tuple[str, ...] = WORKLOADS) -> list[tuple[Doc, Doc]]:
    """(workload, container) for every container of every workload, init containers included."""
    return [(w, c) for w in workloads(kinds) for c in pod_spec(w).get("initContainers", []) + pod_spec(w)["containers"]]


def container_id(entry: tuple[Doc, Doc]) -> str:
    return f"{entry[0]['kind']}/{entry[0]['metadata']['name']}/{entry[1]['name']}"


def weir_containers(kinds: tuple[str, ...] = WORKLOADS) -> list[tuple[Doc, Doc]]:
    return [(w, c) for w, c in containers(kinds) if c["image"].split(":")[0] == "weir"]


def workers() -> list[tuple[Doc, Doc]]:
    return [(w, c) for w, c in weir_containers() if c["args"][0] == "worker"]


def config_data() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d.get("data", {})) for d in of_kind("ConfigMap")}


def secret_data() -> dict[str, dict[str, str]]:
    secrets = {}
    for secret in of_kind("Secret"):
        values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        values.update(secret.get("stringData", {}))
        secrets[secret["metadata"]["name"]] = values
    return secrets


def pod_name(workload: Doc) -> str:
    """What ``metadata.name`` of one of the workload's pods looks like."""
    name: str = workload["metadata"]["name"]
    return f"{name}-0" if workload["kind"] == "StatefulSet" else f"{name}-5d8f7c9b4-x2kq7"


def environment(workload: Doc, container: Doc) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env (which wins)."""
    configs, secrets = config_data(), secret_data()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configs[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            env[var["name"]] = configs[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            env[var["name"]] = secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
        else:
            assert ref["fieldRef"]["fieldPath"] == "metadata.name", f"{var['name']}: only the pod name is modelled"
            env[var["name"]] = pod_name(workload)
    return env


@contextmanager
def weir_environment(env: dict[str, str]) -> Iterator[None]:
    """Only the given WEIR_ variables, none of the test run's own."""
    with pytest.MonkeyPatch.context() as environ:
        for name in [n for n in os.environ if n.startswith("WEIR_")]:
            environ.delenv(name)
        for name, value in env.items():
            if name.startswith("WEIR_"):
                environ.setenv(name, value)
        yield


def settings_of(workload: Doc, container: Doc) -> Settings:
    with weir_environment(environment(workload, container)):
        return Settings()


def setting_names() -> dict[str, Any]:
    """Every WEIR_ variable Weir reads, with the type of its setting."""
    return {f"WEIR_{name.upper()}": field.annotation for name, field in Settings.model_fields.items()}


def is_secret_setting(env_name: str) -> bool:
    """A credential: a setting typed ``SecretStr`` (never printed or logged)."""
    annotation = setting_names().get(env_name)
    return annotation is SecretStr or SecretStr in get_args(annotation)


def option_value(args: list[str], option: str) -> str | None:
    return args[args.index(option) + 1] if option in args else None


def listening_ports(container: Doc) -> set[int]:
    """The ports the process listens on, from its own arguments (the CLI's defaults where none is given)."""
    args: list[str] = container["args"]
    if args[0] == "worker":
        return {int(option_value(args, "--web-port") or Settings().web_port)}
    if args[0] == "serve-http":
        return {int(option_value(args, "--port") or Settings().http_port)}
    if args[:2] == ["alerts", "serve"]:
        ports = {int(option_value(args, "--port") or 9095)}
        return ports | ({int(p)} if (p := option_value(args, "--metrics-port")) else set())
    return set()


def metrics_port(container: Doc) -> int:
    args: list[str] = container["args"]
    if args[0] == "serve-http":  # /metrics beside the API
        return int(option_value(args, "--port") or Settings().http_port)
    return int(option_value(args, "--web-port") or option_value(args, "--metrics-port") or 0)


def container_port(container: Doc, port: int | str) -> int:
    """A port given by number or by the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


# --- the documents validate ----------------------------------------------------------------------------------------

def validate(doc: Doc) -> None:
    """Raises if the API server would refuse the document under strict field validation."""
    schema_file = CUSTOM_KINDS.get((doc["apiVersion"], doc["kind"]))
    if schema_file is None:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    schema = json.loads((CRD_SCHEMAS / schema_file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("entry", documents(), ids=doc_id)
def test_every_document_validates(entry: tuple[str, Doc]) -> None:
    validate(entry[1])


BREAKAGES: list[tuple[str, str, Callable[[Doc], None]]] = [
    ("Deployment", "a container field that does not exist",
     lambda d: pod_spec(d)["containers"][0].update(restart="always")),
    ("StatefulSet", "replicas as a string", lambda d: d["spec"].update(replicas="1")),
    ("Job", "a probe without an action", lambda d: pod_spec(d)["containers"][0].update(livenessProbe={"port": 1})),
    ("ScaledObject", "a trigger field that does not exist", lambda d: d["spec"]["triggers"][0].update(lag="5000")),
    ("ScaledObject", "a number in the trigger metadata (KEDA takes strings)",
     lambda d: d["spec"]["triggers"][0]["metadata"].update(lagThreshold=5000)),
    ("ServiceMonitor", "an endpoint field that does not exist",
     lambda d: d["spec"]["endpoints"][0].update(portName="metrics")),
]


@pytest.mark.parametrize("kind, what, mutate", BREAKAGES, ids=[f"{k}: {w}" for k, w, _ in BREAKAGES])
def test_the_validation_is_strict(kind: str, what: str, mutate: Callable[[Doc], None]) -> None:
    doc = of_kind(kind)[0]
    validate(doc)
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_the_kustomization_lists_every_manifest_in_one_namespace() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]
    assert kustomization["namespace"] == "weir"
    for _, doc in documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "weir", doc_id(("", doc))
    assert [n["metadata"]["name"] for n in of_kind("Namespace")] == ["weir"]


# --- settings and credentials --------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", containers(), ids=container_id)
def test_env_refers_only_to_keys_that_exist_and_settings_weir_has(entry: tuple[Doc, Doc]) -> None:
    _, container = entry
    configs, secrets, known = config_data(), secret_data(), setting_names()
    names: list[str] = []
    for source in container.get("envFrom", []):
        assert "prefix" not in source
        if "configMapRef" in source:
            names += configs[source["configMapRef"]["name"]]
        else:
            names += secrets[source["secretRef"]["name"]]
    for var in container.get("env", []):
        names.append(var["name"])
        ref = var.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            assert ref["configMapKeyRef"]["key"] in configs[ref["configMapKeyRef"]["name"]], var
        if "secretKeyRef" in ref:
            assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]], var
    unknown = [n for n in names if n not in known and n not in NOT_SETTINGS]
    assert not unknown, f"not a setting in weir/settings.py: {unknown}"


def test_the_credentials_weir_has_are_recognised() -> None:
    credentials = {name for name in setting_names() if is_secret_setting(name)}
    assert {"WEIR_SASL_PASSWORD", "WEIR_RESEND_KEY", "WEIR_ALERT_RECEIVER_TOKEN"} <= credentials
    assert not is_secret_setting("WEIR_SASL_USERNAME")


def test_the_config_and_the_secret_hold_settings_and_only_the_secret_holds_credentials() -> None:
    known = setting_names()
    for name, data in config_data().items():
        assert set(data) <= set(known), f"ConfigMap {name}: not settings: {sorted(set(data) - set(known))}"
        assert not [k for k in data if is_secret_setting(k)], f"ConfigMap {name} holds a credential"
    for name, data in secret_data().items():
        assert data and set(data) <= set(known), f"Secret {name}: not settings: {sorted(set(data) - set(known))}"
        assert all(is_secret_setting(k) for k in data), f"Secret {name} holds a value that is no credential"


@pytest.mark.parametrize("entry", containers(), ids=container_id)
def test_credentials_come_from_the_secret_only(entry: tuple[Doc, Doc]) -> None:
    _, container = entry
    for var in container.get("env", []):
        if is_secret_setting(var["name"]):
            assert "secretKeyRef" in var.get("valueFrom", {}), f"{var['name']} must come from the Secret"


def test_no_secret_value_appears_outside_the_secret() -> None:
    values = {v for data in secret_data().values() for v in data.values()}
    assert values
    for path in [*manifest_files(), MANIFESTS / "kustomization.yaml"]:
        for doc in load(path):
            if doc["kind"] == "Secret":
                continue
            text = json.dumps(doc)
            leaked = [v for v in values if v in text]
            assert not leaked, f"{path.name} {doc['kind']}/{doc['metadata']['name']} carries a Secret value"


@pytest.mark.parametrize("entry", weir_containers(), ids=container_id)
def test_every_container_environment_is_valid_settings(entry: tuple[Doc, Doc]) -> None:
    settings = settings_of(*entry)
    assert settings.kafka_bootstrap, "a pod has no local broker: WEIR_KAFKA_BOOTSTRAP must be set"


@pytest.mark.parametrize("entry", weir_containers(), ids=container_id)
def test_pods_listen_beyond_loopback(entry: tuple[Doc, Doc]) -> None:
    """Weir's listeners default to 127.0.0.1, where neither the kubelet's probes nor Prometheus reach them."""
    assert settings_of(*entry).web_bind == "0.0.0.0"


def test_the_alert_receiver_listens_beyond_loopback_with_a_token_from_the_secret() -> None:
    """Without a token the receiver refuses to start on 0.0.0.0; with it, only Alertmanager can page on-call."""
    sinks = [(w, c) for w, c in weir_containers() if c["args"][:2] == ["alerts", "serve"]]
    assert sinks, "the alert sink has a Deployment"
    for workload, container in sinks:
        [ref] = [v["valueFrom"]["secretKeyRef"] for v in container["env"] if v["name"] == "WEIR_ALERT_RECEIVER_TOKEN"]
        assert ref["name"] in secret_data()
        settings = settings_of(workload, container)
        assert settings.web_bind == "0.0.0.0" and receiver_token(settings)  # raises without one


def test_every_worker_and_the_http_service_verify_models_with_the_same_key() -> None:
    """Without a shared key each pod would make its own: serve workers would refuse the learner's copies, and the
    front would serve again what the HTTP service served (it passes by only what that key signed)."""
    refs = []
    http = [(w, c) for w, c in weir_containers() if c["args"][0] == "serve-http"]
    assert http, "the HTTP service has a Deployment"
    for workload, container in workers() + http:
        [ref] = [v["valueFrom"]["secretKeyRef"] for v in container["env"] if v["name"] == "WEIR_MODEL_KEY"]
        refs.append((ref["name"], ref["key"]))
        settings = settings_of(workload, container)
        assert settings.model_key is not None
        model_signer(settings)  # the key is long enough to sign with
    assert refs and len(set(refs)) == 1


# --- commands ------------------------------------------------------------------------------------------------------

def weir_main() -> Callable[[list[str]], None]:
    """The function the image's entrypoint runs: the `weir` console script of this package."""
    assert re.search(r'^ENTRYPOINT \["weir"\]$', (REPO / "Dockerfile").read_text(), re.M)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    [script] = entry_points(group="console_scripts", name="weir")
    assert script.value == scripts["weir"] == "apps.cli:main"
    main: Callable[[list[str]], None] = script.load()
    return main


def run_weir(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``weir ARGS`` in-process as the image would, with the container's settings; (exit code, output)."""
    code: int = 0
    with weir_environment(env), CliRunner().isolation() as (stdout, _, _):
        try:
            weir_main()(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        return code, stdout.getvalue().decode()


def leaf_command(args: list[str]) -> click.Command:
    command: click.Command = cli
    for token in args:
        if not isinstance(command, click.Group) or token not in command.commands:
            break
        command = command.commands[token]
    assert not isinstance(command, click.Group), f"weir {' '.join(args)} names a group, not a command"
    return command


@pytest.mark.parametrize("entry", weir_containers(), ids=container_id)
def test_every_weir_command_is_accepted_by_the_cli(entry: tuple[Doc, Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    workload, container = entry
    assert "command" not in container, "the image's entrypoint is `weir`: give the subcommand as args"
    args: list[str] = container["args"]
    env = environment(workload, container)
    code, output = run_weir([*args, "--help"], env)
    assert code == 0 and f"Usage: weir {args[0]}" in output, f"`weir {' '.join(args)} --help`:\n{output}"
    # --help is eager: it passes before click checks the values. Parse them for real, with the command stubbed.
    received: list[dict[str, Any]] = []
    monkeypatch.setattr(leaf_command(args), "callback", lambda **params: received.append(params))
    code, output = run_weir(args, env)
    assert code == 0 and len(received) == 1, f"`weir {' '.join(args)}` is refused:\n{output}"


def test_every_worker_names_its_stages_and_only_the_statefulset_learns() -> None:
    """Without --stage a worker runs the front and the back: a scaled Deployment would run the learner N times."""
    for workload, container in workers():
        args = container["args"]
        stages = [args[i + 1] for i, a in enumerate(args) if a == "--stage"]
        assert stages, f"{workload['metadata']['name']}: no --stage, so it would run the back too"
        if {"back", "learn"} & set(stages):
            assert workload["kind"] == "StatefulSet", workload["metadata"]["name"]
    learners = [w for w, c in workers() if {"back", "learn"} & set(c["args"])]
    assert len(learners) == 1


def test_the_topics_are_created_by_a_job() -> None:
    assert [c["args"] for w, c in weir_containers(("Job",))] == [["topics", "create"]]


# --- the learner ---------------------------------------------------------------------------------------------------

def test_the_back_is_one_replica_with_its_state_on_a_claim() -> None:
    [back] = [w for w, c in workers() if "back" in c["args"]]
    assert back["kind"] == "StatefulSet" and back["spec"]["replicas"] == 1
    text = (MANIFESTS / "back.yaml").read_text()
    assert re.search(r"#[^\n]*\n\s*replicas: 1\n", text), "say why the back is one replica, next to replicas: 1"
    [claim] = back["spec"]["volumeClaimTemplates"]
    [container] = pod_spec(back)["containers"]
    state_dir = settings_of(back, container).state_dir
    assert state_dir.is_absolute()
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(str(state_dir)) == claim["metadata"]["name"], f"no claim mounted at {state_dir}"
    assert mounts[str(state_dir)] not in {v["name"] for v in pod_spec(back).get("volumes", [])}
    assert pod_spec(back)["securityContext"].get("fsGroup"), "the claim must be writable by the non-root user"
    assert settings_of(back, container).instance_id == pod_name(back)


# --- probes, ports, resources, security ---------------------------------------------------------------------------

@pytest.mark.parametrize("entry", weir_containers(LONG_RUNNING), ids=container_id)
def test_every_long_running_container_has_probes_on_ports_it_listens_on(entry: tuple[Doc, Doc]) -> None:
    _, container = entry
    listening = listening_ports(container)
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        assert probe, f"{container['name']}: no {kind}"
        action = probe.get("httpGet") or probe.get("tcpSocket")
        assert action and container_port(container, action["port"]) in listening, f"{kind} on a closed port"


@pytest.mark.parametrize("entry", workers(), ids=container_id)
def test_worker_probes_ask_the_worker_whether_it_lives_and_is_ready(entry: tuple[Doc, Doc]) -> None:
    _, container = entry
    port = metrics_port(container)
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}


def test_the_worker_serves_the_paths_its_probes_ask() -> None:
    pages = set(re.findall(r'@app\.page\("([^"]+)"\)', (REPO / "streams" / "worker.py").read_text()))
    assert "/metrics" in pages
    for _, container in workers():
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in container:
                path = container[kind]["httpGet"]["path"]
                assert path in pages, f"{kind} asks {path}; the worker serves {sorted(pages)}"


@pytest.mark.parametrize("entry", weir_containers(), ids=container_id)
def test_every_container_runs_as_non_root_on_a_read_only_root(entry: tuple[Doc, Doc]) -> None:
    workload, container = entry
    pod_security = pod_spec(workload)["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # What a Weir process writes must be a volume: /tmp, HOME (WEIR_HOME's default) and the state directory.
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    env = environment(workload, container)
    needed = {"/tmp", env["HOME"]}
    if container["args"][0] == "worker":
        needed.add(str(settings_of(workload, container).state_dir))
    assert needed <= mounts, f"not writable: {sorted(needed - mounts)}"


@pytest.mark.parametrize("entry", weir_containers(), ids=container_id)
def test_every_container_has_requests_and_a_memory_limit(entry: tuple[Doc, Doc]) -> None:
    _, container = entry
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    if container["args"][0] == "worker":  # its RSS peaks near 800 MB
        assert resources["requests"] == {"cpu": "1", "memory": "1Gi"}


# --- scaling by lag ------------------------------------------------------------------------------------------------

def test_keda_scales_the_front_by_the_lag_of_its_own_group_and_topic() -> None:
    [scaled] = of_kind("ScaledObject")
    spec = scaled["spec"]
    target = one(spec["scaleTargetRef"].get("kind", "Deployment"), spec["scaleTargetRef"]["name"])
    [container] = pod_spec(target)["containers"]
    assert option_value(container["args"], "--stage") == "front"
    assert "replicas" not in target["spec"], "KEDA owns the count: a replicas field would fight it on every apply"
    settings = settings_of(target, container)
    # The group and topic the front really uses, from the stage loop the worker would build with these settings.
    registry = ModelRegistry(settings.model_name, follows_snapshots=True)
    front = FrontStage(settings, SchemaCatalog(settings.schemas_dir), registry)
    loop = StageLoop(settings, front, StageMetrics(CollectorRegistry()))
    [trigger] = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == loop.group == f"{settings.app_id}-front"
    assert (meta["topic"],) == front.inputs == (settings.topic("events.raw"),)
    assert meta["bootstrapServers"] == settings.bootstrap
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= settings.partitions
    assert int(meta["lagThreshold"]) > 0


# --- metrics -------------------------------------------------------------------------------------------------------

def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        ok = {"In": present and labels.get(key) in values, "NotIn": not present or labels[key] not in values,
              "Exists": present, "DoesNotExist": not present}[operator]
        if not ok:
            return False
    return True


def selected_workloads(service: Doc) -> list[Doc]:
    """The workloads whose pods a Service sends to."""
    selector = {"matchLabels": service["spec"]["selector"]}
    return [w for w in workloads(LONG_RUNNING) if selects(selector, w["spec"]["template"]["metadata"]["labels"])]


def test_the_servicemonitor_scrapes_the_metrics_port_of_every_weir_process() -> None:
    [monitor] = of_kind("ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["weir"]
    endpoints = {e["port"]: e for e in monitor["spec"]["endpoints"]}
    assert {e["path"] for e in endpoints.values()} == {"/metrics"}
    services = [s for s in of_kind("Service") if selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
    scraped = set()
    for service in services:
        [port] = [p for p in service["spec"]["ports"] if p.get("name") in endpoints]
        [workload] = selected_workloads(service)
        [container] = pod_spec(workload)["containers"]
        assert container_port(container, port.get("targetPort", port["port"])) == metrics_port(container)
        scraped.add(workload["metadata"]["name"])
    every = {w["metadata"]["name"] for w, c in weir_containers(LONG_RUNNING) if metrics_port(c)}
    assert scraped == every == {"weir-front", "weir-back", "weir-alerts", "weir-http"}


def test_every_service_selects_the_pods_of_exactly_one_workload() -> None:
    for service in of_kind("Service"):
        matched = [w["metadata"]["name"] for w in selected_workloads(service)]
        assert len(matched) == 1, f"Service {service['metadata']['name']} selects {matched}"


def test_the_statefulset_is_governed_by_a_headless_service() -> None:
    for statefulset in of_kind("StatefulSet"):
        service = one("Service", statefulset["spec"]["serviceName"])
        assert service["spec"].get("clusterIP") == "None"
