"""The label join: any arrival order, each event handed out once, duplicates and strays counted."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import Protocol

import pytest

from tests import support
from weir.contract.messages import InRecord
from weir.contract.records import FeatureVector, Feedback, Prediction
from weir.state.join import PendingEvent, PendingJoin, Stray


def features(i: int, t: int = 1000) -> FeatureVector:
    return {"event_id": f"e{i}", "entity_id": "c", "event_time": t, "features": {"x": float(i)},
            "feature_set_version": "fs1"}


def prediction(i: int, version: str = "v1", served: bool = True, t: int = 1000) -> Prediction:
    return support.prediction(f"e{i}", version=version, served=served, event_time=t, predicted_label=True)


def feedback(i: int, t: int = 2000, label: bool = True) -> Feedback:
    return {"event_id": f"e{i}", "entity_id": "c", "label": label, "label_time": t}


def source(name: str) -> InRecord:
    """The feedback record a label came in, as the learn stage read it."""
    return support.in_record("feedback", name.encode(), key=b"c")


class JoinFactory(Protocol):
    def __call__(self, *, window_ms: int, needs_features: bool) -> PendingJoin: ...


@pytest.fixture(params=[10_000, 1], ids=["in-memory", "spilled"])
def new_join(request: pytest.FixtureRequest) -> JoinFactory:
    """A join whose waiting events stay in memory, or one that spills all but the newest to its state file."""
    return partial(PendingJoin, hot_events=request.param)


PARTS: dict[str, Callable[[PendingJoin], PendingEvent | None]] = {
    "features": lambda j: j.add_features(features(1)),
    "shadow": lambda j: j.add_prediction(prediction(1, "v2", served=False)),
    "served": lambda j: j.add_prediction(prediction(1, "v1")),
    "feedback": lambda j: j.add_feedback(feedback(1)),
}


@pytest.mark.parametrize("order", list(itertools.permutations(["features", "served", "feedback"])))
def test_completes_once_whatever_the_arrival_order(order: tuple[str, ...],
                                                  new_join: JoinFactory) -> None:
    join = new_join(window_ms=60_000, needs_features=True)
    flags: list[bool] = []
    done: PendingEvent | None = None
    for part in order:
        done = PARTS[part](join)
        flags.append(done is not None and done.complete)  # as it was right after this part arrived
    assert flags == [False, False, True]
    assert done is not None and done.features is not None
    assert done.features["features"] == {"x": 1.0} and done.label is True and done.served_version == "v1"
    assert join.counters.joined == 1 and len(join) == 0


def test_shadow_predictions_that_arrive_first_are_kept_with_the_event(new_join: JoinFactory) -> None:
    join = new_join(window_ms=60_000, needs_features=False)
    PARTS["shadow"](join)
    PARTS["feedback"](join)
    done = PARTS["served"](join)
    assert done is not None and set(done.predictions) == {"v1", "v2"}


def test_duplicate_feedback_is_counted_not_joined_before_and_after_completion(new_join: JoinFactory) -> None:
    join = new_join(window_ms=60_000, needs_features=False)
    taken = join.add_feedback(feedback(1))
    assert taken is not None and not taken.complete  # taken, waiting for its prediction
    assert join.add_feedback(feedback(1)) is None  # twice before the prediction
    assert join.add_prediction(prediction(1)) is not None
    assert join.add_feedback(feedback(1)) is None  # again after completion
    c = join.counters
    assert (c.received, c.joined, c.duplicate) == (3, 1, 2)


def test_replayed_parts_of_a_completed_event_are_ignored(new_join: JoinFactory) -> None:
    join = new_join(window_ms=60_000, needs_features=False)
    join.add_prediction(prediction(1))
    assert join.add_feedback(feedback(1)) is not None
    assert join.add_prediction(prediction(1)) is None
    assert len(join) == 0


def test_expiry_sorts_labels_into_unmatched_and_late_in_stream_time(new_join: JoinFactory) -> None:
    join = new_join(window_ms=1000, needs_features=False)
    join.add_feedback(feedback(1, t=1000), source=source("fb-1"))  # no prediction will ever come
    join.add_prediction(prediction(2, t=1000))  # its label will come too late
    assert join.expire() == [] and len(join) == 2  # stream time has not moved past the window
    join.add_prediction(prediction(3, t=5000))  # stream time advances
    assert join.expire() == []
    assert join.take_strays() == [Stray("unmatched", "e1", source("fb-1"), 1000)]
    join.add_feedback(feedback(2, t=5100), source=source("fb-2"))  # the event left the window unlabelled
    assert join.take_strays() == [Stray("late", "e2", source("fb-2"), 5100)]
    c = join.counters
    assert (c.received, c.joined, c.duplicate, c.late, c.unmatched, c.unlabelled) == (2, 0, 0, 1, 1, 1)
    assert c.received == c.joined + c.duplicate + c.late + c.unmatched + join.labels_pending


def test_a_label_whose_event_was_never_served_is_still_learned_at_expiry(new_join: JoinFactory) -> None:
    join = new_join(window_ms=1000, needs_features=True)
    join.add_features(features(1, t=1000))
    taken = join.add_feedback(feedback(1, t=1500))
    assert taken is not None and not taken.complete  # waits for a served prediction that never comes
    join.add_features(features(2, t=9000))
    [learnable] = join.expire()
    assert learnable.event_id == "e1" and learnable.label is True and join.counters.joined == 1


def test_a_refused_event_settles_its_label_waiting_or_to_come(new_join: JoinFactory) -> None:
    join = new_join(window_ms=600_000, needs_features=True)
    assert join.add_feedback(feedback(1), source=source("fb-1")) is not None  # waits for an event that never comes
    assert join.refuse("e1") == Stray("refused", "e1", source("fb-1"), 2000)
    assert join.refuse("e2") is None  # nothing waits for it yet...
    assert join.add_feedback(feedback(2), source=source("fb-2")) is None  # ...so its label is settled as it comes
    assert join.take_strays() == [Stray("refused", "e1", source("fb-1"), 2000),
                                  Stray("refused", "e2", source("fb-2"), 2000)]
    c = join.counters
    assert (c.received, c.unmatched, join.labels_pending) == (2, 2, 0)


def test_a_refused_event_served_after_all_joins_as_any_other(new_join: JoinFactory) -> None:
    """Sent again once fixed, and served: its refusal no longer holds."""
    join = new_join(window_ms=600_000, needs_features=True)
    join.refuse("e1")
    join.add_features(features(1))
    join.add_prediction(prediction(1))
    done = join.add_feedback(feedback(1))
    assert done is not None and done.complete and join.take_strays() == []


def test_a_refusal_leaves_an_event_with_features_learnable(new_join: JoinFactory) -> None:
    """The serve stage's refusals come with features written: their labels are learned at expiry."""
    join = new_join(window_ms=1000, needs_features=True)
    join.add_features(features(1, t=1000))
    join.add_feedback(feedback(1, t=1500))
    assert join.refuse("e1") is None and join.take_strays() == []
    join.add_features(features(2, t=9000))
    assert [e.event_id for e in join.expire()] == ["e1"]
