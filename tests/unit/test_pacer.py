"""The pacer reads a backlog's labels and events at the same pace, and never lets a quiet side stall the other."""

from __future__ import annotations

from streams.runtime.stage import LEAD_MS, Pacer

EVENTS, FEEDBACK = ("features", "predictions"), "feedback"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def test_labels_ahead_of_events_still_coming_wait() -> None:
    clock = Clock()
    pacer = Pacer(EVENTS, FEEDBACK, idle_ms=5_000, clock=clock)
    pacer.event(0, 10_000)
    pacer.label(0, 10_000 + LEAD_MS + 1)
    assert pacer.held_back({("features", 0)}) == {("feedback", 0)}  # events left to read
    clock.now += 1_000
    assert pacer.held_back(set()) == {("feedback", 0)}  # read to the end, but an event came a second ago
    clock.now += 10_000
    assert pacer.held_back(set()) == set()  # events went quiet: labels go on (they may be unmatched)


def test_before_any_event_labels_wait_only_as_long_as_events_may_start() -> None:
    clock = Clock()
    pacer = Pacer(EVENTS, FEEDBACK, idle_ms=5_000, clock=clock)
    pacer.label(1, 99_999)
    assert pacer.held_back(set()) == {("feedback", 1)}
    clock.now += 6_000
    assert pacer.held_back(set()) == set()


def test_events_ahead_of_labels_wait_while_labels_are_left_to_read() -> None:
    pacer = Pacer(EVENTS, FEEDBACK, idle_ms=5_000, clock=Clock())
    pacer.event(2, 50_000)
    pacer.label(2, 50_000 - LEAD_MS - 1)
    assert pacer.held_back({("feedback", 2)}) == {("features", 2), ("predictions", 2)}
    assert pacer.held_back(set()) == set()  # labels read to their end: labels that trail by hours stall nothing


def test_sides_within_the_lead_read_freely_and_partitions_pace_apart() -> None:
    pacer = Pacer(EVENTS, FEEDBACK, idle_ms=5_000, clock=Clock())
    pacer.event(0, 10_000)
    pacer.label(0, 10_000 + LEAD_MS)
    pacer.event(1, 10_000)
    pacer.label(1, 20_000)
    assert pacer.held_back({("features", 0), ("feedback", 0), ("features", 1)}) == {("feedback", 1)}


def test_a_feedback_partition_keeps_pace_with_the_slowest_one_still_read() -> None:
    pacer = Pacer(EVENTS, FEEDBACK, idle_ms=5_000, clock=Clock())
    for p, t in ((0, 10_000), (1, 10_000 + LEAD_MS + 1), (2, 10_500)):
        pacer.event(p, t)
        pacer.label(p, t)
    behind = {("feedback", 0), ("feedback", 1), ("feedback", 2)}
    assert pacer.held_back(behind) == {("feedback", 1)}
    assert pacer.held_back(behind - {("feedback", 0)}) == set()  # partition 0 read to its end: it holds nobody
