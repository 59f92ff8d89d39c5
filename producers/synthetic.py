"""A seeded synthetic source with a known label function, for the walking skeleton.

Four numeric fields and one category drive a logistic label function; halfway
through (``drift_at``) the function's weights flip sign, an abrupt concept
drift the monitor stage should notice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

from producers.event import LabelledEvent
from weir.clock import now_ms

CATEGORIES = ("basic", "plus", "pro")
_WEIGHTS = {"x1": 2.0, "x2": -1.5, "x3": 1.0, "x4": 0.0}
_CATEGORY_EFFECT = {"basic": -0.5, "plus": 0.0, "pro": 0.8}


def synthetic_events(
    count: int,
    *,
    seed: int = 42,
    entities: int = 1000,
    drift_at: int | None = None,
    event_time: Callable[[int], int] | None = None,
) -> Iterator[LabelledEvent]:
    """Yield ``count`` events; the label function inverts at index ``drift_at`` (default: half-way).

    ``event_time`` maps an event's index to its time; by default events are
    live, stamped with the wall clock when generated.
    """
    stamp = event_time or (lambda _i: now_ms())
    rng = random.Random(seed)
    drift_at = count // 2 if drift_at is None else drift_at
    for i in range(count):
        x = {name: rng.gauss(0.0, 1.0) for name in _WEIGHTS}
        plan = rng.choice(CATEGORIES)
        logit = sum(_WEIGHTS[k] * v for k, v in x.items()) + _CATEGORY_EFFECT[plan]
        if i >= drift_at:
            logit = -logit
        label = rng.random() < 1.0 / (1.0 + math.exp(-logit))
        yield LabelledEvent(
            event_id=f"s{seed}-{i:09d}",
            entity_id=f"c{rng.randrange(entities):06d}",
            event_time_ms=stamp(i),
            attributes={**x, "plan": plan},
            label=label,
        )
