"""Live data quality on the four dimensions, counted by the validate stage and exported to Prometheus.

The validate stage counts into a plain ``QualityCounters`` (cheap on the hot
path); a collector renders it at scrape time, and ``summarize_metrics`` turns
a scrape back into the rates the run summary reports: per dimension, per
field (missing and out-of-range rates), late events and dead letters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from streams.validate.rules import DIMENSIONS


@dataclass
class QualityCounters:
    records: Counter[str] = field(default_factory=Counter)  # by source
    dead_letters: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (source, dimension, reason)
    field_seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, field): records checked
    field_missing: Counter[tuple[str, str]] = field(default_factory=Counter)
    field_out_of_range: Counter[tuple[str, str]] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)  # by source
    served_elsewhere: Counter[str] = field(default_factory=Counter)  # by who served them (the HTTP service)
    duplicates: Counter[str] = field(default_factory=Counter)  # by source: event ids served already, not again


class QualityCollector(Collector):
    """Renders ``QualityCounters`` as Prometheus counters when scraped."""

    def __init__(self, counters: QualityCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        yield _family("weir_quality_records", "Records the validate stage checked", ["source"], c.records)
        yield _family("weir_quality_dead_letters", "Records dead-lettered, by dimension and reason",
                      ["source", "dimension", "reason"], c.dead_letters)
        yield _family("weir_quality_field_checked", "Records checked against a declared field", ["source", "field"],
                      c.field_seen)
        yield _family("weir_quality_field_missing", "Records where a declared field was missing (null or absent)",
                      ["source", "field"], c.field_missing)
        yield _family("weir_quality_field_out_of_range", "Records where a field was outside its declared range",
                      ["source", "field"], c.field_out_of_range)
        yield _family("weir_quality_late_events", "Records older than the lag tolerance", ["source"], c.late)
        yield _family("weir_quality_served_elsewhere", "Raw events another Weir process served, passed by",
                      ["served_by"], c.served_elsewhere)
        yield _family("weir_front_duplicates", "Events whose id was served already, dead-lettered, not served again",
                      ["source"], c.duplicates)


def _family(name: str, doc: str, labels: list[str], counts: Counter[Any]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def register(counters: QualityCounters, registry: CollectorRegistry) -> None:
    registry.register(QualityCollector(counters))


def summarize_metrics(exposition: str) -> dict[str, Any]:
    """The run summary's ``quality`` block from a /metrics scrape of a validate worker."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name.startswith("weir_quality_"):
            for s in family.samples:
                if s.name.endswith("_total"):
                    samples.setdefault(family.name, []).append((s.labels, s.value))
    return summarize(samples)


def summarize(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, Any]:
    def total(name: str, **match: str) -> float:
        return sum(v for labels, v in samples.get(name, []) if all(labels.get(k) == m for k, m in match.items()))

    records = total("weir_quality_records")

    def rate(n: float) -> float:
        return round(n / records, 6) if records else 0.0

    dead = samples.get("weir_quality_dead_letters", [])
    checked_fields = samples.get("weir_quality_field_checked", [])
    several_sources = len({labels["source"] for labels, _ in checked_fields}) > 1
    fields: dict[str, dict[str, float]] = {}
    for labels, checked in checked_fields:
        src, name = labels["source"], labels["field"]
        missing = total("weir_quality_field_missing", source=src, field=name)
        out = total("weir_quality_field_out_of_range", source=src, field=name)
        fields[f"{src}.{name}" if several_sources else name] = {
            "missing_rate": round(missing / checked, 6) if checked else 0.0,
            "out_of_range_rate": round(out / checked, 6) if checked else 0.0,
        }
    reasons: Counter[str] = Counter()
    for labels, value in dead:
        reasons[labels["reason"]] += int(value)
    dead_total = sum(v for _, v in dead)
    return {
        "records": int(records),
        "dead_lettered": int(dead_total),
        "dead_letter_rate": rate(dead_total),
        "late_event_rate": rate(total("weir_quality_late_events")),
        "dimensions": {
            d: {"violations": int(total("weir_quality_dead_letters", dimension=d)),
                "rate": rate(total("weir_quality_dead_letters", dimension=d))}
            for d in DIMENSIONS
        },
        "fields": dict(sorted(fields.items())),
        "reasons": dict(reasons.most_common()),
    }


def counters_as_samples(counters: QualityCounters) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The same shape a scrape yields, straight from counters (one process, or tests)."""
    return {
        m.name: [(s.labels, s.value) for s in m.samples if s.name.endswith("_total")]
        for m in QualityCollector(counters).collect()
    }
