"""The model registry as the ``models`` topic describes it.

The compacted, single-partition ``models`` topic is the registry's only store:
every version, every routing decision and every metrics update is a record
there, in one total order, so a process that reads the topic from the start
knows everything and a restart needs nothing else. Routing decisions have keys
of their own (``<model>:routing:<created_at>``), so compaction keeps every one
of them: the history of who served, and why, can always be read back.

``ModelRegistry`` is one process's live view: it applies records in order,
holds one river model per version, and answers the serve stage's questions
(which versions score, which one serves this entity).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from weir.clock import now_ms
from weir.errors import ConfigError
from weir.models import build_model, encode_params
from weir.serde import Record

if TYPE_CHECKING:
    from river import base

log = logging.getLogger("weir.registry")

CHAMPION, CHALLENGER, RETIRED, REGISTERED = "champion", "challenger", "retired", "registered"
MODES = ("basic", "shadow", "canary")
PICKLE_FACTORY = "pickle"


def record_key(record: Record) -> str:
    """The compaction key of a ``models`` record: one per version, per routing decision, per version's metrics."""
    name, kind = record["model_name"], record["kind"]
    if kind == "ROUTING":
        return f"{name}:routing:{record['created_at']:013d}"
    if kind in ("METRICS", "SNAPSHOT"):
        return f"{name}:{record['version']}:{kind.lower()}"
    return f"{name}:{record['version']}"


def _record(name: str, kind: str, **fields: Any) -> Record:
    base_fields: Record = {
        "model_name": name, "kind": kind, "version": None, "status": None, "spec": None, "parent_version": None,
        "training_window": None, "routing": None, "metrics": {}, "counters": {}, "snapshot": None,
        "created_at": now_ms(), "note": None,
    }
    return {**base_fields, **fields}


def version_record(name: str, version: str, factory: str, params: dict[str, Any], *,
                   parent_version: str | None = None, training_window: tuple[int, int] | None = None,
                   pickled: bytes | None = None, note: str | None = None) -> Record:
    window = None if training_window is None else {"start_ms": training_window[0], "end_ms": training_window[1]}
    return _record(name, "VERSION", version=version,
                   spec={"factory": factory, "params": encode_params(params), "pickle": pickled},
                   parent_version=parent_version, training_window=window, note=note)


def routing_record(name: str, mode: str, champion: str, challengers: list[str] | None = None,
                   canary_percent: float = 0.0, *, note: str | None = None) -> Record:
    if mode not in MODES:
        raise ConfigError(f"routing mode must be one of {MODES}, not {mode!r}")
    return _record(name, "ROUTING", note=note, routing={
        "mode": mode, "champion": champion, "challengers": list(challengers or []), "canary_percent": canary_percent})


def metrics_record(name: str, version: str, metrics: dict[str, float], counters: dict[str, int]) -> Record:
    return _record(name, "METRICS", version=version, metrics=metrics, counters=counters)


def snapshot_record(name: str, version: str, model: bytes, learned: int) -> Record:
    return _record(name, "SNAPSHOT", version=version, snapshot=model, counters={"learned": learned})


def canary_bucket(model_name: str, entity_id: str) -> float:
    """Where an entity falls in [0, 100): stable across processes, restarts and replicas.

    A canary at P% takes the entities below P, so raising P only adds entities
    to the canary and never moves one back.
    """
    digest = hashlib.blake2b(f"{model_name}\x00{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


@dataclass
class ModelVersion:
    """One registered version and the live river model this process holds for it (built on first use)."""

    name: str
    version: str
    factory: str
    params: dict[str, str]
    created_at: int
    pickled: bytes | None = None
    parent_version: str | None = None
    training_window: dict[str, int] | None = None
    note: str | None = None
    snapshot_learned: int = 0  # labels reflected in the model a serve worker holds (from a snapshot)
    learned: int = 0  # labels the learner reports (METRICS)

    @cached_property
    def model(self) -> base.Estimator:
        if self.factory == PICKLE_FACTORY:
            return unpickle_model(self.pickled)
        return build_model(self.factory, self.params)


@dataclass
class Routing:
    mode: str
    champion: str
    challengers: list[str] = field(default_factory=list)
    canary_percent: float = 0.0
    created_at: int = 0
    note: str | None = None

    @property
    def canary(self) -> str | None:
        return self.challengers[0] if self.mode == "canary" and self.challengers else None

    def role_of(self, version: str) -> str:
        if version == self.champion:
            return "champion"
        return "canary" if version == self.canary else "shadow"

    def describe(self) -> str:
        if self.mode == "canary":
            return f"canary {self.canary} at {self.canary_percent:g}% beside champion {self.champion}"
        if self.mode == "shadow":
            return f"shadow {', '.join(self.challengers)} beside champion {self.champion}"
        return f"basic: {self.champion} serves"


class ModelRegistry:
    """One process's view of one model name: versions with live models, the routing, and its history."""

    def __init__(self, model_name: str, *, follows_snapshots: bool = False) -> None:
        self.model_name = model_name
        self.follows_snapshots = follows_snapshots  # a serve worker without a learner in its process
        self.versions: dict[str, ModelVersion] = {}
        self.routing: Routing | None = None
        self.decisions: list[Routing] = []

    def apply(self, record: Record) -> None:
        """Fold one ``models`` record into the view; records of other models are ignored."""
        if record["model_name"] != self.model_name:
            return
        if record["kind"] == "VERSION":
            self._apply_version(record)
        elif record["kind"] == "ROUTING":
            r = record["routing"]
            self.routing = Routing(r["mode"], r["champion"], list(r["challengers"]), r["canary_percent"],
                                   record["created_at"], record.get("note"))
            self.decisions.append(self.routing)
        elif record["kind"] == "METRICS" and record["version"] in self.versions:
            self.versions[record["version"]].learned = record["counters"].get("learned", 0)
        elif record["kind"] == "SNAPSHOT" and self.follows_snapshots and record["version"] in self.versions:
            self._apply_snapshot(record)

    def _apply_snapshot(self, record: Record) -> None:
        version = self.versions[record["version"]]
        learned = record["counters"].get("learned", 0)
        if learned > version.snapshot_learned:
            version.model = unpickle_model(record["snapshot"])
            version.snapshot_learned = learned
            log.info("serving copy of %s %s now reflects %d learned labels", self.model_name, version.version, learned)

    def _apply_version(self, record: Record) -> None:
        version, spec = record["version"], record["spec"]
        if version in self.versions:
            return  # a version is immutable once registered; a re-read keeps the model it learned
        self.versions[version] = ModelVersion(
            self.model_name, version, spec["factory"], dict(spec["params"]), record["created_at"],
            spec.get("pickle"), record["parent_version"], record.get("training_window"), record.get("note"),
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

    def serving(self, entity_id: str) -> str | None:
        """The version that should serve this entity under the current routing."""
        r = self.routing
        if r is None:
            return None
        if r.canary is not None and canary_bucket(self.model_name, entity_id) < r.canary_percent:
            return r.canary
        return r.champion

    def status(self, version: str) -> str:
        """Derived from the decisions: champion or challenger now, retired once routed, else registered."""
        if self.routing is not None and version == self.routing.champion:
            return CHAMPION
        if self.routing is not None and version in self.routing.challengers:
            return CHALLENGER
        if any(version == d.champion or version in d.challengers for d in self.decisions):
            return RETIRED
        return REGISTERED

    def previous_champion(self) -> str | None:
        """The champion before the current one, for a rollback."""
        if self.routing is None:
            return None
        for decision in reversed(self.decisions):
            if decision.champion != self.routing.champion:
                return decision.champion
        return None


def unpickle_model(data: bytes | None) -> base.Estimator:
    """An uploaded model; the registry trusts its uploaders (pickle runs code), and checks it is a river model."""
    from river import base

    if not data:
        raise ConfigError("a 'pickle' version has no model bytes")
    model = pickle.loads(data)  # noqa: S301 - uploads come from the registry's trusted writers
    if not isinstance(model, base.Estimator):
        raise ConfigError(f"the uploaded model is a {type(model).__name__}, not a river estimator")
    return model
