"""The learning order: (label time, event id), whatever the arrival order, and never past an unjoined head."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.learn.learner import Learner
from streams.learn.sequencer import Sequencer
from tests import support
from weir.registry.view import ModelRegistry
from weir.state.join import PendingEvent, PendingJoin


def labelled_event(event_id: str, label_time_ms: int) -> PendingEvent:
    """An event and the time of its label, as the sequencer holds and releases it."""
    return PendingEvent(event_id, first_seen_ms=0, label_time_ms=label_time_ms)


def hold_joined(s: Sequencer, e: PendingEvent) -> None:
    """A label whose event had joined when it was taken."""
    s.hold(e.label_time_ms, e.event_id)
    s.joined(e.label_time_ms, e.event_id, e)


def test_nothing_passes_a_partition_that_has_not_caught_up() -> None:
    s = Sequencer(idle_ms=1_000)
    s.track({0, 1}, caught_up=set(), wall_ms=0)
    s.observe(0, 500, wall_ms=0)
    hold_joined(s, labelled_event("a", 100))
    assert s.release(wall_ms=10) == []  # partition 1 may still hold an earlier label
    s.observe(1, 300, wall_ms=20)
    assert [e.event_id for e in s.release(wall_ms=20)] == ["a"]


def test_a_silent_partition_read_to_its_end_stops_holding_the_tail() -> None:
    s = Sequencer(idle_ms=1_000)
    s.track({0, 1}, caught_up=set(), wall_ms=0)
    s.observe(0, 500, wall_ms=0)
    hold_joined(s, labelled_event("a", 100))
    assert s.release(wall_ms=5_000) == []  # partition 1 sent nothing, but it is not read to its end either
    s.track({0, 1}, caught_up={1}, wall_ms=5_000)
    assert [e.event_id for e in s.release(wall_ms=5_000)] == ["a"]  # read out and silent for over a second


def test_an_unjoined_head_holds_back_the_rest_until_it_joins_or_goes() -> None:
    s = Sequencer()
    s.observe(0, 1_000, wall_ms=0)
    first, second, third = labelled_event("a", 1), labelled_event("b", 2), labelled_event("c", 3)
    s.hold(third.label_time_ms, third.event_id)
    hold_joined(s, second)
    s.hold(first.label_time_ms, first.event_id)
    assert s.release(0) == []
    s.joined(1, "a", first)
    assert [e.event_id for e in s.release(0)] == ["a", "b"]
    assert len(s) == 1
    s.drop(3, "c")
    assert s.release(0) == [] and len(s) == 0


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 2)), min_size=1, max_size=60, unique_by=lambda t: t))
def test_release_order_is_label_time_then_id_whatever_the_arrival_order(labels: list[tuple[int, int]]) -> None:
    # Within a partition, labels come in time order (one producer's clock); across partitions, any interleaving.
    per_partition = {p: sorted(t for t, q in labels if q == p) for p in {q for _, q in labels}}
    labels = [(per_partition[p].pop(0), p) for _, p in labels]
    s = Sequencer()
    s.track({0, 1, 2}, caught_up=set(), wall_ms=0)
    released: list[PendingEvent] = []
    for n, (t, p) in enumerate(labels):
        s.observe(p, t, wall_ms=0)
        hold_joined(s, labelled_event(f"e{n:03d}", t))
        released += s.release(0)
    released += s.flush()
    keys = [(e.label_time_ms, e.event_id) for e in released]
    assert keys == sorted(keys) and len(keys) == len(labels)


def test_a_label_sent_again_after_expiring_unmatched_does_not_stall_learning() -> None:
    """Each hold of an id is settled by its own drop: a re-sent label that expires again holds nothing back."""
    learner = Learner(ModelRegistry("m"), PendingJoin(window_ms=10, needs_features=True), Sequencer(idle_ms=10**9))
    learner.sequencer.track({0, 1}, set(), 0)  # partition 1 holds the watermark back for now
    for label_time, later in ((5, 30), (5, 60)):  # the same label twice; its event never comes
        learner.on_feedback({"event_id": "A", "entity_id": "c", "label_time": label_time, "label": True},
                            partition=0)
        learner.on_features({"event_id": "X", "entity_id": "c", "event_time": later, "features": {},
                             "feature_set_version": "fs1"})
        assert [s.kind for s in learner.advance(0)] == ["unmatched"]
    learner.on_features({"event_id": "B", "entity_id": "c", "event_time": 70, "features": {"x": 1.0},
                         "feature_set_version": "fs1"})
    learner.on_prediction(support.prediction("B", event_time=70, version="v1", served=True, predicted_label=True))
    learner.on_feedback({"event_id": "B", "entity_id": "c", "label_time": 71, "label": True}, partition=0)
    learner.sequencer.observe(1, 1_000, 0)  # partition 1 catches up
    assert [e.event_id for e in learner.sequencer.release(0)] == ["B"] and len(learner.sequencer) == 0
