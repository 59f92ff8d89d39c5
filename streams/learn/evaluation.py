"""Per-version metrics of learned labels, cumulative and rolling, computed with river.metrics.

Each label is scored against the prediction the version actually made when
the event was served (not a fresh prediction from today's model): that is
what river's delayed progressive validation measures too.
"""

from __future__ import annotations

from typing import Any

from river import metrics, utils

from weir.contract.feedback import is_regression
from weir.contract.records import Label, Prediction

ROLLING_WINDOW = 1_000
ONE_CLASS = ("log_loss", "roc_auc")  # metrics about one class: the positive one


def _classifier() -> dict[str, Any]:
    return {
        "accuracy": metrics.Accuracy(),
        "log_loss": metrics.LogLoss(),
        "roc_auc": metrics.ROCAUC(),
        "accuracy_rolling": utils.Rolling(metrics.Accuracy, window_size=ROLLING_WINDOW),
        "log_loss_rolling": utils.Rolling(metrics.LogLoss, window_size=ROLLING_WINDOW),
        "roc_auc_rolling": metrics.RollingROCAUC(window_size=ROLLING_WINDOW),
    }


def _regressor() -> dict[str, Any]:
    return {
        "mae": metrics.MAE(),
        "rmse": metrics.RMSE(),
        "mae_rolling": utils.Rolling(metrics.MAE, window_size=ROLLING_WINDOW),
        "rmse_rolling": utils.Rolling(metrics.RMSE, window_size=ROLLING_WINDOW),
    }


class VersionMetrics:
    """The metrics of one version; classifier or regressor is decided by the first label it scores.

    Accuracy takes classes of any type. Log loss and ROC AUC are about one
    class: ``positive`` if declared (WEIR_POSITIVE_LABEL), else True (or 1) for
    binary labels; for other classes with none declared they are left out.
    """

    def __init__(self, positive: Label | None = None) -> None:
        self.positive = positive
        self.metrics: dict[str, Any] = {}
        self.scored = 0
        self.one_class_scored = 0  # labels log loss and ROC AUC took (a class was positive or not)

    def update(self, label: Label, prediction: Prediction) -> None:
        if prediction["error"] is not None or prediction["predicted_label"] is None:
            return
        if not self.metrics:
            regression = is_regression(prediction["predicted_label"], label)
            self.metrics = _regressor() if regression else _classifier()
        is_positive = self._is_positive(label)
        one_class = prediction["score"] is not None and is_positive is not None
        for name, metric in self.metrics.items():
            if not name.startswith(ONE_CLASS):
                metric.update(label, prediction["predicted_label"])
            elif one_class:
                metric.update(is_positive, prediction["score"])
        self.scored += 1
        self.one_class_scored += one_class

    def _is_positive(self, label: Label) -> bool | None:
        if self.positive is not None:
            return bool(label == self.positive)
        if isinstance(label, bool) or (isinstance(label, int) and label in (0, 1)):
            return bool(label)
        return None

    def values(self) -> dict[str, float]:
        """Every metric that scored something: log loss and ROC AUC only if some label was about their class."""
        return {name: float(metric.get()) for name, metric in self.metrics.items()
                if self.one_class_scored or not name.startswith(ONE_CLASS)}

    def plain(self) -> dict[str, Any]:
        """As saved state: river's metric objects and the counts, no Weir class."""
        return {"metrics": self.metrics, "scored": self.scored, "one_class_scored": self.one_class_scored}

    @classmethod
    def from_plain(cls, plain: dict[str, Any], positive: Label | None = None) -> VersionMetrics:
        loaded = cls(positive)
        loaded.metrics, loaded.scored = plain["metrics"], plain["scored"]
        loaded.one_class_scored = plain.get("one_class_scored", loaded.scored)  # older states: binary labels only
        return loaded
