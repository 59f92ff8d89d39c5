"""What was served and learned, stretch by stretch, and where alerts and decisions fell: the summaries a demo
run (and a report of a topic range) is made of.

Every function places an event by ``position``: for the demo's generated
stream, its index in the stream (``event_index``); for a topic range, the
seconds (or milliseconds) from the range's first event time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from weir.contract.records import Alert, Label

Position = Callable[[str], int | None]  # an event id -> its place on the axis, or None when it has none


def event_index(event_id: str) -> int | None:
    """A generated event's place in its stream: the number its id ends in (churn-42-000001234)."""
    tail = event_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def served_accuracy_timeline(answers: dict[str, tuple[str, Label | None]], labels: dict[str, Label | None],
                              total: int, stretches: int = 12, position: Position = event_index
                              ) -> list[dict[str, Any]]:
    """Per stretch of events: the served accuracy and which versions served."""
    size = max(1, -(-total // stretches))
    starts = range(0, total, size)
    right, by = Counter[int](), {start: Counter[str]() for start in starts}
    for event_id, (version, answer) in answers.items():
        index = position(event_id)
        if index is None or not 0 <= index < total or answer is None:
            continue
        start = index - index % size
        right[start] += answer == labels.get(event_id)
        by[start][version] += 1
    return [{"from": start, "to": min(total, start + size) - 1, "served": by[start].total(),
             "accuracy": round(right[start] / by[start].total(), 4) if by[start] else None,
             "by_version": dict(by[start])} for start in starts]


def version_timeline(answers: dict[str, dict[str, tuple[Label | None, float | None]]],
                     labels: dict[str, Label | None], total: int, stretches: int = 12,
                     positive: Label = True, position: Position = event_index) -> list[dict[str, Any]]:
    """Per stretch of events, every version's quality on the events it scored (served or not): accuracy, log
    loss from its score (the positive class's probability), and its confusion counts for ``positive``."""
    size = max(1, -(-total // stretches))
    counts: dict[tuple[int, str], Counter[str]] = {}
    losses: dict[tuple[int, str], float] = {}
    for version, by_event in answers.items():
        for event_id, (predicted, score) in by_event.items():
            index, label = position(event_id), labels.get(event_id)
            if index is None or not 0 <= index < total or label is None or predicted is None:
                continue
            key = (index - index % size, version)
            tally = counts.setdefault(key, Counter())
            tally["n"] += 1
            tally["right"] += predicted == label
            tally[("t" if predicted == label else "f") + ("p" if predicted == positive else "n")] += 1
            if score is not None:
                tally["scored"] += 1
                losses[key] = losses.get(key, 0.0) - math.log(
                    min(max(score if label == positive else 1 - score, 1e-15), 1.0))
    return [{"from": start, "to": min(total, start + size) - 1, "versions": {
        version: {"n": c["n"], "accuracy": round(c["right"] / c["n"], 4),
                  "log_loss": round(losses[(start, version)] / c["scored"], 4) if c["scored"] else None,
                  **{k: c[k] for k in ("tp", "fp", "fn", "tn")}}
        for (at, version), c in sorted(counts.items()) if at == start}} for start in range(0, total, size)]


def serving_timeline(timing: dict[str, tuple[float, int]], total: int, stretches: int = 12,
                     position: Position = event_index) -> list[dict[str, Any]]:
    """Per stretch of events: the served events, the scoring latency's median and 99th percentile (ms), and the
    throughput (served events per second of wall clock between the first and last served)."""
    size = max(1, -(-total // stretches))
    by_stretch: dict[int, list[tuple[float, int]]] = {start: [] for start in range(0, total, size)}
    for event_id, timed in timing.items():
        index = position(event_id)
        if index is not None and 0 <= index < total:
            by_stretch[index - index % size].append(timed)
    out = []
    for start, served in by_stretch.items():
        latencies = sorted(latency for latency, _ in served)
        times = [at for _, at in served]
        span_s = (max(times) - min(times)) / 1000 if len(times) > 1 else 0.0
        out.append({"from": start, "to": min(total, start + size) - 1, "served": len(served),
                    "latency_p50_ms": round(latencies[len(latencies) // 2], 3) if latencies else None,
                    "latency_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3)
                    if latencies else None,
                    "throughput_per_s": round(len(served) / span_s, 1) if span_s > 0 else None})
    return out


def recovery_report(answers: dict[str, tuple[str, Label | None]], labels: dict[str, Label | None],
                    decisions: list[dict[str, Any]], span: int = 2_000, position: Position = event_index
                    ) -> list[dict[str, Any]]:
    """Per promotion: the served accuracy over the ``span`` events before the drift point its retraining followed,
    and over the ``span`` events after the promotion, and the gap (issue 15's goal: within 2 points)."""
    right: dict[int, bool] = {}
    for event_id, (_, answer) in answers.items():
        index = position(event_id)
        if index is not None and answer is not None:
            right[index] = answer == labels.get(event_id)

    def accuracy(first: int, end: int) -> tuple[float | None, int]:
        hits = [right[i] for i in range(first, end) if i in right]
        return (round(sum(hits) / len(hits), 4) if hits else None), len(hits)

    out = []
    drift = None  # the drift point before the retraining that started the running trial
    for decision in decisions:
        if decision["action"] == "retrain":
            drift = decision["after_drift"]
        at = decision["event"]
        if decision["action"] != "promote" or drift is None or at is None:
            continue
        before, n_before = accuracy(max(0, drift["at"] - span), drift["at"])
        after, n_after = accuracy(at + 1, at + 1 + span)
        out.append({"drift": drift, "promoted": decision["challenger"], "at": at,
                    "before_drift": {"accuracy": before, "served": n_before},
                    "after_promotion": {"accuracy": after, "served": n_after},
                    "gap": None if before is None or after is None else round(after - before, 4)})
    return out


def drift_report(schedule: list[dict[str, Any]], alerts: list[Alert], position: Position = event_index
                 ) -> dict[str, Any]:
    """Each drift point of the schedule with the alerts that opened after it (and before the next point).

    Alerts are placed by the event they were raised on (the churn event id ends in its index); an alert
    raised before the first point has no drift to explain it and is listed apart.
    """
    points = [{**p, "alerts": []} for p in sorted(schedule, key=lambda p: p["at"])]
    unexplained = []
    for alert in alerts:
        if alert["status"] != "FIRING" or alert["kind"] == "decision":  # decisions have a report of their own
            continue
        index = position(alert["evidence"].get("event_id", ""))
        brief = {"kind": alert["kind"], "subject": alert["subject"], "event": index}
        owner = next((p for p in reversed(points) if index is not None and p["at"] <= index), None)
        if owner is None:
            unexplained.append(brief)
        else:
            owner["alerts"].append({**brief, "delay_events": index - owner["at"]})
    return {"points": points, "alerts_before_any_drift": unexplained}


def decision_report(schedule: list[dict[str, Any]], alerts: list[Alert], position: Position = event_index
                    ) -> list[dict[str, Any]]:
    """Each decision the policy took, in order, with its evidence and where it fell against the drift points."""
    points = sorted(schedule, key=lambda p: p["at"])
    out = []
    for alert in alerts:
        if alert["kind"] != "decision":
            continue
        evidence = alert["evidence"]
        index = position(evidence.get("event_id", ""))
        after = next((p for p in reversed(points) if index is not None and p["at"] <= index), None)
        out.append({"action": evidence.get("action"), "challenger": evidence.get("challenger"),
                    "champion": evidence.get("champion"), "percent": evidence.get("percent"), "event": index,
                    "after_drift": None if after is None else {"kind": after["kind"], "at": after["at"],
                                                                "delay_events": (index or 0) - after["at"]},
                    "evidence": {k: v for k, v in evidence.items() if k not in ("event_id", "event_time")}})
    return out


def alert_brief(alert: Alert, position: Position = event_index) -> dict[str, Any]:
    """An alert as the summary lists it, with the place of the event it was raised on (``event``)."""
    return {**{k: alert[k] for k in ("kind", "subject", "status", "statistic", "evidence", "detected_at")},
            "event": position(alert["evidence"].get("event_id", ""))}
