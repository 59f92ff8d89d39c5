"""Model factories: how a registry spec (factory name + parameters) becomes a river estimator.

The registry stores specs, not code; a spec names one of these factories, so
any process can rebuild the same fresh model from a ``models`` record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from weir.errors import ConfigError

if TYPE_CHECKING:
    from river import base


def _logistic_regression(lr: float = 0.05, l2: float = 0.0) -> base.Classifier:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)


def _hoeffding_tree(grace_period: int = 200, delta: float = 1e-7) -> base.Classifier:
    from river import tree

    return tree.HoeffdingTreeClassifier(grace_period=grace_period, delta=delta)


FACTORIES: Mapping[str, Callable[..., base.Estimator]] = {
    "logistic_regression": _logistic_regression,
    "hoeffding_tree": _hoeffding_tree,
}


def build_model(factory: str, params: Mapping[str, str]) -> base.Estimator:
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
