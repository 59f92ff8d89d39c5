"""What a label must be before any stage takes it: a time not far in the future and a value of the model's kind.

The join's stream time and the learner's watermark only move forward, so one
label stamped a year ahead would expire every event waiting for its label and
hold the order of learning there for good. A label is checked against the
wall clock when it is read, like an event's time in the validate stage.

Its value must be of the kind the deployment's model learns
(``WEIR_LABEL_KIND``): ``binary`` (true/false, or 1/0), ``multiclass``
(classes as booleans, integers or strings) or ``regression`` (numbers). A
label of another kind would be refused by every version, or worse, learned as
something it is not (a river logistic regression takes 0.5 or 2 silently).
"""

from __future__ import annotations

import json
import math
from typing import Literal

from weir.contract.deadletter import Rejection
from weir.contract.records import Feedback, Label

LabelKind = Literal["binary", "multiclass", "regression"]


def feedback_rejection(feedback: Feedback, *, now_ms: int, max_future_ms: int, stage: str,
                       kind: LabelKind = "binary") -> Rejection | None:
    """Why ``feedback`` cannot be taken, or None."""
    ahead = feedback["label_time"] - now_ms
    if ahead > max_future_ms:
        return Rejection("future-label-time", stage, f"label time is {ahead} ms ahead of the clock "
                         f"(at most {max_future_ms} ms allowed)", dimension="timeliness")
    problem = label_problem(feedback["label"], kind)
    if problem is not None:
        reason, detail = problem
        return Rejection(reason, stage, detail, dimension="validity")
    return None


def label_problem(label: object, kind: LabelKind) -> tuple[str, str] | None:
    """Why ``label`` is no ``kind`` label, as (dead-letter reason, detail), or None: what every reader of
    ``feedback`` refuses, and so what a producer refuses before sending it."""
    if isinstance(label, float) and not math.isfinite(label):
        return "non-finite-value", f"label is {label}"
    if not fits(label, kind):
        return "unsupported-label", (f"label {label!r} ({type(label).__name__}) is not a {kind} label: "
                                     f"{KIND_TAKES[kind]} (WEIR_LABEL_KIND)")
    return None


KIND_TAKES = {"binary": "true/false or 1/0", "multiclass": "a class as a boolean, an integer or a string",
              "regression": "a number"}


def fits(label: object, kind: LabelKind) -> bool:
    """Whether ``label`` is a label of ``kind``."""
    if kind == "binary":
        return isinstance(label, bool) or (isinstance(label, int | float) and label in (0, 1))
    if kind == "multiclass":
        return isinstance(label, bool | int | str) and label != ""
    return isinstance(label, int | float) and not isinstance(label, bool)


def is_regression(predicted: Label | None, label: Label | None) -> bool:
    """A number predicted for a number: a regressor's answer (a classifier predicts one of its classes)."""
    return (isinstance(predicted, float) and isinstance(label, int | float)
            and not isinstance(label, bool) and not isinstance(predicted, bool))


def prediction_error(predicted: Label | None, label: Label | None) -> float:
    """One prediction's loss: a regressor's absolute error, a classifier's miss (0 or 1). Concept drift,
    performance drops and the controller's comparisons all watch it."""
    if is_regression(predicted, label):
        assert isinstance(predicted, float) and isinstance(label, int | float)
        return abs(predicted - label)
    return 0.0 if predicted == label else 1.0


def parse_positive(text: str | None) -> Label | None:
    """The declared positive class: JSON where it parses (true, 1), else the string itself ("churned")."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float | str) else text
