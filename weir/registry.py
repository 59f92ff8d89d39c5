"""The model registry as the ``models`` topic describes it.

The compacted ``models`` topic is the registry's only store: every version,
every routing change and every metrics update is a record there, so a process
that reads the topic from the start knows everything, and a restart needs
nothing else. ``ModelRegistry`` is one process's live view: it applies
records in order and holds one river model per version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import base

from weir.clock import now_ms
from weir.models import build_model, encode_params
from weir.serde import Record

CHAMPION, CHALLENGER, RETIRED = "champion", "challenger", "retired"


def record_key(record: Record) -> str:
    """The compaction key of a ``models`` record: one live record per version, routing, metrics."""
    name, kind = record["model_name"], record["kind"]
    if kind == "ROUTING":
        return f"{name}:routing"
    if kind == "METRICS":
        return f"{name}:{record['version']}:metrics"
    return f"{name}:{record['version']}"


def version_record(name: str, version: str, factory: str, params: dict[str, Any], *,
                   status: str = CHALLENGER, parent_version: str | None = None) -> Record:
    return {
        "model_name": name, "kind": "VERSION", "version": version, "status": status,
        "spec": {"factory": factory, "params": encode_params(params)},
        "parent_version": parent_version, "routing": None, "metrics": {}, "counters": {},
        "created_at": now_ms(),
    }


def routing_record(name: str, mode: str, champion: str, challengers: list[str] | None = None,
                   canary_percent: float = 0.0) -> Record:
    return {
        "model_name": name, "kind": "ROUTING", "version": None, "status": None, "spec": None,
        "parent_version": None,
        "routing": {"mode": mode, "champion": champion, "challengers": challengers or [],
                    "canary_percent": canary_percent},
        "metrics": {}, "counters": {}, "created_at": now_ms(),
    }


def metrics_record(name: str, version: str, metrics: dict[str, float], counters: dict[str, int]) -> Record:
    return {
        "model_name": name, "kind": "METRICS", "version": version, "status": None, "spec": None,
        "parent_version": None, "routing": None, "metrics": metrics, "counters": counters,
        "created_at": now_ms(),
    }


@dataclass
class ModelVersion:
    """One registered version and the live river model this process holds for it."""

    name: str
    version: str
    status: str
    factory: str
    params: dict[str, str]
    model: base.Estimator
    parent_version: str | None = None


@dataclass
class Routing:
    mode: str
    champion: str
    challengers: list[str] = field(default_factory=list)
    canary_percent: float = 0.0


class ModelRegistry:
    """One process's view of one model name: versions with live models, and the routing."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.versions: dict[str, ModelVersion] = {}
        self.routing: Routing | None = None

    def apply(self, record: Record) -> None:
        """Fold one ``models`` record into the view; records of other models are ignored."""
        if record["model_name"] != self.model_name:
            return
        if record["kind"] == "VERSION":
            self._apply_version(record)
        elif record["kind"] == "ROUTING":
            r = record["routing"]
            self.routing = Routing(r["mode"], r["champion"], list(r["challengers"]), r["canary_percent"])

    def _apply_version(self, record: Record) -> None:
        version, spec = record["version"], record["spec"]
        known = self.versions.get(version)
        if known is not None and (known.factory, known.params) == (spec["factory"], spec["params"]):
            known.status = record["status"]  # a status change keeps the learned model
            return
        self.versions[version] = ModelVersion(
            self.model_name, version, record["status"], spec["factory"], dict(spec["params"]),
            build_model(spec["factory"], spec["params"]), record["parent_version"],
        )

    @property
    def champion(self) -> ModelVersion | None:
        if self.routing is None:
            return None
        return self.versions.get(self.routing.champion)

    def active(self) -> list[ModelVersion]:
        """Every version that scores: the champion first, then the challengers in routing order."""
        if self.routing is None:
            return []
        names = [self.routing.champion, *self.routing.challengers]
        return [self.versions[n] for n in names if n in self.versions]
