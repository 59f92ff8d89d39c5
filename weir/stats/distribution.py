"""One feature's reference and live distribution on bounded memory, and their comparison.

Each feature keeps a reference distribution (the first ``reference_size``
values it sees, then frozen into bins: deciles for numbers, categories for
strings; or a stored profile of that form, see ``weir.stats.profile``) and a
sliding live window of bin indices, so memory is bounded by the window,
whatever the stream's length. A comparison gives the population stability
index (PSI, the effect size) and a two-sample test: Kolmogorov-Smirnov on the
binned CDFs for numbers, chi-square for categories (p-values from scipy). An
online detector (river's ADWIN) also watches each numeric feature's mean
between comparisons, fed the means of blocks of ``ADWIN_BLOCK`` values.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from river import drift
from scipy import stats

ADWIN_BLOCK = 50


@dataclass(frozen=True)
class Comparison:
    feature: str
    psi: float
    p_value: float
    test: str
    statistic: float
    adwin: bool


class FeatureDistribution:
    """Reference and live distribution of one feature (numeric, or categorical if it ever sees a string)."""

    def __init__(self, name: str, *, reference_size: int, window: int, bins: int = 10) -> None:
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
        self.adwin = drift.ADWIN(delta=1e-6)
        self.adwin_fired = False
        self._block: list[float] = []
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
        if self.numeric and isinstance(value, int | float):
            self._block.append(float(value))
            if len(self._block) == ADWIN_BLOCK:
                self.adwin.update(sum(self._block) / ADWIN_BLOCK)
                self.adwin_fired = self.adwin_fired or self.adwin.drift_detected
                self._block.clear()
        return False

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
        self.reference, self._reference_values = counts, []
        self.live_counts = [0] * self._size()
        self.live.clear()
        self.live_values.clear()

    def _freeze(self, values: Iterable[Any]) -> None:
        values = list(values)
        if self.numeric:
            present = sorted(float(v) for v in values if isinstance(v, int | float))
            quantiles = [present[int(len(present) * q / self.n_bins)] for q in range(1, self.n_bins)] if present else []
            self.edges = sorted(set(quantiles))
        else:
            self.categories = sorted({str(v) for v in values if v is not None})
        self.reference = [0] * self._size()
        for v in values:
            self.reference[self._bin(v)] += 1
        self.live_counts = [0] * self._size()
        self.live.clear()
        self.live_values.clear()

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
        psi = sum((q - p) * math.log(q / p) for p, q in ((max(r / n, 1e-4), max(c / m, 1e-4)) for r, c in zip(
            ref, live, strict=True)))
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
        adwin, self.adwin_fired = self.adwin_fired, False
        return Comparison(self.name, psi, p_value, test, statistic, adwin)

    def rebaseline(self) -> None:
        """The live window becomes the reference (bins are recomputed from its values)."""
        self._freeze(list(self.live_values))
