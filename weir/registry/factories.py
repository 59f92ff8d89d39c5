"""Model factories: how a registry spec (factory name + parameters) becomes a river estimator.

The registry stores specs, not code; a spec names one of these factories, so
any process can rebuild the same fresh model from a ``models`` record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast

from weir.contract.feedback import KIND_TAKES, LabelKind, fits
from weir.contract.records import Label
from weir.errors import ConfigError


class Model(Protocol):
    """What Weir asks of every model version, one event at a time: river's estimator interface."""

    def predict_one(self, x: dict[str, float]) -> Any: ...

    def learn_one(self, x: dict[str, float], y: Label) -> None: ...


class Classifier(Model, Protocol):
    """A model that also says how sure it is of each class (river's classifiers)."""

    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]: ...


def as_classifier(model: Model) -> Classifier | None:
    """The model as a classifier, or None for a river regressor (which predicts a number, not classes)."""
    from river import base, compose

    last: Any = model
    while isinstance(last, compose.Pipeline):  # a pipeline is what its last step is
        last = list(last.steps.values())[-1]
    return None if isinstance(last, base.Regressor) else cast(Classifier, model)


def _logistic_regression(lr: float = 0.05, l2: float = 0.0) -> Classifier:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)


def _hoeffding_tree(grace_period: int = 200, delta: float = 1e-7) -> Classifier:
    from river import tree

    return cast(Classifier, tree.HoeffdingTreeClassifier(grace_period=grace_period, delta=delta))


def _linear_regression(lr: float = 0.01, l2: float = 0.0) -> Model:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LinearRegression(optimizer=optim.SGD(lr), l2=l2)


FACTORIES: Mapping[str, Callable[..., Model]] = {
    "logistic_regression": _logistic_regression,
    "hoeffding_tree": _hoeffding_tree,
    "linear_regression": _linear_regression,
}
# The others classify. (river's Hoeffding tree regressor pickles a method by its dotted name, which saved state
# may not hold: it is not offered.)
REGRESSORS = frozenset({"linear_regression"})
# The labels each factory's estimator learns: river's logistic regression is binary only (it learns nothing from
# other classes), the tree takes any classes, the linear regression numbers.
LEARNS: Mapping[str, tuple[LabelKind, ...]] = {
    "logistic_regression": ("binary",), "hoeffding_tree": ("binary", "multiclass"),
    "linear_regression": ("regression",),
}


def refuse_unlearnable(factory: str, *, kind: LabelKind | None = None, labels: Iterable[Label] = (),
                       where: str = "WEIR_LABEL_KIND") -> None:
    """A ConfigError in one line if ``factory``'s estimator cannot learn the declared ``kind`` or one of
    ``labels`` (``where`` says where they come from); a pickled model, whose kind is unknown, passes."""
    kinds = LEARNS.get(factory)
    if kinds is None:
        return
    learns = " or ".join(KIND_TAKES[k] for k in kinds)
    if kind is not None and kind not in kinds:
        raise ConfigError(f"{factory} learns labels that are {learns}, and {where} is {kind}: use "
                          f"{_factories_for(lambda k: k == kind)} instead")
    odd = next((label for label in labels if not any(fits(label, k) for k in kinds)), None)
    if odd is not None:
        raise ConfigError(f"{factory} learns labels that are {learns}, and {where} has {odd!r}: use "
                          f"{_factories_for(lambda k: fits(odd, k))} instead")


def _factories_for(takes: Callable[[LabelKind], bool]) -> str:
    return " or ".join(sorted(f for f, kinds in LEARNS.items() if any(takes(k) for k in kinds))) or "another model"


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


def positive_score(proba: dict[Any, float], positive: Label | None = None) -> float:
    """P(positive): of the declared positive class, else of True (or 1) for binary classes, absent meaning 0;
    for classes with no positive declared, the top class's probability."""
    if positive is not None:
        return float(proba.get(positive, 0.0))
    if all(isinstance(k, bool) or k in (0, 1) for k in proba):
        return float(proba.get(True, 0.0))
    return float(max(proba.values()))


def score_one(model: Model, features: dict[str, Any], positive: Label | None = None) -> float | None:
    """The score a model gives ``features``, as the scorer serves it: a classifier's P(positive) (see
    ``positive_score``), a regressor's prediction; None while a classifier predicts no class yet."""
    classifier = as_classifier(model)
    if classifier is None:
        return float(model.predict_one(features))
    proba = classifier.predict_proba_one(features)
    return positive_score(proba, positive) if proba else None
