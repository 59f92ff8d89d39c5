"""What every stream stage is to its runner: batches of records in, records out.

A stage never touches a Kafka client. The runner (``streams.runtime.loop``)
reads a batch, asks the stage for its output records, and commits them with
the input offsets they came from, in one transaction. Keeping that in one
runner is what lets a stage be tested without a broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from weir.clock import now_ms
from weir.contract.deadletter import HEADER_PREFIX, Rejection, dead_letter_headers, value_dropped_headers
from weir.contract.messages import Headers, InRecord, OutRecord
from weir.contract.serde import AvroSerde
from weir.errors import SerdeError

R = TypeVar("R")


class Stage(Protocol):
    """A stream stage: a name, the topics it reads, and what it makes of a batch."""

    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> tuple[str, ...]:
        """The physical names of the topics it reads."""
        ...

    @property
    def outputs(self) -> tuple[str, ...]: ...

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        """Output records for a batch; must not raise for bad input (dead-letter it instead)."""
        ...

    def tick(self) -> list[OutRecord]:
        """Records to emit on a timer (metrics snapshots); most stages have none."""
        ...


@runtime_checkable
class StatefulStage(Stage, Protocol):
    """A stage whose state lives in snapshots that record the input offsets they reflect."""

    def restore(self) -> dict[tuple[str, int], int] | None:
        """Load the last snapshot; the offsets to resume from, or None to start from the beginning."""
        ...

    def snapshot_due(self, final: bool = False) -> bool: ...

    def snapshot(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        """Persist the state with ``offsets``; records to publish (copies for other processes)."""
        ...

    def note_partitions(self, assigned: set[tuple[str, int]], caught_up: set[tuple[str, int]]) -> None:
        """The input partitions it reads, and which of them the consumer has read to their end."""
        ...

    def close(self) -> None:
        """Release the state (after the last snapshot); what no snapshot holds is given up."""
        ...


class PartitionedState(Protocol):
    """State a grouped stage keeps per input partition on local disk, whose changes the stage writes to a changelog
    topic in its own transactions (to the partition number of the input partition they belong to). The runner
    restores a partition from the changelog when the stage takes it, and tells the state how its transactions end.
    """

    @property
    def changelog(self) -> str:
        """The physical name of the changelog topic."""
        ...

    def open(self, partitions: set[int]) -> dict[int, int]:
        """Take these input partitions; the changelog offset to restore each from."""
        ...

    def restore(self, partition: int, records: list[InRecord]) -> int:
        """Changelog records of ``partition``, in order; how many were taken."""
        ...

    def close(self, partitions: set[int]) -> None:
        """Give these partitions up; changes no transaction committed are forgotten."""
        ...

    def seal(self) -> None:
        """The changes made since the last seal are in the transaction now being committed."""
        ...

    def committed(self) -> None:
        """The sealed changes' transaction committed."""
        ...

    def checkpoint(self, ends: dict[int, int]) -> None:
        """Every change below these changelog offsets (per partition) is in the state: keep that durably."""
        ...

    def shut(self) -> None:
        """Release the state at the end of the stage's life."""
        ...


@runtime_checkable
class KeepsPartitionedState(Protocol):
    """A grouped stage with ``PartitionedState`` (it reads one input topic)."""

    @property
    def partitioned_state(self) -> PartitionedState: ...


Partition = tuple[str, int]  # (topic, partition)


@runtime_checkable
class WaitsOnUpstream(Protocol):
    """A stateful stage that must know when the stage before it has read its input to the end (the learner: only
    then is an event that never came known never to come). Its runner adds those partitions of the upstream topic to
    the ``caught_up`` it hands ``note_partitions``."""

    @property
    def upstream(self) -> tuple[str, str]:
        """(the upstream stage's name, the topic it reads)."""
        ...


@runtime_checkable
class HoldsBack(Protocol):
    """A stage that asks its runner to stop reading some input partitions for now, to bound what it holds."""

    def held_back(self, behind: set[Partition]) -> set[Partition]:
        """The input partitions to pause now, given which still have records to read (``behind``)."""
        ...


LEAD_MS = 2_000  # how far, in their own times, labels and events may run ahead of each other while both lag


class Pacer:
    """Reads a backlog's labels and events at the same pace in their own times, partition by partition.

    A label read before its event, or an event read long before its label,
    waits in the join: first in memory, then on disk. The event and feedback
    topics are co-partitioned, so partition p of each carries the same
    entities. A feedback partition more than ``LEAD_MS`` ahead of the slowest
    one still being read pauses (learning waits for the slowest anyway, and
    the labels it read would wait in memory meanwhile). Labels that ran more
    than ``LEAD_MS`` ahead of partition p's events pause there while p's
    events still come: its event partitions have
    records left to read, or sent one within the last ``idle_ms`` (another stage
    is still writing them). Events that ran ahead of their labels pause while
    labels are left to read. A side that has gone quiet never holds the other
    back, so a label whose event never comes, or labels that trail their events
    by hours, cannot stall anything.
    """

    def __init__(self, event_topics: tuple[str, ...], feedback_topic: str, idle_ms: int,
                 clock: Callable[[], int] = now_ms) -> None:
        self.event_topics = event_topics
        self.feedback_topic = feedback_topic
        self.idle_ms = idle_ms
        self.clock = clock
        self.started_ms = clock()  # before its first event, a partition counts as about to send
        self.events: dict[int, int] = {}  # partition -> newest event time read
        self.labels: dict[int, int] = {}  # partition -> newest label time read
        self.events_seen: dict[int, int] = {}  # partition -> wall time of the last event read

    def event(self, partition: int, time_ms: int) -> None:
        self.events_seen[partition] = self.clock()
        if time_ms > self.events.get(partition, 0):
            self.events[partition] = time_ms

    def label(self, partition: int, time_ms: int) -> None:
        if time_ms > self.labels.get(partition, 0):
            self.labels[partition] = time_ms

    def events_quiet(self, partition: int, caught_up: set[Partition]) -> bool:
        """Partition ``partition``'s events are read to their end and none came for ``idle_ms``."""
        return (all((t, partition) in caught_up for t in self.event_topics)
                and self.clock() - self.events_seen.get(partition, self.started_ms) >= self.idle_ms)

    def held_back(self, behind: set[Partition]) -> set[Partition]:
        held: set[Partition] = set()
        now = self.clock()
        # The learning order waits for the slowest feedback partition: the others keep pace with it.
        lagging = [self.labels.get(p, 0) for topic, p in behind if topic == self.feedback_topic]
        slowest = min(lagging, default=None)
        for p, label_time in self.labels.items():
            if slowest is not None and label_time - slowest > LEAD_MS:
                held.add((self.feedback_topic, p))
                continue
            lead = label_time - self.events.get(p, 0)
            events_coming = (any((t, p) in behind for t in self.event_topics)
                             or now - self.events_seen.get(p, self.started_ms) < self.idle_ms)
            if lead > LEAD_MS and events_coming:
                held.add((self.feedback_topic, p))
            elif -lead > LEAD_MS and (self.feedback_topic, p) in behind:
                held.update((t, p) for t in self.event_topics)
        return held


def dead_letter(dlq_topic: str, record: InRecord, rejection: Rejection) -> OutRecord:
    """The DLQ copy of ``record``: same key, bytes and headers, plus headers saying why and from where.

    A copy that would not fit in one Kafka message (a record just under the
    limit, plus the headers) keeps the headers and drops the value, saying so:
    otherwise the stage could never commit past that record.
    """
    headers = [*record.headers, *dead_letter_headers(rejection, record.origin)]
    letter = OutRecord(dlq_topic, record.key, record.value, headers)
    if record_size(letter) <= MAX_RECORD_BYTES:
        return letter
    value = record.value or b""
    kept: Headers = [*dead_letter_headers(rejection, record.origin), *value_dropped_headers(value)]
    return OutRecord(dlq_topic, record.key, b"", kept)


def oversized_output(dlq_topic: str, stage: str, record: OutRecord, limit: int) -> OutRecord:
    """The dead letter that stands for an output too large to write: where it was going, its size and digest.

    The broker would refuse the output, and the stage could never commit past
    the batch that made it; its value is gone, so the letter says so.
    """
    rejection = Rejection("oversized-output", stage, f"an output to {record.topic} is {record_size(record)} bytes, "
                          f"over the {limit} a record may have")
    headers: Headers = [*dead_letter_headers(rejection, None), (HEADER_PREFIX + "output.topic", record.topic.encode()),
               *value_dropped_headers(record.value or b"")]
    return OutRecord(dlq_topic, record.key, b"", headers)


MAX_RECORD_BYTES = 900_000  # below librdkafka's and the broker's default 1 MB per message, with room to spare


def record_size(record: OutRecord) -> int:
    return len(record.key or b"") + len(record.value or b"") + sum(
        len(k) + len(v or b"") for k, v in record.headers or [])


def decode_or_reject(serde: AvroSerde[R], record: InRecord, stage: str) -> R | Rejection:
    """The decoded value, or the rejection that sends the record to the DLQ."""
    try:
        return serde.decode(record.value)
    except SerdeError as exc:
        return Rejection(exc.reason, stage, str(exc), exception=exc)


@dataclass(frozen=True)
class Route(Generic[R]):
    """How a stage reads one input topic: the serde of its values and what to do with each."""

    serde: AvroSerde[R]
    handle: Callable[[InRecord, R], list[OutRecord] | Rejection]


def dispatch(batch: list[InRecord], routes: Mapping[str, Route[Any]], *, stage: str, dlq_topic: str | None,
             rejected: Counter[str] | None = None,
             on_rejected: Callable[[InRecord, Rejection], None] | None = None) -> list[OutRecord]:
    """Decode each record with its topic's route and handle it; anything rejected goes to the DLQ.

    ``dlq_topic`` None: another stage reading the same topics dead-letters
    these records, so one bad record makes one dead letter; they are only
    counted, by reason, in ``rejected``. ``on_rejected`` hears every rejection.
    """
    out: list[OutRecord] = []
    for record in batch:
        route = routes[record.topic]
        result = decode_or_reject(route.serde, record, stage)
        if not isinstance(result, Rejection):
            result = route.handle(record, result)
        if not isinstance(result, Rejection):
            out.extend(result)
            continue
        if on_rejected is not None:
            on_rejected(record, result)
        if dlq_topic is not None:
            out.append(dead_letter(dlq_topic, record, result))
        elif rejected is not None:
            rejected[result.reason] += 1
    return out
