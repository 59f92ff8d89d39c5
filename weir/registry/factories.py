"""Model factories: how a registry spec (factory name + parameters) becomes a river estimator.

The registry stores specs, not code; a spec names one of these factories, so
any process can rebuild the same fresh model from a ``models`` record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from weir.contract.records import Label
from weir.errors import ConfigError


class Model(Protocol):
    """What Weir asks of a model version: river's classifier interface, one event at a time."""

    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]: ...

    def learn_one(self, x: dict[str, float], y: Label) -> None: ...


def _logistic_regression(lr: float = 0.05, l2: float = 0.0) -> Model:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)


def _hoeffding_tree(grace_period: int = 200, delta: float = 1e-7) -> Model:
    from river import tree

    return tree.HoeffdingTreeClassifier(grace_period=grace_period, delta=delta)


FACTORIES: Mapping[str, Callable[..., Model]] = {
    "logistic_regression": _logistic_regression,
    "hoeffding_tree": _hoeffding_tree,
}


def build_model(factory: str, params: Mapping[str, str]) -> Model:
    """A fresh estimator from a spec; ``params`` values are JSON, as the Avro map stores them."""
    try:
        make = FACTORIES[factory]
    except KeyError:
        raise ConfigError(f"unknown model factory {factory!r}; known: {', '.join(sorted(FACTORIES))}") from None
    decoded: dict[str, Any] = {k: json.loads(v) for k, v in params.items()}
    try:
        return make(**decoded)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {factory}: {exc}") from exc


def encode_params(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in params.items()}
