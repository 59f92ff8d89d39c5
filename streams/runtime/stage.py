"""What every stream stage is to its runner: batches of records in, records out.

A stage never touches a Kafka client. The runner (``streams.runtime.loop``)
reads a batch, asks the stage for its output records, sends them, waits until
the broker acknowledged every one, and only then lets the input offsets be
committed. Keeping that ordering in one runner is what lets a stage be tested
without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from weir.contract.deadletter import Rejection, dead_letter_headers
from weir.contract.messages import InRecord, OutRecord
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


def dead_letter(dlq_topic: str, record: InRecord, rejection: Rejection) -> OutRecord:
    """The DLQ copy of ``record``: same key, bytes and headers, plus headers saying why and from where."""
    return OutRecord(dlq_topic, record.key, record.value,
                     [*record.headers, *dead_letter_headers(rejection, record.origin)])


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


def dispatch(batch: list[InRecord], routes: Mapping[str, Route[Any]], *, stage: str, dlq_topic: str
             ) -> list[OutRecord]:
    """Decode each record with its topic's route and handle it; anything rejected goes to the DLQ."""
    out: list[OutRecord] = []
    for record in batch:
        route = routes[record.topic]
        result = decode_or_reject(route.serde, record, stage)
        if not isinstance(result, Rejection):
            result = route.handle(record, result)
        if isinstance(result, Rejection):
            out.append(dead_letter(dlq_topic, record, result))
        else:
            out.extend(result)
    return out
