"""A label-free estimate of served accuracy: what the served model's confidence says, before labels arrive.

Confidence-based performance estimation (CBPE, as NannyML calls it): for a
calibrated classifier, a prediction made with confidence c is right with
probability c, so the mean confidence of the last predictions served
estimates their accuracy now, while their labels are still on their way. An
online model is seldom perfectly calibrated, so the estimate is corrected by
the gap between accuracy and mean confidence measured on the recent served
predictions whose labels did come.

The confidence is the one the scorer wrote (``confidence``: the probability
of the predicted class), never read back from ``score``, whose class depends
on the labels (P(true) for binary ones, the top class's otherwise) and so
cannot say by itself how sure the model was. A regressor, or a record written
before that field, has none: it gets no estimate.
"""

from __future__ import annotations

from typing import Any

from river import stats, utils

from weir.contract.records import Label, Prediction

WINDOW = 1_000  # served predictions the estimate covers
MIN_LABELLED = 200  # labelled predictions before their calibration gap is applied


def confidence(prediction: Prediction) -> float | None:
    """How sure the model was of the label it predicted, from the served record; None if it does not say."""
    return None if prediction["predicted_label"] is None else prediction["confidence"]


class AccuracyEstimate:
    """Estimated accuracy of what one model served lately, from confidence, corrected by labelled outcomes."""

    def __init__(self, window: int = WINDOW) -> None:
        # river's rolling means (typed loosely by river)
        self.served: Any = utils.Rolling(stats.Mean, window_size=window)
        self.labelled_confidence: Any = utils.Rolling(stats.Mean, window_size=window)
        self.labelled_correct: Any = utils.Rolling(stats.Mean, window_size=window)
        self.labelled = 0
        self.served_count = 0

    def on_served(self, confidence: float) -> None:
        self.served.update(confidence)
        self.served_count += 1

    def on_labelled(self, confidence: float, predicted: Label | None, label: Label | None) -> None:
        self.labelled_confidence.update(confidence)
        self.labelled_correct.update(1.0 if predicted == label else 0.0)
        self.labelled += 1

    def measured(self) -> float | None:
        """Accuracy of the recent served predictions whose labels came."""
        return float(self.labelled_correct.get()) if self.labelled else None

    def value(self) -> float | None:
        """The estimate, or None before anything was served."""
        if not self.served_count:
            return None
        gap = 0.0
        if self.labelled >= MIN_LABELLED:
            gap = float(self.labelled_correct.get()) - float(self.labelled_confidence.get())
        return min(1.0, max(0.0, float(self.served.get()) + gap))
