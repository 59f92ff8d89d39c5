"""An always-valid comparison of two models on the same events: a confidence sequence for their loss difference.

A controller looks at its evidence after every label and acts the first time
it is convincing, so a fixed-sample test would be wrong: looking often is
how a fixed test cries wolf. A confidence sequence covers the true mean at
every look at once, with probability at least ``1 - alpha``, so acting when it
excludes zero keeps the error rate at ``alpha`` however often one looks.

This is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha,
Kennedy and Ramdas ("Time-uniform central limit theory and asymptotic
confidence sequences", 2021): a normal-mixture boundary around the running
mean with the running variance plugged in. The mixture is tuned to be
tightest around ``tuned_for`` observations; it stays valid at every other
count.

Every decision here is one-sided (promote when the lower bound passes a
gain, roll back when the upper bound falls below zero), so each bound is the
one-sided normal-mixture boundary at ``alpha`` (Howard, Ramdas, McAuliffe
and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", 2021): ``log(1 + sqrt(t rho^2 + 1) / (2 alpha))`` where the
two-sided one has ``log(sqrt(t rho^2 + 1) / alpha)``. The lower bound is
wrongly above the mean, at any look, with probability at most ``alpha``; so
is the upper bound below it; the interval between them covers the mean with
``1 - 2 alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import stats


@dataclass(frozen=True)
class Interval:
    """The mean difference and its bounds, from ``n`` paired observations."""

    n: int
    mean: float
    lower: float
    upper: float

    def describe(self) -> str:
        return f"{self.mean:+.4f} [{self.lower:+.4f}, {self.upper:+.4f}] over {self.n}"


class ConfidenceSequence:
    """Running mean of paired differences with time-uniform bounds, each one-sided at level ``alpha``."""

    def __init__(self, alpha: float, tuned_for: int = 2_000) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), not {alpha}")
        self.alpha = alpha
        log_term = -2 * math.log(alpha)
        self.rho2 = (log_term + math.log(log_term + 1)) / tuned_for
        self.moments = stats.Var()

    @property
    def n(self) -> int:
        return int(self.moments.mean.n)

    def update(self, difference: float) -> None:
        self.moments.update(difference)

    def interval(self) -> Interval:
        """The bounds now; infinite before two observations."""
        n, mean = self.n, float(self.moments.mean.get())
        if n < 2:
            return Interval(n, mean, -math.inf, math.inf)
        sd = math.sqrt(max(float(self.moments.get()), 1e-12))
        t_rho2 = n * self.rho2
        radius = sd * math.sqrt(2 * (t_rho2 + 1) / (n * n * self.rho2)
                                * math.log(1 + math.sqrt(t_rho2 + 1) / (2 * self.alpha)))
        return Interval(n, mean, mean - radius, mean + radius)
