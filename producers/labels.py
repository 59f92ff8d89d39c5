"""When, and whether, an event's label comes back: the feedback the learn stage must cope with.

Labels in production come late, twice, or never. A ``FeedbackPolicy`` decides
for each event: its delay (fixed, exponential, or the data's own column), and
whether the label is lost (a configurable share never arrives) or duplicated
(a share is sent twice, the second time a little later).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from producers.event import LabelledEvent
from weir.errors import ConfigError


@dataclass(frozen=True)
class FeedbackPolicy:
    delay: str = "fixed:1"  # fixed:<seconds> | exp:<mean seconds> | column
    loss: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.loss <= 1 and 0 <= self.duplicate <= 1):
            raise ConfigError("label loss and duplicate shares must be between 0 and 1")
        self._parse()

    def _parse(self) -> tuple[str, float]:
        kind, _, value = self.delay.partition(":")
        if kind == "column" and not value:
            return kind, 0.0
        try:
            seconds = float(value if kind in ("fixed", "exp") else self.delay)
        except ValueError:
            raise ConfigError(f"bad feedback delay {self.delay!r}: use fixed:<s>, exp:<mean s> or column") from None
        if seconds < 0:
            raise ConfigError("a feedback delay cannot be negative")
        return (kind if kind in ("fixed", "exp") else "fixed"), seconds

    def sends(self, event: LabelledEvent, rng: random.Random) -> list[float]:
        """The delays, in seconds after the event is sent, of each feedback record for it (0, 1 or 2)."""
        if event.label is None or rng.random() < self.loss:
            return []
        kind, seconds = self._parse()
        if kind == "column":
            if event.label_delay_s is None:
                raise ConfigError(f"feedback delay 'column' but event {event.event_id} has no label delay")
            delay = event.label_delay_s
        elif kind == "exp":
            delay = rng.expovariate(1 / seconds) if seconds > 0 else 0.0
        else:
            delay = seconds
        if rng.random() < self.duplicate:
            return [delay, delay + rng.uniform(0, max(delay, 0.5))]
        return [delay]
