"""Prediction drift that a model's own learning cannot raise: served scores against reference inputs re-scored now.

A model that learns online moves its own scores: a logistic regression
sharpens on separable data, a Hoeffding tree's first splits reshape its
scores at once, a promoted challenger scores differently from the champion
before it. Against a reference of *past scores*, each looks like drift,
though the inputs never moved. So the watch keeps a sample of reference
*inputs* instead (a stretch of recent feature vectors), and for every served
score it also scores one reference input (in turn) with the version that
served, as that version is at that moment. The two windows, scores of live
inputs and scores of reference inputs, are then made by the same models at
the same times, and differ only where the inputs differ: the alert means
"the inputs the model sees moved it", whatever the model learned meanwhile.

When an episode stays open for ``rebaseline_after`` checks, the recent
inputs become the reference (the world changed) and both windows refill.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from scipy import stats

from streams.monitor.budget import level_per_test
from weir.settings import Settings
from weir.stats.distribution import Comparison
from weir.stats.episodes import Episodes, Transition

# (model version, features) -> the score that version gives those features now; None if it cannot score.
Rescore = Callable[[str, dict[str, Any]], float | None]

SUBJECT = "score"
BINS = 10


class PairedScoreWatch:
    """One model's served scores, each paired with a reference input's score by the same version at that time."""

    def __init__(self, settings: Settings, rescore: Rescore, reference_inputs: Sequence[dict[str, Any]]) -> None:
        self.settings = settings
        self.rescore = rescore
        self.inputs = list(reference_inputs)
        self.turn = 0
        self.live: deque[float] = deque(maxlen=settings.drift_window)
        self.rescored: deque[float] = deque(maxlen=settings.drift_window)
        self.episodes = Episodes(alpha=level_per_test(settings.alert_budget, settings.drift_check_every),
                                 min_psi=settings.prediction_drift_min_psi)
        self.paired = 0

    @property
    def ready(self) -> bool:
        return bool(self.inputs)

    def add(self, version: str, score: float) -> tuple[list[Transition], bool]:
        """A served score of ``version``: the transitions at this check, and whether the reference inputs must be
        renewed (an episode held long enough: the caller gives the recent inputs to ``rebase``)."""
        reference = self.rescore(version, self.inputs[self.turn % len(self.inputs)])
        self.turn += 1
        if reference is None or math.isnan(score) or math.isnan(reference):
            return [], False
        self.live.append(score)
        self.rescored.append(reference)
        self.paired += 1
        if self.paired % self.settings.drift_check_every or len(self.live) < self.live.maxlen:  # type: ignore[operator]
            return [], False
        transitions, rebase = self.episodes.update([self.compare()])
        return transitions, bool(rebase)

    def rebase(self, inputs: Sequence[dict[str, Any]]) -> None:
        """New reference inputs; both windows refill before the next check."""
        self.inputs = list(inputs)
        self.live.clear()
        self.rescored.clear()

    def compare(self) -> Comparison:
        """Two-sample Kolmogorov-Smirnov between the windows, and the PSI of the live scores over the deciles of
        the re-scored ones."""
        statistic, p_value = (float(v) for v in stats.ks_2samp(self.live, self.rescored, method="asymp"))
        ordered = sorted(self.rescored)
        edges = sorted({ordered[len(ordered) * q // BINS] for q in range(1, BINS)})
        reference, live = [0] * (len(edges) + 1), [0] * (len(edges) + 1)
        for value in self.rescored:
            reference[bisect.bisect_right(edges, value)] += 1
        for value in self.live:
            live[bisect.bisect_right(edges, value)] += 1
        n, m = len(self.rescored), len(self.live)
        psi = sum((q - p) * math.log(q / p) for p, q in ((max(r / n, 1e-4), max(c / m, 1e-4))
                                                         for r, c in zip(reference, live, strict=True)))
        return Comparison(SUBJECT, psi, p_value, "ks, served scores against reference inputs re-scored",
                          statistic, False)
