"""The dead-letter topic for people: see what was rejected and why, and send it again after a fix.

``inspect`` groups dead letters by reason with a few examples each. ``resend``
re-submits chosen dead letters to the topic they came from, with their
original key and bytes and a ``weir.resent.from`` header naming the dead letter,
so the stage checks them again (without the rules resending itself breaks:
lateness, entity order). Every resent record is accounted for: where it came
from in the DLQ and where the broker put it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message

from weir.contract.deadletter import RESENT_HEADER, RESENT_SIGNATURE, VALUE_DROPPED, read_headers, resend_signature
from weir.contract.messages import InRecord
from weir.contract.topics import EVENTS_DLQ
from weir.kafka.clients import flush_or_raise, make_producer
from weir.kafka.reading import read_topic
from weir.settings import Settings, revealed

log = logging.getLogger("weir.dlq")


@dataclass
class ReasonGroup:
    reason: str
    count: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    dimension: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)


def inspect(settings: Settings, *, examples: int = 3) -> list[ReasonGroup]:
    """Dead letters grouped by reason, most frequent first."""
    groups: dict[str, ReasonGroup] = {}
    for msg in read_topic(settings, settings.topic(EVENTS_DLQ.name)):
        h = read_headers(msg.headers)
        group = groups.setdefault(h.get("reason", "?"), ReasonGroup(h.get("reason", "?")))
        group.count += 1
        group.stages[h.get("stage", "?")] += 1
        group.rules[h.get("rule", "-")] += 1
        group.dimension = h.get("dimension", group.dimension)
        if len(group.examples) < examples:
            group.examples.append(_example(msg, h))
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason))


def _example(msg: InRecord, h: dict[str, str]) -> dict[str, Any]:
    value = msg.value or b""
    return {
        "dlq": f"{msg.partition}/{msg.offset}",
        "key": (msg.key or b"").decode("utf-8", errors="replace"),
        "from": f"{h.get('original.topic')}/{h.get('original.partition')}/{h.get('original.offset')}",
        "message": h.get("message", ""),
        "bytes": len(value),
        "head": value[:24].hex(),
    }


@dataclass
class ResendReport:
    selected: int = 0
    delivered: int = 0
    failed: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)  # one per resent dead letter
    errors: Counter[str] = field(default_factory=Counter)


Selector = Callable[[dict[str, str]], bool]


def select(reasons: tuple[str, ...] = (), stages: tuple[str, ...] = (), rules: tuple[str, ...] = ()) -> Selector:
    """Dead letters whose headers match every given filter (an empty filter matches all)."""
    def chosen(h: dict[str, str]) -> bool:
        return ((not reasons or h.get("reason") in reasons) and (not stages or h.get("stage") in stages)
                and (not rules or h.get("rule") in rules))

    return chosen


def resend(settings: Settings, chosen: Selector, *, limit: int | None = None, dry_run: bool = False) -> ResendReport:
    """Send the chosen dead letters back to their original topics; the report accounts for each one."""
    dlq_topic = settings.topic(EVENTS_DLQ.name)
    report = ResendReport()
    key = revealed(settings.resend_key)
    if key is None:
        log.warning("WEIR_RESEND_KEY is unset: validate checks resent records against every rule, lateness too")
    producer = make_producer(settings)
    for msg in read_topic(settings, dlq_topic):
        h = read_headers(msg.headers)
        if not chosen(h) or (limit is not None and report.selected >= limit):
            continue
        report.selected += 1
        report.by_reason[h.get("reason", "?")] += 1
        entry: dict[str, Any] = {"dlq": f"{dlq_topic}/{msg.partition}/{msg.offset}",
                                 "reason": h.get("reason"), "to": h.get("original.topic"), "status": "dry-run"}
        report.records.append(entry)
        if h.get(VALUE_DROPPED) == "true":  # too large to carry its value: nothing here to send back
            report.failed += 1
            entry.update(status="failed", error="the dead letter has no value (too large); the original is at "
                         f"{h.get('original.topic')}/{h.get('original.partition')}/{h.get('original.offset')}")
            report.errors["value dropped from the dead letter"] += 1
            continue
        if dry_run:
            continue
        entry["status"] = "pending"
        resent_from = entry["dlq"].encode()
        headers = [(RESENT_HEADER, resent_from)]
        if key is not None:
            headers.append((RESENT_SIGNATURE, resend_signature(key, resent_from, msg.value)))
        producer.produce(
            h["original.topic"], key=msg.key, value=msg.value, headers=headers,
            on_delivery=_account(report, entry),
        )
        producer.poll(0)
    flush_or_raise(producer, settings)
    return report


def _account(report: ResendReport, entry: dict[str, Any]) -> Callable[[KafkaError | None, Message], None]:
    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            report.delivered += 1
            entry.update(status="delivered", at=f"{msg.topic()}/{msg.partition()}/{msg.offset()}")
        else:
            report.failed += 1
            report.errors[err.str()] += 1
            entry.update(status="failed", error=err.str())

    return delivered
