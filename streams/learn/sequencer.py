"""One learning order, whatever the batches: labelled events are learned sorted by (label time, event id).

Online models depend on the order they learn in. Kafka gives order within a
partition only, and how partitions and topics interleave in a batch depends on
timing, so a learner that learned in arrival order would end in a different
state after a crash and replay than without one. The sequencer holds every
labelled event from the moment its label is read and releases them in
(label time, event id) order, when two things hold:

* every feedback partition has moved past that label time (the watermark), so
  no label that sorts earlier can still come; a partition read to its end and
  silent for ``idle_ms`` stops holding the watermark back, so a stream's tail
  is released too;
* the event at the head has joined. One still waiting for its features or
  prediction holds back the ones after it, until it joins or its window
  expires (then it is skipped). That is the price of one order.

The sequencer holds only (label time, event id) for what waits, and the
joined events themselves until their turn: memory follows the labels in
flight, not the join window. The same pair can be held more than once (a
label that expired unmatched and was sent again, or replayed from the DLQ);
each hold is settled by its own join or drop. ``flush`` releases what has joined (the end of a
bounded replay).
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

from weir.state.join import PendingEvent

Key = tuple[int, str]  # (label time, event id)


class Sequencer:
    def __init__(self, idle_ms: int = 2_000) -> None:
        self.idle_ms = idle_ms
        self._heap: list[Key] = []  # every label taken and not yet learned
        self._joined: dict[Key, PendingEvent] = {}  # the joined events, until their turn
        self._gone: Counter[Key] = Counter()  # holds whose event will never join
        self._partition_time: dict[int, int] = {}  # feedback partition -> largest label time seen
        self._partition_seen: dict[int, int] = {}  # feedback partition -> wall time of its last label
        self.caught_up: set[int] = set()  # partitions read to their end, as the consumer last knew
        self._blocked: tuple[Key, int] | None = None  # the head whose turn came before its event, and since when

    def __len__(self) -> int:
        return len(self._heap)

    def track(self, partitions: set[int], caught_up: set[int], wall_ms: int) -> None:
        """The feedback partitions to wait for (all assigned ones, read or not yet) and which are read to the end.

        A partition nothing was read from yet holds the watermark at its start:
        its first label may be older than everything read elsewhere.
        """
        for p in partitions - self._partition_time.keys():
            self._partition_time[p] = -1
            self._partition_seen[p] = wall_ms
        self.caught_up = caught_up

    def observe(self, partition: int, label_time_ms: int, wall_ms: int) -> None:
        """A label was read from ``partition``: it moves that partition's watermark."""
        self._partition_time[partition] = max(self._partition_time.get(partition, 0), label_time_ms)
        self._partition_seen[partition] = wall_ms

    def hold(self, label_time_ms: int, event_id: str) -> None:
        """A label was taken: its place in the order is fixed from now on."""
        heapq.heappush(self._heap, (label_time_ms, event_id))

    def joined(self, label_time_ms: int, event_id: str, event: PendingEvent) -> None:
        """The held label's event is complete: it goes out when its turn comes."""
        self._joined[(label_time_ms, event_id)] = event

    def drop(self, label_time_ms: int, event_id: str) -> None:
        """The held label's event will never join (its window expired): skip it."""
        self._gone[(label_time_ms, event_id)] += 1

    def watermark(self, wall_ms: int) -> float:
        """Every label up to this time has been read from every partition still sending."""
        active = [t for p, t in self._partition_time.items()
                  if wall_ms - self._partition_seen[p] < self.idle_ms or p not in self.caught_up]
        return min(active) if active else float("inf")

    def state(self) -> dict[str, Any]:
        """What is held, as plain data (wall times are not kept: they mean nothing after a restart)."""
        return {"heap": list(self._heap), "joined": [(key, event.plain()) for key, event in self._joined.items()],
                "gone": dict(self._gone), "partition_time": dict(self._partition_time)}

    def load_state(self, state: dict[str, Any], wall_ms: int) -> None:
        """Take a saved state; every partition counts as sending again until it proves idle here."""
        self._heap = [(int(time), str(event_id)) for time, event_id in state["heap"]]
        heapq.heapify(self._heap)
        self._joined = {(int(t), str(e)): PendingEvent.from_plain(event) for (t, e), event in state["joined"]}
        self._gone = Counter(state["gone"])
        self._partition_time = dict(state["partition_time"])
        self._partition_seen = dict.fromkeys(self._partition_time, wall_ms)
        self.caught_up = set()

    def release(self, wall_ms: int) -> list[PendingEvent]:
        """The joined events at or below the watermark, in (label time, event id) order, up to the first that
        has not joined yet."""
        mark = self.watermark(wall_ms)
        out = []
        while self._heap and self._heap[0][0] <= mark:
            key = self._heap[0]
            if self._gone[key] > 0:
                self._gone[key] -= 1
                if not self._gone[key]:
                    del self._gone[key]
            elif key in self._joined:
                out.append(self._joined.pop(key))
            else:
                if self._blocked is None or self._blocked[0] != key:
                    self._blocked = (key, wall_ms)
                break
            heapq.heappop(self._heap)
        return out

    def blocked(self, wall_ms: int) -> tuple[Key, int] | None:
        """The held label whose turn has come but whose event has not joined, and how long (wall ms) it has held
        the others back; None when nothing is blocked."""
        if self._blocked is None or not self._heap or self._heap[0] != self._blocked[0]:
            return None
        key, since = self._blocked
        return key, wall_ms - since

    def flush(self) -> list[PendingEvent]:
        out = [self._joined.pop(key) for key in sorted(self._heap) if key in self._joined]
        self._heap.clear()
        self._gone.clear()
        return out
