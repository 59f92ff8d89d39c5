"""One false-alarm budget, and the threshold of each detector derived from it.

The budget ``B`` is in false alerts per 100,000 events, for each alert kind
and model version (``WEIR_ALERT_BUDGET``). A detector that runs a test every
``k`` events, each at level ``alpha`` while nothing changes, raises at most
``100,000 / k * alpha`` false alerts per 100,000 events in expectation,
whatever the correlation between the tests (the union bound). Each detector
therefore tests at ``alpha = B * k / 100,000``, split again over a family of
tests that run together (Bonferroni): features, or Holm's step-down within a
check. ADWIN bounds the chance of a false cut at each of its checks by its
``delta``, so its ``delta`` is such a level too; but its bound is loose, and
only rising cuts alert, so the concept watch takes the largest ``delta`` a
simulation at the budget found to keep half of it (``concept_delta``).
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


# (ADWIN delta, the most false concept-drift alerts per 100,000 labels the concept watch raised at that delta over
# stationary error streams of seven shapes): `python -m bench.calibrate`, 10,000,000 labels per delta and shape,
# measured 2026-12-08.
ADWIN_FALSE_ALERTS: tuple[tuple[float, float], ...] = (
    (0.00032, 0.0), (0.001, 0.0), (0.002, 0.02), (0.005, 0.05), (0.01, 0.07), (0.02, 0.17), (0.03, 0.28),
    (0.05, 0.49), (0.1, 1.17))
# The share of the budget the simulation may spend: its streams are independent errors, a learning model's wander
# (a logistic regression on agrawal swings by 10 points of accuracy on stationary data). At a quarter (delta 0.02),
# bench.drift counted 1.5 false concept alerts per 100k on agrawal and rbf with a logistic regression, and 1.0 on
# hyperplane; at a twentieth (delta 0.005), 0.5 and 0.0, and the delays stayed within river's ADWIN's.
SIMULATED_SHARE = 0.05


def concept_delta(budget: float, every: int) -> float:
    """ADWIN's delta for the concept watch: the largest calibrated delta whose simulated false alerts stay within
    ``SIMULATED_SHARE`` of the budget, and never below the union bound's level, which holds whatever the
    simulation says."""
    calibrated = [delta for delta, alerts in ADWIN_FALSE_ALERTS if alerts <= budget * SIMULATED_SHARE]
    return max([level_per_test(budget, every), *calibrated])
