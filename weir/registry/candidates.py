"""Candidate models: a factory, its hyperparameters and a feature subset, as experiments and policies name them.

A hyperparameter given as a list is an axis of a grid: ``{lr: [0.01, 0.1]}``
is two candidates. Each candidate is built once when the grid is expanded,
so a bad name or parameter fails there, naming it, not later in a worker or
at the first retraining.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from weir.contract.feedback import prediction_error
from weir.contract.records import Label
from weir.errors import ConfigError
from weir.registry.factories import FACTORIES, Model, build_model, encode_params


class CandidateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    factory: str
    params: dict[str, Any] = Field(default_factory=dict)  # a list value is an axis of the grid
    features: tuple[str, ...] | None = None  # kept features; a name keeps its one-hot columns (name=value) too

    @model_validator(mode="after")
    def _known_factory(self) -> CandidateSpec:
        if self.factory not in FACTORIES:
            raise ValueError(f"unknown model factory {self.factory!r}; known: {', '.join(sorted(FACTORIES))}")
        return self


@dataclass(frozen=True)
class Candidate:
    """One point of a grid: a model to build and the features it sees."""

    factory: str
    params: dict[str, Any]
    features: tuple[str, ...] | None

    @property
    def name(self) -> str:
        params = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.params.items()))
        kept = f" on {len(self.features)} features" if self.features else ""
        return f"{self.factory}({params}){kept}"

    def build(self) -> Model:
        return build_model(self.factory, encode_params(self.params))

    def keep(self, x: dict[str, float]) -> dict[str, float]:
        """``x`` with only this candidate's features (all of them without a subset)."""
        if not self.features:
            return x
        wanted = set(self.features)
        return {k: v for k, v in x.items() if k.split("=", 1)[0] in wanted}


def expand(specs: Iterable[CandidateSpec]) -> list[Candidate]:
    """Every candidate of the specs' grids, each built once; a candidate listed twice is refused."""
    candidates = []
    for spec in specs:
        axes = {k: v if isinstance(v, list) else [v] for k, v in spec.params.items()}
        for point in itertools.product(*axes.values()):
            candidate = Candidate(spec.factory, dict(zip(axes, point, strict=True)), spec.features)
            candidate.build()  # raises ConfigError, naming the factory and the parameter
            candidates.append(candidate)
    names = [c.name for c in candidates]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"a candidate is listed twice ({', '.join(twice)})")
    return candidates


def prequential_loss(candidate: Candidate, labelled: Iterable[tuple[dict[str, float], Label]]
                     ) -> tuple[float, Model]:
    """Test, then train, on each labelled event in order: the mean loss (a miss, or a regressor's absolute
    error: the loss the controller compares versions by) and the model trained on all of them."""
    model = candidate.build()
    total, n = 0.0, 0
    for x, y in labelled:
        seen = candidate.keep(x)
        total += prediction_error(model.predict_one(seen), y)
        n += 1
        model.learn_one(seen, y)
    return (total / n if n else float("inf")), model
