"""A topic range as the summary a report draws: what was served, learned, alerted and decided between two times.

A live deployment has no demo summary; its topics hold the same facts. The
events are the predictions whose event time falls in [since, until); their
labels come from ``feedback`` (the earliest, where one came twice); the
alerts and decisions are those raised on an event of the range; data quality
counts the raw events the front dead-lettered in the range. Events are
placed by the seconds (milliseconds, for a range under two minutes) from the
range's first event time, in twelve stretches, as the demo's are placed by
their index.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from apps.timelines import (
    alert_brief,
    decision_report,
    served_accuracy_timeline,
    serving_timeline,
    version_timeline,
)
from weir.contract.deadletter import read_headers
from weir.contract.records import Label
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import ALERTS, EVENTS_DLQ, EVENTS_RAW, FEEDBACK, PREDICTIONS
from weir.kafka.reading import read_topic
from weir.settings import Settings


def summarize_range(settings: Settings, catalog: SchemaCatalog, *, since_ms: int, until_ms: int,
                    progress: bool = True) -> dict[str, Any]:
    predictions, feedback = topic_serde(catalog, settings, PREDICTIONS), topic_serde(catalog, settings, FEEDBACK)
    alerts_serde = topic_serde(catalog, settings, ALERTS)
    event_time: dict[str, int] = {}
    answers: dict[str, dict[str, tuple[Label | None, float | None]]] = {}
    served: dict[str, tuple[str, Label | None]] = {}
    timing: dict[str, tuple[float, int]] = {}
    for record in _records(settings, predictions.topic, progress):
        p = predictions.decode(record.value)
        if not since_ms <= p["event_time"] < until_ms:
            continue
        event_time[p["event_id"]] = p["event_time"]
        answers.setdefault(p["model_version"], {})[p["event_id"]] = (p["predicted_label"], p["score"])
        if p["served"] and p["event_id"] not in served:
            served[p["event_id"]] = (p["model_version"], p["predicted_label"])
            timing[p["event_id"]] = (p["latency_ms"], p["predicted_at"])
    if not event_time:
        raise LookupError(f"no prediction has an event time in the range on {predictions.topic}")
    labels: dict[str, tuple[int, Label]] = {}
    for record in _records(settings, feedback.topic, progress):
        f = feedback.decode(record.value)
        if f["event_id"] in event_time and (f["event_id"] not in labels or f["label_time"] < labels[f["event_id"]][0]):
            labels[f["event_id"]] = (f["label_time"], f["label"])
    alerts = [a for a in (alerts_serde.decode(r.value) for r in _records(settings, alerts_serde.topic, progress))
              if a["evidence"].get("event_id") in event_time]
    first, last = min(event_time.values()), max(event_time.values())
    step, unit = (1000, "seconds") if last - first > 120_000 else (1, "ms")  # a short range in milliseconds

    def position(event_id: str) -> int | None:
        at = event_time.get(event_id)
        return None if at is None else (at - first) // step

    total = (last - first) // step + 1
    known: dict[str, Label | None] = {e: label for e, (_, label) in labels.items()}
    return {
        "run_id": f"{settings.topic_prefix or '(no prefix)'} {_iso(since_ms)} to {_iso(until_ms)}",
        "axis": f"{unit} from {_iso(first)}", "unit": unit,
        "events": len(event_time), "served": len(served), "labels": len(labels),
        "served_accuracy_timeline": served_accuracy_timeline(served, known, total, position=position),
        "version_timeline": version_timeline(answers, known, total, position=position),
        "serving_timeline": serving_timeline(timing, total, position=position),
        "alert_list": [alert_brief(a, position) for a in alerts],
        "decisions": decision_report([], alerts, position),
        "drift_schedule": [],
        "quality": _quality(settings, event_time, since_ms, until_ms, progress),
    }


def _quality(settings: Settings, event_time: dict[str, int], since_ms: int, until_ms: int,
             progress: bool) -> dict[str, Any]:
    """The raw events the front refused in the range (by the time they were written), per quality dimension."""
    raw = settings.topic(EVENTS_RAW.name)
    refused: Counter[str] = Counter()
    for record in _records(settings, settings.topic(EVENTS_DLQ.name), progress):
        headers = read_headers(record.headers)
        if headers.get("original.topic") == raw and since_ms <= int(headers.get("original.timestamp", -1)) < until_ms:
            refused[headers.get("dimension", "unknown")] += 1
    records = len(event_time) + sum(refused.values())
    return {"records": records, "fields": {}, "dimensions": {
        d: {"violations": refused[d], "rate": round(refused[d] / records, 6) if records else 0.0}
        for d in sorted({"accuracy", "completeness", "consistency", "timeliness", *refused})}}


def _records(settings: Settings, topic: str, progress: bool) -> Any:
    return tqdm(read_topic(settings, topic, timeout_s=600), desc=f"reading {topic}", unit="rec",
                disable=not progress, dynamic_ncols=True)


def _iso(ms: int) -> str:
    if ms <= 0 or ms >= 2**62:
        return "the beginning" if ms <= 0 else "the end"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
