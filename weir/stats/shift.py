"""The fast lane of data drift: a number's recent values moving within its reference distribution.

Each value becomes its quantile in the reference (its mid-rank, in [0, 1]).
Quantiles are bounded and nearly uniform whatever the feature's scale or tails,
so a z-test on the mean of as few as 32 of them holds its level, where a test
on raw values would not: heavy tails make false cuts (river's ADWIN raises 26
per 100,000 events on churn's charges). Every ``EVERY`` values the mean
quantile of the last 32, 64, ... 512 values is tested against the reference's,
two-sided, at the level the caller derives from its false-alarm budget.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import islice
from statistics import NormalDist

EVERY = 16
SCALES = (32, 64, 128, 256, 512)


@dataclass(frozen=True)
class Shift:
    """A significant move of the mean quantile over the last ``window`` values."""

    window: int
    mean_quantile: float
    reference_mean: float
    z: float
    p_value: float
    critical: float  # the |z| the test had to reach


class QuantileShift:
    """A multi-scale z-test of the recent mean quantile against the reference's."""

    def __init__(self, reference_quantiles: list[float], level: float) -> None:
        """``reference_quantiles``: the quantile of every reference value; ``level``: one test's false-alarm rate
        (a test is one window size at one check)."""
        n = len(reference_quantiles)
        self.n = n
        self.mean = sum(reference_quantiles) / n
        self.variance = sum((q - self.mean) ** 2 for q in reference_quantiles) / max(1, n - 1)
        self.critical = NormalDist().inv_cdf(1.0 - level / 2)
        self.recent: deque[float] = deque(maxlen=SCALES[-1])
        self.seen = 0

    def add(self, quantile: float) -> Shift | None:
        """Take one value's quantile; the largest significant shift at this check, if any."""
        self.recent.appendleft(quantile)
        self.seen += 1
        if self.seen % EVERY or self.variance <= 0:
            return None
        found: Shift | None = None
        total, counted = 0.0, 0
        for window in SCALES:
            if window > len(self.recent):
                break
            total += sum(islice(self.recent, counted, window))
            counted = window
            mean = total / window
            z = (mean - self.mean) / math.sqrt(self.variance * (1 / window + 1 / self.n))
            if abs(z) >= self.critical and (found is None or abs(z) > abs(found.z)):
                found = Shift(window, mean, self.mean, z, 2 * (1 - NormalDist().cdf(abs(z))), self.critical)
        if found is not None:
            self.recent.clear()  # one shift is reported once; the next needs new values
        return found
