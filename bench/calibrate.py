"""The concept-drift detector's threshold, calibrated by simulation at the false-alarm budget.

    python -m bench.calibrate [--events 10000000] [--smoke]

The monitor's concept watch is river's ADWIN on each version's error stream,
checking every 32 labels, and it alerts on a rising cut that opens an
episode (none within 2,000 labels of the last). ADWIN's ``delta`` bounds a
false cut per check, so a union bound over the checks gives a delta that
surely keeps the budget: 0.00032 at one false alert per 100,000 labels. The
bound is loose (ADWIN's own cut rule is conservative, and only rising cuts
count), so that delta waits longer than it needs to. Here the watch runs on
stationary error streams of every shape a model gives (misses at error
rates from 2% to 50%; a regressor's scaled absolute errors) for each delta
of a grid, and the worst false-alert rate over the shapes is printed per
delta: the table ``streams.monitor.budget.ADWIN_FALSE_ALERTS`` holds, from
which the monitor takes the largest delta within a quarter of its budget
(the rest is the margin for errors correlated in time, which the simulation
does not have; ``make bench-drift`` checks on learning models).
"""

from __future__ import annotations

import argparse
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from river import drift

from bench.harness import arguments, figure
from streams.monitor.budget import ADWIN_FALSE_ALERTS, PER_EVENTS
from streams.monitor.detectors import CONCEPT_CLOCK, QUIET_LABELS

DELTAS = (0.00032, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
SHAPES = ("misses 2%", "misses 5%", "misses 10%", "misses 20%", "misses 35%", "misses 50%", "absolute errors")


@dataclass(frozen=True)
class Job:
    delta: float
    shape: str
    events: int
    seed: int


def errors(shape: str, rng: random.Random) -> float:
    """One stationary error of ``shape``: a miss (0 or 1), or a regressor's absolute error scaled to [0, 1] as the
    monitor scales it (by twice its warm-up 95th percentile, about 2 x 1.96 for a standard normal, capped)."""
    if shape == "absolute errors":
        return min(1.0, abs(rng.gauss(0.0, 1.0)) / (2 * 1.96))
    rate = float(shape.split()[1].rstrip("%")) / 100
    return 1.0 if rng.random() < rate else 0.0


def false_alerts(job: Job) -> float:
    """Alerts per 100,000 labels of the concept watch at ``delta`` on a stationary stream of ``shape``."""
    rng = random.Random(job.seed)
    detector = drift.ADWIN(delta=job.delta, clock=CONCEPT_CLOCK)
    alerts, last = 0, -QUIET_LABELS
    for i in range(job.events):
        before = detector.estimation
        detector.update(errors(job.shape, rng))
        if detector.drift_detected and detector.estimation > before:
            if i - last >= QUIET_LABELS:
                alerts += 1
            last = i
    return alerts * PER_EVENTS / job.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="labels per delta and shape")
    args = arguments(parser, {"events": 20_000})
    jobs = [Job(delta, shape, args.events, seed) for delta in DELTAS for seed, shape in enumerate(SHAPES)]
    print(f"{args.events:,} stationary labels per delta and shape; shapes: {', '.join(SHAPES)}", flush=True)
    with ProcessPoolExecutor(max_workers=2) as pool:
        rates = list(pool.map(false_alerts, jobs))
    table = []
    for i, delta in enumerate(DELTAS):
        row = rates[i * len(SHAPES):(i + 1) * len(SHAPES)]
        worst = max(row)
        table.append((delta, round(worst, 2)))
        shapes = ", ".join(f"{s} {r:.2f}" for s, r in zip(SHAPES, row, strict=True))
        figure(f"delta {delta:g}", f"worst {worst:.2f} false alerts per 100k ({shapes})")
    figure("table", repr(tuple(table)))
    figure("table in use", repr(ADWIN_FALSE_ALERTS))


if __name__ == "__main__":
    main()
