"""What a label must be before any stage takes it: a time not far in the future and a binary value.

The join's stream time and the learner's watermark only move forward, so one
label stamped a year ahead would expire every event waiting for its label and
hold the order of learning there for good. A label is checked against the
wall clock when it is read, like an event's time in the validate stage. The
schema allows other label types for models to come; the classifiers and
metrics of today take true/false only, and one string label would otherwise
stop the learner.
"""

from __future__ import annotations

import math

from weir.contract.deadletter import Rejection
from weir.contract.records import Feedback


def feedback_rejection(feedback: Feedback, *, now_ms: int, max_future_ms: int, stage: str) -> Rejection | None:
    """Why ``feedback`` cannot be taken, or None."""
    ahead = feedback["label_time"] - now_ms
    if ahead > max_future_ms:
        return Rejection("future-label-time", stage, f"label time is {ahead} ms ahead of the clock "
                         f"(at most {max_future_ms} ms allowed)", dimension="timeliness")
    label = feedback["label"]
    if isinstance(label, float) and not math.isfinite(label):
        return Rejection("non-finite-value", stage, f"label is {label}", dimension="validity")
    if not is_binary(label):
        return Rejection("unsupported-label", stage, f"label {label!r} ({type(label).__name__}) is not binary: "
                         "the models and metrics learn true/false (or 1/0)", dimension="validity")
    return None


def is_binary(label: object) -> bool:
    """True/false, or 1/0 as a number: what the factories' classifiers and the rolling metrics take."""
    return isinstance(label, bool) or (isinstance(label, (int, float)) and label in (0, 1))
