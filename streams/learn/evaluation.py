"""Per-version metrics of learned labels, cumulative and rolling, computed with river.metrics.

Each label is scored against the prediction the version actually made when
the event was served (not a fresh prediction from today's model): that is
what river's delayed progressive validation measures too.
"""

from __future__ import annotations

from typing import Any

from river import metrics, utils

from weir.contract.records import Label, Prediction

ROLLING_WINDOW = 1_000


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
    """The metrics of one version; classifier or regressor is decided by the first label it scores."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}
        self.scored = 0

    def update(self, label: Label, prediction: Prediction) -> None:
        if prediction["error"] is not None or prediction["predicted_label"] is None:
            return
        if not self.metrics:
            regression = isinstance(label, float) and isinstance(prediction["predicted_label"], float)
            self.metrics = _regressor() if regression else _classifier()
        for name, metric in self.metrics.items():
            if name.startswith(("log_loss", "roc_auc")):
                if prediction["score"] is not None:
                    metric.update(label, prediction["score"])
            else:
                metric.update(label, prediction["predicted_label"])
        self.scored += 1

    def values(self) -> dict[str, float]:
        return {name: float(metric.get()) for name, metric in self.metrics.items()}

    def plain(self) -> dict[str, Any]:
        """As saved state: river's metric objects and the count, no Weir class."""
        return {"metrics": self.metrics, "scored": self.scored}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> VersionMetrics:
        loaded = cls()
        loaded.metrics, loaded.scored = plain["metrics"], plain["scored"]
        return loaded
