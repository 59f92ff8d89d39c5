"""Wall-clock time in the units every record carries (epoch milliseconds UTC)."""

from __future__ import annotations

import time
from collections.abc import Callable


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def poll_until(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2,
               what: str = "condition") -> None:
    """Wait for ``predicate`` with a deadline instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s")
        time.sleep(interval_s)
