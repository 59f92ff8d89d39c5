"""Routing: who scores an event and who serves it, one router per mode.

* ``Basic``: the champion scores and serves.
* ``Shadow``: the challengers score every event beside the champion and are
  never served.
* ``Canary``: the canary serves the entities whose stable hash falls below
  its percentage, the champion the rest; both score every event, and any
  further challengers score beside them in shadow.

Every router answers the same three questions (``scoring``, ``serving``,
``role_of``), and one conformance suite checks all of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

from weir.contract.records import RoutingSpec
from weir.errors import ConfigError

Mode = Literal["basic", "shadow", "canary"]
Role = Literal["champion", "shadow", "canary"]
MODES: tuple[Mode, ...] = ("basic", "shadow", "canary")


def canary_bucket(model_name: str, entity_id: str) -> float:
    """Where an entity falls in [0, 100): stable across processes, restarts and replicas.

    A canary at P% takes the entities below P, so raising P only adds entities
    to the canary and never moves one back.
    """
    digest = hashlib.blake2b(f"{model_name}\x00{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


class Router(Protocol):
    """Who scores and who serves under one routing decision."""

    @property
    def champion(self) -> str: ...

    @property
    def mode(self) -> Mode: ...

    def scoring(self) -> list[str]:
        """Every version that scores each event, the champion first."""
        ...

    def serving(self, entity_id: str) -> str:
        """The version whose prediction this entity is served."""
        ...

    def role_of(self, version: str) -> Role: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Basic:
    champion: str

    @property
    def mode(self) -> Mode:
        return "basic"

    def scoring(self) -> list[str]:
        return [self.champion]

    def serving(self, entity_id: str) -> str:
        return self.champion

    def role_of(self, version: str) -> Role:
        return "champion"

    def describe(self) -> str:
        return f"basic: {self.champion} serves"


@dataclass(frozen=True)
class Shadow:
    champion: str
    challengers: tuple[str, ...]

    @property
    def mode(self) -> Mode:
        return "shadow"

    def scoring(self) -> list[str]:
        return [self.champion, *self.challengers]

    def serving(self, entity_id: str) -> str:
        return self.champion

    def role_of(self, version: str) -> Role:
        return "champion" if version == self.champion else "shadow"

    def describe(self) -> str:
        return f"shadow {', '.join(self.challengers)} beside champion {self.champion}"


@dataclass(frozen=True)
class Canary:
    model_name: str
    champion: str
    canary: str
    percent: float
    shadows: tuple[str, ...] = ()

    @property
    def mode(self) -> Mode:
        return "canary"

    def scoring(self) -> list[str]:
        return [self.champion, self.canary, *self.shadows]

    def serving(self, entity_id: str) -> str:
        return self.canary if canary_bucket(self.model_name, entity_id) < self.percent else self.champion

    def role_of(self, version: str) -> Role:
        if version == self.champion:
            return "champion"
        return "canary" if version == self.canary else "shadow"

    def describe(self) -> str:
        shadows = f", shadow {', '.join(self.shadows)}" if self.shadows else ""
        return f"canary {self.canary} at {self.percent:g}% beside champion {self.champion}{shadows}"


def router_of(model_name: str, spec: RoutingSpec) -> Router:
    """The router a ``models`` ROUTING record describes."""
    mode, champion, challengers = spec["mode"], spec["champion"], tuple(spec["challengers"])
    if mode == "basic":
        return Basic(champion)
    if mode == "shadow":
        return Shadow(champion, challengers)
    if mode == "canary" and challengers:
        return Canary(model_name, champion, challengers[0], spec["canary_percent"], challengers[1:])
    raise ConfigError(f"routing mode must be one of {MODES} (a canary names its version), not {mode!r}")


@dataclass(frozen=True)
class Routing:
    """One routing decision as the registry keeps it: the router, when it was decided and why."""

    router: Router
    challengers: tuple[str, ...]
    created_at: int = 0
    note: str | None = None
    actor: str | None = None  # person, controller, approved, resume (None: written before actors were kept)

    @property
    def champion(self) -> str:
        return self.router.champion

    @property
    def mode(self) -> Mode:
        return self.router.mode

    @property
    def canary(self) -> str | None:
        return self.router.canary if isinstance(self.router, Canary) else None

    @property
    def percent(self) -> float:
        """The canary's share of entities (0 without a canary)."""
        return self.router.percent if isinstance(self.router, Canary) else 0.0

    def describe(self) -> str:
        return self.router.describe()
