"""Serving while the policy retrains: the front's latency during a retraining against the same worker's before it.

One `weir worker` runs front and back in one process, as it does by default,
with a policy that retrains on a schedule: a full retraining whose experiment
fits several candidates on the last labels, read back from the topics. Events
come at a fixed rate with their labels a second later. Each served
prediction's latency runs from its event's send to the moment a
``read_committed`` reader here gets it (after the front's commit), and falls
in one of two groups by its event's send time: during the retraining (from
the back handing the job over to the challenger registered, as the decision's
evidence says) or before it (from the end of the first eighth, left out as
warm-up, to the hand-over, a third of the way through the run). Same process, same
rate, same models and the same work (after the retraining the challenger
scores every event beside the champion: more work, so those events are left
out): the ratio of the two p99s is what a retraining costs the serving path.
Run several times (``--repeats``) for the spread.

Before the retrainer (issue 26) the back read and fit inside its stage, and
the front, on the same event loop, served nothing until it was done.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.broker import running_broker
from bench.e2e import fresh, percentiles, produce_at_rate, send_times
from bench.harness import CommittedReader, arguments, figure, wait_for, worker
from weir.contract.records import Alert
from weir.contract.serde import SchemaCatalog, open_catalog, topic_serde
from weir.contract.topics import ALERTS, PREDICTIONS
from weir.kafka.reading import assigned_members, read_topic
from weir.settings import Settings

SMOKE = {"rate": 150, "seconds": 60, "repeats": 1, "grid": 1}
CANDIDATES = ("[{factory: hoeffding_tree, params: {grace_period: %s}}, "
              "{factory: logistic_regression, params: {l2: %s}}]")


@dataclass(frozen=True)
class Measured:
    """One run: the p99 latency (ms) before and during the retraining, how long it took and how many events each
    group holds."""

    before_p99_ms: float
    during_p99_ms: float
    before_p50_ms: float
    during_p50_ms: float
    retrain_s: float
    events_during: int
    events_before: int

    @property
    def ratio(self) -> float:
        return self.during_p99_ms / self.before_p99_ms


def policy_text(model: str, *, after_labels: int, grid: int) -> str:
    """A full retraining every ``after_labels`` labels, on all of them, choosing among ``2 * grid`` candidates."""
    graces = [50 * 2 ** i for i in range(grid)]
    l2 = [0.0001 * 10 ** i for i in range(grid)]
    candidates = CANDIDATES % (graces, l2)
    return (f"model: {model}\nretrain: {{on_alerts: [], every_labels: {after_labels}, method: full, "
            f"window_labels: {after_labels}, candidates: {candidates}}}\n")


def one_run(base: Settings, catalog: SchemaCatalog, *, rate: int, seconds: int, grid: int) -> Measured:
    events = rate * seconds
    policy = Path(tempfile.mkstemp(prefix="weir-bench-policy-", suffix=".yaml")[1])
    policy.write_text(policy_text(base.model_name, after_labels=max(100, events // 3), grid=grid))
    with fresh(base, "retrain", policy_file=policy) as run:
        loop = worker(run, "retrain")
        reader = CommittedReader(run, run.topic(PREDICTIONS.name))
        try:
            wait_for(lambda: assigned_members(run, f"{run.app_id}-front") > 0, watching=[loop, reader],
                     timeout_s=120, what="the worker holding the front's partitions")
            produce_at_rate(run, "retrain", rate=rate, seconds=seconds, watching=[loop, reader])
            wait_for(lambda: len(reader.received) >= events, watching=[loop, reader], timeout_s=600,
                     interval_s=0.5, what="every event's prediction readable")
            alerts = topic_serde(catalog, run, ALERTS)
            wait_for(lambda: _retrained(run, alerts.topic, catalog) is not None, watching=[loop, reader],
                     timeout_s=600, interval_s=1.0, what="the retraining's challenger registered")
            decision = _retrained(run, alerts.topic, catalog)
        finally:
            reader.stop()
            loop.stop()
        sent = send_times(run, catalog)
    assert decision is not None
    began, ended = int(decision["evidence"]["handed_over_ms"]), decision["detected_at"]
    serde = topic_serde(catalog, run, PREDICTIONS)
    latencies = [(sent[p["event_id"]], at - sent[p["event_id"]]) for at, p in
                 ((at, serde.decode(value)) for at, value in reader.received) if p["served"]]
    warm = min(sent.values()) + seconds * 1000 / 8
    during = [ms for at, ms in latencies if began <= at <= ended]
    before = [ms for at, ms in latencies if warm <= at < began]
    if not during or not before:
        raise SystemExit(f"bench.retrain: {len(during)} events during the retraining and {len(before)} before it; "
                         "give the run more --seconds")
    (out50, out99), (in50, in99) = percentiles(before), percentiles(during)
    return Measured(out99, in99, out50, in50, (ended - began) / 1000, len(during), len(before))


def _retrained(settings: Settings, topic: str, catalog: SchemaCatalog) -> Alert | None:
    """The decision alert of the first retraining carried out, once its challenger is registered."""
    serde = topic_serde(catalog, settings, ALERTS)
    for record in read_topic(settings, topic):
        alert = serde.decode(record.value)
        evidence = alert["evidence"]
        if alert["kind"] == "decision" and evidence.get("action") == "retrain" and evidence.get("proposed") == "false":
            if "handed_over_ms" not in evidence or "outcome" in evidence:
                raise SystemExit(f"bench.retrain: the retraining did not register a challenger: {evidence}")
            return alert
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=250, help="events/s offered (labels follow a second later)")
    parser.add_argument("--seconds", type=int, default=150,
                        help="length of each run; the retraining starts a third of the way in")
    parser.add_argument("--repeats", type=int, default=3, help="runs, for the spread")
    parser.add_argument("--grid", type=int, default=4, help="candidates per factory in the retraining's experiment")
    args = arguments(parser, SMOKE)
    with running_broker() as settings:
        catalog = open_catalog(settings)
        print(f"bench.retrain: {args.repeats} runs of {args.seconds} s at {args.rate} events/s; a full retraining "
              f"of {2 * args.grid} candidates on {max(100, args.rate * args.seconds // 3):,} labels, "
              "front and back in one worker", flush=True)
        runs = []
        for i in range(args.repeats):
            m = one_run(settings, catalog, rate=args.rate, seconds=args.seconds, grid=args.grid)
            runs.append(m)
            figure(f"run {i + 1}", f"retraining {m.retrain_s:.1f} s; front latency p99 {m.before_p99_ms:,.0f} ms "
                   f"before ({m.events_before:,} events), {m.during_p99_ms:,.0f} ms during ({m.events_during:,}); "
                   f"p50 {m.before_p50_ms:,.0f} / {m.during_p50_ms:,.0f} ms")
        ratios = [m.ratio for m in runs]
        figure("front latency p99 during a retraining / before it",
               f"{statistics.median(ratios):.2f} (median of {len(ratios)}; {min(ratios):.2f}-{max(ratios):.2f})")
        figure("retraining time", f"{statistics.median(m.retrain_s for m in runs):.1f} s (median)")


if __name__ == "__main__":
    main()
