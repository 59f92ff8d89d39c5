"""One feature's reference and live distribution on bounded memory, and their comparison.

Each feature keeps a reference distribution (the first ``reference_size``
values it sees, then frozen into bins: deciles for numbers, categories for
strings; or a stored profile of that form, see ``weir.stats.profile``) and a
sliding live window of bin indices, so memory is bounded by the window,
whatever the stream's length. A comparison gives the population stability
index (PSI, the effect size) and a two-sample test: Kolmogorov-Smirnov on the
binned CDFs for numbers, chi-square for categories (p-values from scipy).
Between comparisons, a fast lane (``weir.stats.shift``) watches where a
number's recent values fall within its reference, so a clear move is found
within tens of values rather than a window's worth.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scipy import stats

from weir.stats.shift import QuantileShift, Shift

FAST_MIN_DISTINCT = 20  # distinct reference values a number needs for the fast lane


@dataclass(frozen=True)
class Comparison:
    feature: str
    psi: float
    p_value: float
    test: str
    statistic: float
    fast: bool  # the fast lane saw this feature shift since the last comparison (or this is its finding)
    threshold: float | None = None  # the fast lane's finding: the |z| its test had to reach


class FeatureDistribution:
    """Reference and live distribution of one feature (numeric, or categorical if it ever sees a string)."""

    def __init__(self, name: str, *, reference_size: int, window: int, bins: int = 10,
                 fast_level: float | None = None) -> None:
        """``fast_level``: the level of each of the fast lane's tests (none: no fast lane)."""
        self.name = name
        self.reference_size = reference_size
        self.window = window
        self.n_bins = bins
        self.numeric = True
        self._reference_values: list[Any] = []
        self.edges: list[float] = []
        self.categories: list[str] = []
        self.reference: list[int] = []
        self.live: deque[int] = deque(maxlen=window)  # bin indices, for the counts
        self.live_values: deque[Any] = deque(maxlen=window)  # the values, for a new reference
        self.live_counts: list[int] = []
        self.sorted_reference: list[float] = []  # the reference's numbers, when it was built from values
        self.fast_level = fast_level
        self.fast: QuantileShift | None = None
        self.shift: Shift | None = None  # the fast lane's finding, until the caller takes it
        self.fast_fired = False
        self.seen = 0

    @property
    def ready(self) -> bool:
        return bool(self.reference) and len(self.live) == self.window

    def add(self, value: Any) -> bool:
        """Take one value; True when it completed the reference."""
        self.seen += 1
        if isinstance(value, str):
            self.numeric = False
        if not self.reference:
            self._reference_values.append(value)
            if len(self._reference_values) >= self.reference_size:
                self._freeze(self._reference_values)
                self._reference_values = []
                return True
            return False
        index = self._bin(value)
        if len(self.live) == self.window:
            self.live_counts[self.live[0]] -= 1
        self.live.append(index)
        self.live_values.append(value)
        self.live_counts[index] += 1
        if self.fast is not None and self.numeric and isinstance(value, int | float) and not math.isnan(value):
            shift = self.fast.add(self.quantile(float(value)))
            if shift is not None:
                self.shift, self.fast_fired = shift, True
        return False

    def quantile(self, value: float) -> float:
        """Where ``value`` falls in the numeric reference, in [0, 1]: its mid-rank among the reference's values,
        or its bin's middle for a stored profile."""
        if self.sorted_reference:
            r = self.sorted_reference
            return (bisect.bisect_left(r, value) + bisect.bisect_right(r, value)) / (2 * len(r))
        return self._bin_quantile(bisect.bisect_right(self.edges, value))

    def _start_fast_lane(self) -> None:
        self.fast, self.shift, self.fast_fired = None, None, False
        if self.fast_level is None or not self.numeric:
            return
        if self.sorted_reference and len(set(self.sorted_reference)) < FAST_MIN_DISTINCT:
            return  # flags and small counts: a mean of few distinct values has heavy tails; the slow lane has them
        if self.sorted_reference:
            quantiles = [self.quantile(v) for v in self.sorted_reference]
        else:
            if len(self.edges) < self.n_bins - 1:
                return  # a stored profile whose deciles merged: too few distinct values
            quantiles = [q for j, c in enumerate(self.reference[:-1]) for q in [self._bin_quantile(j)] * c]
        if len(quantiles) >= 2:
            self.fast = QuantileShift(quantiles, self.fast_level)

    def _bin_quantile(self, j: int) -> float:
        counts = self.reference[:-1]  # the numeric bins, not the missing one
        return (sum(counts[:j]) + counts[j] / 2) / max(1, sum(counts))

    def freeze(self, values: Iterable[Any]) -> None:
        """Make ``values`` the reference (a whole dataset's, for a stored profile)."""
        values = list(values)
        self.numeric = not any(isinstance(v, str) for v in values)
        self._freeze(values)

    def profile(self) -> dict[str, Any] | None:
        """The reference as plain data (bins and their counts), or None until there is one."""
        if not self.reference:
            return None
        return {"numeric": self.numeric, "edges": list(self.edges), "categories": list(self.categories),
                "counts": list(self.reference)}

    def load_profile(self, profile: dict[str, Any]) -> None:
        """Take a stored reference instead of waiting for the first values."""
        self.numeric, self.edges = bool(profile["numeric"]), [float(e) for e in profile["edges"]]
        self.categories = [str(c) for c in profile["categories"]]
        counts = [int(c) for c in profile["counts"]]
        if len(counts) != self._size() or sum(counts) <= 0:
            raise ValueError(f"the profile of {self.name} has {len(counts)} bin counts summing to {sum(counts)}; "
                             f"its bins need {self._size()} with a positive sum")
        self.reference, self._reference_values, self.sorted_reference = counts, [], []
        self.live_counts = [0] * self._size()
        self.live.clear()
        self.live_values.clear()
        self._start_fast_lane()

    def _freeze(self, values: Iterable[Any]) -> None:
        values = list(values)
        if self.numeric:
            present = sorted(float(v) for v in values if isinstance(v, int | float))
            quantiles = [present[int(len(present) * q / self.n_bins)] for q in range(1, self.n_bins)] if present else []
            self.edges = sorted(set(quantiles))
            self.sorted_reference = present
        else:
            self.categories = sorted({str(v) for v in values if v is not None})
        self.reference = [0] * self._size()
        for v in values:
            self.reference[self._bin(v)] += 1
        self.live_counts = [0] * self._size()
        self.live.clear()
        self.live_values.clear()
        self._start_fast_lane()

    def _size(self) -> int:
        # numbers: len(edges) + 1 bins, plus missing; categories: each, plus unseen, plus missing
        return len(self.edges) + 2 if self.numeric else len(self.categories) + 2

    def _bin(self, value: Any) -> int:
        size = self._size()
        if value is None:
            return size - 1
        if self.numeric:
            if not isinstance(value, int | float) or math.isnan(value):
                return size - 1
            return bisect.bisect_right(self.edges, float(value))
        try:
            return self.categories.index(str(value))
        except ValueError:
            return size - 2  # a category the reference never saw

    def compare(self) -> Comparison:
        ref, live = self.reference, self.live_counts
        n, m = sum(ref), sum(live)
        psi = self._psi()
        if self.numeric:
            statistic, cumulative_ref, cumulative_live = 0.0, 0, 0
            for r, c in zip(ref, live, strict=True):
                cumulative_ref += r
                cumulative_live += c
                statistic = max(statistic, abs(cumulative_ref / n - cumulative_live / m))
            p_value = float(stats.kstwo.sf(statistic, max(1, round(n * m / (n + m)))))
            test = "ks"
        else:
            keep = [i for i, (r, c) in enumerate(zip(ref, live, strict=True)) if r + c > 0]
            if len(keep) < 2:
                statistic, p_value = 0.0, 1.0
            else:
                table = [[ref[i] for i in keep], [live[i] for i in keep]]
                statistic, p_value = (float(x) for x in stats.chi2_contingency(table)[:2])
            test = "chi2"
        fast, self.fast_fired = self.fast_fired, False
        return Comparison(self.name, psi, p_value, test, statistic, fast)

    def take_shift(self) -> Comparison | None:
        """The fast lane's finding since the last call, as a comparison (its statistic is the z of the mean
        quantile; its PSI is the live window's, as far as it is filled)."""
        shift, self.shift = self.shift, None
        if shift is None:
            return None
        return Comparison(self.name, self._psi() if self.live else 0.0, shift.p_value,
                          f"quantile z over the last {shift.window} values", shift.z, True, shift.critical)

    def _psi(self) -> float:
        ref, live = self.reference, self.live_counts
        n, m = sum(ref), sum(live)
        return sum((q - p) * math.log(q / p) for p, q in ((max(r / n, 1e-4), max(c / m, 1e-4)) for r, c in zip(
            ref, live, strict=True)))

    def rebaseline(self) -> None:
        """The live window becomes the reference (bins are recomputed from its values)."""
        self._freeze(list(self.live_values))
