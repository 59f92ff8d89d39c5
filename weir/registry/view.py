"""``ModelRegistry``: one process's live view of the ``models`` topic, with one river model per version.

The compacted, single-partition ``models`` topic is the registry's only store:
every version, every routing decision and every metrics update is a record
there, in one total order, so a process that reads the topic from the start
knows everything and a restart needs nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

from weir.contract.records import ModelRecord, TrainingWindow
from weir.errors import ConfigError
from weir.registry.factories import Model, build_model
from weir.registry.records import PICKLE_FACTORY
from weir.registry.routing import Role, Routing, router_of
from weir.state import pickling

log = logging.getLogger("weir.registry")

CHAMPION, CHALLENGER, RETIRED, REGISTERED = "champion", "challenger", "retired", "registered"


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
    training_window: TrainingWindow | None = None
    note: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)  # its lineage: how and from what it was made
    snapshot_learned: int = 0  # labels reflected in the model a serve worker holds (from a snapshot)
    learned: int = 0  # labels the learner reports (METRICS)

    @cached_property
    def model(self) -> Model:
        if self.factory == PICKLE_FACTORY:
            return unpickle_model(self.pickled)
        return build_model(self.factory, self.params)


@dataclass(frozen=True)
class HistoryEntry:
    """A registration or a routing decision, as ``weir models history`` lists them."""

    created_at: int
    what: str
    note: str | None
    actor: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line, and the evidence of a controller's decision indented below it."""
        when = dt.datetime.fromtimestamp(self.created_at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        by = f" [{self.actor}]" if self.actor else ""
        lines = [f"{when}{by}  {self.what}" + (f"  -- {self.note}" if self.note else "")]
        lines += [f"    {k}: {v}" for k, v in sorted(self.evidence.items())]
        return "\n".join(lines)


class ModelRegistry:
    """One process's view of one model name: versions with live models, the routing, and its history."""

    def __init__(self, model_name: str, *, follows_snapshots: bool = False) -> None:
        self.model_name = model_name
        self.follows_snapshots = follows_snapshots  # a serve worker without a learner in its process
        self.versions: dict[str, ModelVersion] = {}
        self.routing: Routing | None = None
        self.decisions: list[Routing] = []
        self.metrics: dict[str, ModelRecord] = {}  # the latest METRICS record of each version
        self._history: list[HistoryEntry] = []

    def apply(self, record: ModelRecord) -> None:
        """Fold one ``models`` record into the view; records of other models are ignored."""
        if record["model_name"] != self.model_name:
            return
        version, kind = record["version"], record["kind"]
        if kind == "VERSION" and version is not None:
            self._apply_version(version, record)
        elif kind == "ROUTING" and record["routing"] is not None:
            spec = record["routing"]
            self.routing = Routing(router_of(self.model_name, spec), tuple(spec["challengers"]),
                                   record["created_at"], record["note"], record.get("actor"))
            self.decisions.append(self.routing)
            self._history.append(HistoryEntry(record["created_at"], self.routing.describe(), record["note"],
                                              record.get("actor"), dict(record.get("evidence") or {})))
        elif kind == "METRICS" and version in self.versions:
            self.versions[version].learned = record["counters"].get("learned", 0)
            self.metrics[version] = record
        elif kind == "SNAPSHOT" and self.follows_snapshots and version in self.versions:
            self._apply_snapshot(self.versions[version], record)

    def _apply_snapshot(self, version: ModelVersion, record: ModelRecord) -> None:
        learned = record["counters"].get("learned", 0)
        if learned > version.snapshot_learned:
            version.model = unpickle_model(record["snapshot"])
            version.snapshot_learned = learned
            log.info("serving copy of %s %s now reflects %d learned labels", self.model_name, version.version, learned)

    def _apply_version(self, version: str, record: ModelRecord) -> None:
        spec = record["spec"]
        if version in self.versions or spec is None:
            return  # a version is immutable once registered; a re-read keeps the model it learned
        self.versions[version] = ModelVersion(
            self.model_name, version, spec["factory"], dict(spec["params"]), record["created_at"],
            spec["pickle"], record["parent_version"], record["training_window"], record["note"],
            dict(record.get("evidence") or {}),
        )
        self._history.append(HistoryEntry(record["created_at"], f"register {version} ({spec['factory']})",
                                          record["note"], record.get("actor"), dict(record.get("evidence") or {})))

    @property
    def champion(self) -> ModelVersion | None:
        if self.routing is None:
            return None
        return self.versions.get(self.routing.champion)

    def active(self) -> list[ModelVersion]:
        """Every version that scores: the champion first, then the challengers in routing order."""
        if self.routing is None:
            return []
        return [self.versions[n] for n in self.routing.router.scoring() if n in self.versions]

    def serving(self, entity_id: str) -> str | None:
        """The version that should serve this entity under the current routing."""
        return None if self.routing is None else self.routing.router.serving(entity_id)

    def role_of(self, version: str) -> Role:
        assert self.routing is not None
        return self.routing.router.role_of(version)

    def status(self, version: str) -> str:
        """Derived from the decisions: champion or challenger now, retired once routed, else registered."""
        if self.routing is not None and version == self.routing.champion:
            return CHAMPION
        if self.routing is not None and version in self.routing.challengers:
            return CHALLENGER
        if any(version == d.champion or version in d.challengers for d in self.decisions):
            return RETIRED
        return REGISTERED

    def next_version(self) -> str:
        """The name a new version gets: one past the highest ``v<n>`` registered."""
        numbers = [int(v[1:]) for v in self.versions if v[:1] == "v" and v[1:].isdigit()]
        return f"v{max(numbers, default=0) + 1}"

    def previous_champion(self) -> str | None:
        """The champion before the current one, for a rollback."""
        if self.routing is None:
            return None
        for decision in reversed(self.decisions):
            if decision.champion != self.routing.champion:
                return decision.champion
        return None

    def reset_models(self) -> None:
        """Forget every live model: each is built again from its spec when next used (a learner starting over)."""
        for version in self.versions.values():
            version.__dict__.pop("model", None)

    def history(self) -> list[HistoryEntry]:
        """Every registration and routing decision, in the order the topic holds them."""
        return list(self._history)


def unpickle_model(data: bytes | None) -> Model:
    """An uploaded model or a serving copy: river objects and plain data only, since anyone who can write the
    ``models`` topic would otherwise run code in every serve worker (``UnreadableState`` for anything else)."""
    from river import base, compose

    if not data:
        raise ConfigError("a 'pickle' version has no model bytes")
    model = pickling.loads(data)
    if not isinstance(model, base.Classifier | base.Regressor | compose.Pipeline):
        raise ConfigError(f"the uploaded model is a {type(model).__name__}, not a river classifier or regressor")
    return cast(Model, model)  # river types its classifiers' features loosely; they take a Model's
