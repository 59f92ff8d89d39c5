"""The label join: any arrival order, each event handed out once, duplicates and strays counted."""

from __future__ import annotations

import itertools

import pytest

from weir.join import PendingJoin


def features(i: int, t: int = 1000) -> dict:
    return {"event_id": f"e{i}", "entity_id": "c", "event_time": t, "features": {"x": float(i)},
            "feature_set_version": "fs1"}


def prediction(i: int, version: str = "v1", served: bool = True, t: int = 1000) -> dict:
    return {"event_id": f"e{i}", "event_time": t, "model_version": version, "served": served,
            "predicted_label": True}


def feedback(i: int, t: int = 2000, label: bool = True) -> dict:
    return {"event_id": f"e{i}", "entity_id": "c", "label": label, "label_time": t}


PARTS = {
    "features": lambda j: j.add_features(features(1)),
    "shadow": lambda j: j.add_prediction(prediction(1, "v2", served=False)),
    "served": lambda j: j.add_prediction(prediction(1, "v1")),
    "feedback": lambda j: j.add_feedback(feedback(1)),
}


@pytest.mark.parametrize("order", list(itertools.permutations(["features", "served", "feedback"])))
def test_completes_once_whatever_the_arrival_order(order: tuple[str, ...]) -> None:
    join = PendingJoin(window_ms=60_000, needs_features=True)
    results = [PARTS[part](join) for part in order]
    assert [r is not None for r in results] == [False, False, True]
    done = results[-1]
    assert done.features["features"] == {"x": 1.0} and done.label is True and done.served_version == "v1"
    assert join.counters.joined == 1 and len(join) == 0


def test_shadow_predictions_that_arrive_first_are_kept_with_the_event() -> None:
    join = PendingJoin(window_ms=60_000, needs_features=False)
    PARTS["shadow"](join)
    PARTS["feedback"](join)
    done = PARTS["served"](join)
    assert done is not None and set(done.predictions) == {"v1", "v2"}


def test_duplicate_feedback_is_counted_not_joined_before_and_after_completion() -> None:
    join = PendingJoin(window_ms=60_000, needs_features=False)
    assert join.add_feedback(feedback(1)) is None
    assert join.add_feedback(feedback(1)) is None  # twice before the prediction
    assert join.add_prediction(prediction(1)) is not None
    assert join.add_feedback(feedback(1)) is None  # again after completion
    c = join.counters
    assert (c.received, c.joined, c.duplicate) == (3, 1, 2)


def test_replayed_parts_of_a_completed_event_are_ignored() -> None:
    join = PendingJoin(window_ms=60_000, needs_features=False)
    join.add_prediction(prediction(1))
    assert join.add_feedback(feedback(1)) is not None
    assert join.add_prediction(prediction(1)) is None
    assert len(join) == 0


def test_expiry_counts_unmatched_labels_and_unlabelled_events_in_stream_time() -> None:
    join = PendingJoin(window_ms=1000, needs_features=False)
    join.add_feedback(feedback(1, t=1000))        # no prediction will ever come
    join.add_prediction(prediction(2, t=1000))    # no label will ever come
    assert join.expire() == [] and len(join) == 2  # stream time has not moved past the window
    join.add_prediction(prediction(3, t=5000))    # stream time advances
    unmatched = join.expire()
    assert [p.event_id for p in unmatched] == ["e1"]
    c = join.counters
    assert (c.unmatched, c.unlabelled, len(join)) == (1, 1, 1)
    assert c.received == c.joined + c.duplicate + c.unmatched + join.labels_pending
