"""``ModelRegistry``: one process's live view of the ``models`` topic, with one river model per version.

The compacted, single-partition ``models`` topic is the registry's only store:
every version, every routing decision and every metrics update is a record
there, in one total order, so a process that reads the topic from the start
knows everything and a restart needs nothing else.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from weir.contract.serde import Record
from weir.errors import ConfigError
from weir.registry.factories import build_model
from weir.registry.records import PICKLE_FACTORY
from weir.registry.routing import Routing, canary_bucket

if TYPE_CHECKING:
    from river import base


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
    training_window: dict[str, int] | None = None
    note: str | None = None
    snapshot_learned: int = 0  # labels reflected in the model a serve worker holds (from a snapshot)
    learned: int = 0  # labels the learner reports (METRICS)

    @cached_property
    def model(self) -> base.Estimator:
        if self.factory == PICKLE_FACTORY:
            return unpickle_model(self.pickled)
        return build_model(self.factory, self.params)


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
