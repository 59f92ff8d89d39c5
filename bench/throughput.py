"""Throughput on the real broker: faust agent vs confluent-kafka batch loop vs the whole skeleton.

    python -m bench.throughput [--records 200000] [--events 10000] [--smoke]

Prints events/s for (1) a faust-streaming agent that only consumes and counts,
(2) the same consume-and-count as a confluent-kafka batch loop, and (3) the
walking skeleton end to end (produce -> validate -> features -> serve ->
learn). Timings start at the first record a consumer sees, so group-join time
is reported apart. Ratios are against the confluent loop measured in this same
run, because these machines are shared and noisy. Each figure is printed as
soon as it is measured; ``--smoke`` runs them all on a few thousand records.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import faust

from apps.tally import TopicTally
from bench.broker import running_broker
from bench.harness import arguments, figure, wait_for, worker
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, publish
from producers.sources import open_source
from weir.contract.serde import open_catalog
from weir.kafka.admin import create_topics, delete_topics
from weir.kafka.clients import make_consumer, make_producer, produce
from weir.settings import Settings


@dataclass
class Measurement:
    name: str
    records: int
    seconds: float  # first record seen -> last record counted
    startup_s: float  # start -> first record seen

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


def fill_topic(settings: Settings, topic: str, records: int) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient(settings.librdkafka())
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()
    producer = make_producer(settings)
    payload = b"x" * 100
    for i in range(records):
        produce(producer, topic, payload, f"c{i % 1000}".encode())
    producer.flush(60)


def confluent_count(settings: Settings, topic: str, records: int) -> Measurement:
    consumer = make_consumer(settings, f"bench-confluent-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([topic])
    started = time.perf_counter()
    first = None
    seen = 0
    try:
        while seen < records:
            batch = consumer.consume(1000, timeout=1.0)
            if batch and first is None:
                first = time.perf_counter()
            seen += sum(1 for m in batch if m.error() is None)
            if batch:
                consumer.store_offsets(message=batch[-1])
    finally:
        consumer.close()
    end = time.perf_counter()
    assert first is not None
    return Measurement("confluent-kafka consume(1000) loop", seen, end - first, first - started)


def faust_count(settings: Settings, topic: str, records: int) -> Measurement:
    async def run() -> Measurement:
        done = asyncio.Event()
        app = faust.App(f"bench-faust-{uuid.uuid4().hex[:6]}", **settings.faust(), web_enabled=False,
                        topic_disable_leader=True, key_serializer="raw", value_serializer="raw")
        state: dict[str, float] = {"seen": 0, "first": 0.0}

        @app.agent(app.topic(topic, key_serializer="raw", value_serializer="raw"), concurrency=1)
        async def count(stream):  # type: ignore[no-untyped-def]
            async for _ in stream:
                if state["seen"] == 0:
                    state["first"] = time.perf_counter()
                state["seen"] += 1
                if state["seen"] >= records:
                    done.set()

        # Its start-up spinner to stderr: standard output carries the figures.
        worker = faust.Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False, daemon=False,
                              stdout=sys.stderr)
        started = time.perf_counter()
        await worker.start()
        await done.wait()
        end = time.perf_counter()
        await worker.stop()
        return Measurement("faust agent, async for", int(state["seen"]), end - state["first"], state["first"] - started)

    return asyncio.run(run())


def skeleton(settings: Settings, events: int) -> Measurement:
    run = settings.with_overrides(topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.", app_id=f"bench-{uuid.uuid4().hex[:6]}",
                                  web_port=0)
    create_topics(run)
    catalog = open_catalog(run)
    loop = worker(run, "skeleton")
    tally = TopicTally(run, catalog)
    try:
        started = time.perf_counter()
        publish(EventPublisher(run, catalog), open_source("churn", events), policy=FeedbackPolicy("fixed:0"),
                progress=False)
        t = tally.tally
        first = None

        def done() -> bool:
            nonlocal first
            tally.poll(0.2)
            if first is None and t.served:
                first = time.perf_counter()
            return t.served >= events and t.learner_counter("feedback_joined") >= events

        wait_for(done, watching=[loop], timeout_s=3_600, interval_s=0, what="every event served and learned")
        end = time.perf_counter()
        first = first or end
        return Measurement("skeleton end to end (served and learned)", events, end - first, first - started)
    finally:
        tally.close()
        loop.stop()
        delete_topics(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="records for the consume-and-count runs")
    parser.add_argument("--events", type=int, default=10_000, help="events for the end-to-end run")
    args = arguments(parser, {"records": 5_000, "events": 300})
    topic = f"bench-count-{uuid.uuid4().hex[:6]}"
    with running_broker() as settings:
        try:
            fill_topic(settings, topic, args.records)
            baseline = None
            measures: list[Callable[[], Measurement]] = [lambda: confluent_count(settings, topic, args.records),
                                                         lambda: faust_count(settings, topic, args.records),
                                                         lambda: skeleton(settings, args.events)]
            for measure in measures:
                m = measure()
                baseline = baseline or m.rate
                figure(m.name, f"{m.rate:,.0f} events/s over {m.records:,} ({m.rate / baseline:.3f} of the "
                       f"confluent loop), startup {m.startup_s:.1f} s")
        finally:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient(settings.librdkafka())
            admin.delete_topics([topic])[topic].result()


if __name__ == "__main__":
    main()
