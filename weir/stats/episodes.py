"""From many noisy per-check verdicts to few alerts: false-alarm control and hysteresis.

Holm's correction across the features of a check keeps the family-wise
false-alarm rate at ``alpha``; a feature must also move by at least
``min_psi``; an episode opens after ``open_after`` moving checks in a row and
closes after ``close_after`` quiet ones (one episode, one alert, one
resolution). A feature that stays moved for ``rebaseline_after`` checks gets
the live window as its new reference: the world changed, and the next change
must be measured against the new normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from weir.stats.distribution import Comparison


def holm(p_values: dict[str, float], alpha: float) -> set[str]:
    """Features whose test stays significant under Holm's step-down correction (family-wise error alpha)."""
    significant = set()
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    for rank, (name, p) in enumerate(ordered):
        if p > alpha / (len(ordered) - rank):
            break
        significant.add(name)
    return significant


@dataclass
class Episode:
    subject: str
    moving_checks: int = 0
    quiet_checks: int = 0
    open: bool = False
    opened_checks: int = 0
    last: Comparison | None = None


@dataclass
class Transition:
    """An episode that opened (FIRING) or closed (RESOLVED) at this check."""

    subject: str
    status: Literal["FIRING", "RESOLVED"]
    comparison: Comparison
    moved: list[Comparison]
    rebaselined: bool = False


@dataclass
class Episodes:
    """Hysteresis and false-alarm control over per-feature comparisons."""

    alpha: float = 0.01
    min_psi: float = 0.1
    open_after: int = 2
    close_after: int = 3
    rebaseline_after: int = 10
    episodes: dict[str, Episode] = field(default_factory=dict)

    def update(self, comparisons: list[Comparison]) -> tuple[list[Transition], list[str]]:
        """Transitions at this check, and the features whose reference should be re-based."""
        significant = holm({c.feature: c.p_value for c in comparisons}, self.alpha)
        moved = sorted((c for c in comparisons if c.psi >= self.min_psi and (c.feature in significant or c.fast)),
                       key=lambda c: -c.psi)
        moved_names = {c.feature for c in moved}
        transitions, rebase = [], []
        for c in comparisons:
            e = self.episodes.setdefault(c.feature, Episode(c.feature))
            e.last = c
            if c.feature in moved_names:
                e.moving_checks, e.quiet_checks = e.moving_checks + 1, 0
            else:
                e.moving_checks, e.quiet_checks = 0, e.quiet_checks + 1
            if not e.open and e.moving_checks >= self.open_after:
                e.open, e.opened_checks = True, 0
                transitions.append(Transition(c.feature, "FIRING", c, moved[:5]))
            elif e.open:
                e.opened_checks += 1
                if e.quiet_checks >= self.close_after:
                    e.open = False
                    transitions.append(Transition(c.feature, "RESOLVED", c, moved[:5]))
                elif e.opened_checks >= self.rebaseline_after:
                    e.open, e.moving_checks = False, 0
                    transitions.append(Transition(c.feature, "RESOLVED", c, moved[:5], rebaselined=True))
                    rebase.append(c.feature)
        return transitions, rebase

    def open_now(self, c: Comparison, moved: list[Comparison]) -> Transition | None:
        """A detector that decides alone (the fast lane) opens ``c``'s episode at once, if it is not open."""
        e = self.episodes.setdefault(c.feature, Episode(c.feature))
        e.last = c
        if e.open:
            return None
        e.open, e.opened_checks, e.moving_checks, e.quiet_checks = True, 0, self.open_after, 0
        return Transition(c.feature, "FIRING", c, moved[:5])

    def active(self) -> dict[str, bool]:
        return {name: e.open for name, e in self.episodes.items()}
