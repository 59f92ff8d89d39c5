"""A drift schedule: where in a stream the world changes, and how.

Four kinds, after data drift and concept drift (docs/background.md):

* ``abrupt``: feature distributions jump at ``at`` and stay moved (data drift);
* ``gradual``: they move linearly from ``at`` over ``width`` events (data drift);
* ``recurring``: they move at ``at`` and come back after ``width`` events
  (a season; data drift);
* ``concept``: the label function changes at ``at``; inputs do not.

The schedule travels with a run (``to_dict``) so tests, the demo and its report
know exactly where drift happened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from weir.errors import ConfigError

DriftKind = Literal["abrupt", "gradual", "recurring", "concept"]


KINDS: tuple[DriftKind, ...] = ("abrupt", "gradual", "recurring", "concept")


@dataclass(frozen=True)
class DriftPoint:
    kind: DriftKind
    at: int
    width: int = 0

    def intensity(self, index: int) -> float:
        """How far the drift has taken hold at event ``index``: 0 (not yet) to 1 (fully)."""
        if index < self.at:
            return 0.0
        if self.kind == "gradual":
            return 1.0 if self.width <= 0 else min(1.0, (index - self.at) / self.width)
        if self.kind == "recurring":
            return 1.0 if index < self.at + self.width else 0.0
        return 1.0


@dataclass(frozen=True)
class DriftSchedule:
    points: tuple[DriftPoint, ...] = ()

    def intensity(self, kind: DriftKind, index: int) -> float:
        return max((p.intensity(index) for p in self.points if p.kind == kind), default=0.0)

    def to_dict(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.points]

    @classmethod
    def parse(cls, spec: str, total: int) -> DriftSchedule:
        """Read ``kind@where[:width],...``; a value below 1 is a fraction of ``total`` events.

        ``abrupt@0.3,gradual@0.45:0.1,concept@0.65,recurring@0.8:0.1`` on 20,000
        events puts the abrupt drift at event 6,000, and so on. ``none`` or an
        empty string is no drift.
        """
        points = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            if item == "none":
                continue
            kind, _, where = item.partition("@")
            drift_kind = next((k for k in KINDS if k == kind), None)
            if drift_kind is None or not where:
                raise ConfigError(f"bad drift point {item!r}: expected kind@where[:width], kind one of {KINDS}")
            at, _, width = where.partition(":")
            try:
                points.append(DriftPoint(drift_kind, _events(float(at), total), _events(float(width or 0), total)))
            except ValueError:
                raise ConfigError(f"bad drift point {item!r}: position and width must be numbers") from None
        return cls(tuple(sorted(points, key=lambda p: p.at)))


def _events(value: float, total: int) -> int:
    return int(round(value * total)) if 0 < value < 1 else int(value)


DEFAULT_DRIFT = "abrupt@0.3,gradual@0.45:0.1,concept@0.65,recurring@0.8:0.1"
# The demo's: the data drifts first, then the concept drift with room after it for the policy to retrain, prove
# and promote a challenger, and for served accuracy to be measured after the promotion, before the season.
DEMO_DRIFT = "abrupt@0.2,gradual@0.3:0.1,concept@0.5,recurring@0.85:0.1"
