"""One false-alarm budget, and the threshold of each detector derived from it.

The budget ``B`` is in false alerts per 100,000 events, for each alert kind
and model version (``WEIR_ALERT_BUDGET``). A detector that runs a test every
``k`` events, each at level ``alpha`` while nothing changes, raises at most
``100,000 / k * alpha`` false alerts per 100,000 events in expectation,
whatever the correlation between the tests (the union bound). Each detector
therefore tests at ``alpha = B * k / 100,000``, split again over a family of
tests that run together (Bonferroni): features, or Holm's step-down within a
check. ADWIN bounds the chance of a false cut at each of its checks by its
``delta``, so its ``delta`` is such a level too.
"""

from __future__ import annotations

from statistics import NormalDist

PER_EVENTS = 100_000


def level_per_test(budget: float, every: int, family: int = 1) -> float:
    """The level of one test run every ``every`` events among ``family`` run together, within ``budget``."""
    return min(0.5, budget * every / PER_EVENTS / max(1, family))


def one_sided_z(level: float) -> float:
    """The normal quantile a one-sided test at ``level`` must pass."""
    return NormalDist().inv_cdf(1.0 - level)
