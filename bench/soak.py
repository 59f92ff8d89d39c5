"""The whole loop for an hour at 70% of its capacity: memory, lag and exactly-once, a row every 30 s.

    python -m bench.soak [--minutes 60] [--rate EVENTS_PER_S] [--backlog 30000] [--smoke]

The front and the back run as two worker processes, as ``make demo`` runs
them (the back with the demo's automation policy). Unless ``--rate`` is
given, the run first measures the loop's capacity on a backlog of churn events
and their labels, produced before the workers start: events over the time
from the first served prediction until 95% of the labels are learned (the
last labels wait for the feedback partitions to go idle, which is not
throughput). Once the backlog is drained it offers live churn events at 70%
of that rate, each label a second after its event, for ``--minutes``.

Every 30 s it prints a row: the resident memory of the front, the back and
the broker's JVM (when the broker is the local one), each worker's consumer
lag (what its group has not committed, from the broker), the live events
produced, served, dead-lettered and labels learned, and the machine's load
average (other work on the same cores shows there). At the end, from
the topics read back with a read_committed consumer: the events served twice
and the events lost (neither served nor dead-lettered). After warm-up, that
is over the last 30 minutes (the last half of a shorter run): each process's
RSS growth (goal: under 5%) and the largest lag (bounded: never more than
30 s of events behind).

The exit status is 1 if an event was served twice or lost, a worker died, or
the loop did not drain. Memory and lag are judged in words: a shared machine
(other work taking the cores for minutes) moves them, and a short run says
little about them. ``--smoke`` runs the same path small, in about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from apps.demo import DEMO_POLICY
from apps.processes import free_port, scrape, start_worker, stop_process
from bench.broker import running_broker
from bench.e2e import churn, produce_backlog
from producers.event import Source
from producers.labels import FeedbackPolicy
from producers.publisher import EventPublisher, ProduceSummary, publish
from producers.sources import open_source
from weir.clock import now_ms, poll_until
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord
from weir.contract.serde import SchemaCatalog, open_catalog, topic_serde
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, FEATURES, FEEDBACK, PREDICTIONS
from weir.errors import SerdeError, WeirError
from weir.kafka import local as local_kafka
from weir.kafka.admin import admin_client, create_topics, delete_topics
from weir.kafka.logs import with_log
from weir.kafka.reading import assigned_members, reader, watermarks
from weir.settings import Settings

SHARE = 0.7  # of the measured capacity
SEED = 1  # one churn stream: the backlog is its first events, the live phase the next ones
LABEL_DELAY_S = 1.0
GROWTH_WINDOW_S = 30 * 60  # RSS growth is measured over the last 30 minutes (or the last half of a shorter run)
LAG_BOUND_S = 30.0  # a lag of more than this many seconds of events is not bounded
GROWTH_GOAL = 0.05
PROCESSES = ("front", "back", "broker")


def back_inputs(settings: Settings) -> tuple[str, ...]:
    """The back's inputs with a policy: the front's outputs, the labels, and the dead letters (for the controller)."""
    return tuple(settings.topic(t.name) for t in (FEATURES, PREDICTIONS, FEEDBACK, EVENTS_DLQ))
CHURN_ID = re.compile(rf"churn-{SEED}-(\d+)")


@dataclass(frozen=True)
class Plan:
    minutes: float
    rate: float | None  # None: 70% of the capacity measured on the backlog
    backlog: int
    every_s: float  # between two rows
    drain_s: float  # how long the loop may take to finish what was offered


def plan_of(args: argparse.Namespace) -> Plan:
    if args.smoke:
        return Plan(minutes=args.minutes or 0.25, rate=args.rate, backlog=args.backlog or 1_000, every_s=5.0,
                    drain_s=60.0)
    return Plan(minutes=args.minutes or 60.0, rate=args.rate, backlog=args.backlog or 30_000, every_s=30.0,
                drain_s=600.0)


# --- what became of every event, read back from the topics ------------------------------------------------------


@dataclass
class Ledger:
    """Per event of the run's source (ids ``churn-<SEED>-<index>``): how many served predictions, and whether it
    was dead-lettered. One byte per event and table, so an hour of events fits in a few MB."""

    served: bytearray = field(default_factory=bytearray)
    dead: bytearray = field(default_factory=bytearray)
    served_events: int = 0  # events served at least once
    dead_events: int = 0
    twice: int = 0  # served predictions beyond the first of their event
    foreign: int = 0  # ids the source does not make (none expected)
    first_served_ms: int | None = None  # the earliest served prediction's predicted_at

    def serve(self, event_id: str, predicted_at: int) -> None:
        index = self._index(self.served, event_id)
        if index is None:
            return
        if self.served[index] == 0:
            self.served_events += 1
        else:
            self.twice += 1
        self.served[index] = min(self.served[index] + 1, 255)
        self.first_served_ms = min(self.first_served_ms or predicted_at, predicted_at)

    def dead_letter(self, event_id: str) -> None:
        index = self._index(self.dead, event_id)
        if index is not None:
            self.dead_events += self.dead[index] == 0
            self.dead[index] = 1

    @property
    def settled(self) -> int:
        return self.served_events + self.dead_events

    def lost(self, events: int) -> int:
        """Events among the first ``events`` neither served nor dead-lettered."""
        served = bytes(self.served[:events]).ljust(events, b"\0")
        dead = bytes(self.dead[:events]).ljust(events, b"\0")
        return sum(1 for s, d in zip(served, dead, strict=True) if not s and not d)

    def _index(self, table: bytearray, event_id: str) -> int | None:
        match = CHURN_ID.fullmatch(event_id)
        if match is None:
            self.foreign += 1
            return None
        index = int(match[1])
        if index >= len(table):
            table.extend(bytes(max(index + 1 - len(table), len(table))))  # doubling: amortised growth
        return index


class Outcomes:
    """Tails ``predictions`` and ``events.dlq`` with a read_committed reader (no group, nothing committed)."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog) -> None:
        self.predictions = topic_serde(catalog, settings, PREDICTIONS)
        self.raw = topic_serde(catalog, settings, EVENTS_RAW)
        self.raw_topic, self.dlq_topic = self.raw.topic, settings.topic(EVENTS_DLQ.name)
        self.ledger = Ledger()
        self.undecodable = 0  # dead letters of raw events whose bytes do not decode (none expected)
        self.reasons: Counter[str] = Counter()  # the raw events' dead letters, by reason
        self.consumer = reader(settings, "soak")
        assignment = []
        for topic in (self.predictions.topic, self.dlq_topic):
            partitions = self.consumer.list_topics(topic, timeout=15).topics[topic].partitions
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        self.consumer.assign(assignment)

    def poll(self, timeout_s: float = 0.2) -> None:
        for msg in self.consumer.consume(5_000, timeout=timeout_s):
            if msg.error() is not None:
                continue  # the end of a partition
            record = InRecord.of(msg)
            if record.topic == self.dlq_topic:
                headers = read_headers(record.headers)
                if headers.get("original.topic") == self.raw_topic:  # not a label's
                    self.reasons[headers.get("reason", "?")] += 1
                    try:
                        self.ledger.dead_letter(self.raw.decode(record.value)["event_id"])
                    except SerdeError:
                        self.undecodable += 1
            else:
                prediction = self.predictions.decode(record.value)
                if prediction["served"]:
                    self.ledger.serve(prediction["event_id"], prediction["predicted_at"])

    def poll_for(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.poll(min(0.2, max(0.0, until - time.monotonic())))

    def close(self) -> None:
        self.consumer.close()


# --- the processes: memory, lag, labels --------------------------------------------------------------------------


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process, None if there is no such process."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class GroupLag:
    """Records of a worker's input topics its consumer group has not committed yet, from the broker.

    The group is found by its name's prefix: the back, a stateful stage,
    assigns itself every partition and its group carries its instance after
    the prefix; it appears with its first commit. Until then everything is lag.
    """

    def __init__(self, settings: Settings, prefix: str, topics: tuple[str, ...]) -> None:
        self.settings, self.prefix = settings, prefix
        self.watermarks = reader(settings, "soak-lag")
        self.partitions = [TopicPartition(t, p) for t in topics
                           for p in self.watermarks.list_topics(t, timeout=15).topics[t].partitions]
        self.group: Consumer | None = None  # reads the group's offsets, never joins it nor commits

    def now(self) -> int:
        ends = {(tp.topic, tp.partition): watermarks(self.watermarks, tp) for tp in self.partitions}
        committed = {key: low for key, (low, _) in ends.items()}
        if self.group is None and (found := groups_named(self.settings, self.prefix)):
            self.group = Consumer(with_log(self.settings.librdkafka(**{"group.id": found[0],
                                                                       "enable.auto.commit": False})))
        if self.group is not None:
            for tp in self.group.committed(self.partitions, timeout=15):
                if tp.offset >= 0:
                    committed[(tp.topic, tp.partition)] = tp.offset
        return sum(max(0, high - committed[key]) for key, (_, high) in ends.items())

    def close(self) -> None:
        self.watermarks.close()
        if self.group is not None:
            self.group.close()


def groups_named(settings: Settings, prefix: str) -> list[str]:
    """The consumer groups ``prefix`` or ``prefix-*`` (a stateful stage's group carries its instance after it)."""
    with admin_client(settings) as admin:
        listed = admin.list_consumer_groups().result(timeout=15).valid
    return sorted(g.group_id for g in listed if g.group_id == prefix or g.group_id.startswith(f"{prefix}-"))


def labels_settled(back: Settings) -> tuple[int, int] | None:
    """(learned, settled: learned, duplicate, late or unmatched) from the back's /metrics; None if it does not
    answer (not up yet, or too busy to answer within the scrape's timeout)."""
    try:
        text = scrape(back)
    except OSError:
        return None
    outcomes: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "weir_learn_labels":
            for s in family.samples:
                if s.name.endswith("_total"):
                    outcomes[s.labels["outcome"]] = int(s.value)
    return outcomes["learned"], sum(outcomes[k] for k in ("learned", "duplicate", "late", "unmatched"))


@dataclass
class Workers:
    """The front and the back, each in its own process with its own /metrics port."""

    front_settings: Settings
    back_settings: Settings
    logs: dict[str, Path]
    front: subprocess.Popen[bytes] | None = None
    back: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.front = start_worker(self.front_settings, self.logs["front"], "front")
        self.back = start_worker(self.back_settings, self.logs["back"], "back")

    def check(self) -> None:
        for name, process in (("front", self.front), ("back", self.back)):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the {name} worker exited with code {process.returncode}; see {self.logs[name]}")

    def stop(self) -> None:
        for process in (self.front, self.back):
            if process is not None:
                stop_process(process)


# --- the run -----------------------------------------------------------------------------------------------------


@dataclass
class Row:
    elapsed_s: float
    rss: dict[str, float | None]
    lag: dict[str, int]
    produced: int
    served: int
    dead: int
    learned: int | None  # None: the back's /metrics did not answer
    load: float  # the machine's 1-minute load average: other work on the same cores shows here


HEADER = (f"{'elapsed':>8} {'front MB':>9} {'back MB':>8} {'broker MB':>10} {'front lag':>10} {'back lag':>9} "
          f"{'produced':>10} {'served':>10} {'dead-lettered':>14} {'learned':>10} {'load':>5}")


def show(row: Row) -> None:
    minutes, seconds = divmod(int(row.elapsed_s), 60)
    rss = [f"{v:.1f}" if v is not None else "-" for v in (row.rss[p] for p in PROCESSES)]
    print(f"{minutes:>5}:{seconds:02d} {rss[0]:>9} {rss[1]:>8} {rss[2]:>10} {row.lag['front']:>10,} "
          f"{row.lag['back']:>9,} {row.produced:>10,} {row.served:>10,} {row.dead:>14,} "
          f"{'-' if row.learned is None else f'{row.learned:,}':>10} {row.load:5.1f}",
          flush=True)


@contextmanager
def soak_settings(base: Settings) -> Iterator[Settings]:
    """A deployment of its own: topics, app id, state directory and the demo's policy; removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    state = Path(tempfile.mkdtemp(prefix="weir-soak-"))
    policy = state / "policy.yaml"
    policy.write_text(DEMO_POLICY)
    run = base.with_overrides(topic_prefix=f"soak-{tag}.", app_id=f"weir-soak-{tag}", state_dir=state,
                              policy_file=policy, snapshot_every_s=2.0)  # the demo's snapshot pace
    create_topics(run)
    try:
        yield run
    finally:
        delete_topics(run)
        shutil.rmtree(state, ignore_errors=True)


@dataclass
class Soak:
    settings: Settings
    catalog: SchemaCatalog
    plan: Plan
    workers: Workers
    backlog: int  # the stream's first events, produced before the workers start (0: no capacity run)
    outcomes: Outcomes | None = None
    lags: dict[str, GroupLag] = field(default_factory=dict)
    broker_pid: int | None = None
    rows: list[Row] = field(default_factory=list)
    before: tuple[int, int, int, int] = (0, 0, 0, 0)  # served, dead-lettered, learned, settled as the live phase began
    last_labels: tuple[int, int] = (0, 0)  # the back's last answer: labels learned, settled

    def ready(self) -> None:
        """Wait for the front to hold its partitions and the back to answer on /metrics (it assigns itself every
        partition, in no group); then read the topics and the groups' offsets."""
        app = self.settings.app_id

        def up() -> bool:
            self.workers.check()
            return (assigned_members(self.settings, f"{app}-front") > 0
                    and labels_settled(self.workers.back_settings) is not None)

        poll_until(up, timeout_s=180, interval_s=0.5, what="the front holding its partitions and the back answering")
        self.lags = {"front": GroupLag(self.settings, f"{app}-front", (self.settings.topic(EVENTS_RAW.name),)),
                     "back": GroupLag(self.settings, f"{app}-back", back_inputs(self.settings))}
        self.outcomes = Outcomes(self.settings, self.catalog)

    def capacity(self) -> float:
        """Events/s of the whole loop on the backlog: first served prediction to 95% of the labels learned; then
        the rest of the backlog drains."""
        outcomes = self.read()
        goal = int(self.backlog * 0.95)
        while self.labels()[0] < goal:
            self.workers.check()
            outcomes.poll_for(0.2)
        done_ms = now_ms()
        if not self._drain(self.backlog, self.backlog):
            raise RuntimeError(f"the backlog did not drain within {self.plan.drain_s:.0f} s")
        assert outcomes.ledger.first_served_ms is not None
        return goal / ((done_ms - outcomes.ledger.first_served_ms) / 1000)

    def live(self, rate: float) -> tuple[ProduceSummary, bool]:
        """Offer live events at ``rate`` for the plan's minutes, a row every ``every_s``; then drain."""
        outcomes = self.read()
        ledger = outcomes.ledger
        self.before = (ledger.served_events, ledger.dead_events, *self.labels())
        events = int(rate * self.plan.minutes * 60)
        # The same stream goes on after the backlog: new ids, and each customer's tenure never goes back.
        stream = open_source("churn", self.backlog + events, seed=SEED).events
        publisher = EventPublisher(self.settings, self.catalog)
        stop = threading.Event()
        producer = threading.Thread(target=publish, name="soak-producer", kwargs={
            "publisher": publisher, "source": Source("churn", islice(stream, self.backlog, None), events),
            "policy": FeedbackPolicy(f"fixed:{LABEL_DELAY_S}"), "rate": rate, "stop": stop, "progress": False})
        print(HEADER, flush=True)
        started = time.monotonic()
        producer.start()
        try:
            next_row = started + self.plan.every_s
            while producer.is_alive():
                self.workers.check()
                outcomes.poll_for(max(0.0, min(1.0, next_row - time.monotonic())))
                if time.monotonic() >= next_row:
                    self._row(time.monotonic() - started, publisher.summary)
                    next_row += self.plan.every_s
        finally:
            stop.set()
            producer.join()
        self._row(time.monotonic() - started, publisher.summary)  # the last row of the live phase
        summary = publisher.summary
        drained = self._drain(self.backlog + summary.events.delivered, summary.feedback.delivered, self.before[3])
        self._row(time.monotonic() - started, summary, keep=False)  # drained (or not): lag back to about nothing
        if not drained:
            print(f"the loop did not drain within {self.plan.drain_s:.0f} s", flush=True)
        return summary, drained

    def _drain(self, events: int, labels: int, settled_before: int = 0) -> bool:
        """Wait until ``events`` events in all are served or dead-lettered and ``labels`` more labels settled."""
        outcomes = self.read()
        deadline = time.monotonic() + self.plan.drain_s
        while time.monotonic() < deadline:
            self.workers.check()
            outcomes.poll_for(0.5)
            settled = self.labels()[1] - settled_before
            if outcomes.ledger.settled >= events and settled >= labels:
                return True
        return False

    def _row(self, elapsed_s: float, summary: ProduceSummary, keep: bool = True) -> None:
        ledger = self.read().ledger
        assert self.workers.front is not None and self.workers.back is not None
        lag = {name: g.now() for name, g in self.lags.items()}
        served, dead, learned, _ = self.before
        answer = labels_settled(self.workers.back_settings)
        row = Row(elapsed_s, {"front": rss_mb(self.workers.front.pid), "back": rss_mb(self.workers.back.pid),
                              "broker": rss_mb(self.broker_pid)}, lag,
                  summary.events_produced, ledger.served_events - served, ledger.dead_events - dead,
                  None if answer is None else answer[0] - learned, os.getloadavg()[0])
        show(row)
        if keep:
            self.rows.append(row)

    def labels(self) -> tuple[int, int]:
        """``labels_settled`` now, or as the back last answered."""
        answer = labels_settled(self.workers.back_settings)
        if answer is not None:
            self.last_labels = answer
        return self.last_labels

    def read(self) -> Outcomes:
        """What the topics say so far."""
        assert self.outcomes is not None, "ready() starts reading the topics"
        return self.outcomes

    def close(self) -> None:
        for g in self.lags.values():
            g.close()
        if self.outcomes is not None:
            self.outcomes.close()


def judged(rows: list[Row]) -> list[Row]:
    """The rows after warm-up: the last GROWTH_WINDOW_S of the live phase, or its last half if it was shorter than
    twice that."""
    if not rows:
        return []
    window = min(GROWTH_WINDOW_S, rows[-1].elapsed_s / 2)
    return [r for r in rows if r.elapsed_s >= rows[-1].elapsed_s - window]


def growth(rows: list[Row]) -> dict[str, tuple[float, float, float] | None]:
    """Per process: (RSS at the first of ``rows``, at the last, relative growth), None without two rows."""
    out: dict[str, tuple[float, float, float] | None] = dict.fromkeys(PROCESSES)
    if len(rows) >= 2:
        for p in PROCESSES:
            a, b = rows[0].rss[p], rows[-1].rss[p]
            out[p] = (a, b, (b - a) / a) if a and b else None
    return out


def verdict(soak: Soak, summary: ProduceSummary, drained: bool, rate: float) -> int:
    """Print the run's findings; 1 if an event was served twice or lost, or the loop did not drain."""
    outcomes = soak.read()
    ledger = outcomes.ledger
    lost = ledger.lost(soak.backlog + summary.events_produced)
    print(flush=True)
    print(f"live: {summary.events_produced:,} events at {rate:,.0f}/s ({summary.events.failed} failed deliveries), "
          f"{summary.feedback.delivered:,} labels; with the backlog's {soak.backlog:,}: {ledger.served_events:,} "
          f"served, {ledger.dead_events:,} dead-lettered {dict(outcomes.reasons)}", flush=True)
    print(f"served twice: {ledger.twice}; lost (neither served nor dead-lettered): {lost}; "
          f"ids not of the stream: {ledger.foreign}; undecodable dead letters: {outcomes.undecodable}", flush=True)
    late = judged(soak.rows)
    window = (late[-1].elapsed_s - late[0].elapsed_s) / 60 if late else 0.0
    bound = rate * LAG_BOUND_S
    most = {w: max((r.lag[w] for r in soak.rows), default=0) for w in ("front", "back")}
    most_late = {w: max((r.lag[w] for r in late), default=0) for w in ("front", "back")}
    print(f"largest lag: front {most['front']:,}, back {most['back']:,} records; over the last {window:.1f} min: "
          f"front {most_late['front']:,}, back {most_late['back']:,} "
          f"({'bounded' if max(most_late.values()) <= bound else 'NOT bounded'}: at most {bound:,.0f}, "
          f"{LAG_BOUND_S:.0f} s of events)", flush=True)
    parts = []
    for p, g in growth(late).items():
        parts.append(f"{p} -" if g is None else f"{p} {g[2]:+.1%} ({g[0]:.1f} -> {g[1]:.1f} MB)"
                     + ("" if g[2] < GROWTH_GOAL else " ABOVE the goal"))
    print(f"RSS growth over the last {window:.1f} min: {', '.join(parts)} (goal: under {GROWTH_GOAL:.0%})",
          flush=True)
    ok = drained and ledger.twice == 0 and lost == 0 and summary.events.failed == 0 and ledger.foreign == 0
    print(f"exactly once: {'yes' if ok else 'NO'}", flush=True)
    return 0 if ok else 1


def run(plan: Plan) -> int:
    with running_broker() as base:
        catalog = open_catalog(base)
        with soak_settings(base) as settings:
            logs = {name: Path(tempfile.mkstemp(prefix=f"weir-soak-{name}-", suffix=".log")[1])
                    for name in ("front", "back")}
            workers = Workers(settings.with_overrides(web_port=free_port()),
                              settings.with_overrides(web_port=free_port()), logs)
            backlog = plan.backlog if plan.rate is None else 0
            soak = Soak(settings, catalog, plan, workers, backlog,
                        broker_pid=local_kafka.status(settings).pid if settings.uses_local_broker else None)
            print(f"bench.soak: {settings.topic_prefix}*; worker logs {logs['front']}, {logs['back']}", flush=True)
            try:
                if backlog:
                    produce_backlog(settings, catalog, churn(backlog, seed=SEED))
                started = time.monotonic()
                workers.start()
                soak.ready()
                print(f"workers ready in {time.monotonic() - started:.0f} s", flush=True)
                rate = plan.rate
                if rate is None:
                    capacity = soak.capacity()
                    rate = SHARE * capacity
                    print(f"capacity: {capacity:,.0f} events/s on a backlog of {plan.backlog:,} events and labels; "
                          f"offering {rate:,.0f} events/s ({SHARE:.0%}) for {plan.minutes:g} min", flush=True)
                else:
                    print(f"offering {rate:,.0f} events/s for {plan.minutes:g} min", flush=True)
                summary, drained = soak.live(rate)
                return verdict(soak, summary, drained, rate)
            finally:
                soak.close()
                workers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None, help="length of the live phase (default 60)")
    parser.add_argument("--rate", type=float, default=None,
                        help="events/s to offer (default: 70%% of the capacity measured on the backlog)")
    parser.add_argument("--backlog", type=int, default=None, help="events of the capacity run (default 30000)")
    parser.add_argument("--smoke", action="store_true",
                        help="the same path small, in about a minute (1,000 events of backlog, 15 s live)")
    plan = plan_of(parser.parse_args())
    # Stopped by Ctrl-C or a SIGTERM, even when started in the background (where SIGINT starts ignored), it still
    # stops its workers and deletes its topics.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = run(plan)
    except (RuntimeError, TimeoutError, WeirError) as exc:  # a worker died, never got ready, or no broker
        print(f"bench.soak: {exc}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
