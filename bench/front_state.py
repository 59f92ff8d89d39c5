"""What the front's memory of served event ids costs, and how fast a partition's memory comes back.

    python -m bench.front_state [--events 20000] [--restore 300000] [--repeats 3] [--smoke]

* **front, per event**: the fused front stage (validation, the memory of
  served ids, features, v1 scoring) in this process, over the same churn
  events, in batches of 500 committed as the loop commits them (seal, then
  committed; a checkpoint every 10 s of batches), against the same front whose
  memory holds nothing (it still writes the same changelog record per event).
  A/B pairs interleaved; each figure with its spread over ``--repeats``.
* **restore**: a partition of ``events.served`` holding ``--restore`` ids,
  written in transactions of 500 as the front writes them, read back into a
  fresh memory the way a front taking the partition on a new machine does
  (``streams.runtime.changelog``): ids per second, and the state file's size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.broker import running_broker
from bench.harness import arguments, figure
from producers.churn import ChurnDomain
from streams.front import FrontStage
from weir.clock import now_ms
from weir.contract.messages import InRecord
from weir.contract.serde import SchemaCatalog, open_catalog, topic_serde
from weir.contract.topics import EVENTS_RAW, EVENTS_SERVED
from weir.kafka.admin import create_topics, delete_topics
from weir.kafka.clients import make_transactional_producer
from weir.kafka.reading import read_partition
from weir.registry.records import routing_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.served import ServedIds

BATCH = 500


class Forgetful(ServedIds):
    """The baseline: a memory that never holds an id, writing the same changelog records."""

    def seen(self, partition: int, event_id: str) -> bool:
        return False

    def committed(self) -> None:
        self.sealed = {}


def raw_records(settings: Settings, catalog: SchemaCatalog, n: int) -> list[InRecord]:
    raw = topic_serde(catalog, settings, EVENTS_RAW)
    start = now_ms() - n
    events = ChurnDomain(seed=11).events(n, event_time=lambda i: start + i)
    return [InRecord(raw.topic, i % 3, i // 3, 0, e.entity_id.encode(), raw.encode(e.raw("churn")), [])
            for i, e in enumerate(events)]


def front(settings: Settings, catalog: SchemaCatalog, directory: Path, remembers: bool) -> FrontStage:
    registry = ModelRegistry(settings.model_name)
    registry.apply(version_record(settings.model_name, "v1", "logistic_regression", {}))
    registry.apply(routing_record(settings.model_name, "basic", "v1"))
    stage = FrontStage(settings.with_overrides(state_dir=directory), catalog, registry)
    if not remembers:
        served = stage.validate.served
        stage.validate.served = Forgetful(None, "front", served.serde, horizon_ms=settings.dedupe_horizon_ms)
    stage.partitioned_state.open({0, 1, 2})
    return stage


def per_event_us(stage: FrontStage, records: list[InRecord]) -> float:
    state = stage.partitioned_state
    started = time.process_time()
    for i in range(0, len(records), BATCH):
        stage.process(records[i:i + BATCH])
        state.seal()
        state.committed()
        if (i // BATCH) % 20 == 19:
            state.checkpoint({0: i, 1: i, 2: i})
    return (time.process_time() - started) / len(records) * 1e6


def restore_rate(settings: Settings, catalog: SchemaCatalog, n: int, directory: Path) -> tuple[float, int]:
    """Ids/s of a fresh memory restoring one partition of ``n`` ids, and the bytes of its state file."""
    serde = topic_serde(catalog, settings, EVENTS_SERVED)
    producer = make_transactional_producer(settings, f"{settings.app_id}-bench-{uuid.uuid4().hex[:6]}")
    producer.init_transactions(30)
    for start in range(0, n, BATCH):
        producer.begin_transaction()
        for i in range(start, min(n, start + BATCH)):
            producer.produce(serde.topic, key=f"event-{i:09d}".encode(), value=serde.encode({"event_time": i}),
                             partition=0)
        producer.commit_transaction(30)
    memory = ServedIds(directory, "front", serde, horizon_ms=settings.dedupe_horizon_ms)
    started = time.perf_counter()
    [(partition, offset)] = memory.open({0}).items()
    taken = sum(memory.restore(partition, chunk)
                for chunk in read_partition(settings, serde.topic, partition, offset, timeout_s=600))
    memory.checkpoint({0: 0})
    seconds = time.perf_counter() - started
    assert taken == n, f"restored {taken} of {n}"
    size = sum(p.stat().st_size for p in directory.glob("front-*.db*"))
    memory.shut()
    return n / seconds, size


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f}, range {min(values):.1f}-{max(values):.1f} (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events through each front, per repeat")
    parser.add_argument("--restore", type=int, default=300_000, help="ids in the restored partition")
    parser.add_argument("--repeats", type=int, default=3)
    args = arguments(parser, {"events": 1_000, "restore": 5_000, "repeats": 1})
    with running_broker() as broker:
        settings = broker.with_overrides(topic_prefix=f"bench-front-state-{uuid.uuid4().hex[:6]}.",
                                         app_id=f"bench-front-state-{uuid.uuid4().hex[:6]}")
        catalog = open_catalog(settings)
        records = raw_records(settings, catalog, args.events)
        remembering: list[float] = []
        forgetting: list[float] = []
        with tempfile.TemporaryDirectory(prefix="weir-bench-front-state-") as tmp:
            for remembers in (True, False):  # warm-up, untimed: imports, caches, the models' first calls
                stage = front(settings, catalog, Path(tmp) / f"warm-{remembers}", remembers)
                per_event_us(stage, records[:BATCH])
                stage.partitioned_state.shut()
            for r in range(args.repeats):
                for remembers, into in ((True, remembering), (False, forgetting)):
                    stage = front(settings, catalog, Path(tmp) / f"{r}-{remembers}", remembers)
                    into.append(per_event_us(stage, records))
                    stage.partitioned_state.shut()
            figure("front CPU per event, remembering served ids (µs)", spread(remembering))
            figure("front CPU per event, memory holding nothing (µs)", spread(forgetting))
            ratio = statistics.median(remembering) / statistics.median(forgetting)
            figure("front cost of the memory (ratio)", f"{ratio:.3f}")
            rates, size = [], 0
            for r in range(args.repeats):
                fresh = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}{r}.")
                create_topics(fresh, (EVENTS_SERVED,))
                try:
                    rate, size = restore_rate(fresh, catalog, args.restore, Path(tmp) / f"restore-{r}")
                finally:
                    delete_topics(fresh, (EVENTS_SERVED,))
                rates.append(rate)
            figure(f"restore of a partition of {args.restore} ids (ids/s)", spread(rates))
            figure("state file after it (MB)", f"{size / 1e6:.1f}")


if __name__ == "__main__":
    main()
