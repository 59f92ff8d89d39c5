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
    """Running mean of paired differences with time-uniform bounds, each one-sided at level ``alpha``.

    The variance in the bounds is the long-run variance, from batch means, so that differences correlated in time
    (a challenger better for a season, then worse) widen the bounds as they should; see ``LongRunVariance``.
    """

    def __init__(self, alpha: float, tuned_for: int = 2_000) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), not {alpha}")
        self.alpha = alpha
        log_term = -2 * math.log(alpha)
        self.rho2 = (log_term + math.log(log_term + 1)) / tuned_for
        self.variance = LongRunVariance()

    @property
    def n(self) -> int:
        return self.variance.n

    def update(self, difference: float) -> None:
        self.variance.update(difference)

    def interval(self) -> Interval:
        """The bounds now; infinite before two observations."""
        n, mean = self.n, self.variance.mean
        if n < 2:
            return Interval(n, mean, -math.inf, math.inf)
        sd = math.sqrt(max(self.variance.get(), 1e-12))
        t_rho2 = n * self.rho2
        radius = sd * math.sqrt(2 * (t_rho2 + 1) / (n * n * self.rho2)
                                * math.log(1 + math.sqrt(t_rho2 + 1) / (2 * self.alpha)))
        return Interval(n, mean, mean - radius, mean + radius)


class LongRunVariance:
    """The variance of a running mean, times n, for observations that may be correlated in time: batch means.

    Independent observations have a long-run variance equal to their variance. Positively correlated ones (runs
    of good and bad) have a larger one: their mean wanders further than independent ones' would, and a bound
    built on the plain variance is crossed far more often than it says. The observations are cut into
    consecutive batches; the variance of the batch means times the batch size estimates the long-run variance
    whenever the batches are longer than the correlation. The number of batches is kept between ``BATCHES`` and
    twice that, by merging neighbours as data comes, so a batch grows with the data (a twentieth of it or
    more) and correlation on any scale shorter than that is caught; the price is an estimate from only 16 to 31
    batch means, paid for by the degrees-of-freedom factor in ``get``. The variance used is never below the plain
    one, so negatively correlated data do not narrow the bounds.
    """

    def __init__(self) -> None:
        self.moments = stats.Var()
        self.batch = 1  # observations per batch
        self.sums: list[float] = []  # the complete batches' sums
        self.open_sum, self.open_n = 0.0, 0

    @property
    def n(self) -> int:
        return int(self.moments.mean.n)

    @property
    def mean(self) -> float:
        return float(self.moments.mean.get())

    def update(self, x: float) -> None:
        self.moments.update(x)
        self.open_sum += x
        self.open_n += 1
        if self.open_n == self.batch:
            self.sums.append(self.open_sum)
            self.open_sum, self.open_n = 0.0, 0
            if len(self.sums) == 2 * BATCHES:
                self.sums = [self.sums[i] + self.sums[i + 1] for i in range(0, 2 * BATCHES, 2)]
                self.batch *= 2

    def get(self) -> float:
        """The long-run variance: that of the batch means times the batch size, inflated for the few batches it
        rests on (by ``k - 1 / (k - 3)``, the mean of the inverse of its chi-square), and never below the plain
        variance."""
        plain = float(self.moments.get())
        k = len(self.sums)
        if k < BATCHES:
            return plain
        means = [s / self.batch for s in self.sums]
        centre = sum(means) / k
        between = sum((m - centre) ** 2 for m in means) / (k - 1)
        return max(plain, self.batch * between * (k - 1) / (k - 3))


BATCHES = 16  # the fewest batch means the long-run variance rests on (at most twice as many)
