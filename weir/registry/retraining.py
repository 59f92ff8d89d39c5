"""A retraining as a job: what the controller hands over, what comes back, and the fit itself.

The controller decides to retrain inside the back, between batches; reading
the window back from Kafka and fitting candidates on it takes seconds to
minutes, which a stage must not spend. So the back hands a ``RetrainJob``
(where the window's records sit, the model to continue, the policy's rule)
to a ``Retraining`` service, goes on, and takes the ``RetrainOutcome`` when
it is ready, at a later batch. The job and its result are plain data that
pickle: the worker's retrainer runs the job in a process of its own, so a
fit never holds the serving stages' interpreter lock.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

from weir.contract.records import Label
from weir.registry.candidates import expand, prequential_loss
from weir.registry.factories import Model, build_model, encode_params
from weir.registry.policy import Retrain
from weir.settings import Settings

Position = tuple[int, int]  # (partition, offset) of a record
Window = list[tuple[dict[str, Any], Label]]  # labelled events in the learner's order

MIN_WINDOW = 100  # joined events a full or incremental retraining needs


@dataclass(frozen=True)
class RetrainJob:
    """A retraining to run: the window's joined events (where each one's features and label records sit), the
    model to start from (the champion's copy, continued by an incremental retraining, or a fresh estimator), and
    the policy's rule (its candidates, if an experiment chooses the model)."""

    job_id: str
    model: str
    settings: Settings
    positions: tuple[tuple[Position, Position], ...]
    start: Model | None  # None: the rule's candidates choose
    rule: Retrain


@dataclass(frozen=True)
class Retrained:
    """A finished retraining: the challenger and its lineage (the data it learned, and how it was chosen)."""

    challenger: Model
    made_by: str  # the factory, or the chosen candidate
    labels: int
    label_times: tuple[int, int] | None
    offsets: str  # where the window's records sit, to read the same data again
    data_version: str  # sha256 of what it learned
    candidates: str | None  # each candidate's loss, if an experiment chose
    seconds: float  # the job's run time, reading and fitting


@dataclass(frozen=True)
class RetrainOutcome:
    """What came back for a job: the retrained challenger, or why there is none."""

    job_id: str
    retrained: Retrained | None
    error: str | None = None


class Retraining(Protocol):
    """Runs retrain jobs away from the stage that submits them, and hands their outcomes back."""

    def submit(self, job: RetrainJob) -> None:
        """Start ``job``; returns at once."""

    def finished(self) -> list[RetrainOutcome]:
        """The outcomes of jobs finished since the last call."""


def starting_model(champion: Model, rule: Retrain) -> Model | None:
    """What a retraining starts from: ``incremental`` the champion as it is now (a copy), ``full`` a fresh
    estimator (the policy's factory, or the champion's own); None when the policy's candidates choose."""
    if rule.candidates:
        return None
    if rule.method == "incremental":
        return copy.deepcopy(champion)
    if rule.factory is not None:
        return build_model(rule.factory, encode_params(rule.params))
    return champion.clone()  # type: ignore[attr-defined, no-any-return]


def fit(job: RetrainJob, window: Window) -> tuple[Model, str, str | None]:
    """The challenger trained on ``window``, what made it, and (with candidates) what each candidate scored."""
    if job.start is None:
        return best_of(job.rule, window)
    for x, y in window:
        job.start.learn_one(x, y)
    return job.start, job.rule.factory or "the champion's", None


def best_of(rule: Retrain, window: Window) -> tuple[Model, str, str]:
    """The policy's experiment on the window: each candidate tested, then trained, on every labelled event in
    order; the one with the lowest mean loss trained on the whole window, its name, and what each scored."""
    scored = [(*prequential_loss(candidate, window), candidate) for candidate in expand(rule.candidates)]
    scored.sort(key=lambda s: (s[0], s[2].name))
    tried = "; ".join(f"{c.name} loss {loss:.4f}" + (" (chosen)" if i == 0 else "")
                      for i, (loss, _, c) in enumerate(scored))
    return scored[0][1], scored[0][2].name, tried
