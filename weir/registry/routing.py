"""Routing: who is champion, which challengers shadow it or serve a canary share, and who serves an entity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


def canary_bucket(model_name: str, entity_id: str) -> float:
    """Where an entity falls in [0, 100): stable across processes, restarts and replicas.

    A canary at P% takes the entities below P, so raising P only adds entities
    to the canary and never moves one back.
    """
    digest = hashlib.blake2b(f"{model_name}\x00{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


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
